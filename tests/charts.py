"""Every Helm release the platform declares, rendered through its real upstream chart.

The releases are the gitops tree's Argo CD Applications with a chart source; each is
rendered with the helm binary (tests/binaries.py) from the pinned chart archive in
../shared/charts, the way Argo CD and kubernetes.core.helm would render it:

    helm template <release> <chart>-<version>.tgz --version <version> --namespace <ns>
      --kube-version <bom_kubernetes.kubeadm> --values <valuesObject> --include-crds
      --skip-tests --api-versions <every group/version the platform's CRDs serve>

Test hooks (--skip-tests) are left out: neither Argo CD nor kubernetes.core.helm runs
them. --api-versions stands for a cluster where the platform is installed: charts
decide on `.Capabilities.APIVersions.Has "monitoring.coreos.com/v1"` (and the
Gateway API's) what to render, as Argo CD tells them from the cluster. helm ignores
--version for a chart on disk, an archive or a folder (helm v4.1.4's LocateChart returns
its path as it is): test_charts checks that each archive's Chart.yaml is the version pinned.

The unread-key proof (unread_keys) renders, its baseline as well as every render it
compares with the baseline, with --skip-crds in place of --include-crds (a chart's
crds/ files are copied into the output as they are, never templated, so no value
changes them: _PROOF_FLAGS) and from the archive unpacked, as Argo CD's repo-server
renders a chart (chart_tree):

    helm template <release> .cache/chart-trees/<archive sha256>/<chart> ... --skip-crds

Renders are memoised on their inputs (chart, release, namespace, values, whether the
proof's), so the production and airgap inventories (mostly the same values) and every
test share them, and kept on disk under a digest of every input (helm, archive,
release, namespace, values, Kubernetes version, flags, --api-versions; template()), so
that every pytest-xdist worker and the next run share them too; chart_objects(inventory,
tree_docs) is what other tests apply.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import yaml

import binaries
from conftest import KUBERNETES, ROOT
from k8s_schemas import CHART_DIR, _chart_files, _Loader, chart_crds, computed_once, crd_schemas, shared_crds, validate

# Kinds the API server serves cluster-wide (everything else is namespaced, custom
# resources as their CRD's scope says).
CLUSTER_SCOPED = {
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"), ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"), ("apiregistration.k8s.io", "APIService"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"), ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"), ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"), ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
    ("storage.k8s.io", "StorageClass"), ("storage.k8s.io", "CSIDriver"), ("storage.k8s.io", "CSINode"), ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "VolumeAttributesClass"), ("scheduling.k8s.io", "PriorityClass"), ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"), ("networking.k8s.io", "IPAddress"), ("networking.k8s.io", "ServiceCIDR"),
    ("certificates.k8s.io", "CertificateSigningRequest"), ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"), ("resource.k8s.io", "DeviceClass"),
    ("resource.k8s.io", "ResourceSlice"), ("resource.k8s.io", "DeviceTaintRule"),
}
# "charts <inventory>: ... in <s>" for each inventory rendered, for the test output.
TIMINGS: list[str] = []


@dataclass(frozen=True)
class Release:
    application: str  # the Argo CD Application that delivers it
    release: str
    chart: str
    version: str
    repo: str
    namespace: str
    values_json: str = field(repr=False)

    @property
    def values(self):
        return json.loads(self.values_json)

    @property
    def archive(self) -> Path:
        return CHART_DIR / f"{self.chart}-{self.version}.tgz"

    def with_values(self, values):
        return Release(self.application, self.release, self.chart, self.version, self.repo, self.namespace, _canonical(values))


@dataclass
class Render:
    text: str
    error: str = ""

    @cached_property
    def documents(self):
        return [d for d in yaml.load_all(self.text, Loader=_Loader) if isinstance(d, dict)]

    @cached_property
    def sections(self):
        """The texts of its YAML documents, as a set: the baseline's are compared with every render
        that changes without a key (_passed_through)."""
        return frozenset(_DOCUMENT.split(self.text))


def _canonical(values):
    return json.dumps(values, sort_keys=True)


def releases(tree_docs):
    """The Helm releases a rendered tree declares, one per chart Application."""
    found = []
    for docs in tree_docs.values():
        for doc in docs:
            source = (doc.get("spec") or {}).get("source") or {}
            if doc.get("kind") == "Application" and "chart" in source:
                found.append(Release(
                    application=doc["metadata"]["name"], release=source["helm"]["releaseName"], chart=source["chart"],
                    version=str(source["targetRevision"]), repo=source["repoURL"], namespace=doc["spec"]["destination"]["namespace"],
                    values_json=_canonical(source["helm"].get("valuesObject") or {}),
                ))
    return sorted(found, key=lambda r: r.application)


@computed_once
def api_versions():
    """--api-versions of a cluster the platform is installed on: every group/version (and
    group/version/Kind) its pinned charts' and bundles' CRDs serve. Computed once, by one thread
    (computed_once): each proof computing crd_schemas() for itself cost 8 CPU-s."""
    served = set()
    for group_version, kind in crd_schemas():
        served |= {group_version, f"{group_version}/{kind}"}
    return tuple(sorted(served))


_memo: dict = {}
_memo_lock = threading.Lock()
_from_cache: set = set()  # the _memo keys read from RENDER_CACHE
# At most this many helm processes at once, however many threads ask (helm waits on disk too).
_helm_slots = threading.BoundedSemaphore(max(2, 2 * (os.cpu_count() or 1)))


# Memoised renders are also kept in .cache/chart-renders/ under a digest of everything they come
# from (as k8s_schemas.chart_crds keeps its CRDs): the process that renders a release first (the
# others wait on a file lock of its digest) saves every other pytest-xdist worker, and the next
# run, that helm run. Failed renders are not kept.
RENDER_CACHE = ROOT / ".cache" / "chart-renders"
_HELM_FLAGS = ("--include-crds", "--skip-tests")
# The unread-key proof's renders (its baseline, and every render compared with it) leave out the
# chart's crds/ folders, which no value can change: Helm never templates them ("These CRDs are not
# templated", https://helm.sh/docs/chart_best_practices/custom_resource_definitions/). In helm
# v4.1.4's source, pkg/chart/v2/loader/load.go makes only templates/ files the chart's Templates,
# which the engine renders; crds/ files are its Files, which pkg/action/action.go renderResources
# writes out verbatim ahead of the rendered templates when --include-crds is given. helm template
# leaves them out without --include-crds; --skip-crds says so on the command line. A CRD a chart
# renders from a template (cert-manager's, argo's), or from a crds/ file a template reads, is in
# both. kube-prometheus-stack's render is then 0.66 MB, not 5.1 MB, and an eighth cheaper.
_PROOF_FLAGS = ("--skip-crds", "--skip-tests")
# The proof's renders read the chart archive unpacked, as Argo CD's repo-server renders every chart
# (argoproj/argo-cd util/helm/client.go: ExtractChart untars the archive, helm templates the
# folder): helm reads the files a tenth cheaper than it inflates the archive on every render.
# helm reads a folder through its .helmignore, which helm package applied when it made the archive:
# the same files. Unpacked once per archive, under its sha256;
# test_the_proof_renders_each_release_as_its_chart_archive_does checks that the proof's render of
# every release is, byte for byte, the archive's render less its crds/ files.
CHART_TREES = ROOT / ".cache" / "chart-trees"


@lru_cache(maxsize=None)
def _archive_sha256(archive: Path):
    return binaries.sha256(archive)


@computed_once
def chart_tree(archive: Path) -> Path:
    """The chart folder of an archive unpacked (.cache/chart-trees/<sha256>/<chart>), or the archive
    itself if it holds anything but regular files in one folder (helm would read those differently).
    Unpacked once (computed_once; pytest-xdist workers wait on a file lock), and the folder takes its
    name only when complete."""
    from filelock import FileLock

    with tarfile.open(archive, "r:gz") as package:
        members = [m for m in package.getmembers() if not m.isdir()]
        folders = {Path(m.name).parts[0] for m in members}
        if len(folders) != 1 or not all(m.isfile() and not Path(m.name).is_absolute() and ".." not in Path(m.name).parts for m in members):
            return archive
        target = CHART_TREES / _archive_sha256(archive)
        CHART_TREES.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{target}.lock"):
            if not target.is_dir():
                partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=CHART_TREES))
                for member in members:
                    path = partial / member.name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(package.extractfile(member).read())
                partial.rename(target)
    return target / folders.pop()


def _cached_render(release: Release, proof) -> Path:
    inputs = [
        binaries.SHA256["helm"], _archive_sha256(release.archive), release.release, release.version, release.namespace,
        release.values_json, KUBERNETES, _PROOF_FLAGS if proof else _HELM_FLAGS, api_versions(),
    ]
    if proof:
        inputs.append("unpacked")  # read from chart_tree()
    return RENDER_CACHE / f"{hashlib.sha256(json.dumps(inputs).encode()).hexdigest()}.json"


def _helm_environment() -> dict:
    """The environment of helm template: the tests', with Go's garbage collector at GOGC=400 unless
    GOGC is set. A render lives a third of a second, allocating as it goes; collecting a quarter as
    often cut the CPU of the production proof's 85 renders by a sixth (median of 8 interleaved
    replays: 22.0 -> 18.7 CPU-s). kube-prometheus-stack's peak memory stays at 164 MB, the other
    charts' grows by at most 30 MB; GOGC=off was no cheaper (19.3 CPU-s) and kept 50 MB more."""
    return {**os.environ, "GOGC": os.environ.get("GOGC", "400")}


