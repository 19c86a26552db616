"""Validate rendered Kubernetes documents: core kinds against the Kubernetes OpenAPI
schemas of the target version (kubernetes-validate), custom resources against the
CRDs the platform installs at exactly the pinned versions: those inside the pinned
chart archives in ../shared/charts, and ../shared/crds only for the CRDs no chart
ships (the Gateway API bundle). Fields a schema does not declare are errors,
because the API server would silently drop them."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
import functools
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from conftest import BOM, KUBERNETES, ROOT

CRD_DIR = ROOT.parent / "shared" / "crds"
CHART_DIR = ROOT.parent / "shared" / "charts"
# The bundles of bom_manifests (CRDs installed without a chart) and their folder in
# ../shared/crds. The folder holds the Gateway API at v1.6.1 (its SOURCES.md), not
# the pinned v1.4.1: no copy of the v1.4.1 CRDs is on this machine.
SHARED_BUNDLES = {"gateway_api": "gateway-api"}
# Values a pinned chart needs to render the CRDs the platform installs with it where
# the chart's defaults would not: each is the platform's own value (the serving and
# orchestration roles' values templates). tests/test_charts.py checks that the CRDs
# rendered so are those the platform's releases render.
CRD_VALUES = {"cert-manager": {"crds": {"enabled": True}}, "argo-workflows": {"crds": {"full": False}}}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML refuses the unquoted '=' enum value in one upstream CRD; read it as a plain string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))

# kubernetes_validate.validate reads and parses, on every call, the JSON schema of the document's
# kind and the whole _definitions.json of the Kubernetes version (megabytes), and lists its schema
# versions: about 15 ms of CPU a document, for files that never change. Each is read once per
# process instead; validate() uses what they return read-only.
kubernetes_validate.utils.schema_contents = lru_cache(maxsize=None)(kubernetes_validate.utils.schema_contents)
kubernetes_validate.utils.all_versions = lru_cache(maxsize=1)(kubernetes_validate.utils.all_versions)


def _closed(schema):
    """Copy of an openAPIV3Schema where objects reject undeclared fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for child in (node.get(key) or {}).values():
                walk(child)
        for key in ("items", "additionalProperties"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key) or []:
                walk(child)

    walk(schema)
    # Top-level apiVersion/kind/metadata are checked by the API server itself.
    schema.setdefault("properties", {}).update({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
    return schema


def _crd_documents(text):
    # Only the documents that can be CRDs are parsed: a chart's render is mostly other kinds.
    candidates = "\n---\n".join(d for d in re.split(r"(?m)^---[ \t]*$", text) if "CustomResourceDefinition" in d)
    return [d for d in yaml.load_all(candidates, Loader=_Loader) if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]


def _schemas(crds):
    """{(group/version, kind): closed schema} for every served version of the CRDs."""
    schemas = {}
    for doc in crds:
        spec = doc["spec"]
        for version in spec["versions"]:
            if version.get("served") and version.get("schema"):
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = _closed(version["schema"]["openAPIV3Schema"])
    return schemas


def pinned_archives():
    """{chart: archive} of every chart the bill of materials pins, as ../shared/charts holds it
    ({chart}-{version}.tgz); pinned charts it lacks (OpenEBS, the alternative to Longhorn) are absent."""
    archives = {}
    for entry in BOM["bom_charts"].values():
        path = CHART_DIR / f"{entry['chart']}-{entry['version']}.tgz"
        if path.is_file():
            archives[entry["chart"]] = path
    return archives


def _chart_files(data, prefix=""):
    """(path, bytes) of every file of a chart archive, subchart archives (charts/*.tgz) opened."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile():
                content = archive.extractfile(member).read()
                if member.name.endswith(".tgz") and "/charts/" in member.name:
                    yield from _chart_files(content, f"{prefix}{member.name}!")
                else:
                    yield prefix + member.name, content


def within_chart(files):
    """{path: its path within its own chart or subchart} of a chart archive's files (_chart_files):
    each under the deepest folder that holds a Chart.yaml."""
    roots = [path[: -len("Chart.yaml")] for path in files if path.endswith("/Chart.yaml")]
    return {path: path[len(max((r for r in roots if path.startswith(r)), key=len, default="")):] for path in files}


def _templated_crds(archive):
    """Whether a chart or one of its subcharts has a CRD outside its crds/ folders (a template, or a
    file a template reads), which only a render shows as installed."""
    files = dict(_chart_files(archive.read_bytes()))
    return any(not inner.startswith("crds/") and b"kind: CustomResourceDefinition" in files[path] for path, inner in within_chart(files).items())


def _helm(*args):
    import binaries

    result = subprocess.run([binaries.helm(), *args], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode:
        raise AssertionError(f"helm {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def computed_once(function):
    """function memoised (lru_cache) with one thread computing a value while the others wait for it,
    not each computing it too: the proofs of a tree's sixteen releases ask at once."""
    cached, lock = lru_cache(maxsize=None)(function), threading.Lock()

    @functools.wraps(function)
    def wrapper(*args):
        with lock:
            return cached(*args)

    return wrapper


@computed_once
def chart_crds():
    """[(chart, CRD document)] of every pinned chart: its and its subcharts' crds/ folders (helm show
    crds), and the CRDs its templates render (helm template with CRD_VALUES), at the pinned version."""

    def of(chart, archive):
        docs = _crd_documents(_helm("show", "crds", str(archive)))
        if _templated_crds(archive):
            values = [f"--set-json={key}={json.dumps(value)}" for key, value in CRD_VALUES.get(chart, {}).items()]
            docs += _crd_documents(_helm("template", chart, str(archive), "--kube-version", KUBERNETES, *values))
        return [(chart, doc) for doc in docs]

    import binaries

    def render():
        with ThreadPoolExecutor(max_workers=4) as pool:
            return [crd for found in pool.map(lambda item: of(*item), sorted(pinned_archives().items())) for crd in found]

    inputs = [binaries.SHA256["helm"], KUBERNETES, CRD_VALUES]
    inputs += [f"{chart} {archive.name} {binaries.sha256(archive)}" for chart, archive in sorted(pinned_archives().items())]
    return [tuple(crd) for crd in _kept("chart-crds", inputs, render)]


def _kept(folder, inputs, compute):
    """compute()'s value (JSON), kept in .cache/<folder>/ under a digest of inputs (everything it
    comes from) for the next process, and made by one process at a time: the others wait on a file
    lock and read what it wrote."""
    from filelock import FileLock

    cached = ROOT / ".cache" / folder / f"{hashlib.sha256(json.dumps(inputs).encode()).hexdigest()}.json"
    cached.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{cached}.lock"):
        if cached.is_file():
            return json.loads(cached.read_text())
        value = compute()
        with tempfile.NamedTemporaryFile("w", dir=cached.parent, prefix=cached.name, delete=False) as partial:
            partial.write(json.dumps(value))
        os.replace(partial.name, cached)
        return value


@computed_once
def shared_crd_file(path: Path):
    """The CRDs of one file of ../shared/crds, parsed once (megabytes of YAML: Argo Workflows' full
    CRDs take about 4 s of CPU) and kept in .cache/ for the next process. Read them, never change them."""
    return _kept("shared-crds", [path.name, hashlib.sha256(path.read_bytes()).hexdigest()], lambda: _crd_documents(path.read_text()))


def _folder_crds(folder):
    """The CRDs of a folder of ../shared/crds (shared_crd_file)."""
    return [doc for path in sorted((CRD_DIR / folder).glob("*.yaml")) for doc in shared_crd_file(path)]


@computed_once
def shared_crds():
    """The CRDs of the bundles (SHARED_BUNDLES) from ../shared/crds."""
    return [doc for folder in SHARED_BUNDLES.values() for doc in _folder_crds(folder)]


@computed_once
def crd_schemas():
    """{(group/version, kind): closed schema} for every served version of the CRDs the platform
    installs: the pinned charts' (chart_crds) and the bundles' (shared_crds)."""
    return _schemas([doc for _, doc in chart_crds()] + shared_crds())


@computed_once
def _full_schemas():
    """Argo Workflows' chart installs its minimal CRDs, whose spec the API server leaves open (the
    full ones, crds.full, are fetched from GitHub at install time, which an offline site cannot): a
    misspelt field is kept and ignored by the controller. Its full CRDs in ../shared/crds (v4.1.2,
    newer than the pinned v4.0.6) still catch one; {key: closed schema} of those whose pinned
    CRD leaves spec open."""
    full = _schemas(_folder_crds("argo-workflows"))
    return {key: schema for key, schema in full.items() if _open_spec(crd_schemas().get(key))}


def _open_spec(schema):
    spec = ((schema or {}).get("properties") or {}).get("spec") or {}
    return bool(spec.get("x-kubernetes-preserve-unknown-fields")) and not spec.get("properties")


# Cilium's CRDs are not in ../shared/crds (its repository is too large to bring in).
# The platform writes one Cilium kind, for the rules a Kubernetes NetworkPolicy
# cannot express (traffic from Cilium's gateway carries the reserved identity
# "ingress"; the API server is the entity "kube-apiserver"); this schema holds just
# the fields it uses, as Cilium v1.19's pkg/policy/api (Rule, IngressRule,
# EgressRule, PortRule, PortProtocol) and its docs name them,
# closed like the others so a typo is still caught.
_LABEL_SELECTOR = {"type": "object", "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"], "properties": {
        "key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
        "values": {"type": "array", "items": {"type": "string"}}}}}}}
