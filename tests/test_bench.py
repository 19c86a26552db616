"""`make bench` (tests/bench.py): the inventories it generates, and one short run of it."""

from __future__ import annotations

import ipaddress
import json

import pytest
import yaml

import bench
from conftest import ROOT, run, tool

BASE = yaml.safe_load((ROOT / "inventories" / "production" / "hosts.yml").read_text())


def test_a_generated_inventory_has_the_size_asked_and_productions_proportions():
    hosts = bench.inventory_of(600, BASE)["all"]["children"]
    nodes = set(hosts["control_plane"]["hosts"]) | set(hosts["workers"]["hosts"])
    assert len(nodes) == 601 and bench.NEW_WORKER in nodes
    assert 110 <= len(hosts["gpu"]["hosts"]) <= 130, len(hosts["gpu"]["hosts"])
    assert set(hosts["gpu"]["hosts"]) <= set(hosts["workers"]["hosts"])
    addresses = [h["ansible_host"] for group in ("control_plane", "workers") for h in hosts[group]["hosts"].values()]
    assert len(set(addresses)) == len(addresses)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.20.0.0/16") for a in addresses)


def test_a_size_below_productions_is_refused():
    with pytest.raises(SystemExit, match="smaller than production's 8 hosts"):
        bench.inventory_of(5, BASE)


def test_a_short_run_times_each_size_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run([tool("python"), "tests/bench.py", "--sizes", "8,30", "--runs", "1", "--only", "preflight", "--out", str(out)])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["sizes"] == [8, 30] and set(figures["seconds"]) == {"preflight"}
    assert all(seconds > 0 for seconds in figures["seconds"]["preflight"].values())
    assert "preflight" in result.stdout and "30 hosts" in result.stdout