def _helm_template(release: Release, proof) -> Render:
    chart, flags = (chart_tree(release.archive), _PROOF_FLAGS) if proof else (release.archive, _HELM_FLAGS)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="values-") as values:
        values.write(release.values_json)
        values.flush()
        args = [
            binaries.helm(), "template", release.release, str(chart), "--version", release.version,
            "--namespace", release.namespace, "--kube-version", KUBERNETES, "--values", values.name, *flags,
            *(f"--api-versions={v}" for v in api_versions()),
        ]
        with _helm_slots:
            result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, env=_helm_environment())
    if result.returncode:
        return Render("", result.stderr.strip() or f"helm exited {result.returncode}")
    return Render(result.stdout)


def _write_render(path: Path, render: Render):
    """The render's text, and its documents as JSON when JSON holds them unchanged (reading JSON
    is ten times faster than parsing the YAML again), through a unique temporary file."""
    try:
        documents = json.dumps(render.documents)
        if json.loads(documents) != render.documents:  # a timestamp, a key that is not a string
            documents = "null"
    except (TypeError, ValueError):
        documents = "null"
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, delete=False) as partial:
        partial.write(f'{{"text": {json.dumps(render.text)}, "documents": {documents}}}')
    os.replace(partial.name, path)


def _read_render(path: Path) -> Render:
    stored = json.loads(path.read_text())
    render = Render(stored["text"])
    if stored["documents"] is not None:
        render.__dict__["documents"] = stored["documents"]  # what the cached_property would parse
    return render


