"""Teams (platform_teams): one namespace per team with its RBAC, quotas, limits, network
policy, object-store user and bucket, and what its workflows and InferenceServices need.

A team entry, with everything but ``name`` and one member optional::

    - name: vision                  # the team; its namespace is team-<name> unless set
      namespace: team-vision
      members: {groups: [vision-ml], users: [], service_accounts: [ci/vision-deployer]}
      quota: {requests.cpu: "32", requests.memory: 128Gi, ...}   # over tenancy_default_quota
      gpus: {nvidia.com/gpu: 2, nvidia.com/mig-1g.10gb: 3}        # GPU quota (0 when absent)
      limits: {default: {...}, defaultRequest: {...}, max: {...}} # over tenancy_default_limits
      buckets: {training-datasets: read}                          # platform buckets beside its own

Each team gets the object-store user and bucket ``team-<name>`` (read-write, its own only) and
the MLflow user ``team-<name>``. ``problems`` names every mistake with the variable and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# team-<name> is an object-store access key (3-32 characters) and a bucket name.
TEAM_NAME = re.compile(r"^[a-z][a-z0-9-]{0,25}[a-z0-9]$")
QUANTITY = re.compile(r"^([+]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
# ResourceQuota keys a team's quota may set (compute, storage and object counts); GPUs go
# under gpus, as the GPU layer's quotas do.
QUOTA_KEYS = {
    "requests.cpu", "limits.cpu", "requests.memory", "limits.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.ephemeral-storage", "persistentvolumeclaims", "pods",
    "services", "services.loadbalancers", "services.nodeports", "configmaps", "secrets",
}
COUNT_KEY = re.compile(r"^count/[a-z0-9.-]+(\.[a-z0-9.-]+)?$")
LIMIT_FIELDS = ("default", "defaultRequest", "max", "min")
LIMIT_RESOURCES = ("cpu", "memory", "ephemeral-storage")
MEMBER_KINDS = {"groups": "Group", "users": "User", "service_accounts": "ServiceAccount"}
ACCESS = ("read", "readwrite")
# The namespaces the platform's layers create at their defaults (and Kubernetes' own); an
# inventory's renamed ones are added by reserved_namespaces' caller. No team may take one.
PLATFORM_NAMESPACES = (
    "default", "kube-system", "kube-public", "kube-node-lease", "argo", "argocd", "cert-manager", "cnpg-system",
    "gpu-operator", "kserve", "longhorn-system", "openebs", "metallb-system", "minio", "minio-operator",
    "monitoring", "platform-gateway", "velero", "ml-serving", "ml-tracking", "ml-training",
)

# What a team member may do in the team's namespace, and nothing outside it: run and manage
# InferenceServices and Workflows (and what they are made of), read their pods' logs and the
# namespace's quota. No role, binding, quota, limit or network policy can be changed, so the
# team cannot lift its own limits.
MEMBER_RULES = [
    {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices", "inferencegraphs", "servingruntimes", "trainedmodels"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices/status"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["argoproj.io"], "resources": ["workflows", "workflowtemplates", "cronworkflows", "workfloweventbindings"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults", "workflowtasksets", "workflowartifactgctasks"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["configmaps", "secrets", "persistentvolumeclaims"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "endpoints", "events", "serviceaccounts", "resourcequotas", "limitranges"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
]
# Cluster-wide, read only: the platform's serving runtimes and workflow templates a team builds on.
VIEWER_RULES = [
    {"apiGroups": ["serving.kserve.io"], "resources": ["clusterservingruntimes", "clusterstoragecontainers"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["argoproj.io"], "resources": ["clusterworkflowtemplates"], "verbs": ["get", "list", "watch"]},
]
# Argo's executor reports outputs through these (the documented least privilege).
EXECUTOR_RULES = [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}]


def _data(value):
    """Ansible's lazy, tagged values as plain data."""
    return json.loads(json.dumps(value))


def team_namespace(team):
    return str(team.get("namespace") or f"team-{team.get('name')}")


