"""Unit tests of the many-files module (plugins/modules/platform_files.py)."""

from __future__ import annotations

import os
import stat

import pytest

# The module, not the action of the same name (plugins/action/platform_files.py) that runs its
# functions on the controller: both directories are on the tests' path.
from ansible_collections.mlplatform.baremetal.plugins.modules import platform_files as pf


def test_files_directories_and_links_converge_then_stay(tmp_path):
    files = {
        str(tmp_path / "etc" / "a.conf"): {"content": "one\n", "mode": "0600"},
        str(tmp_path / "opt" / "bin"): {"state": "directory", "mode": "0755"},
        str(tmp_path / "bin" / "ctr"): {"state": "link", "src": "/opt/containerd/1/bin/ctr"},
    }
    actions = pf.plan(files)
    assert [a for _, a, _ in actions] == ["link", "write", "mkdir"]
    pf.apply(actions)
    assert (tmp_path / "etc" / "a.conf").read_text() == "one\n"
    assert stat.S_IMODE(os.stat(tmp_path / "etc" / "a.conf").st_mode) == 0o600
    assert os.readlink(tmp_path / "bin" / "ctr") == "/opt/containerd/1/bin/ctr"
    assert pf.plan(files) == []


def test_only_what_differs_is_changed(tmp_path):
    path = str(tmp_path / "a.conf")
    pf.apply(pf.plan({path: {"content": "one\n"}}))
    os.chmod(path, 0o666)
    assert [a for _, a, _ in pf.plan({path: {"content": "one\n"}})] == ["chmod"]
    assert [a for _, a, _ in pf.plan({path: {"content": "two\n"}})] == ["write"]
    link = str(tmp_path / "l")
    os.symlink("/old", link)
    assert [a for _, a, _ in pf.plan({link: {"state": "link", "src": "/new"}})] == ["link"]


def test_relative_paths_are_refused():
    with pytest.raises(ValueError, match="absolute"):
        pf.plan({"etc/a.conf": {"content": ""}})


def test_diff_shows_each_change_before_it_is_made(tmp_path):
    path, directory, link = str(tmp_path / "a.conf"), str(tmp_path / "d"), str(tmp_path / "l")
    pf.apply(pf.plan({path: {"content": "one\n"}}))
    os.symlink("/old", link)
    actions = pf.plan({path: {"content": "two\n"}, directory: {"state": "directory"}, link: {"state": "link", "src": "/new"}})
    shown = {entry["after_header"]: (entry["before"], entry["after"]) for entry in pf.diff(actions)}
    assert shown == {
        path: ("one\n", "two\n"),
        directory: ({"state": "absent"}, {"state": "directory", "mode": "0755"}),
        link: ({"src": "/old"}, {"src": "/new"}),
    }
    os.chmod(path, 0o600)
    assert [(e["before"], e["after"]) for e in pf.diff(pf.plan({path: {"content": "one\n"}}))] == [({"mode": "0600"}, {"mode": "0644"})]
    assert [(e["before"], e["after"]) for e in pf.diff(pf.plan({str(tmp_path / "new"): {"content": "x"}}))] == [("", "x")]
