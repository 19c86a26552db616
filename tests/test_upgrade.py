"""A bill-of-materials bump is re-runnable by its tag, CRDs included: docs/upgrade.md's table,
row by row, is what the pinned charts and the platform's declarations do.

For every chart of bom_charts with an archive in ../shared/charts the table says where the chart
keeps its CRDs, how direct mode and gitops mode upgrade them, and the tag to run. Each row is
checked against

- the pinned archive, read in memory once per session: which (sub)charts the platform's values
  enable (Chart.yaml conditions), which of them hold CRDs in crds/ (Helm installs those once and
  never upgrades them) or render them from templates/ (guards such as `if .Values.crds.enabled`
  evaluated), which template is a pre-upgrade hook Job behind a value, and that every value the
  table names is one the chart reads;
- the declarations: gitops mode from the rendered tree (the `rendered` fixture: each Argo CD
  Application's valuesObject and syncPolicy), direct mode from the same values templates
  rendered with platform_delivery: direct. Only the top-level blocks holding the values a row
  names are rendered (in-process, StrictUndefined, no Ansible run); the same blocks rendered
  for gitops must equal the tree's, which proves the reading.

test_a_declaration_that_breaks_a_row_fails feeds the same check known-bad declarations (no
forceConflicts, an unpinned kubectl, the hook Job on under GitOps, no server-side apply, a row
that claims Helm upgrades a crds/ chart) and sees each fail.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import time
from dataclasses import dataclass
from functools import lru_cache

import jinja2
import pytest
import yaml

from conftest import BOM, ROOT, documents
from k8s_schemas import CHART_DIR, _chart_files

DOC = ROOT / "docs" / "upgrade.md"
CRD_KIND = re.compile(rb"^kind:\s*CustomResourceDefinition\s*$", re.M)
# `key: value` in a cell: a values key (dotted, no "/": not an annotation) the declaration sets,
# or, followed by "(chart default)", leaves at the chart's default.
VALUE_SPAN = re.compile(r"`([A-Za-z][\w-]*(?:\.[\w-]+)*): ([^`]+)`(\s*\(chart default\))?")
LOCATIONS = {"templates", "crds/", "none"}
DIRECT = {"helm upgrade", "hook job", "operator", "nothing to upgrade"}
GITOPS = {"argo cd sync", "operator", "nothing to upgrade"}
MISSING = object()
# Seconds each pinned archive took to read (once per session), for the test output.
TIMINGS: dict[str, float] = {}


# --- the table --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    key: str  # the bom_charts key
    where: str
    direct: str
    gitops: str
    run: str
    caveats: str

    def spans(self, column):
        return [(key, yaml.safe_load(value), bool(default)) for key, value, default in VALUE_SPAN.findall(getattr(self, column))]


def keyword(cell):
    match = re.match(r"\s*\*\*(.+?)\*\*", cell)
    return match.group(1).lower() if match else ""


def parse_table(text):
    """The rows of the first table whose header starts with `| chart |`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| chart |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 6, f"docs/upgrade.md: a row needs 6 cells: {line}"
        key = re.findall(r"`([a-z0-9_]+)`", cells[0])
        assert key, f"docs/upgrade.md: the chart cell names no bom_charts key: {cells[0]}"
        rows.append(Row(key[-1], *cells[1:]))
    return rows


@lru_cache(maxsize=1)
def table():
    return tuple(parse_table(DOC.read_text()))


# --- the pinned archive -----------------------------------------------------------------------

@dataclass
class Chart:
    name: str
    files: dict  # path relative to the chart's root -> bytes
    meta: dict
    defaults: dict
    children: list  # [(values key, condition, Chart)]

    def templates(self):
        return {p: c for p, c in self.files.items() if p.startswith("templates/") and not p.rsplit("/", 1)[-1].startswith("_")}


