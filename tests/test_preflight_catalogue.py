"""The catalogue of broken inventories: each must fail preflight, naming its fault.

Every case is written out as a real inventory and run through the command an
operator runs, `ansible-playbook site.yml --tags preflight_inventory -i <inv>`:
forked from a process that has imported Ansible once (tests/preloaded.py), which
halves the cost of each of the hundred and more runs; the sample inventories run
the ansible-playbook command itself, and one case runs both ways to show that they
agree. Its hosts use TEST-NET addresses over SSH: a run that tried to contact one
would report it UNREACHABLE (or hang), so a clean failure also proves no host was
touched.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from conftest import ROOT, run, tool

CATALOGUE = yaml.safe_load((ROOT / "tests" / "preflight_catalogue.yml").read_text())
SAMPLES = ["lab", "production", "airgap"]


def build_inventory(case: dict) -> dict:
    base = copy.deepcopy(CATALOGUE["base"])
    variables = base["vars"]
    variables.update(copy.deepcopy(case.get("vars", {})))
    for name in case.get("unset", []):
        variables.pop(name, None)
    groups = base["groups"]
    for name in case.get("drop_groups", []):
        groups.pop(name)
    for group, hosts in case.get("groups", {}).items():
        groups.setdefault(group, {}).update(copy.deepcopy(hosts))
    children = {group: {"hosts": hosts} for group, hosts in groups.items()}
    # Every host is reached over SSH on a TEST-NET address, so contacting one would fail loudly.
    variables.update({"ansible_connection": "ssh", "ansible_ssh_common_args": "-o ConnectTimeout=2"})
    return {"all": {"vars": variables, "children": children}}


def preflight_inventory(inventory_dir, extra_vars=None, preloaded=False):
    args = [tool("ansible-playbook"), "site.yml", "--tags", "preflight_inventory", "-i", str(inventory_dir)]
    if extra_vars:
        args += ["-e", json.dumps(extra_vars)]
    return run(args, timeout=120, preloaded=preloaded)


def test_catalogue_is_large_and_distinct():
    ids = [case["id"] for case in CATALOGUE["cases"]]
    assert len(ids) >= 40
    assert len(ids) == len(set(ids))
    assert all(case.get("expect") and case.get("why") for case in CATALOGUE["cases"])


def test_base_inventory_passes(tmp_path):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(build_inventory({})))
    result = preflight_inventory(tmp_path, preloaded=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_preloaded_run_is_the_ansible_playbook_commands_run(tmp_path):
    """The same case through the command and through tests/preloaded.py: the same code and output."""
    case = next(c for c in CATALOGUE["cases"] if c.get("extra_vars"))
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(build_inventory(case)))
    command = preflight_inventory(tmp_path, case["extra_vars"])
    forked = preflight_inventory(tmp_path, case["extra_vars"], preloaded=True)
    assert (forked.returncode, forked.stdout, forked.stderr) == (command.returncode, command.stdout, command.stderr)
    assert command.returncode == 2 and all(expected in command.stdout + command.stderr for expected in case["expect"])


@pytest.mark.parametrize("case", CATALOGUE["cases"], ids=[c["id"] for c in CATALOGUE["cases"]])
def test_broken_inventory_fails_with_named_fault(case, tmp_path):
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(build_inventory(case)))
    result = preflight_inventory(tmp_path, case.get("extra_vars"), preloaded=True)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "UNREACHABLE" not in output
    assert "The inventory has" in output and "no host has been contacted or changed" in output
    for expected in case["expect"]:
        assert expected in output, f"{case['id']}: missing {expected!r} in:\n{output}"


@pytest.mark.parametrize("inventory", SAMPLES)
def test_sample_inventories_pass_the_inventory_checks(inventory):
    result = preflight_inventory(ROOT / "inventories" / inventory)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "UNREACHABLE" not in output
    assert "Check the inventory against the platform contract" in output
