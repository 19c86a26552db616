"""Unit tests of the action that writes the GitOps tree (plugins/action/platform_gitops_tree.py)."""

from __future__ import annotations

import pytest

import platform_gitops_tree as tree

DOC = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}}


def test_render_is_sorted_block_yaml_with_a_header():
    text = tree.render([DOC, DOC]).decode()
    assert text.startswith(tree.HEADER)
    assert text.count("---\n") == 2
    assert text.index("apiVersion") < text.index("kind") < text.index("metadata")


def test_plan_writes_only_what_differs_and_prunes_only_owned_files(tmp_path):
    files = {"manifests/network/resources/resources.yaml": [DOC], "apps/network-01-x.yaml": [DOC]}
    writes, stale = tree.plan(str(tmp_path), files, ["apps/network-", "manifests/network/"])
    assert len(writes) == 2 and stale == []
    tree.apply(writes, stale)
    (tmp_path / "apps" / "network-02-gone.yaml").write_text("x")
    (tmp_path / "apps" / "storage-01-keep.yaml").write_text("x")
    (tmp_path / "manifests" / "network" / "notes.txt").write_text("x")
    writes, stale = tree.plan(str(tmp_path), files, ["apps/network-", "manifests/network/"])
    assert writes == {}
    assert stale == [str(tmp_path / "apps" / "network-02-gone.yaml")]
    tree.apply(writes, stale)
    assert (tmp_path / "apps" / "storage-01-keep.yaml").exists()
    assert (tmp_path / "manifests" / "network" / "notes.txt").exists()
    assert oct((tmp_path / "apps" / "network-01-x.yaml").stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize("path", ["../escape.yaml", "/etc/passwd", "apps/../../x.yaml"])
def test_plan_refuses_paths_outside_the_tree(tmp_path, path):
    with pytest.raises(ValueError):
        tree.plan(str(tmp_path), {path: [DOC]}, [])
