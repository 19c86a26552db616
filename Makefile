# Two entry points, the README's quick start:
#   make site   set up the controller and run site.yml on the default (lab) inventory
#   make test   set up the controller and the podman test host, run the whole test suite
#   make bench  time preflight, the renders and one layer's re-run at 8, 100 and 600 hosts (docs/scale.md)
# Options: INVENTORY=inventories/production make site ARGS="--tags preflight"
#          make test PYTEST_ARGS="-k catalogue"

PYTHON ?= python3
VENV ?= .venv
INVENTORY ?= inventories/lab
ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: site test test-setup test-host test-host-packages bench

site: $(VENV)/.runtime
	$(VENV)/bin/ansible-playbook -i $(INVENTORY) site.yml $(ARGS)

# The virtualenv (pip, mostly one core) and the test host's packages (apt,
# mostly waiting on the mirror and the disk) are set up side by side; the
# scenarios' images are built by the first scenario that needs them
# (tests/test_molecule.py), beside the tests that need none.
test: test-setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-setup:
	$(MAKE) --no-print-directory -j2 $(VENV)/.test test-host-packages

test-host-packages:
	scripts/setup-test-host.sh --no-images

bench: $(VENV)/.test
	$(VENV)/bin/python tests/bench.py $(BENCH_ARGS)

# podman, runc, debootstrap and the offline-built Debian 12 systemd image that
# the molecule scenarios run on (root only; a no-op once done).
test-host:
	scripts/setup-test-host.sh

# --no-compile, then compileall on every core: pip byte-compiles what it
# installs (2.4 GB here) one file after another, two thirds of the install's
# time. The bytecode must be written here: where PYTHONDONTWRITEBYTECODE is set
# (as on this project's CI machines) nothing would cache it on first import, and
# every ansible-playbook would compile ansible again.
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-compile --disable-pip-version-check -e .
	$(VENV)/bin/python -m compileall -q -j0 $(VENV)/lib >/dev/null
	touch $@

$(VENV)/.test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-compile --disable-pip-version-check -e '.[test]'
	$(VENV)/bin/python -m compileall -q -j0 $(VENV)/lib >/dev/null
	touch $@ $(VENV)/.runtime