def teams(raw, default_quota=None, default_limits=None):
    """The teams with every default applied: namespace, members, quota, gpus, limits, buckets,
    and the names of the team's object-store user, bucket and MLflow user."""
    out = []
    for team in _data(raw or []) if isinstance(raw, list) else []:
        if not isinstance(team, Mapping) or "name" not in team:
            continue  # problems() names it
        name = str(team["name"])
        limits = {field: dict(values) for field, values in _data(default_limits or {}).items()}
        for field, values in (team.get("limits") or {}).items():
            limits[field] = {**limits.get(field, {}), **values}
        out.append(
            {
                "name": name,
                "namespace": team_namespace(team),
                "members": {kind: list((team.get("members") or {}).get(kind) or []) for kind in MEMBER_KINDS},
                "quota": {**_data(default_quota or {}), **(team.get("quota") or {})},
                "gpus": dict(team.get("gpus") or {}),
                "limits": limits,
                "grants": dict(team.get("buckets") or {}),
                "user": f"team-{name}",
                "bucket": f"team-{name}",
            }
        )
    return out


def problems(raw, reserved_namespaces=(), platform_buckets=(), gpu_quota_namespaces=()):
    """Every mistake in platform_teams, each naming the team, the variable and the fix."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list):
        return ["platform_teams must be a list of teams, such as [{name: vision, members: {groups: [vision-ml]}}]."]
    found, names, namespaces = [], {}, {}
    buckets = [str(b) for b in platform_buckets]
    for index, team in enumerate(raw):
        where = f"platform_teams[{index}]"
        if not isinstance(team, Mapping) or "name" not in team:
            found.append(f"{where}: each team is a mapping with at least name and members.")
            continue
        name = str(team["name"])
        where = f"platform_teams[{index}] ({name})"
        unknown = sorted(set(team) - {"name", "namespace", "members", "quota", "gpus", "limits", "buckets"})
        if unknown:
            found.append(f"{where}: unknown setting(s) {', '.join(unknown)}. Fix: use namespace, members, quota, gpus, limits or buckets.")
        if not TEAM_NAME.match(name):
            found.append(f"{where}.name: {name!r} must be 2-27 lower-case letters, digits and hyphens, starting with a letter (team-<name> is its object-store user and bucket).")
        if name in names:
            found.append(f"{where}.name: {name!r} is also platform_teams[{names[name]}]. Fix: give every team its own name.")
        names.setdefault(name, index)
        namespace = team_namespace(team)
        if not DNS1123_LABEL.match(namespace) or len(namespace) > 63:
            found.append(f"{where}.namespace: {namespace!r} is not a namespace name (lower-case letters, digits and hyphens, at most 63).")
        if namespace in namespaces:
            found.append(f"{where}.namespace: {namespace} is also the namespace of platform_teams[{namespaces[namespace]}]. Fix: one namespace per team.")
        namespaces.setdefault(namespace, index)
        if namespace in reserved_namespaces or namespace.startswith("kube-"):
            found.append(f"{where}.namespace: {namespace} is one of the platform's own namespaces. Fix: pick another, such as team-{name}.")
        if namespace in gpu_quota_namespaces:
            found.append(f"gpu_quotas.{namespace}: that is team {name}'s namespace, whose GPU quota is the team's. Fix: move it to platform_teams[{index}].gpus and drop it from gpu_quotas.")
        if f"team-{name}" in buckets:
            found.append(f"{where}.name: team-{name} is already a platform bucket (platform_buckets). Fix: rename the team or the bucket.")
        found += _member_problems(where, team.get("members"))
        found += _quota_problems(where, team.get("quota"))
        found += _limit_problems(where, team.get("limits"))
        grants = team.get("buckets") or {}
        if not isinstance(grants, Mapping):
            found.append(f"{where}.buckets: must map platform buckets to read or readwrite, such as {{training-datasets: read}}.")
            grants = {}
        for bucket, access in grants.items():
            if bucket not in buckets:
                found.append(f"{where}.buckets: {bucket!r} is not one of platform_buckets ({', '.join(buckets)}). Fix: correct the name; the team's own bucket team-{name} needs no grant.")
            if access not in ACCESS:
                found.append(f"{where}.buckets.{bucket}: {access!r} is not read or readwrite.")
            elif access != "read" and bucket in buckets:
                # The platform's services write there (datasets, models, artifacts, backups):
                # a team with write could overwrite or delete what they keep.
                found.append(
                    f"{where}.buckets.{bucket}: readwrite on a platform bucket would let the team overwrite or delete what the"
                    f" platform's services keep there. Fix: grant read, and keep the team's own data in its bucket team-{name}."
                )
    return found


def _member_problems(where, members):
    if not isinstance(members, Mapping) or not any(members.get(kind) for kind in MEMBER_KINDS):
        return [f"{where}.members: no member, so nobody could use the team's namespace. Fix: list groups (your OIDC or certificate groups), users or service_accounts (namespace/name)."]
    found = []
    unknown = sorted(set(members) - set(MEMBER_KINDS))
    if unknown:
        found.append(f"{where}.members: unknown kind(s) {', '.join(unknown)}. Fix: use groups, users or service_accounts.")
    for kind in MEMBER_KINDS:
        value = members.get(kind) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            found.append(f"{where}.members.{kind}: must be a list of names.")
            continue
        if kind == "service_accounts":
            for account in value:
                parts = account.split("/")
                if len(parts) != 2 or not all(DNS1123_LABEL.match(p) for p in parts):
                    found.append(f"{where}.members.service_accounts: {account!r} must be namespace/name.")
    return found


def _quantity_ok(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 or isinstance(value, str) and bool(QUANTITY.match(value))


def _quota_problems(where, quota):
    if quota is None:
        return []
    if not isinstance(quota, Mapping):
        return [f"{where}.quota: must map ResourceQuota keys to quantities, such as {{requests.cpu: '32'}}."]
    found = []
    for key, value in quota.items():
        if "nvidia.com/" in str(key):
            found.append(f"{where}.quota: {key} is a GPU resource. Fix: set GPUs under gpus, such as gpus: {{nvidia.com/gpu: 2}}.")
        elif key not in QUOTA_KEYS and not COUNT_KEY.match(str(key)):
            found.append(f"{where}.quota: {key!r} is not a ResourceQuota key. Fix: use one of {', '.join(sorted(QUOTA_KEYS))} or count/<resource>.")
        if not _quantity_ok(value):
            found.append(f"{where}.quota.{key}: {value!r} is not a quantity (such as 32, 500m or 128Gi).")
    return found


def _limit_problems(where, limits):
    if limits is None:
        return []
    if not isinstance(limits, Mapping):
        return [f"{where}.limits: must map {', '.join(LIMIT_FIELDS)} to {{cpu, memory}}."]
    found = []
    for field, values in limits.items():
        if field not in LIMIT_FIELDS:
            found.append(f"{where}.limits: {field!r} is not a LimitRange field. Fix: use {', '.join(LIMIT_FIELDS)}.")
            continue
        if not isinstance(values, Mapping):
            found.append(f"{where}.limits.{field}: must map cpu or memory to a quantity.")
            continue
        for resource, value in values.items():
            if resource not in LIMIT_RESOURCES:
                found.append(f"{where}.limits.{field}: {resource!r} is not cpu, memory or ephemeral-storage.")
            if not _quantity_ok(value):
                found.append(f"{where}.limits.{field}.{resource}: {value!r} is not a quantity.")
    return found


def reserved_namespaces(extra=()):
    return sorted(set(PLATFORM_NAMESPACES) | {str(n) for n in extra if n})


def object_store_users(raw):
    """{team-<name>: {namespace, buckets}}: the object-store user of each team, read-write on its
    own bucket and on nothing else but the platform buckets its entry grants."""
    return {t["user"]: {"namespace": t["namespace"], "buckets": {t["bucket"]: "readwrite", **t["grants"]}} for t in teams(raw)}


def buckets(raw):
    return [t["bucket"] for t in teams(raw)]


def namespaces(raw):
    """The teams' namespaces for the delivery path: restricted Pod Security, labelled with the team."""
    return [{"name": t["namespace"], "pod_security": "restricted", "labels": {"platform.ml/team": t["name"]}} for t in teams(raw)]


