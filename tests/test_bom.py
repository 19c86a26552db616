"""The bill of materials pins everything, in one file, in a form the roles can use."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT

BOM = yaml.safe_load((ROOT / "group_vars" / "all" / "bom.yml").read_text())
LAYERS = {"network", "storage", "observability", "gpu", "serving", "tracking", "orchestration", "backup"}
EXACT = re.compile(r"^v?\d+\.\d+\.\d+(\+k3s\d+)?$")


def test_bom_is_the_only_place_versions_are_pinned():
    for path in ROOT.glob("**/*.yml"):
        # galaxy.yml's version is the collection's own (tests/test_collection.py checks it and its
        # dependencies against pyproject.toml and collections/requirements.yml).
        if ".venv" in path.parts or path.name == "bom.yml" or path == ROOT / "galaxy.yml":
            continue
        text = path.read_text()
        assert not re.search(r"^\s*(chart_version|version):\s*['\"]?v?\d+\.\d+\.\d+", text, re.M) or "collections/requirements.yml" in str(path), (
            f"{path.relative_to(ROOT)} pins a version; versions live in group_vars/all/bom.yml"
        )


def test_every_chart_is_pinned_exactly_with_its_source():
    for key, chart in BOM["bom_charts"].items():
        assert set(chart) >= {"layer", "repository", "chart", "version", "app_version"}, key
        assert chart["layer"] in LAYERS, key
        assert re.match(r"^(https|oci)://", chart["repository"]), key
        assert EXACT.match(str(chart["version"])), f"{key}: {chart['version']} is not an exact version"
        for bound in (chart.get("kubernetes") or {}).values():
            assert re.match(r"^\d+\.\d+$", str(bound)), key


def test_binaries_are_pinned_exactly_with_a_checksum_and_a_release_dir():
    for key, binary in BOM["bom_binaries"].items():
        assert EXACT.match(str(binary["version"])), f"{key}: {binary['version']}"
        assert binary["url"].startswith("https://"), key
        # <url>/<dir>/<file>: a dir that names a version names it through {version}.
        assert "dir" in binary and str(binary["version"]).lstrip("v") not in str(binary["dir"]), key
        # Every file but k3s's (verified against its release's sum file) has a pinned sha256.
        sums = binary["sha256"]
        leaves = [v for s in sums.values() for v in (s.values() if isinstance(s, dict) else [s])]
        assert key == "k3s" or (leaves and all(re.fullmatch(r"[0-9a-f]{64}", v) for v in leaves)), key


def test_distributions_install_the_same_kubernetes():
    kubeadm = BOM["bom_kubernetes"]["kubeadm"]
    k3s = BOM["bom_kubernetes"]["k3s"]
    assert k3s.startswith(f"v{kubeadm}+k3s")
    assert BOM["bom_binaries"]["kubernetes"]["version"] == kubeadm
    assert BOM["bom_binaries"]["k3s"]["version"] == k3s
    assert ".".join(kubeadm.split(".")[:2]) in BOM["bom_kubernetes_supported_minors"]


def test_postgres_backups_move_to_the_plugin_before_cloudnative_pg_1_31():
    """CloudNativePG 1.31 removes the in-tree barmanObjectStore the tracking layer backs up
    with (1.30 release notes, #11083): a bump past 1.30 must come with the Barman Cloud
    plugin (its chart, its ObjectStore and spec.plugins), or MLflow's backups would stop."""
    major, minor = (int(part) for part in BOM["bom_charts"]["cloudnative_pg"]["app_version"].split(".")[:2])
    uses_in_tree = "barmanObjectStore:" in (ROOT / "roles" / "tracking" / "templates" / "postgres.yml.j2").read_text()
    assert not (uses_in_tree and (major, minor) >= (1, 31))
    # The image must carry barman-cloud for in-tree backups: CloudNativePG's "system" images do.
    assert not uses_in_tree or "-system-" in BOM["bom_images"]["postgresql"]["tag"]
