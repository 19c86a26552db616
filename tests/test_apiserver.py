"""The rendered platform on a real API server (tests/apiserver.py): the gitops tree of each
sample inventory, with what its Applications deploy (the charts' output through the real
charts, tests/charts.py, and the Gateway API bundle), applied server-side under the
platform's field manager, without forcing conflicts. Every object must be accepted, and a
second apply must change nothing: an object whose resourceVersion moves must read back exactly
as before (see _moved for the defaults the API server stores on a first update). One fresh API
server per inventory, the three inventories using the same names; they share one etcd, each
under its own prefix, so that CRDs an earlier inventory proved are copied, not applied again.

Order, as Argo CD and Helm would reach the same state: every CustomResourceDefinition first
(waiting for Established), then the Namespaces, then the rest in Helm's install order; the
webhook configurations last of all (see apply_platform). Nothing here runs a controller.

Stand-ins, said in the test output: Gateway API's CRDs are ../shared/crds' v1.6.1, not the
pinned v1.4.1 (not on this machine); Cilium's CRDs are nowhere here, so the one Cilium kind
the platform writes gets a minimal CRD built from tests/k8s_schemas.py's schema of it."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import pytest
import yaml

from apiserver import (
    ApplyError, Discovery, api_get, apiserver_or_skip, apply_server_side, copy_etcd_keys, create_dry_run, get_objects, kubectl, report,
    skip_without_binaries, start_etcd, watch,
)
from charts import chart_objects
from conftest import BOM, ROOT
from k8s_schemas import _CILIUM_SCHEMAS, CRD_DIR, _Loader

# One worker runs them all, in order: the inventories after lab reuse the CRDs it proved
# (_PROVEN_CRDS), and the API servers (a CPU each while applying) do not run side by side.
# Spread over workers, production and airgap would each apply the 116 CRDs again: about 35 s
# of CPU more apiece, the most expensive part of the test, on a run that is CPU-bound.
pytestmark = pytest.mark.xdist_group("apiserver")

FIELD_MANAGER = yaml.safe_load((ROOT / "roles" / "platform" / "defaults" / "main.yml").read_text())["platform_field_manager"]
# Helm's install order (InstallOrder in its kind_sorter.go); kinds it does not list go after them.
HELM_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
    "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
]
# Admission webhooks whose Services have no pod here: registered, they would make every later
# write of a kind they match fail (failurePolicy Fail), so they are applied after the rest.
WEBHOOK_KINDS = {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
# Helm hooks Argo CD runs on a sync (as PreSync/PostSync); a chart's test, delete and rollback
# hooks never run on an install, so they are not applied.
SYNC_HOOKS = {"pre-install", "post-install", "pre-upgrade", "post-upgrade", "crd-install"}
# bom_manifests bundles to the local copy of what they install.
BUNDLE_DIRS = {"gateway_api": CRD_DIR / "gateway-api"}


@dataclass
class Item:
    origin: str
    doc: dict
    default_namespace: str = ""  # where Helm and Argo CD put a namespaced object without one

    @property
    def identity(self):
        meta = self.doc.get("metadata") or {}
        group = self.doc["apiVersion"].rpartition("/")[0]
        return (group, self.doc["kind"], meta.get("namespace") or "", meta.get("name"))


@dataclass
class Outcome:
    errors: list = field(default_factory=list)
    applied: dict = field(default_factory=dict)  # identity -> resourceVersion, from the server's answers
    moved: list = field(default_factory=list)
    settled: list = field(default_factory=list)  # resourceVersion moved, nothing else (see _moved)
    moved_identities: set = field(default_factory=set)
    refused_pods: list = field(default_factory=list)  # see _admit_pods
    timings: list = field(default_factory=list)


def identity_of(obj):
    return Item("", obj).identity


def is_crd(doc):
    return doc["kind"] == "CustomResourceDefinition"


def sync_hook(doc):
    hooks = ((doc.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook")
    return hooks is None or bool(SYNC_HOOKS & {h.strip() for h in hooks.split(",")})


def bundle_items(tree_docs):
    """The CRDs of every bundle Application (a Git source that is not the tree), from the local
    copy in BUNDLE_DIRS, with the version that copy is at: ../shared has Gateway API v1.6.1 only,
    not the v1.4.1 the bill of materials pins (see the report line)."""
    items = []
    tree_repo = next(d for d in tree_docs["root.yaml"] if d["kind"] == "Application")["spec"]["source"]["repoURL"]
    for path, docs in tree_docs.items():
        for app in docs:
            source = (app.get("spec") or {}).get("source") or {}
            if app.get("kind") != "Application" or "chart" in source or source.get("repoURL") in (None, tree_repo):
                continue
            keys = [
                key for key, entry in BOM["bom_manifests"].items()
                if entry.get("path") == source["path"] and source["repoURL"].rstrip("/").endswith(str(entry["git"]).rstrip("/").rsplit("/", 1)[-1])
            ]
            assert len(keys) == 1 and keys[0] in BUNDLE_DIRS, f"{path}: no local copy of the bundle {source}"
            for crd_file in sorted(BUNDLE_DIRS[keys[0]].glob("*.yaml")):
                for doc in yaml.load_all(crd_file.read_text(), Loader=_Loader):
                    if doc:
                        version = doc["metadata"].get("annotations", {}).get("gateway.networking.k8s.io/bundle-version", "?")
                        items.append(Item(f"bundle {app['metadata']['name']} ({source['targetRevision']} pinned, {version} applied: {crd_file.name})", doc))
    return items


def _structural(schema):
    """k8s_schemas' closed Cilium schema as a CRD accepts it: a CRD schema may not combine
    properties with additionalProperties, and every enum needs its type."""
    if isinstance(schema, dict):
        node = {k: _structural(v) for k, v in schema.items() if not (k == "additionalProperties" and v is False)}
        if "enum" in node and "type" not in node:
            node["type"] = "string"
        return node
    if isinstance(schema, list):
        return [_structural(v) for v in schema]
    return schema


def cilium_crd_items(docs):
    """Cilium's CRDs are nowhere on this machine (../shared/crds/SOURCES.md) and the Cilium
    operator registers them at run time. For the Cilium kinds in docs that tests/k8s_schemas.py
    has a schema for, a minimal CRD built from that schema, so the API server stores and
    validates them; any other Cilium kind stays unknown and is rejected."""
    items = []
    kinds = {(d["apiVersion"], d["kind"]) for d in docs if d["apiVersion"].startswith("cilium.io/")}
    for (api_version, kind) in sorted(kinds & set(_CILIUM_SCHEMAS)):
        group, version = api_version.split("/")
        schema = _structural(_CILIUM_SCHEMAS[(api_version, kind)])
        plural = kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s"  # as Cilium names them
        items.append(Item(f"test: minimal CRD from tests/k8s_schemas.py's {kind} schema, not Cilium's", {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                "scope": "Namespaced",
                "versions": [{"name": version, "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
            },
        }))
    return items


def chart_items(inventory, tree_docs):
    """What each chart Application deploys, rendered by tests/charts.py through the real chart
    (the renders other tests share), less the hooks a sync never runs (SYNC_HOOKS)."""
    apps = {app["metadata"]["name"]: app for docs in tree_docs.values() for app in docs if app.get("kind") == "Application"}
    items = []
    for name, docs in chart_objects(inventory, tree_docs).items():
        destination = apps[name]["spec"]["destination"]["namespace"]
        for doc in docs:
            if doc and sync_hook(doc):
                items.append(Item(f"chart {name}", doc, destination))  # chart_objects gives copies
    return items


def duplicates(items):
    """Objects that two documents declare differently: two owners that would fight."""
    seen, problems = {}, []
    for item in items:
        first = seen.setdefault(item.identity, item)
        if first is not item and first.doc != item.doc:
            problems.append(f"{'/'.join(filter(None, item.identity))}: declared by {first.origin} and, differently, by {item.origin}")
    return problems


def _apply(server, items, outcome, phase):
    """One server-side apply of items; records the server's resourceVersions and kubectl's
    errors (kubectl applies the others and names each object it could not)."""
    unique = list({i.identity: i for i in items}.values())
    try:
        stored = apply_server_side(server, [i.doc for i in unique], FIELD_MANAGER)
    except ApplyError as error:
        outcome.errors.append(f"{phase}: {error}")
        stored = error.applied
    for obj in stored:
        outcome.applied[identity_of(obj)] = obj["metadata"]["resourceVersion"]
    return unique


def _established(crd):
    return any(c["type"] == "Established" and c["status"] == "True" for c in (crd.get("status") or {}).get("conditions") or [])


def _wait_established(server, crds, outcome, timeout=120):
    """Wait until every CRD in crds is Established: one list, then one watch from it (kubectl
    wait reads them one by one, which takes tens of seconds for a hundred CRDs; a list per poll
    sends every CRD's schema again each time)."""
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    listed = api_get(server, path)
    waiting = {c.doc["metadata"]["name"] for c in crds} - {crd["metadata"]["name"] for crd in listed["items"] if _established(crd)}
    if waiting:
        for _, crd in watch(server, path, listed["metadata"]["resourceVersion"], timeout):
            if _established(crd):
                waiting.discard(crd["metadata"]["name"])
            if not waiting:
                break
    if waiting:
        outcome.errors.append(f"CRDs not Established within {timeout}s: {sorted(waiting)}")


def _phases(server, items):
    """[(phase name, items)] in apply order, once the CRDs are Established: the namespace
    Helm (or Argo CD) gives a chart's namespaced objects is filled in, as they would."""
    discovery = Discovery(server)
    placed = []
    for item in items:
        if is_crd(item.doc):
            continue
        meta = item.doc.setdefault("metadata", {})
        if item.default_namespace and not meta.get("namespace") and discovery.namespaced(item.doc["apiVersion"], item.doc["kind"]):
            meta["namespace"] = item.default_namespace
        placed.append(item)
    order = {kind: index for index, kind in enumerate(HELM_ORDER)}
    rest = sorted(
        (i for i in placed if i.doc["kind"] != "Namespace" and i.doc["kind"] not in WEBHOOK_KINDS),
        key=lambda i: order.get(i.doc["kind"], len(order)),
    )
    return [
        ("namespaces", [i for i in placed if i.doc["kind"] == "Namespace"]),
        ("the rest", rest),
    ], [i for i in placed if i.doc["kind"] in WEBHOOK_KINDS]


def _content(obj):
    """An object as read back, without what every write changes (resourceVersion, the times in
    managedFields) and without the entry the server adds for an object that no field manager
    owned (before-first-apply: an object whose applied configuration sets no field, such as an
    empty Secret a controller fills)."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta.pop("resourceVersion", None)
    meta["managedFields"] = [dict(e, time=None) for e in meta.get("managedFields") or [] if e.get("manager") != "before-first-apply"]
    return obj


def _flat(node, path=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _flat(value, f"{path}.{key}")
    elif isinstance(node, list) and node:
        for index, value in enumerate(node):
            yield from _flat(value, f"{path}[{index}]")
    else:
        yield path, node


def _moved(server, items, outcome, phase):
    """Apply items again. An object whose resourceVersion moves is a change (outcome.moved, with
    the paths that differ) unless it reads back the same as before: then the write only stored
    what the server already showed (outcome.settled). The API server does that on the first
    update after a create for defaults it applies on read but drops on create: status defaults
    of a CRD's schema (Gateway API's "Waiting for controller"), a PVC's status.phase Pending, and
    the before-first-apply entry (see _content)."""
    items = [i for i in items if i.identity in outcome.applied]  # the rejected ones are reported already
    before = {identity_of(o): o for o in get_objects(server, [i.doc for i in items], managed_fields=True)}
    second = Outcome()
    _apply(server, items, second, f"second apply, {phase}")
    outcome.errors.extend(second.errors)
    moved = [i for i in items if i.identity in before and before[i.identity]["metadata"]["resourceVersion"] != second.applied.get(i.identity)]
    after = {identity_of(o): o for o in get_objects(server, [i.doc for i in moved], managed_fields=True)}
    for item in moved:
        name = "/".join(filter(None, item.identity))
        versions = f"resourceVersion {before[item.identity]['metadata']['resourceVersion']} -> {after[item.identity]['metadata']['resourceVersion']}"
        old, new = dict(_flat(_content(before[item.identity]))), dict(_flat(_content(after[item.identity])))
        changed = sorted(p for p in old.keys() | new.keys() if old.get(p, "<absent>") != new.get(p, "<absent>"))
        if changed:
            outcome.moved_identities.add(item.identity)
            outcome.moved.append(f"{name} ({item.origin}): {versions}, changed {', '.join(changed[:10])}")
        else:
            outcome.settled.append(f"{name}: {versions}")


# Where each workload kind keeps its pod template.
POD_TEMPLATES = {
    "Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"), "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"), "Job": ("spec", "template"), "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def pod_of(doc):
    """The Pod a workload's controller would create (None for anything else): its template, in
    its namespace, with the claims a StatefulSet's controller adds for its volumeClaimTemplates."""
    path = POD_TEMPLATES.get(doc["kind"]) if doc["apiVersion"] in ("apps/v1", "batch/v1") else None
    if path is None:
        return None
    template = doc
    for key in path:
        template = template[key]
    template = copy.deepcopy(template)
    spec = template["spec"]
    name = doc["metadata"]["name"]
    for claim in (doc["spec"].get("volumeClaimTemplates") or []) if doc["kind"] == "StatefulSet" else []:
        claim_name = claim["metadata"]["name"]
        spec.setdefault("volumes", []).append({"name": claim_name, "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}-0"}})
    metadata = {"name": f"{doc['kind'].lower()}-{name}", "namespace": doc["metadata"].get("namespace") or "default"}
    metadata["labels"] = (template.get("metadata") or {}).get("labels") or {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _admit_pods(server, items, outcome):
    """Create, as a server-side dry run, the Pod each workload's controller would create: the
    API server's admission of pods (Pod Security at the namespace's enforce level, priority
    classes, runtime classes, service accounts, LimitRanges) refuses at run time what it
    refuses here, and then no pod of that workload ever starts. Warnings of the namespaces'
    warn level (restricted) are not failures. Stand-in: the "default" ServiceAccount of each
    namespace, which kube-controller-manager (not running here) creates. Returns how many."""
    pods = [pod for pod in (pod_of(i.doc) for i in items if i.identity in outcome.applied) if pod]
    declared = {(i.doc["metadata"].get("namespace"), i.doc["metadata"]["name"]) for i in items if i.doc["kind"] == "ServiceAccount"}
    namespaces = sorted({p["metadata"]["namespace"] for p in pods} - {ns for ns, name in declared if name == "default"})
    accounts = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}} for ns in namespaces]
    apply_server_side(server, accounts, "test-serviceaccount-controller")
    outcome.refused_pods.extend(create_dry_run(server, pods))
    return len(pods)


