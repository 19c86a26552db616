"""platform_files on the controller (plugins/action/platform_files.py): a task that runs on the
controller as its user converges the files in the task's own process, with no module run, and
with the module's check mode, diff, idempotence and errors. On a node the module runs as before:
the molecule scenarios (compute-podman, storage-podman) converge and verify their nodes' files
through it."""

from __future__ import annotations

import stat

import yaml

from conftest import ROOT, run, tool


def test_on_the_controller_the_files_converge_without_a_module_run(tmp_path):
    conf, node = tmp_path / "node" / "a.conf", tmp_path / "node"
    files = {str(conf): {"content": "one\n", "mode": "0600"}, str(node): {"state": "directory"}}
    task = {"mlplatform.baremetal.platform_files": {"files": files}}
    checks = [
        "checked is changed and checked.changed_paths | sort == " + repr(sorted(files)),
        "checked.diff | selectattr('before_header', 'equalto', " + repr(str(conf)) + ") | map(attribute='after') | list == ['one\\n']",
        "written is changed and lookup('ansible.builtin.file', " + repr(str(conf)) + ") == 'one'",
        "again is not changed and again.changed_paths == []",
        "relative is failed and 'relative/b.conf: paths must be absolute' in relative.msg",
    ]
    play = [{
        "name": "platform_files on the controller", "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "Checked", **task, "check_mode": True, "diff": True, "register": "checked"},
            {"name": "Nothing written in check mode", "ansible.builtin.assert": {"that": f"not {str(node)!r} is exists"}},
            {"name": "Written", **task, "register": "written"},
            {"name": "Again", **task, "register": "again"},
            {"name": "A relative path", "mlplatform.baremetal.platform_files": {"files": {"relative/b.conf": {"content": "x"}}},
             "register": "relative", "ignore_errors": True},
            {"name": "Results", "ansible.builtin.assert": {"that": checks}},
        ],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False, width=1000))
    result = run([tool("ansible-playbook"), "-i", "localhost,", "-c", "local", "-vvv", str(tmp_path / "play.yml")], cwd=ROOT)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    # A module run names its file at -vvv ("Using module file .../platform_files.py").
    assert "Using module file" not in result.stdout, result.stdout[-6000:]
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
