"""Validate rendered Kubernetes documents: core kinds against the Kubernetes OpenAPI
schemas of the target version (kubernetes-validate), custom resources against the
upstream CRDs in ../shared/crds. Fields a schema does not declare are errors,
because the API server would silently drop them."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from conftest import ROOT

CRD_DIR = ROOT.parent / "shared" / "crds"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML refuses the unquoted '=' enum value in one upstream CRD; read it as a plain string."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


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


@lru_cache(maxsize=1)
def crd_schemas():
    """{(group/version, kind): closed schema} for every served version of every shared CRD."""
    schemas = {}
    for path in sorted(CRD_DIR.rglob("*.yaml")):
        for doc in yaml.load_all(path.read_text(), Loader=_Loader):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served") and version.get("schema"):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = _closed(version["schema"]["openAPIV3Schema"])
    return schemas


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
            return [f"{key[1]} {key[0]}: no upstream CRD in {CRD_DIR} to validate against"]
        validator = jsonschema.Draft7Validator(schema)
        return [f"{key[1]} {document['metadata'].get('name')}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
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