def apply_platform(server, items, proven=frozenset()):
    """Apply items in order (CRDs, namespaces, the rest), then apply them all again and record
    what moved; then dry-run the pods the workloads would create (_admit_pods); then the webhook
    configurations, once and again. The webhooks come last because no pod serves them here:
    once registered, the second apply of what they match would fail (failurePolicy Fail), which
    a real cluster, where they serve, does not see.

    proven: names of CRDs already on the server, byte-identical to ones an earlier inventory's
    server accepted and applied twice without a change; they are read back, not applied again."""
    outcome = Outcome()
    began = time.monotonic()
    crds = [i for i in items if is_crd(i.doc)]
    outcome.errors.extend(duplicates(crds))
    crds = list({i.identity: i for i in crds}.values())
    present = [i for i in crds if i.doc["metadata"]["name"] in proven]
    if present:  # one list, not a read per CRD
        for obj in api_get(server, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]:
            if obj["metadata"]["name"] in proven:
                outcome.applied[identity_of({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", **obj})] = obj["metadata"]["resourceVersion"]
    crds = _apply(server, [i for i in crds if i not in present], outcome, "CRDs")
    _wait_established(server, crds + present, outcome)
    outcome.timings.append(
        f"{len(crds)} CRDs applied and Established in {time.monotonic() - began:.1f}s"
        + (f" ({len(present)} more proven on an earlier inventory)" if present else "")
    )
    phases, webhooks = _phases(server, items)
    outcome.errors.extend(duplicates([i for _, part in phases for i in part] + webhooks))
    began = time.monotonic()
    applied = [(name, _apply(server, part, outcome, name)) for name, part in phases]
    count = sum(len(part) for _, part in applied)
    outcome.timings.append(f"{count} objects applied in {time.monotonic() - began:.1f}s")
    began = time.monotonic()
    for name, part in [("CRDs", crds), *applied]:
        _moved(server, part, outcome, name)
    outcome.timings.append(f"second apply in {time.monotonic() - began:.1f}s")
    began = time.monotonic()
    pods = _admit_pods(server, [i for _, part in applied for i in part], outcome)
    outcome.timings.append(f"{pods} workloads' pods admitted (dry run) in {time.monotonic() - began:.1f}s")
    webhooks = _apply(server, webhooks, outcome, "webhook configurations")
    _moved(server, webhooks, outcome, "webhook configurations")
    return outcome


# CRDs an inventory's API server accepted and applied twice without a change:
# {name: (the document, its etcd key, inventory)}. A later inventory declaring the very same
# document gets it copied into its own server's etcd prefix instead of applying it again:
# CRDs are most of the cost (the server compiles every CEL rule of each on every write), and
# production and airgap declare lab's CRDs unchanged.
_PROVEN_CRDS: dict = {}


def _crd_key(prefix, name):
    return f"{prefix}/apiextensions.k8s.io/customresourcedefinitions/{name}"


@pytest.fixture(scope="session")
def inventory_etcd(tmp_path_factory):
    """One etcd for every inventory's API server, each under its own --etcd-prefix."""
    skip_without_binaries()
    with start_etcd(tmp_path_factory.mktemp("etcd-inventories")) as url:
        yield url


@pytest.fixture(scope="session")
def applied(rendered, inventory_etcd, request, tmp_path_factory):
    """(inventory, items, Outcome) of the tree of one inventory, with what its Applications
    deploy, applied to its own fresh API server."""
    inventory, _, tree_docs = rendered
    began = time.monotonic()
    charts = chart_items(inventory, tree_docs)
    rendering = time.monotonic() - began
    tree = [Item(f"tree {path}", copy.deepcopy(doc)) for path, docs in tree_docs.items() for doc in docs]
    items = bundle_items(tree_docs) + tree + charts
    items = cilium_crd_items([i.doc for i in items]) + items
    prefix = f"/registry-{inventory}"
    crds = {i.doc["metadata"]["name"]: i.doc for i in items if is_crd(i.doc)}
    proven = {name: _PROVEN_CRDS[name] for name, doc in crds.items() if name in _PROVEN_CRDS and _PROVEN_CRDS[name][0] == doc}
    copy_etcd_keys(inventory_etcd, [(key, _crd_key(prefix, name)) for name, (_, key, _) in proven.items()])
    with apiserver_or_skip(tmp_path_factory.mktemp(f"apiserver-{inventory}"), inventory_etcd, prefix) as server:
        outcome = apply_platform(server, items, proven=frozenset(proven))
        report(
            request.config,
            f"\napiserver {inventory}: charts rendered in {rendering:.1f}s, server ready in {server.started_in:.1f}s, "
            + ", ".join(outcome.timings) + f"; {len(outcome.applied)} objects in all",
        )
        if outcome.settled:
            report(request.config, f"apiserver {inventory}: the second apply stored defaults the server showed already, changing nothing else: {'; '.join(outcome.settled)}")
    for name, doc in crds.items():
        if name not in proven and identity_of(doc) in outcome.applied and identity_of(doc) not in outcome.moved_identities:
            _PROVEN_CRDS[name] = (doc, _crd_key(prefix, name), inventory)
    bundles = sorted({i.origin.split(": ")[0] + ")" for i in items if i.origin.startswith("bundle ")})
    stand_ins = sorted({i.origin for i in items if i.origin.startswith("test: ")})
    origins = sorted({p[2] for p in proven.values()})
    copied = f"{len(proven)} CRDs copied in etcd, byte-identical to those {', '.join(origins)} proved" if proven else "every CRD applied here"
    report(request.config, f"apiserver {inventory}: {'; '.join(bundles + stand_ins)}; {copied}")
    return inventory, items, outcome


def test_every_object_is_accepted(applied):
    _, items, outcome = applied
    assert outcome.errors == []
    missing = sorted("/".join(filter(None, i.identity)) + f" ({i.origin})" for i in items if i.identity not in outcome.applied)
    assert missing == []


def test_a_second_apply_changes_nothing(applied):
    _, _, outcome = applied
    assert outcome.moved == []


def test_every_workloads_pods_would_be_admitted(applied):
    _, _, outcome = applied
    assert outcome.refused_pods == []


# The checks above, fed known-bad input on the shared API server.


def _configmap(name, namespace, value):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "labels": {"test": "apiserver"}}, "data": {"key": value}}


def test_a_rejected_object_and_a_cel_violation_are_reported(apiserver):
    crd = yaml.safe_load((CRD_DIR / "gateway-api" / "gateway.networking.k8s.io_httproutes.yaml").read_text())
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bad-input", "labels": {"test": "apiserver"}}}
    # HTTPRoute's CEL rule: a path match of type PathPrefix must start with '/'.
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "no-slash", "namespace": "bad-input"},
        "spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "no-slash"}}]}]},
    }
    unknown = {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "metadata": {"name": "unknown-kind"}}
    # A field no schema declares (strict field validation).
    undeclared = dict(_configmap("undeclared", "bad-input", "one"), immutable=False, mutable=True)
    items = [Item("test", crd), Item("test", namespace), Item("test", route), Item("test", unknown), Item("test", undeclared)]
    outcome = apply_platform(apiserver, items)
    errors = "\n".join(outcome.errors)
    assert 'HTTPRoute.gateway.networking.k8s.io "no-slash" is invalid' in errors and "start with '/'" in errors, errors
    assert 'no matches for kind "CiliumClusterwideNetworkPolicy"' in errors, errors
    assert "ConfigMap/bad-input/undeclared: " in errors and ".mutable: field not declared in schema" in errors, errors