@lru_cache(maxsize=None)
def archive(key):
    """The chart tree of bom_charts[key] at its pinned version, subcharts linked to their parent's
    dependency entry (alias, condition)."""
    entry = BOM["bom_charts"][key]
    path = CHART_DIR / f"{entry['chart']}-{entry['version']}.tgz"
    started = time.monotonic()
    files = dict(_chart_files(path.read_bytes()))
    roots = sorted({p[: -len("Chart.yaml")] for p in files if p.endswith("/Chart.yaml")}, key=len)

    def owner(p):
        return max((r for r in roots if p.startswith(r)), key=len)

    charts = {}
    for root in roots:
        own = {p[len(root):]: c for p, c in files.items() if owner(p) == root}
        meta = yaml.safe_load(own["Chart.yaml"])
        charts[root] = Chart(meta["name"], own, meta, yaml.safe_load(own.get("values.yaml", b"")) or {}, [])
    for root in roots[1:]:
        parent = max((r for r in roots if root.startswith(r) and r != root), key=len)
        chart = charts[root]
        dependency = next((d for d in charts[parent].meta.get("dependencies") or [] if d["name"] == chart.name), {})
        charts[parent].children.append((dependency.get("alias") or chart.name, dependency.get("condition") or "", chart))
    TIMINGS[path.name] = time.monotonic() - started
    return charts[roots[0]]