def template(release: Release, *, memo=True, proof=False) -> Render:
    """helm template of one release, memoised on its inputs (in the process and in RENDER_CACHE)
    unless memo is false; as the unread-key proof renders it when proof is true: from the archive
    unpacked (chart_tree), without its crds/ folders (_PROOF_FLAGS)."""
    key = (*_inputs(release), proof)
    with _memo_lock:
        if memo and key in _memo:
            return _memo[key]
    if not release.archive.is_file():
        return Render("", f"{release.archive} is missing: ../shared/charts holds no {release.chart} {release.version}")
    if not memo:
        return _helm_template(release, proof)
    from filelock import FileLock

    cached = _cached_render(release, proof)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{cached}.lock"):
        if cached.is_file():
            render = _read_render(cached)
            with _memo_lock:
                _from_cache.add(key)
        else:
            render = _helm_template(release, proof)
            if not render.error:
                _write_render(cached, render)
    with _memo_lock:
        return _memo.setdefault(key, render)


def render_all(items, *, memo=True, proof=False):
    """template() of many releases in parallel (helm waits on disk as much as on the CPU), in order."""
    api_versions()  # once, before the threads ask for it
    with ThreadPoolExecutor(max_workers=max(2, 2 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda item: template(item, memo=memo, proof=proof), items))


