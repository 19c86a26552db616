"""Molecule scenarios with the podman driver, run for real on systemd Debian 12 containers.

Each scenario under molecule/ runs `molecule test`: create, converge,
idempotence (no changes on a second run), verify, destroy. Scenarios named
kind-* or online-* need container images, release files and charts from the
internet (and kind-* Docker and kind): they are syntax-checked everywhere and
run only with PLATFORM_ONLINE=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import yaml

from conftest import ROOT, run, tool

# The test image, with Debian's package lists and the scenarios' package files in apt's cache
# (scripts/build-test-image.sh).
IMAGE = "localhost/platform-debian12-apt:latest"
SCENARIOS = sorted(
    p.name for p in (ROOT / "molecule").iterdir() if (p / "molecule.yml").exists() and not p.name.startswith(("kind-", "online-"))
)


def podman_ready():
    if shutil.which("podman") is None:
        return "podman is not installed (run scripts/setup-test-host.sh as root)"
    if run(["podman", "image", "exists", IMAGE]).returncode != 0:
        return f"the test image {IMAGE} is missing (run scripts/setup-test-host.sh as root)"
    return None


@pytest.fixture(scope="session")
def test_image(tmp_path_factory):
    """The image the scenarios run on, built (or found current) by the first scenario that
    needs it, once for every worker (a file lock). `make test` prepares the rest of the host
    first (`scripts/setup-test-host.sh --no-images`), so on a fresh machine the image build
    overlaps the tests that need no container; where it is current this is a label check."""
    from filelock import FileLock

    if shutil.which("podman") is None or os.geteuid() != 0:
        return  # podman_ready says why
    with FileLock(tmp_path_factory.getbasetemp().parent / "test-image.lock"):
        result = run([str(ROOT / "scripts" / "build-test-image.sh")], timeout=1200)
    assert result.returncode == 0, f"scripts/build-test-image.sh failed:\n{result.stdout}{result.stderr}"


@pytest.mark.molecule
@pytest.mark.long
# No xdist_group: the scenarios may run side by side. Their containers have names of their own
# (compute-*, storage-*, preflight-*) on podman's default network, only compute-podman serves
# anything on this machine (its mirror, one port), and none changes the shared kernel
# (compute_host_activate and storage_host_activate are off; preflight only reads).
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario, test_image):
    reason = podman_ready()
    if reason:
        # CI installs podman (make test) and test_images builds the image: there a skip would hide a broken setup.
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    molecule_test(scenario, timeout=1500)


# `molecule test`, with one change: molecule checks that its backend runs (`ansible-playbook
# --version`, 0.3 CPU-s) before each of a scenario's seven playbook runs; here the first check
# stands for the others, as the backend cannot change within the run.
MOLECULE_CHECKING_THE_BACKEND_ONCE = """
import sys
from molecule.__main__ import main
from molecule.provisioner.ansible_playbook import AnsiblePlaybook
checked, check = set(), AnsiblePlaybook._validate_backend
def check_once(self, backend):
    if backend not in checked:
        check(self, backend)
        checked.add(backend)
AnsiblePlaybook._validate_backend = check_once
sys.argv[0] = "molecule"
sys.exit(main())
"""


def molecule_test(scenario, timeout):
    """Run `molecule test` for a scenario; every scenario must converge, change nothing on a
    second converge, and verify."""
    result = run([tool("python"), "-c", MOLECULE_CHECKING_THE_BACKEND_ONCE, "test", "-s", scenario], timeout=timeout, env={"NO_COLOR": "1"})
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, output[-20000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"{step}: Executed: Successful" in output, f"{scenario}: {step} did not run successfully\n{output[-8000:]}"


def test_collections_are_the_pinned_versions():
    """The scenarios skip molecule's prerun (prerun: false), which ran `ansible-galaxy collection
    install -r collections/requirements.yml` before each of them: it installed nothing, and would
    have failed here (no Galaxy) had a pin not been met. This is that check, once: every pinned
    collection is found, first on ansible's collections path, at the pinned version."""
    result = run([tool("ansible-galaxy"), "collection", "list", "--format", "json"])
    assert result.returncode == 0, result.stdout + result.stderr
    found = {}
    for collections in json.loads(result.stdout).values():  # in ansible's search order
        for name, info in collections.items():
            found.setdefault(name, info["version"])
    pinned = yaml.safe_load((ROOT / "collections" / "requirements.yml").read_text())["collections"]
    assert pinned, "collections/requirements.yml pins no collection"
    wrong = {c["name"]: (c["version"], found.get(c["name"], "missing")) for c in pinned if found.get(c["name"]) != c["version"]}
    assert not wrong, f"collection: (pinned, found) {wrong}"


ONLINE_SCENARIOS = sorted(
    p.name for p in (ROOT / "molecule").iterdir() if (p / "molecule.yml").exists() and p.name.startswith(("kind-", "online-"))
)


@pytest.mark.parametrize("scenario", ONLINE_SCENARIOS)
def test_online_scenario_playbooks_are_valid(scenario):
    for playbook in sorted((ROOT / "molecule" / scenario).glob("*.yml")):
        if playbook.name == "molecule.yml":
            continue
        result = run([tool("ansible-playbook"), "--syntax-check", "-i", "localhost,", str(playbook)], env={"MOLECULE_EPHEMERAL_DIRECTORY": "/nonexistent"})
        assert result.returncode == 0, f"{playbook}: {result.stdout}{result.stderr}"


def online_ready(scenario):
    if not os.environ.get("PLATFORM_ONLINE"):
        return (
            f"{scenario} needs internet access to container images, release files and charts"
            + (", and Docker and kind," if scenario.startswith("kind-") else "")
            + (" which" if scenario.startswith("kind-") else ", which")
            + " this machine and CI lack; run it with PLATFORM_ONLINE=1 on a machine that has them"
        )
    tools = ("docker", "kind", "kubectl") if scenario.startswith("kind-") else ("podman",)
    missing = [t for t in tools if shutil.which(t) is None]
    return f"PLATFORM_ONLINE is set but {', '.join(missing)} is not installed" if missing else None


@pytest.mark.molecule
@pytest.mark.parametrize("scenario", ONLINE_SCENARIOS)
def test_online_scenario(scenario):
    reason = online_ready(scenario)
    if reason:
        pytest.skip(reason)
    molecule_test(scenario, timeout=3600)
