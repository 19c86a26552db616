"""Removing what direct delivery applied for a layer and the layer no longer declares, for the
platform_k8s_apply (its prune option): what Argo CD's prune does in gitops
mode. platform_k8s_apply's documentation says what counts as the layer's."""

from __future__ import annotations

import json

try:
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
except ImportError:  # AnsibleK8SModule reports the missing library
    NotFoundError = ResourceNotFoundError = type("Missing", (Exception,), {})

LABEL = "platform.ml/layer"
RECORD_NAMESPACE = "kube-system"


def record_name(layer):
    return f"ml-platform-layer-{layer}"


def group_of(api_version):
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def group_kind(api_version, kind):
    """'group/Kind', or 'Kind' for the core group."""
    group = group_of(api_version)
    return f"{group}/{kind}" if group else kind


def identity(api_version, kind, namespace, name):
    """What makes two versions of one object the same object: group, kind, namespace, name."""
    return (group_of(api_version), kind, namespace or "", name)


def label(obj):
    meta = obj["metadata"]
    where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    return f"{obj['kind']} {where}"


def applied_by(obj, field_manager):
    """Whether field_manager holds fields of obj through server-side apply."""
    return any(
        entry.get("manager") == field_manager and entry.get("operation") == "Apply"
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
    )


def candidates(listed, declared, field_manager):
    """The listed objects that are the layer's (applied by field_manager, owned by no
    controller) and that declared (identities) does not name."""
    found = []
    for obj in listed:
        meta = obj.get("metadata") or {}
        if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
            continue
        if not applied_by(obj, field_manager):
            continue
        if identity(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]) in declared:
            continue
        found.append(obj)
    return found


def split_data(objects, data_kinds, prune_data):
    """(to delete, to keep): objects of data_kinds are kept unless prune_data."""
    if prune_data:
        return list(objects), []
    kinds = set(data_kinds)
    keep = [o for o in objects if group_kind(o["apiVersion"], o["kind"]) in kinds]
    return [o for o in objects if o not in keep], keep


class Cluster:
    """What the pruning reads and changes, through kubernetes.core's client."""

    def __init__(self, client, check_mode):
        self.client, self.check_mode = client, check_mode

    def resource(self, api_version, kind):
        try:
            return self.client.resource(kind, api_version)
        except ResourceNotFoundError:
            return None

    def recorded_kinds(self, layer):
        """[(apiVersion, kind)] the record of the layer's last run names."""
        configmaps = self.resource("v1", "ConfigMap")
        try:
            found = self.client.get(configmaps, name=record_name(layer), namespace=RECORD_NAMESPACE).to_dict()
        except NotFoundError:
            return []
        return [tuple(kind) for kind in json.loads((found.get("data") or {}).get("kinds") or "[]")]

    def listed(self, api_version, kind, layer):
        resource = self.resource(api_version, kind)
        if resource is None:  # its CRD is gone: nothing of it is left to delete
            return []
        return self.client.get(resource, label_selector=f"{LABEL}={layer}").to_dict().get("items") or []

    def namespaced(self, api_version, kind):
        resource = self.resource(api_version, kind)
        return bool(resource and resource.namespaced)

    def delete(self, obj):
        if self.check_mode:
            return
        resource = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        try:
            self.client.delete(resource, name=meta["name"], namespace=meta.get("namespace"), body={"propagationPolicy": "Background"})
        except NotFoundError:  # gone meanwhile
            pass

    def write_record(self, layer, kinds, field_manager):
        """The record, applied server-side; whether it changed."""
        configmaps = self.resource("v1", "ConfigMap")
        data = {"kinds": json.dumps(sorted(list(kind) for kind in kinds))}
        try:
            current = self.client.get(configmaps, name=record_name(layer), namespace=RECORD_NAMESPACE).to_dict()
        except NotFoundError:
            current = None
        if current is not None and (current.get("data") or {}) == data:
            return False
        if not self.check_mode:
            body = {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": record_name(layer), "namespace": RECORD_NAMESPACE,
                             "labels": {"app.kubernetes.io/part-of": "ml-platform", "app.kubernetes.io/component": "layer-record"}},
                "data": data,
            }
            self.client.apply(configmaps, body, namespace=RECORD_NAMESPACE, server_side=True, field_manager=field_manager, force_conflicts=True)
        return True


def prune(cluster, layer, declared, field_manager, data_kinds=(), prune_data=False, undeclared_kinds=()):
    """(deleted, kept, record changed)."""
    declared_kinds = {(d["apiVersion"], d["kind"]) for d in declared}
    identities = set()
    for d in declared:
        namespace = d.get("namespace") or ("default" if cluster.namespaced(d["apiVersion"], d["kind"]) else "")
        identities.add(identity(d["apiVersion"], d["kind"], namespace, d["name"]))
    searched = {}
    may_hold = {(k["apiVersion"], k["kind"]) for k in undeclared_kinds}
    for api_version, kind in sorted(declared_kinds | set(cluster.recorded_kinds(layer)) | may_hold):
        searched.setdefault(group_kind(api_version, kind), (api_version, kind))  # one version per group and kind
    objects = []
    for api_version, kind in searched.values():
        objects += candidates(cluster.listed(api_version, kind, layer), identities, field_manager)
    delete, keep = split_data(objects, data_kinds, prune_data)
    for obj in delete:
        cluster.delete(obj)
    # Kinds are kept in the record while an object of theirs is left, so it is found again.
    kinds = declared_kinds | {(o["apiVersion"], o["kind"]) for o in keep}
    changed = cluster.write_record(layer, kinds, field_manager)
    return [label(o) for o in delete], [label(o) for o in keep], changed


def argument_problems(declared, undeclared_kinds):
    """Why the declared objects or the undeclared kinds cannot be pruned against: one message, or None."""
    for item in undeclared_kinds:
        if not item.get("apiVersion") or not item.get("kind"):
            return f"an undeclared kind needs apiVersion and kind: {item}"
    for item in declared:
        missing = [key for key in ("apiVersion", "kind", "name") if not item.get(key)]
        if missing:
            return f"a declared object lacks {', '.join(missing)}: {item}"
    return None