_inventories: dict = {}
_inventory_lock = threading.Lock()


def chart_renders(inventory, tree_docs):
    """{application: Render} of every release of one inventory's tree, rendered once per run."""
    declared = releases(tree_docs)
    key = (inventory, tuple(declared))
    with _inventory_lock:
        if key not in _inventories:
            began = time.monotonic()
            _inventories[key] = dict(zip((r.application for r in declared), render_all(declared)))
            cached = sum((*_inputs(r), False) in _from_cache for r in declared)
            TIMINGS.append(
                f"charts {inventory}: {len(declared)} releases rendered through their charts in {time.monotonic() - began:.1f}s"
                + (f" ({cached} read from {RENDER_CACHE.relative_to(ROOT)})" if cached else "")
            )
        return _inventories[key]


def chart_objects(inventory, tree_docs):
    """{application name: [rendered documents]} of one inventory's chart Applications, for tests
    that apply them; fails, naming each, when a chart does not render."""
    renders = chart_renders(inventory, tree_docs)
    failed = [f"{name}: {render.error}" for name, render in renders.items() if render.error]
    if failed:
        raise AssertionError(f"charts of {inventory} that do not render:\n" + "\n".join(failed))
    return {name: copy.deepcopy(render.documents) for name, render in renders.items()}


# ---- values the chart never reads ----------------------------------------------------


def _deep_merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


@lru_cache(maxsize=None)
def _chart_defaults_json(archive: Path):
    files = dict(_chart_files(archive.read_bytes()))
    roots = sorted((path[: -len("Chart.yaml")] for path in files if path.endswith("/Chart.yaml")), key=len)

    def parent(root):
        # a/charts/b/ and a/charts/b-1.0.tgz!b/ are subcharts of a/
        candidates = [r for r in roots if r != root and (root.startswith(r + "charts/"))]
        return max(candidates, key=len) if candidates else None

    def values_of(root):
        text = files.get(root + "values.yaml")
        return (yaml.load(text.decode(), Loader=_Loader) or {}) if text else {}

    def defaults(root):
        merged = values_of(root)
        meta = yaml.safe_load(files[root + "Chart.yaml"].decode()) or {}
        for sub in (r for r in roots if parent(r) == root):
            name = (yaml.safe_load(files[sub + "Chart.yaml"].decode()) or {}).get("name")
            keys = [d.get("alias") or d["name"] for d in meta.get("dependencies") or [] if d.get("name") == name] or [name]
            sub_defaults = defaults(sub)
            for key in keys:
                merged[key] = _deep_merge(sub_defaults, merged.get(key) or {}) if isinstance(merged.get(key), (dict, type(None))) else merged[key]
            if isinstance(sub_defaults.get("global"), dict):
                merged["global"] = _deep_merge(sub_defaults["global"], merged.get("global") or {})
        return merged

    top = [r for r in roots if parent(r) is None]
    return json.dumps(defaults(top[0]), default=str)


def chart_defaults(archive: Path):
    """The values a chart archive declares: its values.yaml with each subchart's (under its
    alias or name, its globals in global), as Helm merges them."""
    return json.loads(_chart_defaults_json(archive))


def _records(value):
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def absent_keys(values, defaults, path=()):
    """Paths of the keys the platform sets that the chart's defaults do not declare, and of the
    maps and lists of maps it fills that the chart defaults empty (podAnnotations: {},
    initContainers: []), whose keys are not declared. The items of a list of maps are walked
    against the first item of the chart's (backupStorageLocation: [{name, provider, ...}])."""
    for key, value in values.items():
        here = (*path, key)
        default = defaults.get(key) if isinstance(defaults, dict) else None
        if not isinstance(defaults, dict) or key not in defaults:
            yield here
        elif isinstance(value, dict) and isinstance(default, dict) and default:
            yield from absent_keys(value, default, here)
        elif _records(value) and _records(default):
            for index, item in enumerate(value):
                yield from absent_keys(item, default[0], (*here, index))
        elif (isinstance(value, dict) and value) or _records(value):
            yield here


def _without(values, path):
    values = copy.deepcopy(values)
    node = values
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return values


