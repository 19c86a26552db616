"""The operator's path: every README command that contacts no host, run as written, twice, on
one checkout of each sample inventory, with no path overridden.

The first gitops render is the session's render of that inventory (the `rendered` fixture runs
the README's command in a copy of the project); this test runs it again in the same copy. The
first runs of the inventory check, render-compute.yml and artifacts.yml there are the session's
too (conftest.session_command, which the tests of render-compute's files and of the air-gap
list read); this test runs each a second time. Every
second run passes with the output of the first, and afterwards the inventory holds only what the
operator wrote: its files are the sample's, and `ansible-inventory --list` shows the sample's
hosts and groups. The installer's state went to the copy's .state/<inventory>/."""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import (ROOT, digest, gitops_render_command, hostless_commands, operator_run, project_copy, readme_command, run,
                      session_command, state_dir, tool)


def comparable(output):
    """A run's output with what legitimately differs between a first and a second run made equal:
    a task that created something reports changed and the recap counts it, and hosts report in
    the order they finish (each task's lines are compared as a set)."""
    output = re.sub(r"^changed: ", "ok: ", output, flags=re.M)
    output = re.sub(r"\bchanged=\d+ +", "changed=N ", output)
    output = re.sub(r"^(included: \S+ for )(.*)$", lambda m: m[1] + ", ".join(sorted(m[2].split(", "))), output, flags=re.M)
    sections = re.split(r"\n(?=(?:TASK|PLAY|RUNNING HANDLER) \[)", output)
    return [(section.split("\n", 1)[0], sorted(section.split("\n")[1:])) for section in sections]


def inventory_listing(project, inventory):
    result = run([tool("ansible-inventory"), "-i", f"inventories/{inventory}", "--list"], cwd=project)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    # Host variables come from the inventory's files; the listing of hosts and groups is what counts.
    return {group: sorted(entry.get("hosts", [])) + sorted(entry.get("children", [])) for group, entry in listing.items() if group != "_meta"}, \
        sorted(listing["_meta"]["hostvars"])


@pytest.mark.long
def test_every_readme_command_runs_twice_with_the_same_result(rendered, tmp_path, tmp_path_factory):
    inventory, tree, _ = rendered
    project = tree.parent / f"{tree.name}-project"
    pristine = inventory_listing(project_copy(tmp_path / "pristine"), inventory)
    timings = {}

    before = digest(tree)
    started = time.monotonic()
    again = operator_run(project, gitops_render_command(), inventory, tree)
    timings["gitops render (2nd)"] = time.monotonic() - started
    assert again.returncode == 0, again.stdout[-3000:]
    first = (tree.parent / f"{tree.name}.out").read_text()
    assert comparable(again.stdout) == comparable(first)
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", again.stdout), "a second render changes nothing"
    assert digest(tree) == before, "a second render is byte-identical"

    for label, command in hostless_commands().items():
        once = session_command(label, inventory, tmp_path_factory)
        timings[f"{label} (1)"] = once.seconds
        assert once.returncode == 0, f"{label}, run 1:\n{once.stdout[-3000:]}"
        started = time.monotonic()
        result = operator_run(project, command, inventory)
        timings[f"{label} (2)"] = time.monotonic() - started
        assert result.returncode == 0, f"{label}, run 2:\n{result.stdout[-3000:]}"
        outputs = [once.stdout, result.stdout]
        assert comparable(outputs[1]) == comparable(outputs[0]), label
        assert not re.search(r"changed=[1-9]", outputs[1]), f"{label}: the second run changed something"

    assert digest(tree) == before, "the other commands leave the tree alone"
    assert digest(project / "inventories" / inventory) == digest(ROOT / "inventories" / inventory), "the inventory holds only what the operator wrote"
    assert inventory_listing(project, inventory) == pristine
    state = state_dir(project, inventory)
    assert (state / "credentials").stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in (state / "credentials").iterdir())
    assert (state / "airgap-artifacts.yml").is_file()
    print(f"\n{inventory}: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def test_state_an_earlier_release_kept_in_the_inventory_moves_out_and_is_kept(project):
    """An installation made by the release before: credentials and artifacts inside the inventory.
    The first run moves them to the state directory (saying so), and the credentials are the same
    ones (regenerating them would lock the operator out of running services)."""
    inventory = project / "inventories" / "lab"
    (inventory / "credentials").mkdir(mode=0o700)
    secret = "Kept0ver7heUpgrade0123456789abcdefghijkl"
    (inventory / "credentials" / "observability.yml").write_text(f"grafana:\n  password: {secret}\n")
    (inventory / "credentials" / "observability.yml").chmod(0o600)
    (inventory / "artifacts" / "rendered" / "lab").mkdir(parents=True)
    (inventory / "artifacts" / "rendered" / "lab" / "config.yaml").write_text("metadata: {}\nspec: {}\n")
    (inventory / "artifacts" / "admin.conf").write_text("apiVersion: v1\nkind: Config\n")
    result = operator_run(project, readme_command("site.yml", tags="preflight_inventory"), "lab")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Moved out of the inventory" in result.stdout
    # Had the inventory been read with them in it, the check would name groups metadata, spec, grafana.
    assert "not part of the inventory contract" not in result.stdout
    state = state_dir(project, "lab")
    assert sorted(p.name for p in inventory.iterdir()) == ["group_vars", "hosts.yml"]
    assert secret in (state / "credentials" / "observability.yml").read_text()
    assert (state / "admin.conf").is_file() and (state / "rendered" / "lab" / "config.yaml").is_file()
    assert state.stat().st_mode & 0o777 == 0o700
    again = operator_run(project, readme_command("site.yml", tags="preflight_inventory"), "lab")
    assert again.returncode == 0 and "Moved out of the inventory" not in again.stdout


def test_state_in_both_places_stops_before_anything_changes(project):
    inventory = project / "inventories" / "lab"
    for place in (inventory / "credentials", state_dir(project, "lab") / "credentials"):
        place.mkdir(mode=0o700, parents=True)
        (place / "serving.yml").write_text("default: {token: x}\n")
        (place / "serving.yml").chmod(0o600)
    result = operator_run(project, readme_command("site.yml", tags="preflight_inventory"), "lab")
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    assert f"{inventory}/credentials and {state_dir(project, 'lab')}/credentials both exist" in text
    assert (inventory / "credentials" / "serving.yml").is_file()