def test_a_change_on_the_second_apply_and_two_owners_are_reported(apiserver):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "moving", "labels": {"test": "apiserver"}}}
    claim = {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "claim", "namespace": "moving"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    empty = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "empty", "namespace": "moving"}}
    items = [Item("test", namespace), Item("test", _configmap("moving", "moving", "one")), Item("test", claim), Item("test", empty)]
    outcome = apply_platform(apiserver, items)
    assert outcome.errors == [] and outcome.moved == []
    # What the server stores on the first update after a create, and nothing else.
    assert sorted(s.split(":")[0] for s in outcome.settled) == ["PersistentVolumeClaim/moving/claim", "Secret/moving/empty"]
    _moved(apiserver, [Item("test", _configmap("moving", "moving", "two"))], outcome, "changed")
    assert len(outcome.moved) == 1 and outcome.moved[0].startswith("ConfigMap/moving/moving (test): resourceVersion "), outcome.moved
    assert outcome.moved[0].endswith("changed .data.key"), outcome.moved
    assert duplicates([Item("a", _configmap("x", "moving", "one")), Item("b", _configmap("x", "moving", "two"))]) == [
        "ConfigMap/moving/x: declared by a and, differently, by b"
    ]


def test_a_webhook_without_a_pod_does_not_block_the_rest(apiserver):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "hooked", "labels": {"test": "apiserver"}}}
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "no-pod"},
        "webhooks": [{
            "name": "configmaps.no-pod.test", "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
            "clientConfig": {"service": {"name": "no-pod", "namespace": "hooked", "path": "/validate"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "hooked"}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}],
        }],
    }
    items = [Item("test", webhook), Item("test", namespace), Item("test", _configmap("hooked", "hooked", "one"))]
    outcome = apply_platform(apiserver, items)
    assert outcome.errors == [] and outcome.moved == []
    # Once registered, the webhook fails what it matches: why apply_platform puts it last.
    with pytest.raises(ApplyError, match="no-pod"):
        apply_server_side(apiserver, [_configmap("hooked", "hooked", "two")], FIELD_MANAGER)
    kubectl(apiserver, "delete", "validatingwebhookconfiguration", "no-pod")


def test_pods_a_workload_could_never_start_are_reported(apiserver):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "restricted", "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}

    def deployment(name, **pod_spec):
        container = {"name": "app", "image": "registry.example.internal/app:1.0", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "restricted"}, "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container], **pod_spec}}}}

    items = [Item("test", namespace), Item("test", deployment("fine")), Item("test", deployment("host-network", hostNetwork=True)),
             Item("test", deployment("unknown-priority", priorityClassName="no-such-class"))]
    outcome = apply_platform(apiserver, items)
    assert outcome.errors == []
    errors = "\n".join(outcome.refused_pods)
    assert 'pods "deployment-host-network" is forbidden: violates PodSecurity "restricted:latest": host namespaces' in errors, errors
    assert "no PriorityClass with name no-such-class was found" in errors, errors
    assert "deployment-fine" not in errors, errors
