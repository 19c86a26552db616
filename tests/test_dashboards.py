"""The platform's Grafana dashboards, as the observability layer renders them: each
is valid JSON with a stable uid, every query parses (promtool), and every metric
a query reads is one a registered exporter exposes (tests/exporter_metrics.yml)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, session_render

PROMTOOL = shutil.which("promtool") or "/usr/local/bin/promtool"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}
# Aggregation operators may be followed by a by/without clause before their parenthesis.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
KNOWN = {m for exporter in yaml.safe_load((ROOT / "tests" / "exporter_metrics.yml").read_text()).values() for m in exporter["metrics"]}


def metric_names(expr):
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()[:1]
        if following != "(" and match.group(0) not in KEYWORDS | AGGREGATIONS:
            names.add(match.group(0))
    return names


def test_metric_names_are_read_from_expressions():
    expr = 'sum by (namespace) (rate(foo_total{job="x", code=~"5.."}[5m])) / on (namespace) group_left () bar > bool 0.5'
    assert metric_names(expr) == {"foo_total", "bar"}


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory):
    # production's tree from the README's gitops render, shared by the session (conftest.py):
    # every layer's dashboards (observability's, the GPU layer's and serving's).
    _, _, tree_docs = session_render("production", tmp_path_factory)
    maps = [d for docs in tree_docs.values() for d in docs if d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert maps
    return {key: json.loads(value) for doc in maps for key, value in doc["data"].items()}


def expressions(dashboard):
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_dashboards_have_stable_identities(dashboards):
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids) and all(uid.startswith("ml-platform-") for uid in uids)
    for dashboard in dashboards.values():
        assert expressions(dashboard)
        assert all(t["datasource"]["uid"] == "prometheus" for p in dashboard["panels"] for t in p["targets"])


def test_dashboards_only_read_metrics_registered_exporters_expose(dashboards):
    for name, dashboard in dashboards.items():
        for expr in expressions(dashboard):
            assert metric_names(expr) <= KNOWN, f"{name}: {sorted(metric_names(expr) - KNOWN)} in {expr}"


def test_every_dashboard_query_parses(dashboards, tmp_path):
    if not os.path.exists(PROMTOOL):
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: scripts/setup-test-host.sh extracts it")
        pytest.skip("promtool is missing")
    rules = [{"record": f"dashboard:{name.split('.')[0]}:{i}", "expr": expr} for name, d in dashboards.items() for i, expr in enumerate(expressions(d))]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
