"""Static checks: every playbook parses, ansible-lint (production profile) and yamllint pass,
and every role states its interface."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run, tool

PLAYBOOKS = sorted(
    str(p.relative_to(ROOT))
    for p in [ROOT / "site.yml", *(ROOT / "playbooks").glob("*.yml")]
)
STANDALONE = {"playbooks/upgrade.yml", "playbooks/reset.yml", "playbooks/render-compute.yml", "playbooks/promote.yml", "playbooks/artifacts.yml", "playbooks/bundle.yml", "playbooks/backup.yml", "playbooks/restore.yml", "playbooks/rotate.yml"}
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("inventory", ["lab", "production", "airgap"])
def test_syntax_check(inventory):
    """Every playbook, in one ansible-playbook run per inventory (a run stops at the first playbook
    that does not parse, and names it)."""
    result = run([tool("ansible-playbook"), "--syntax-check", "-i", f"inventories/{inventory}", *PLAYBOOKS])
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.findall(r"^playbook: (\S+)$", result.stdout, flags=re.M) == PLAYBOOKS, "every playbook was checked"


def test_syntax_check_fails_on_a_broken_playbook(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: localhost\n  tasks:\n    - ansible.builtin.debug: {msg: x}\n      no_such_keyword: 1\n")
    result = run([tool("ansible-playbook"), "--syntax-check", "-i", "inventories/lab", PLAYBOOKS[0], str(broken)])
    assert result.returncode != 0 and "no_such_keyword" in result.stdout + result.stderr


def test_syntax_check_of_every_playbook_and_role(tmp_path):
    """What ansible-lint's syntax-check rule checks (every playbook it finds, the molecule
    scenarios' included, and every role imported alone), in one ansible-playbook run instead of
    one per file (about 90 s of the suite): ansible-lint runs with that rule off below."""
    playbooks = PLAYBOOKS + sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "molecule").glob("*/*.yml") if p.name != "molecule.yml"
    )
    for role in ROLES:
        alone = tmp_path / f"role-{role.name}.yml"
        alone.write_text(
            f"- name: The role {role.name} alone\n  hosts: localhost\n  gather_facts: false\n"
            f"  tasks:\n    - name: Import it\n      ansible.builtin.import_role:\n        name: {role}\n"
        )
        playbooks.append(str(alone))
    result = run([tool("ansible-playbook"), "--syntax-check", *playbooks], env={"MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.findall(r"^playbook: (\S+)$", result.stdout, flags=re.M) == playbooks, "every playbook and role was checked"
    # ansible-lint below takes an imported playbook's syntax as this run found it.
    assert not unchecked_imports(playbooks)


def unchecked_imports(playbooks):
    """What the playbooks import (import_playbook) that is not one of them, as 'playbook imports file'."""
    checked = {(ROOT / p).resolve() for p in playbooks}
    found = []
    for playbook in playbooks:
        for play in yaml.safe_load((ROOT / playbook).read_text()) or []:
            imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
            if imported and ((ROOT / playbook).parent / imported).resolve() not in checked:
                found.append(f"{playbook} imports {imported}")
    return found


def test_an_import_outside_the_syntax_check_is_named(tmp_path):
    (tmp_path / "main.yml").write_text("- name: Elsewhere\n  ansible.builtin.import_playbook: other/play.yml\n")
    assert unchecked_imports([str(tmp_path / "main.yml")]) == [f"{tmp_path / 'main.yml'} imports other/play.yml"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "play.yml").write_text("- name: Other\n  hosts: localhost\n  tasks: []\n")
    assert unchecked_imports([str(tmp_path / "main.yml"), str(tmp_path / "other" / "play.yml")]) == []


# ansible-lint (pinned in the test extras) with its syntax-check phase, one ansible-playbook per
# playbook and role, left to test_syntax_check_of_every_playbook_and_role, which runs the same
# check over the same files in one process. The rule cannot be skipped from the command line.
# The same goes for the check ansible-compat's has_playbook() makes of each playbook an
# import_playbook names before ansible-lint follows it: one `ansible-playbook --syntax-check`
# each, one after another (twenty for the imports it follows from site.yml and the other
# playbooks: 9 CPU-s and 9 s). Each imported file must be one that run checks
# (unchecked_imports); here it must still exist, as has_playbook's run required.
# Its yaml rule (yamllint on each file it lints, with the project's .yamllint) is skipped below:
# test_yamllint runs yamllint with that configuration over every YAML file, these included.
LINT_WITHOUT_SYNTAX_CHECK = """
import sys
from pathlib import Path
from ansible_compat.runtime import Runtime
from ansiblelint import runner
from ansiblelint.__main__ import _run_cli_entrypoint
runner.Runner._run_syntax_check_phase = lambda self, matches: []
Runtime.has_playbook = lambda self, playbook, *, basedir=None: (Path(basedir or ".") / playbook).is_file()
sys.argv[0] = "ansible-lint"
sys.exit(_run_cli_entrypoint())
"""


@pytest.mark.long
def test_ansible_lint_production_profile():
    result = run([tool("python"), "-c", LINT_WITHOUT_SYNTAX_CHECK, "--offline", "--profile", "production", "--skip-list", "yaml"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_ansible_lint_fails_on_a_task_without_a_name(tmp_path):
    """The in-process run still lints: a role task with no name fails the production profile."""
    role = tmp_path / "roles" / "broken" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text("---\n- ansible.builtin.debug:\n    msg: x\n")
    result = run([tool("python"), "-c", LINT_WITHOUT_SYNTAX_CHECK, "--offline", "--profile", "production", "--nocolor"], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "name[missing]" in output and "roles/broken/tasks/main.yml" in output, output


def test_yamllint():
    result = run([tool("yamllint"), "--strict", "."])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_role_states_its_interface(role):
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    defaults_file = role / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    documented = {name: option for spec in specs.values() for name, option in (spec.get("options") or {}).items()}
    for name, value in (defaults or {}).items():
        assert name.startswith(f"{role.name}_"), f"{role.name}: default {name} is not prefixed with the role name"
        assert name in documented, f"{role.name}: default {name} is missing from meta/argument_specs.yml"
        assert documented[name].get("description"), f"{role.name}: {name} has no description"
        assert documented[name].get("default") == value, f"{role.name}: {name} default differs between defaults/main.yml and argument_specs"
    for name in documented:
        assert name in (defaults or {}) or documented[name].get("required"), f"{role.name}: {name} has neither a default nor required: true"


@pytest.fixture(scope="module")
def role_docs():
    """{role: its section} of ansible-doc run on every role at once (one Ansible start instead
    of one per role); empty when that run failed (one unreadable role fails it for all)."""
    result = run([tool("ansible-doc"), "-t", "role", "-r", "roles", *(role.name for role in ROLES)])
    sections = {}
    for section in re.split(r"^(?=> ROLE: )", result.stdout, flags=re.M) if result.returncode == 0 else []:
        header = re.match(r"> ROLE: \*?([^*\s]+)\*? \((.*)\)", section)
        if header and Path(header[2]) == ROOT / "roles" / header[1]:
            sections[header[1]] = section
    return sections


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_ansible_doc_reads_the_role(role, role_docs):
    text = role_docs.get(role.name)
    if text is None:  # the run of every role failed or left this one out: this role alone
        result = run([tool("ansible-doc"), "-t", "role", "-r", "roles", role.name])
        assert result.returncode == 0, result.stderr
        text = result.stdout
    assert "ENTRY POINT" in text


@pytest.mark.parametrize("kind, folder", [("module", "modules"), ("lookup", "lookup")])
def test_ansible_doc_reads_every_plugin(kind, folder):
    """Each module's and lookup's DOCUMENTATION is what ansible-doc can read (one run for each
    kind): a description line that YAML reads as a mapping (a ': ' in it) makes it fail, and a
    lookup whose documentation does not parse does not load at all."""
    plugins = sorted(p.stem for p in (ROOT / "plugins" / folder).glob("*.py"))
    assert plugins, f"plugins/{folder} holds no plugin"
    result = run([tool("ansible-doc"), "-t", kind, *(f"mlplatform.baremetal.{m}" for m in plugins)])
    assert result.returncode == 0 and "ERROR" not in result.stderr, result.stderr
    for plugin in plugins:
        assert f"> {kind.upper()} mlplatform.baremetal.{plugin} (" in result.stdout.replace("\x1b[1m", "").replace("\x1b[0m", ""), plugin


def test_every_playbook_is_in_site_or_standalone():
    # site.yml runs playbooks/site.yml (the collection's mlplatform.baremetal.site), which imports the layers.
    assert "import_playbook: playbooks/site.yml" in (ROOT / "site.yml").read_text()
    site = (ROOT / "playbooks" / "site.yml").read_text()
    for playbook in PLAYBOOKS:
        if playbook in ("site.yml", "playbooks/site.yml"):
            continue
        if playbook in STANDALONE:
            # Day-2 playbooks are run on their own; each says how at its top, and the README lists it.
            assert f"ansible-playbook {playbook}" in (ROOT / playbook).read_text(), f"{playbook} does not say how to run it"
            assert playbook.removeprefix("playbooks/") in (ROOT / "README.md").read_text(), f"{playbook} is missing from the README"
        elif playbook.startswith("playbooks/"):
            assert f"import_playbook: {playbook.removeprefix('playbooks/')}" in site, f"{playbook} is not imported by site.yml"
