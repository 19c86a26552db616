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
# Python caches the bytecode of what it imports, once, in the virtualenv's
# __pycache__: where PYTHONDONTWRITEBYTECODE is set (as on this project's CI
# machines) nothing would be cached, and every ansible-playbook would compile
# Ansible again (a suite run took 18 minutes instead of 10). Compiling only
# what is imported costs a few seconds; compiling the whole 2.4 GB virtualenv
# after pip (compileall on every core) cost 50-65 s of the clean install.
RUN := env -u PYTHONDONTWRITEBYTECODE

.PHONY: site test test-setup test-host test-host-packages bench

site: $(VENV)/.runtime
	$(RUN) $(VENV)/bin/ansible-playbook -i $(INVENTORY) site.yml $(ARGS)

# The virtualenv (pip, mostly one core) and the test host's packages (apt,
# mostly waiting on the mirror and the disk) are set up side by side; the
# scenarios' image is built by the first scenario that needs it
# (tests/test_molecule.py), beside the tests that need none.
test: test-setup
	$(RUN) $(VENV)/bin/pytest $(PYTEST_ARGS)

test-setup:
	$(MAKE) --no-print-directory -j2 $(VENV)/.test test-host-packages

test-host-packages:
	scripts/setup-test-host.sh --no-images

bench: $(VENV)/.test
	$(RUN) $(VENV)/bin/python tests/bench.py $(BENCH_ARGS)

# podman, runc, mmdebstrap and the offline-built Debian 12 systemd image that
# the molecule scenarios run on (root only; a no-op once done).
test-host:
	scripts/setup-test-host.sh

# The packages are installed by uv (scripts/uv-requirements.txt: pinned, hashes
# checked), which fetches and unpacks them in parallel: 17 s for the test
# virtualenv from nothing, against 50-80 s for pip. uv reads PyPI (or
# UV_INDEX_URL); where it cannot, pip installs them instead, with the index
# its own configuration names. Neither byte-compiles (pip: --no-compile; it
# took 110 of pip's 164 s). The controller's virtualenv is then compiled on
# every core, once, for the README's commands run as .venv/bin/ansible-playbook
# where PYTHONDONTWRITEBYTECODE is set; the test virtualenv is not (2.4 GB,
# 50-65 s): `make test` caches what it imports.
define install
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r scripts/uv-requirements.txt
	$(VENV)/bin/uv pip install --quiet --native-tls --python $(VENV)/bin/python -e '$(1)' \
	  || { echo "make: uv could not install $(1) (no PyPI? set UV_INDEX_URL); installing with pip" >&2; \
	       $(VENV)/bin/pip install --quiet --no-compile --disable-pip-version-check -e '$(1)'; }
endef

$(VENV)/.runtime: pyproject.toml scripts/uv-requirements.txt
	$(call install,.)
	$(VENV)/bin/python -m compileall -q -j0 $(VENV)/lib >/dev/null
	touch $@

$(VENV)/.test: pyproject.toml scripts/uv-requirements.txt
	$(call install,.[test])
	touch $@ $(VENV)/.runtime