def gpu_quotas(raw):
    """{namespace: {resource: count}} for the GPU layer's quota documents."""
    return {t["namespace"]: t["gpus"] for t in teams(raw) if t["gpus"]}


def _subjects(members):
    out = []
    for kind, names in sorted(members.items()):
        for name in names:
            if kind == "service_accounts":
                namespace, account = name.split("/")
                out.append({"kind": "ServiceAccount", "name": account, "namespace": namespace})
            else:
                out.append({"kind": MEMBER_KINDS[kind], "apiGroup": "rbac.authorization.k8s.io", "name": name})
    return out


def cluster_documents(raw, labels):
    """The ClusterRoles every team's bindings use, and each team's read-only binding to the
    platform's cluster-wide runtimes and templates."""
    docs = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "ml-platform-team-member", "labels": labels}, "rules": MEMBER_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "ml-platform-team-viewer", "labels": labels}, "rules": VIEWER_RULES},
    ]
    for team in teams(raw):
        docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"ml-platform-team-{team['name']}-viewer", "labels": {**labels, "platform.ml/team": team["name"]}},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ml-platform-team-viewer"},
                "subjects": _subjects(team["members"]),
            }
        )
    return docs


def documents(team, ctx):
    """Everything in one team's namespace but the namespace itself (the delivery path's) and the
    platform's workload policy (platform_workload_policies, which the role adds). ctx: labels,
    artifact_repository (the s3 block without the bucket and Secret), workflow_service_account,
    model_service_account."""
    ns = team["namespace"]
    labels = {**ctx["labels"], "platform.ml/team": team["name"]}
    meta = lambda name, **extra: {"name": name, "namespace": ns, "labels": labels, **extra}  # noqa: E731
    secret = f"object-store-{team['user']}"
    repository = {
        "archiveLogs": True,
        "s3": {
            **ctx["artifact_repository"],
            "bucket": team["bucket"],
            "accessKeySecret": {"name": secret, "key": "AWS_ACCESS_KEY_ID"},
            "secretKeySecret": {"name": secret, "key": "AWS_SECRET_ACCESS_KEY"},
        },
    }
    docs = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta("team-members"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ml-platform-team-member"},
            "subjects": _subjects(team["members"]),
        },
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("team"), "spec": {"hard": {k: str(v) for k, v in sorted(team["quota"].items())}}},
        {"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("team"), "spec": {"limits": [{"type": "Container", **{k: {r: str(q) for r, q in v.items()} for k, v in sorted(team["limits"].items()) if v}}]}},
        # Workflows run as this account (the platform's workflow default), with the executor's
        # least privilege; predictors read models with the team's object-store keys.
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(ctx["workflow_service_account"])},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(ctx["workflow_service_account"]), "rules": EXECUTOR_RULES},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(ctx["workflow_service_account"]),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ctx["workflow_service_account"]},
            "subjects": [{"kind": "ServiceAccount", "name": ctx["workflow_service_account"], "namespace": ns}],
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(ctx["model_service_account"]), "secrets": [{"name": secret}]},
        # Argo's per-namespace artifact repository: the team's workflows keep their artifacts
        # and logs in the team's bucket, with the team's keys.
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("artifact-repositories", annotations={"workflows.argoproj.io/default-artifact-repository": "default"}),
            "data": {"default": json.dumps(repository, sort_keys=True)},
        },
        # Beside the platform's workload policy: a team's own pods reach each other (workflow
        # steps, a predictor and its transformer).
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("allow-same-namespace"),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]},
        },
        # Argo's executor (the wait container) reports each step's outputs to the API server,
        # whose address is the host's: a Kubernetes NetworkPolicy cannot name it, Cilium's
        # kube-apiserver entity can. Only workflow pods get it.
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": meta("workflows-to-kube-apiserver"),
            "spec": {
                "endpointSelector": {"matchExpressions": [{"key": "workflows.argoproj.io/workflow", "operator": "Exists"}]},
                "egress": [{"toEntities": ["kube-apiserver"]}],
            },
        },
    ]
    return docs


