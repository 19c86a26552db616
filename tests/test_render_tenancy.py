"""Layer 8 (tenancy) as the gitops mode renders it: the production inventory's two teams get
their namespaces, RBAC, quotas, limits, network policy, object-store users and MLflow logins,
and the lab (no teams) gets none. Schema validation of every document (Kubernetes 1.35 and the
closed Cilium schema) is test_render.py's; the Secret wiring is test_render_serving_tracking.py's."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from conftest import ROOT, _project_of, documents, project_copy, render_gitops, state_dir
from k8s_schemas import load_tree
from test_render_serving_tracking import by_kind, skipped_secrets

PRODUCTION = yaml.safe_load((ROOT / "inventories" / "production" / "group_vars" / "all.yml").read_text())
TEAMS = {team["name"]: team for team in PRODUCTION["platform_teams"]}
DEFAULT_QUOTA = yaml.safe_load((ROOT / "roles" / "tenancy" / "defaults" / "main.yml").read_text())["tenancy_default_quota"]
WRITE = {"create", "update", "patch", "delete"}


def team_docs(tree_docs, namespace):
    return [doc for _, doc in documents(tree_docs) if doc["metadata"].get("namespace") == namespace or doc["metadata"].get("name") == namespace]


def allowed(rules, group, resource, verb):
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


@pytest.fixture(scope="module")
def production(rendered):
    inventory, tree, tree_docs = rendered
    if inventory == "lab":
        pytest.skip("the lab has no teams (production's, which airgap shares, do)")
    return tree, tree_docs


def test_every_team_gets_a_restricted_namespace_labelled_with_the_team(production):
    _, tree_docs = production
    docs = by_kind(tree_docs)
    for name in TEAMS:
        labels = docs[("Namespace", None, f"team-{name}")]["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["platform.ml/team"] == name


def test_members_may_create_inference_services_and_workflows_only_in_their_namespace(production):
    _, tree_docs = production
    docs = by_kind(tree_docs)
    member = docs[("ClusterRole", None, "ml-platform-team-member")]["rules"]
    for resource, group in [("inferenceservices", "serving.kserve.io"), ("workflows", "argoproj.io"), ("workflowtemplates", "argoproj.io")]:
        assert allowed(member, group, resource, "create"), resource
    # Nothing that would let a team lift its own limits or reach beyond its namespace.
    for group, resource in [("rbac.authorization.k8s.io", "rolebindings"), ("rbac.authorization.k8s.io", "roles"), ("", "resourcequotas"),
                            ("", "limitranges"), ("networking.k8s.io", "networkpolicies"), ("cilium.io", "ciliumnetworkpolicies"), ("", "namespaces")]:
        assert not any(allowed(member, group, resource, verb) for verb in WRITE), resource
    assert not any("*" in r["verbs"] or "*" in r["resources"] or "*" in r["apiGroups"] for r in member)
    bindings = [doc for _, doc in documents(tree_docs) if doc["kind"] in ("RoleBinding", "ClusterRoleBinding") and doc["roleRef"]["name"] == "ml-platform-team-member"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(f"team-{n}" for n in TEAMS)
    assert all(b["kind"] == "RoleBinding" for b in bindings), "the member role is never bound cluster-wide"
    for binding in bindings:
        team = TEAMS[binding["metadata"]["namespace"].removeprefix("team-")]
        expected = {("Group", g) for g in team["members"].get("groups", [])} | {("ServiceAccount", s.split("/")[1]) for s in team["members"].get("service_accounts", [])}
        assert {(s["kind"], s["name"]) for s in binding["subjects"]} == expected
    viewer = docs[("ClusterRole", None, "ml-platform-team-viewer")]["rules"]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in viewer)


def test_quotas_merge_the_team_over_the_defaults_and_cap_gpus(production):
    _, tree_docs = production
    docs = by_kind(tree_docs)
    for name, team in TEAMS.items():
        namespace = f"team-{name}"
        hard = docs[("ResourceQuota", namespace, "team")]["spec"]["hard"]
        assert hard == {k: str(v) for k, v in {**DEFAULT_QUOTA, **team.get("quota", {})}.items()}
        assert docs[("ResourceQuota", namespace, "gpu")]["spec"]["hard"] == {f"requests.{k}": str(v) for k, v in team["gpus"].items()}
        limits = docs[("LimitRange", namespace, "team")]["spec"]["limits"][0]
        # The quota refuses pods without requests and limits; the LimitRange gives them some.
        assert {"default", "defaultRequest", "max"} <= set(limits) and limits["type"] == "Container"


def test_team_network_policy_denies_by_default_and_admits_only_the_platform(production):
    _, tree_docs = production
    docs = by_kind(tree_docs)

    def specs(namespace):
        return {name: doc["spec"] for (kind, ns, name), doc in docs.items() if kind == "NetworkPolicy" and ns == namespace}

    serving = specs("ml-serving")
    for name in TEAMS:
        namespace = f"team-{name}"
        policies = specs(namespace)
        # The serving namespace's workload policy, the same documents (platform_workload_policies),
        # and the team's own pods reaching each other.
        for policy in ("default-deny", "allow-dns", "allow-inference", "allow-models-and-registry"):
            assert policies[policy] == serving[policy], policy
        assert set(policies) == {"default-deny", "allow-dns", "allow-inference", "allow-models-and-registry", "allow-same-namespace"}
        assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        inbound = policies["allow-inference"]["ingress"]
        assert [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for rule in inbound for peer in rule["from"]] == ["ml-serving", "monitoring"]
        assert inbound[0]["from"][0]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "inference-gateway"}}
        outbound = policies["allow-models-and-registry"]["egress"] + policies["allow-dns"]["egress"]
        assert sorted(p["port"] for rule in outbound for p in rule["ports"]) == [53, 53, 5000, 9000]
        # No rule opens the world: every egress peer is a namespace (DNS, MinIO, MLflow).
        assert all("namespaceSelector" in peer for rule in outbound for peer in rule["to"])
        same = policies["allow-same-namespace"]
        assert same["ingress"] == [{"from": [{"podSelector": {}}]}] and same["egress"] == [{"to": [{"podSelector": {}}]}]
        cilium = docs[("CiliumNetworkPolicy", namespace, "workflows-to-kube-apiserver")]["spec"]
        assert cilium["egress"] == [{"toEntities": ["kube-apiserver"]}]
        assert cilium["endpointSelector"]["matchExpressions"][0]["key"] == "workflows.argoproj.io/workflow"


def test_each_team_has_its_own_object_store_user_bucket_and_mlflow_login(production):
    tree, tree_docs = production
    docs = by_kind(tree_docs)
    setup = docs[("ConfigMap", "minio", "minio-setup")]["data"]
    secrets = skipped_secrets(tree)
    for name, team in TEAMS.items():
        user = namespace = bucket = f"team-{name}"
        assert f"{bucket} on\n" in setup["buckets"], "the team's bucket is created and versioned"
        assert f"{user} platform-{user}\n" in setup["users"]
        policy = json.loads(setup[f"policy-platform-{user}.json"])
        granted = {res.removeprefix("arn:aws:s3:::").removesuffix("/*") for st in policy["Statement"] for res in st["Resource"]}
        assert granted == {bucket, *team.get("buckets", {})}, "its own bucket and the grants its entry names, nothing else"
        # The team's Secrets go to its namespace only; MLflow's users job gets its login.
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= secrets[(namespace, f"object-store-{user}")]
        assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID"} <= secrets[(namespace, "mlflow-client")]
        assert user in secrets[("ml-tracking", "mlflow-users")]
        # Argo keeps the team's artifacts in the team's bucket, with the team's keys.
        repositories = docs[("ConfigMap", namespace, "artifact-repositories")]
        default = repositories["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
        s3 = yaml.safe_load(repositories["data"][default])["s3"]
        assert s3["bucket"] == bucket and s3["accessKeySecret"]["name"] == s3["secretKeySecret"]["name"] == f"object-store-{user}"
        assert docs[("ServiceAccount", namespace, "kserve-models")]["secrets"] == [{"name": f"object-store-{user}"}]
        assert docs[("Role", namespace, "argo-workflow")]["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}]
    # No team reaches another team's bucket.
    for name in TEAMS:
        others = {f"team-{o}" for o in TEAMS if o != name}
        assert not others & set(setup[f"policy-platform-team-{name}.json"].split('"'))


def test_the_inference_gateway_routes_and_prometheus_scrapes_the_teams(production):
    _, tree_docs = production
    docs = by_kind(tree_docs)
    conf = docs[("ConfigMap", "ml-serving", "inference-gateway")]["data"]["default.conf"]
    assert "(?<ns>ml-serving|team-vision|team-fraud)" in conf
    egress = docs[("NetworkPolicy", "ml-serving", "inference-gateway-to-predictors")]["spec"]["egress"][0]["to"]
    assert [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in egress] == ["ml-serving", "team-vision", "team-fraud"]
    assert docs[("PodMonitor", "ml-serving", "predictors")]["spec"]["namespaceSelector"]["matchNames"] == ["ml-serving", "team-vision", "team-fraud"]
    # The serving layer writes nothing into a team's namespace: that is the tenancy layer's alone,
    # so neither waits on the other in Argo CD's waves.
    serving = [doc for path, doc in documents(tree_docs) if "/serving/" in str(path) and doc["metadata"].get("namespace", "").startswith("team-")]
    assert serving == []


def test_no_team_namespace_is_a_platform_namespace(rendered):
    """The reserved list (tenancy.PLATFORM_NAMESPACES and the platform role's settings) names
    every namespace any layer creates, so the check that no team takes one cannot go stale."""
    import tenancy

    _, _, tree_docs = rendered
    platform = {doc["metadata"]["name"] for _, doc in documents(tree_docs) if doc["kind"] == "Namespace" and "platform.ml/team" not in doc["metadata"]["labels"]}
    defaults = yaml.safe_load((ROOT / "roles" / "platform" / "defaults" / "main.yml").read_text())
    reserved = tenancy.reserved_namespaces([u["namespace"] for u in defaults["platform_object_store_users"].values()])
    assert platform <= set(reserved), platform - set(reserved)
    assert tenancy.problems([{"name": "x1", "namespace": "cnpg-system", "members": {"groups": ["g"]}}], reserved)


def test_without_teams_there_are_no_team_namespaces(rendered):
    inventory, _, tree_docs = rendered
    if inventory != "lab":
        pytest.skip("the lab has no teams")
    assert not [doc for _, doc in documents(tree_docs) if doc["metadata"].get("namespace", "").startswith("team-")]


def test_a_team_taken_out_of_the_inventory_is_revoked_in_the_tree(rendered, tmp_path):
    """The operator removes team fraud from production and re-renders the layers a team touches
    (docs/tenancy.md) on the checkout and state the last render left: the team's objects leave
    the tree (Argo CD prunes them), the MinIO setup job removes its user and policy, and the
    MLflow users job is told which users are the installer's to remove. The credentials files
    keep only a revocation marker for the team (its name and a time, no key; the unit tests show
    later runs revoke it again). Then the team comes back: it gets new keys and a new password, never
    the old ones, and nothing is revoked any more."""
    inventory, tree, _ = rendered
    if inventory != "production":
        pytest.skip("production's teams (airgap has the same)")
    project = project_copy(tmp_path / "project")
    shutil.copytree(state_dir(_project_of(tree), inventory), state_dir(project, inventory))
    credentials = state_dir(project, inventory) / "credentials"
    old_keys = yaml.safe_load((credentials / "object-store.yml").read_text())["team-fraud"]
    old_login = yaml.safe_load((credentials / "tracking.yml").read_text())["team-fraud"]
    group_vars = project / "inventories" / inventory / "group_vars" / "all.yml"
    declared = group_vars.read_text()
    settings = yaml.safe_load(declared)
    settings["platform_teams"] = [team for team in settings["platform_teams"] if team["name"] != "fraud"]
    group_vars.write_text(yaml.safe_dump(settings, sort_keys=False))
    checkout = tmp_path / "tree"
    shutil.copytree(tree, checkout)
    result = render_gitops(inventory, checkout, "preflight_inventory,storage,serving,tracking,tenancy",
                           "--skip-tags", "storage_hosts", project=project)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    after = load_tree(checkout)
    assert not team_docs(after, "team-fraud"), [doc["metadata"] for doc in team_docs(after, "team-fraud")][:5]
    assert team_docs(after, "team-vision"), "the team that stays keeps its objects"
    docs = by_kind(after)
    setup = docs[("ConfigMap", "minio", "minio-setup")]["data"]
    assert "team-fraud" not in setup["users"] and "policy-platform-team-fraud.json" not in setup
    assert setup["revoked"] == "team-fraud platform-team-fraud\n"
    job = next(doc for (kind, _, name), doc in docs.items() if kind == "Job" and name.startswith("mlflow-users-"))
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_MANAGED_USER_PREFIX"] == "team-"

    # Only a marker stays: the old key and password are gone from the files.
    for name, secret in (("object-store.yml", old_keys["secret_key"]), ("tracking.yml", old_login["password"])):
        text = (credentials / name).read_text()
        assert set(yaml.safe_load(text)["team-fraud"]) == {"revoked"} and secret not in text, name

    # The team comes back: new keys and a new login, its objects back, nothing revoked (the
    # layers that keep its credentials and make its objects; serving's routes are not the point).
    group_vars.write_text(declared)
    back = render_gitops(inventory, checkout, "storage,tracking,tenancy", "--skip-tags", "storage_hosts", project=project)
    assert back.returncode == 0, back.stdout[-4000:] + back.stderr[-2000:]
    new_keys = yaml.safe_load((credentials / "object-store.yml").read_text())["team-fraud"]
    new_login = yaml.safe_load((credentials / "tracking.yml").read_text())["team-fraud"]
    assert new_keys["access_key"] == "team-fraud" and new_keys["secret_key"] not in ("", old_keys["secret_key"])
    assert new_login["password"] not in ("", old_login["password"])
    readded = load_tree(checkout)
    assert team_docs(readded, "team-fraud"), "the team's objects come back"
    setup = by_kind(readded)[("ConfigMap", "minio", "minio-setup")]["data"]
    assert "team-fraud platform-team-fraud" in setup["users"] and "revoked" not in setup
