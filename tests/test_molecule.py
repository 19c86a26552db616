"""Molecule scenarios with the podman driver, run for real on systemd Debian 12 containers.

Each scenario under molecule/ runs `molecule test`: create, converge,
idempotence (no changes on a second run), verify, destroy. Scenarios named
kind-* or online-* need container images, release files and charts from the
internet (and kind-* Docker and kind): they are syntax-checked everywhere and
run only with PLATFORM_ONLINE=1.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from conftest import ROOT, run, tool

IMAGE = "localhost/platform-debian12:latest"
SCENARIOS = sorted(
    p.name for p in (ROOT / "molecule").iterdir() if (p / "molecule.yml").exists() and not p.name.startswith(("kind-", "online-"))
)


def podman_ready():
    if shutil.which("podman") is None:
        return "podman is not installed (run scripts/setup-test-host.sh as root)"
    if run(["podman", "image", "exists", IMAGE]).returncode != 0:
        return f"the test image {IMAGE} is missing (run scripts/setup-test-host.sh as root)"
    return None


@pytest.mark.molecule
# One scenario at a time: they share the podman host and its test image.
@pytest.mark.xdist_group("molecule")
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario):
    reason = podman_ready()
    if reason:
        # CI installs podman and builds the image first (make test): there a skip would hide a broken setup.
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    molecule_test(scenario, timeout=1500)


def molecule_test(scenario, timeout):
    """Run `molecule test` for a scenario; every scenario must converge, change nothing on a
    second converge, and verify."""
    result = run([tool("molecule"), "test", "-s", scenario], timeout=timeout, env={"NO_COLOR": "1"})
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, output[-20000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"{step}: Executed: Successful" in output, f"{scenario}: {step} did not run successfully\n{output[-8000:]}"


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