def lookup(values, dotted):
    node = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def merged(defaults, supplied):
    out = copy.deepcopy(defaults) if isinstance(defaults, dict) else {}
    for key, value in (supplied or {}).items():
        out[key] = merged(out.get(key), value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


class Unknown(Exception):
    """A template guard this reader cannot evaluate."""


def guard(text):
    """The expression of the `{{- if ... }}` a template opens with, or None."""
    first = next((line for line in text.decode(errors="replace").splitlines() if line.strip()), "")
    match = re.match(r"^\{\{-?\s*if\s+(.*?)\s*-?\}\}\s*$", first)
    return match.group(1) if match else None


def evaluate(expression, values):
    """Go-template truth of a guard made of .Values paths, and, or, not and parentheses."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expression)

    def items():
        found = []
        while tokens and tokens[0] != ")":
            token = tokens.pop(0)
            if token == "(":
                found.append(items())
                if not tokens or tokens.pop(0) != ")":
                    raise Unknown(expression)
            else:
                found.append(token)
        return found

    def value(item):
        if isinstance(item, list):
            return pipeline(item)
        if item in ("true", "false"):
            return item == "true"
        match = re.fullmatch(r"\$?\.Values\.([\w.-]+)", item)
        if not match:
            raise Unknown(expression)
        found = lookup(values, match.group(1))
        return found not in (MISSING, None, False, 0, "", [], {})

    def pipeline(parts):
        if not parts:
            raise Unknown(expression)
        head, args = parts[0], parts[1:]
        if head == "and":
            return all(value(a) for a in args)
        if head == "or":
            return any(value(a) for a in args)
        if head == "not" and len(args) == 1:
            return not value(args[0])
        if len(parts) == 1:
            return value(head)
        raise Unknown(expression)

    return pipeline(items())


def enabled_charts(chart, values, path=""):
    """[(values path, chart, effective values)] of the chart and every subchart its values enable."""
    effective = merged(chart.defaults, values)
    found = [(path, chart, effective)]
    for key, condition, child in chart.children:
        on = True
        for candidate in filter(None, (c.strip() for c in condition.split(","))):
            setting = lookup(effective, candidate)
            if setting is not MISSING:
                on = bool(setting)
                break
        if on:
            found += enabled_charts(child, effective.get(key) or {}, f"{path}{key}.")
    return found


def crd_sources(key, values):
    """{(kind, 'chart path:file')} of every CRD the chart installs with these values: kind crds/
    (its or an enabled subchart's crds/ folder) or templates (a template holding a CRD, or reading
    a file that does, whose guard holds)."""
    found = set()
    for path, chart, effective in enabled_charts(archive(key), values):
        for name, content in chart.files.items():
            if name.startswith("crds/") and CRD_KIND.search(content):
                found.add(("crds/", f"{path}{name}"))
        for name, content in chart.templates().items():
            read = re.findall(rb'\.Files\.(?:Get|Glob)\s+"([^"]+)"', content)
            # A template reading crds/ (kube-prometheus-stack's upgrade ClusterRole lists their
            # names) renders no CRD: those are the crds/ path's.
            holds = CRD_KIND.search(content) or any(
                CRD_KIND.search(c) for f, c in chart.files.items() for pattern in read
                if fnmatch.fnmatch(f, pattern.decode()) and not f.startswith("crds/"))
            if not holds:
                continue
            condition = guard(content)
            try:
                rendered = condition is None or evaluate(condition, effective)
            except Unknown:
                rendered = True
            if rendered:
                found.add(("templates", f"{path}{name}"))
    return found


def reads(chart, key):
    """Whether the chart (or the subchart the key's first part names) reads a values key: a
    Chart.yaml condition or a .Values reference in a template."""
    conditions = {c.strip() for d in chart.meta.get("dependencies") or [] for c in str(d.get("condition") or "").split(",")}
    pattern = re.compile(rb"\.Values\." + re.escape(key.encode()) + rb"(?![\w-])")
    if key in conditions or any(pattern.search(c) for p, c in chart.files.items() if p.startswith("templates/")):
        return True
    first, _, rest = key.partition(".")
    return bool(rest) and any(reads(child, rest) for name, _, child in chart.children if name == first)


def hook_jobs(key, values_key):
    """The templates that are a pre-upgrade Helm hook Job behind the value values_key."""
    jobs = []
    for path, chart, _ in enabled_charts(archive(key), {}):
        if not values_key.startswith(path):
            continue
        pattern = re.compile(r"\.Values\." + re.escape(values_key[len(path):]) + r"(?![\w-])")
        for name, content in chart.templates().items():
            text = content.decode(errors="replace")
            condition = guard(content) or ""
            if pattern.search(condition) and re.search(r"^kind:\s*Job\s*$", text, re.M) and re.search(r"helm\.sh/hook\"?:\s*\"?[^\n]*pre-upgrade", text):
                jobs.append(f"{path}{name}")
    return jobs


def images_under(node, found):
    """{registry?, repository, tag} image settings in a values subtree, as references."""
    if isinstance(node, dict):
        if isinstance(node.get("repository"), str) and "tag" in node:
            prefix = f"{node['registry']}/" if node.get("registry") else ""
            found.append((f"{prefix}{node['repository']}", str(node.get("tag") or "")))
        for value in node.values():
            images_under(value, found)
    return found


# --- the declarations -------------------------------------------------------------------------

def values_template(key):
    entry = BOM["bom_charts"][key]
    for name in (entry["chart"], key.replace("_", "-")):
        path = ROOT / "roles" / entry["layer"] / "templates" / f"{name}-values.yml.j2"
        if path.is_file():
            return path
    return None


def block(path, top):
    """The lines of a values template's top-level block `top:` (col-0 YAML comments left out)."""
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{re.escape(top)}:(\s|$)", line)), None)
    if start is None:
        return None
    taken = [lines[start]]
    for line in lines[start + 1:]:
        if line.startswith("#"):
            continue
        if line.strip() and not line[0].isspace():
            break
        taken.append(line)
    return "\n".join(taken) + "\n"


_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
_ENV.filters["to_json"] = json.dumps
_ENV.tests["search"] = lambda value, pattern: re.search(pattern, value) is not None


def template_blocks(key, tops, delivery):
    """{top: value} of a chart's values template's blocks, rendered for a delivery mode."""
    path = values_template(key)
    rendered = {}
    for top in tops:
        source = block(path, top) if path else None
        if source is not None:
            rendered.update(yaml.safe_load(_ENV.from_string(source).render(**BOM, platform_delivery=delivery)) or {})
    return rendered


def application(key, tree_docs):
    entry = BOM["bom_charts"][key]
    for _, doc in documents(tree_docs):
        source = (doc.get("spec") or {}).get("source") or {}
        if doc.get("kind") == "Application" and source.get("chart") == entry["chart"] and str(source.get("targetRevision")) == str(entry["version"]):
            return doc
    return None


def row_tops(row):
    """The top-level values blocks holding what a row says the platform sets."""
    return sorted({k.split(".")[0] for column in ("where", "direct", "gitops", "caveats") for k, _, default in row.spans(column) if not default})


def declared(row, tree_docs):
    """({mode: values}, Application or None, problems) of a row's chart as the platform declares it."""
    app = application(row.key, tree_docs)
    tops = row_tops(row)
    problems = []
    if tops and values_template(row.key) is None:
        problems.append(f"{row.key}: the row names values, and roles/{BOM['bom_charts'][row.key]['layer']}/templates has no values template for it")
    gitops = copy.deepcopy(app["spec"]["source"]["helm"].get("valuesObject") or {}) if app else None
    if gitops is not None:
        from_template = template_blocks(row.key, tops, "gitops")
        in_tree = {top: gitops[top] for top in tops if top in gitops}
        if from_template != in_tree:
            problems.append(f"{row.key}: the values template's {tops} blocks read here ({from_template}) are not the tree's ({in_tree})")
    direct = {k: v for k, v in (gitops or {}).items() if k not in tops}
    direct.update(template_blocks(row.key, tops, "direct"))
    return {"direct": direct, "gitops": gitops}, app, problems


# --- the check --------------------------------------------------------------------------------

def row_problems(row, values, app):
    """Every way the platform (values: {mode: values, None when the mode's declaration is not at
    hand}; app: the gitops Application or None) or the chart differs from the row."""
    key = row.key
    problems = []
    chart = archive(key)
    where, direct, gitops = keyword(row.where), keyword(row.direct), keyword(row.gitops)
    if where not in LOCATIONS:
        problems.append(f"{key}: the CRDs column must start with one of {sorted(LOCATIONS)}, not '{where}'")
    if direct not in DIRECT:
        problems.append(f"{key}: the direct mode column must start with one of {sorted(DIRECT)}, not '{direct}'")
    if gitops not in GITOPS:
        problems.append(f"{key}: the gitops mode column must start with one of {sorted(GITOPS)}, not '{gitops}'")
    if re.findall(r"`--tags ([\w,-]+)`", row.run) != [BOM["bom_charts"][key]["layer"]]:
        problems.append(f"{key}: the layer's tag is --tags {BOM['bom_charts'][key]['layer']} (bom_charts.{key}.layer), not {row.run}")
    columns = {"direct": ["where", "direct", "caveats"], "gitops": ["where", "gitops", "caveats"]}
    for mode, mode_values in values.items():
        if mode_values is None:
            continue
        effective = merged(chart.defaults, mode_values)
        for column in columns[mode]:
            for span, want, default in row.spans(column):
                if not reads(chart, span):
                    problems.append(f"{key}: the chart never reads {span} (docs/upgrade.md {column} column)")
                got = lookup(effective if default else mode_values, span)
                if got is MISSING:
                    problems.append(f"{key}: {mode} mode: the platform does not set {span} (docs/upgrade.md says {span}: {want})")
                elif got != want:
                    problems.append(f"{key}: {mode} mode: {span} is {got!r}, docs/upgrade.md says {want!r}")
        sources = crd_sources(key, mode_values)
        kinds = {kind for kind, _ in sources} or {"none"}
        if kinds != {where}:
            problems.append(f"{key}: {mode} mode: the chart installs its CRDs from {sorted(kinds)} ({sorted(f for _, f in sources)}), docs/upgrade.md says {where}")
        mode_keyword = direct if mode == "direct" else gitops
        if mode_keyword in ("operator", "nothing to upgrade") and kinds != {"none"}:
            problems.append(f"{key}: {mode} mode: '{mode_keyword}', but the chart installs CRDs ({sorted(f for _, f in sources)})")
    if direct == "helm upgrade" and where != "templates":
        problems.append(f"{key}: Helm upgrades CRDs only from templates; these are in {where}")
    if direct == "hook job":
        switches = [(span, want) for span, want, default in row.spans("direct") if want is True and not default]
        if where != "crds/" or not switches:
            problems.append(f"{key}: a hook Job upgrades crds/ and needs the value that switches it on (`<key>: true`) in the direct column")
        for span, _ in switches[:1]:
            if not hook_jobs(key, span):
                problems.append(f"{key}: no template of the chart is a pre-upgrade hook Job behind {span}")
            if values.get("gitops") is not None and lookup(merged(chart.defaults, values["gitops"]), span) not in (False, MISSING, None):
                problems.append(f"{key}: gitops mode: {span} is on, so Argo CD would run the hook Job on every sync")
            parent = span.rpartition(".")[0]
            if parent and values.get("direct") is not None:
                for image, tag in images_under(lookup(merged(chart.defaults, values["direct"]), parent), []):
                    ref = f"{image}:{tag}"
                    if not tag or tag == "latest" or ref not in BOM["bom_chart_images"][key]:
                        problems.append(f"{key}: direct mode: the hook Job runs {ref}, which is not pinned in bom_chart_images.{key} (the air-gap list)")
    if app is not None:
        options = (app["spec"].get("syncPolicy") or {}).get("syncOptions") or []
        helm = app["spec"]["source"].get("helm") or {}
        if gitops == "argo cd sync" and "ServerSideApply=true" not in options:
            problems.append(f"{key}: Application {app['metadata']['name']} does not apply server-side (syncOptions {options})")
        if helm.get("skipCrds"):
            problems.append(f"{key}: Application {app['metadata']['name']} skips the chart's crds/")
        never_pruned = (app["spec"].get("syncPolicy") or {}).get("automated", {}).get("prune") is False
        if never_pruned != ("never pruned" in row.gitops):
            problems.append(f"{key}: Application {app['metadata']['name']} {'is never' if never_pruned else 'may be'} pruned;"
                            f" docs/upgrade.md's gitops column {'does not say' if never_pruned else 'says'} 'never pruned'")
    return problems


# --- the tests --------------------------------------------------------------------------------

def test_the_table_has_a_row_for_every_pinned_chart():
    rows = table()
    keys = [row.key for row in rows]
    assert len(keys) == len(set(keys)), keys
    archived = {key for key, entry in BOM["bom_charts"].items() if (CHART_DIR / f"{entry['chart']}-{entry['version']}.tgz").is_file()}
    assert set(keys) == archived, set(keys) ^ archived
    text = DOC.read_text()
    for key in sorted(set(BOM["bom_charts"]) - archived):
        assert f"(`{key}`" in text.split("| chart |")[1].split("\n\n", 1)[1], f"docs/upgrade.md does not say why {key} has no row"


def test_each_row_is_what_the_pinned_chart_and_the_platform_do(rendered):
    inventory, _, tree_docs = rendered
    started = time.monotonic()
    problems, checked = [], []
    for row in table():
        values, app, found = declared(row, tree_docs)
        problems += found + row_problems(row, values, app)
        checked.append(row.key if app else f"{row.key} (direct only)")
    print(f"upgrade table {inventory}: {len(checked)} rows ({', '.join(checked)}) checked in {time.monotonic() - started:.2f}s;"
          f" {len(TIMINGS)} pinned archives read once in {sum(TIMINGS.values()):.2f}s")
    assert problems == []
    # The rows the sample inventories exercise in gitops mode: all but the GPU Operator in the lab.
    assert sum(1 for c in checked if "(" not in c) >= len(checked) - 1


def _row(key):
    return next(row for row in table() if row.key == key)


def _app(values, options=("ServerSideApply=true", "CreateNamespace=false")):
    return {"metadata": {"name": "test"}, "spec": {"source": {"helm": {"valuesObject": values}},
                                                    "syncPolicy": {"automated": {"prune": True}, "syncOptions": list(options)}}}


def test_a_declaration_that_breaks_a_row_fails():
    kps = _row("kube_prometheus_stack")
    direct, gitops = (template_blocks("kube_prometheus_stack", ["crds"], mode) for mode in ("direct", "gitops"))
    assert row_problems(kps, {"direct": direct, "gitops": gitops}, _app(gitops)) == []

    def broken(mode, edit, app=None):
        values = {"direct": copy.deepcopy(direct), "gitops": copy.deepcopy(gitops)}
        edit(values[mode])
        return "\n".join(row_problems(kps, values, app or _app(values["gitops"])))

    # No forceConflicts: the first bump fails on the helm field manager's fields. The chart's
    # default is true at 88.5.3, and the platform must not depend on that default.
    assert "does not set crds.upgradeJob.forceConflicts" in broken("direct", lambda v: v["crds"]["upgradeJob"].pop("forceConflicts"))
    assert "crds.upgradeJob.forceConflicts is False" in broken("direct", lambda v: v["crds"]["upgradeJob"].update(forceConflicts=False))
    # The chart's kubectl default (the cluster's version) and busybox:latest are on no air-gap list.
    assert "runs registry.k8s.io/kubectl:, which is not pinned" in broken("direct", lambda v: v["crds"]["upgradeJob"]["image"].pop("kubectl"))
    assert "runs docker.io/busybox:latest" in broken("direct", lambda v: v["crds"]["upgradeJob"]["image"].pop("busybox"))
    # The hook Job on under GitOps; the Job off in direct mode (Helm would never upgrade crds/).
    assert "Argo CD would run the hook Job on every sync" in broken("gitops", lambda v: v["crds"]["upgradeJob"].update(enabled=True))
    assert "crds.upgradeJob.enabled is False" in broken("direct", lambda v: v["crds"]["upgradeJob"].update(enabled=False))
    # No server-side apply: the 800 kB CRDs do not fit a client-side apply's annotation.
    assert "does not apply server-side" in "\n".join(row_problems(kps, {"direct": direct, "gitops": gitops}, _app(gitops, ["CreateNamespace=false"])))
    # The CRDs themselves off, and a row that says Helm upgrades a crds/ chart.
    assert "installs its CRDs from ['none']" in broken("gitops", lambda v: v["crds"].update(enabled=False))
    velero = _row("velero")
    claimed = Row(velero.key, velero.where, "**helm upgrade**", velero.gitops, velero.run, velero.caveats)
    values = {mode: template_blocks("velero", ["upgradeCRDs"], mode) for mode in ("direct", "gitops")}
    assert row_problems(velero, values, _app(values["gitops"])) == []
    assert "Helm upgrades CRDs only from templates; these are in crds/" in "\n".join(row_problems(claimed, values, _app(values["gitops"])))
    # Alloy without crds.create: false installs PodLogs from crds/, which the row says it does not.
    alloy = _row("alloy")
    assert "installs its CRDs from ['crds/']" in "\n".join(row_problems(alloy, {"direct": {}, "gitops": None}, None))
    # A misspelt value in the doc is one the chart never reads.
    misspelt = Row(kps.key, kps.where, kps.direct.replace("forceConflicts", "forceConflict"), kps.gitops, kps.run, kps.caveats)
    assert "the chart never reads crds.upgradeJob.forceConflict" in "\n".join(row_problems(misspelt, {"direct": direct, "gitops": gitops}, _app(gitops)))


def test_the_guard_reader_evaluates_what_the_charts_write():
    values = {"crds": {"install": True, "full": False, "enabled": False}, "installCRDs": False}
    assert evaluate("and .Values.crds.install (not .Values.crds.full)", values)
    assert not evaluate("or .Values.crds.enabled .Values.installCRDs", values)
    assert not evaluate(".Values.topologyUpdater.enable", values)
    with pytest.raises(Unknown):
        evaluate("$render", values)