def _mutated(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return f"{value}-changed"
    if isinstance(value, list):
        return [*value, _mutated(value[0])] if value else ["changed"]
    if isinstance(value, dict):
        return {k: _mutated(v) for k, v in value.items()} if value else {"changed": "changed"}
    return "changed"


def _with_mutated(values, path):
    values = copy.deepcopy(values)
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = _mutated(node[path[-1]])
    return values


def _get(values, path):
    for key in path:
        values = values[key]
    return values


def _flatten(node, path=()):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _flatten(value, (*path, key))
    elif isinstance(node, list) and node:
        for index, value in enumerate(node):
            yield from _flatten(value, (*path, index))
    else:
        yield path, node


def _volatile(first: Render, second: Render):
    """What differs between two renders of the same values: generated certificates and keys
    (helm's genCA), and checksums of them; None when nothing does."""
    if first.text == second.text:
        return None
    if len(first.documents) != len(second.documents):
        raise AssertionError("two renders of the same values differ in their documents")
    volatile = set()
    for index, (a, b) in enumerate(zip(first.documents, second.documents)):
        flat_b = dict(_flatten(b))
        volatile |= {(index, path) for path, value in _flatten(a) if flat_b.get(path, object()) != value}
    return frozenset(volatile)


def _differs(baseline: Render, other: Render, volatile):
    if other.error:
        return True
    if volatile is None:
        return other.text != baseline.text
    if len(baseline.documents) != len(other.documents):
        return True
    for index, (a, b) in enumerate(zip(baseline.documents, other.documents)):
        if a == b:
            continue
        flat_a = {p: v for p, v in _flatten(a) if (index, p) not in volatile}
        flat_b = {p: v for p, v in _flatten(b) if (index, p) not in volatile}
        if flat_a != flat_b:
            return True
    return False


def _inputs(release: Release):
    """What a render depends on: the same for production's and airgap's releases."""
    return (release.archive, release.release, release.namespace, release.values_json)


def _per_inputs(function):
    """Memoise a function of a release on its render's inputs."""
    results, lock = {}, threading.Lock()

    def wrapper(release):
        key = _inputs(release)
        with lock:
            if key in results:
                return results[key]
        result = function(release)
        with lock:
            results[key] = result
        return result

    wrapper.__doc__ = function.__doc__
    return wrapper


@_per_inputs
def unread_keys(release: Release):
    """[(dotted path, how it was proven)] of the values the platform gives a release that its chart
    never reads: each key absent from the chart's defaults is removed, then changed, in a re-render,
    and is unread when neither changes the output. Under an absent key that is read, each of its
    keys is proven the same way (a misspelt key in a map the chart reads key by key is still
    caught), unless the whole map is in an object that changed without it: then the chart passed
    it through as given, and every key of it is read. Every render of the proof leaves out the
    chart's crds/ folders, which no value changes (_PROOF_FLAGS), and reads the archive unpacked."""
    values = release.values
    baseline = template(release, proof=True)
    if baseline.error:
        raise AssertionError(f"{release.application}: {baseline.error}")
    volatile = _volatile(baseline, template(release, memo=False, proof=True))
    unread = []
    pending = list(absent_keys(values, chart_defaults(release.archive)))
    while pending:
        removed = dict(zip(pending, render_all([release.with_values(_without(values, path)) for path in pending], memo=False, proof=True)))
        undecided = [path for path in pending if not _differs(baseline, removed[path], volatile)]
        proven = [path for path in pending if path not in undecided and not _passed_through(_get(values, path), baseline, removed[path])]
        mutable = [path for path in undecided if _get(values, path) is not None]
        changed = dict(zip(mutable, render_all([release.with_values(_with_mutated(values, path)) for path in mutable], memo=False, proof=True)))
        for path in undecided:
            render = changed.get(path)
            if render is None:
                unread.append((".".join(map(str, path)), "null: removes a default the chart does not have"))
            elif not _differs(baseline, render, volatile):
                unread.append((".".join(map(str, path)), "the output is the same without it and with it changed"))
            else:
                proven.append(path)
        pending = [below for path in proven for below in _below(values, path)]
    return sorted(unread)


_DOCUMENT = re.compile(r"(?m)^---[ \t]*$")


def _passed_through(value, baseline: Render, without: Render):
    """Whether a map (or a list of maps) is, whole and as given, in one of the objects that change
    without it."""
    if not (isinstance(value, dict) and value) and not _records(value):
        return False
    changed = baseline.sections - without.sections

    def holds(node):
        if node == value:
            return True
        if isinstance(node, str) and "\n" in node:  # a config file in a ConfigMap or Secret
            try:
                node = yaml.load(node, Loader=_Loader)
            except yaml.YAMLError:
                return False
            return isinstance(node, (dict, list)) and holds(node)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        return any(holds(child) for child in children)

    return any(holds(doc) for text in changed for doc in yaml.load_all(text, Loader=_Loader))


def _below(values, path):
    """The keys under a read key that are proven one by one: none under a leaf; under a map of one
    key, the keys under that one (removing it is removing the map); under a list of maps, the
    keys of each."""
    node = _get(values, path)
    while isinstance(node, dict) and len(node) == 1:
        (key,) = node
        path, node = (*path, key), node[key]
    if _records(node):
        return [(*path, index, key) for index, item in enumerate(node) for key in item]
    return [(*path, key) for key in node] if isinstance(node, dict) else []


# ---- objects owned twice, objects invalid for the pinned Kubernetes -------------------


@lru_cache(maxsize=1)
def _crd_scopes():
    crds = [doc for _, doc in chart_crds()] + shared_crds()
    return {(doc["spec"]["group"], doc["spec"]["names"]["kind"]): doc["spec"]["scope"] for doc in crds}


def identity(doc, namespace):
    """(group, kind, namespace, name) of an object as the API server keys it: the namespace it is
    created in (its own, else the one it is applied to), none for a cluster-wide kind."""
    api_version = doc.get("apiVersion") or ""
    group = api_version.split("/")[0] if "/" in api_version else ""
    kind = doc.get("kind")
    cluster_wide = (group, kind) in CLUSTER_SCOPED or _crd_scopes().get((group, kind)) == "Cluster"
    metadata = doc.get("metadata") or {}
    return (group, kind, None if cluster_wide else metadata.get("namespace") or namespace, metadata.get("name"))


def tree_owners(tree_docs):
    """{identity: [owner]} of the tree's own documents (its Applications aside), each in the
    namespace of the Application that applies its folder."""
    folders = {}
    for docs in tree_docs.values():
        for doc in docs:
            source = (doc.get("spec") or {}).get("source") or {}
            if doc.get("kind") == "Application" and "path" in source:
                folders[source["path"].strip("/")] = doc["spec"]["destination"].get("namespace") or "default"
    owners = {}
    for path, docs in tree_docs.items():
        namespace = folders.get(str(Path(path).parent), "default")
        for doc in docs:
            if doc.get("kind") != "Application":
                owners.setdefault(identity(doc, namespace), []).append(f"tree {path}")
    return owners


def owned_twice(tree_docs, objects):
    """Objects that two owners declare: a chart and the tree's own manifests, or two charts.
    objects: {application: [rendered documents]} (chart_objects)."""
    owners = tree_owners(tree_docs)
    namespaces = {r.application: r.namespace for r in releases(tree_docs)}
    for application, docs in objects.items():
        for doc in docs:
            owners.setdefault(identity(doc, namespaces[application]), []).append(f"chart {application}")
    return sorted(
        f"{kind} {namespace + '/' if namespace else ''}{name} ({group or 'core'}): {', '.join(sorted(set(who)))}"
        for (group, kind, namespace, name), who in owners.items() if len(who) > 1
    )


@_per_inputs
def invalid_objects(release: Release):
    """Errors of every object a release renders, against the pinned Kubernetes and the pinned CRDs."""
    render = template(release)
    if render.error:
        return [f"does not render: {render.error}"]
    return [error for doc in render.documents for error in _validated(json.dumps(doc, sort_keys=True))]


@lru_cache(maxsize=None)
def _validated(document_json):
    """validate() of one document, once for every release and inventory that renders it (the
    CRDs, most of all)."""
    return tuple(validate(json.loads(document_json), KUBERNETES))