def mlflow_clients(raw_teams, object_store_credentials, mlflow_credentials):
    """Each team's MLflow client (tracking_mlflow_client_secrets makes its mlflow-client Secret):
    its namespace, its MLflow login and its object-store keys, read by the team's user name."""
    return [
        {"namespace": t["namespace"], "login": mlflow_credentials[t["user"]], "keys": object_store_credentials[t["user"]], "labels": {"platform.ml/team": t["name"]}}
        for t in _data(raw_teams)
    ]


class FilterModule:
    def filters(self):
        return {
            "tenancy_teams": teams,
            "tenancy_problems": lambda raw, *a: problems(_data(raw), *map(_data, a)),
            "tenancy_object_store_users": lambda raw: object_store_users(raw),
            "tenancy_buckets": buckets,
            "tenancy_reserved_namespaces": lambda extra=(): reserved_namespaces(_data(extra)),
            "tenancy_namespaces": namespaces,
            "tenancy_gpu_quotas": gpu_quotas,
            "tenancy_cluster_documents": lambda raw, labels: cluster_documents(raw, _data(labels)),
            "tenancy_documents": lambda team, ctx: documents(_data(team), _data(ctx)),
            "tenancy_mlflow_clients": lambda teams, *a: mlflow_clients(teams, *map(_data, a)),
        }