_ENTITIES = {"type": "array", "items": {"enum": ["host", "remote-node", "kube-apiserver", "ingress", "cluster", "init", "health", "unmanaged", "world", "all"]}}
_TO_PORTS = {"type": "array", "items": {"type": "object", "properties": {
    "ports": {"type": "array", "items": {"type": "object", "required": ["port"], "properties": {
        "port": {"type": "string", "pattern": "^[0-9]+$"}, "protocol": {"enum": ["TCP", "UDP", "SCTP", "ANY"]}}}}}}}
_CILIUM_SCHEMAS = {
    ("cilium.io/v2", "CiliumNetworkPolicy"): _closed({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["endpointSelector"],
                "properties": {
                    "endpointSelector": _LABEL_SELECTOR,
                    "ingress": {"type": "array", "items": {"type": "object", "properties": {"fromEntities": _ENTITIES, "toPorts": _TO_PORTS}}},
                    "egress": {"type": "array", "items": {"type": "object", "properties": {"toEntities": _ENTITIES, "toPorts": _TO_PORTS}}},
                },
            }
        },
    }),
}


def validate(document, kubernetes_version):
    """Errors for one document (an empty list when it is valid)."""
    key = (document.get("apiVersion"), document.get("kind"))
    group = key[0].split("/")[0] if "/" in key[0] else ""
    schema = crd_schemas().get(key) or _CILIUM_SCHEMAS.get(key)
    # Custom resources, and the built-in groups named *.k8s.io (storage, rbac, networking) that
    # are not CRDs such as Gateway API's.
    if schema is not None or ("." in group and not group.endswith(".k8s.io")):
        if schema is None:
            return [f"{key[1]} {key[0]}: no CRD of a pinned chart in {CHART_DIR} or bundle in {CRD_DIR} to validate against"]
        schemas = [schema] + ([_full_schemas()[key]] if key in _full_schemas() else [])
        return list(dict.fromkeys(
            f"{key[1]} {document['metadata'].get('name')}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for s in schemas for e in jsonschema.Draft7Validator(s).iter_errors(document)
        ))
    try:
        kubernetes_validate.validate(document, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{key[1]} {document['metadata'].get('name')}: {err}"]
    return []


def load_tree(tree: Path):
    """{relative path: [documents]} of every YAML file in a rendered tree."""
    return {
        str(path.relative_to(tree)): [d for d in yaml.load_all(path.read_text(), Loader=_Loader) if d]
        for path in sorted(tree.rglob("*.yaml"))
    }
