"""Layers 5 (serving) and 6 (tracking) as the gitops mode renders them for each sample
inventory: the wiring between layers (every Secret, bucket and endpoint a consumer
names is one a layer creates), the GPU placement of runtimes, the network policy, the
certificates and MLflow's database. Schema validation of every document is in
test_render.py."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import BOM, ROOT, documents, render_gitops
from k8s_schemas import load_tree, validate

DOMAIN = "ml-platform.internal"
# The Secret CloudNativePG generates for a Cluster's application user when
# bootstrap.initdb names no secret (cloudnative-pg v1.30.0 pkg/specs/secrets.go).
CNPG_APP_KEYS = {"username", "user", "password", "dbname", "host", "port", "pgpass", "uri", "jdbc-uri", "fqdn-uri", "fqdn-jdbc-uri"}
# What cert-manager writes into a Certificate's secretName.
CERTIFICATE_KEYS = {"tls.crt", "tls.key", "ca.crt"}
GPU_RUNTIMES = {"kserve-tritonserver", "kserve-huggingfaceserver"}


def by_kind(tree_docs):
    return {(doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc for _, doc in documents(tree_docs)}


def first(tree_docs, kind, name):
    return next(doc for _, doc in documents(tree_docs) if doc["kind"] == kind and doc["metadata"]["name"] == name)


def skipped_secrets(tree):
    """{(namespace, name): {keys}} of the Secrets the layers create, from the names-only
    listing the gitops mode prints when it leaves them to the operator."""
    out = re.sub(r"\s+", " ", (tree.parent / f"{tree.name}.out").read_text())
    secrets = {}
    for listing in re.findall(r"create these Secrets yourself \(values in \S+\): (.*?)'", out):
        for namespace, name, keys in re.findall(r"([a-z0-9-]+)/([a-z0-9.-]+) \(([^)]*)\)", listing):
            secrets[(namespace, name)] = set(filter(None, keys.split(", ")))
    return secrets


def references(node, namespace, found):
    """Every (namespace, Secret name, key or None) a document refers to."""
    if isinstance(node, dict):
        ref = node.get("secretKeyRef")
        if isinstance(ref, dict):
            found.append((namespace, ref["name"], ref["key"]))
        if isinstance(node.get("secretRef"), dict):
            found.append((namespace, node["secretRef"]["name"], None))
        if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
            found.append((namespace, node["secret"]["secretName"], None))
        if node.get("kind") == "Secret" and "name" in node and set(node) <= {"kind", "name", "namespace", "group"}:
            found.append((node.get("namespace", namespace), node["name"], None))
        # CloudNativePG's s3Credentials: {accessKeyId: {name, key}, ...}
        for field in ("accessKeyId", "secretAccessKey", "region", "sessionToken"):
            if isinstance(node.get(field), dict) and {"name", "key"} <= set(node[field]):
                found.append((namespace, node[field]["name"], node[field]["key"]))
        for value in node.values():
            references(value, namespace, found)
    elif isinstance(node, list):
        for value in node:
            references(value, namespace, found)
    return found


def test_every_secret_a_manifest_names_is_one_a_layer_or_an_operator_creates(rendered):
    _, tree, tree_docs = rendered
    created = skipped_secrets(tree)
    assert ("ml-serving", "object-store-kserve") in created and ("ml-training", "mlflow-client") in created
    for _, doc in documents(tree_docs):
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] == "Cluster" and doc["apiVersion"].startswith("postgresql.cnpg.io/") and "secret" not in doc["spec"]["bootstrap"]["initdb"]:
            created[(namespace, f"{doc['metadata']['name']}-app")] = CNPG_APP_KEYS
        if doc["kind"] == "Certificate":
            created[(namespace, doc["spec"]["secretName"])] = CERTIFICATE_KEYS
    missing = []
    for _, doc in documents(tree_docs):
        if doc["kind"] == "Application":
            continue
        namespace = doc["metadata"].get("namespace")
        names = references(doc.get("spec") or {}, namespace, [])
        if doc["kind"] == "ServiceAccount":
            names += [(namespace, s["name"], None) for s in doc.get("secrets", [])]
        for ref_namespace, name, key in names:
            keys = created.get((ref_namespace, name))
            if keys is None or (key is not None and key not in keys):
                missing.append(f"{doc['kind']} {namespace}/{doc['metadata']['name']} -> {ref_namespace}/{name} {key or ''}")
    assert missing == []


def test_each_consumer_uses_the_buckets_and_endpoint_the_storage_layer_creates(rendered):
    inventory, _, tree_docs = rendered
    setup = first(tree_docs, "ConfigMap", "minio-setup")["data"]
    buckets = {line.split()[0] for line in setup["buckets"].splitlines()}
    policies = {name.removeprefix("policy-platform-").removesuffix(".json"): json.loads(text) for name, text in setup.items() if name.startswith("policy-")}

    def granted(user, path, write):
        """Whether user may read (and write) the objects under path, a bucket or bucket/prefix."""
        actions = {a for st in policies[user]["Statement"] if f"arn:aws:s3:::{path}/*" in st["Resource"] for a in st["Action"]}
        return "s3:GetObject" in actions and (not write or "s3:PutObject" in actions)

    tenant = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "Tenant")
    endpoint = f"http://minio.{tenant['metadata']['namespace']}.svc.cluster.local"
    cluster = first(tree_docs, "Cluster", "mlflow-db")["spec"]["backup"]["barmanObjectStore"]
    backup_path = cluster["destinationPath"].removeprefix("s3://").rstrip("/")
    backup_bucket = backup_path.split("/")[0]
    assert cluster["endpointURL"] == endpoint
    assert backup_bucket in buckets and granted("postgres", backup_path, write=True)
    # Its own prefix only: not Velero's backups, nor anything else in the bucket.
    assert not granted("postgres", backup_bucket, write=False)
    assert cluster["s3Credentials"]["accessKeyId"]["name"] == "object-store-postgres"
    mlflow = first(tree_docs, "Deployment", "mlflow")
    bucket = re.search(r"--artifacts-destination s3://([^/ ]+)/", mlflow["spec"]["template"]["spec"]["containers"][0]["args"][0]).group(1)
    assert bucket == "mlflow-artifacts" and bucket in buckets and granted("mlflow", bucket, write=True)
    # KServe reads promoted models and MLflow's artifacts, and writes neither.
    assert granted("kserve", "kserve-models", write=False) and granted("kserve", "mlflow-artifacts", write=False)
    assert not granted("kserve", "kserve-models", write=True)
    account = first(tree_docs, "ServiceAccount", "kserve-models")
    assert account["metadata"]["namespace"] == "ml-serving" and account["secrets"] == [{"name": "object-store-kserve"}]


def test_mlflow_reads_the_database_secret_cloudnativepg_generates(rendered):
    inventory, _, tree_docs = rendered
    cluster = first(tree_docs, "Cluster", "mlflow-db")
    assert "secret" not in cluster["spec"]["bootstrap"]["initdb"]
    assert cluster["spec"]["bootstrap"]["initdb"] == {"database": "mlflow", "owner": "mlflow"}
    namespace = cluster["metadata"]["namespace"]
    mlflow = first(tree_docs, "Deployment", "mlflow")
    assert mlflow["metadata"]["namespace"] == namespace
    env = {e["name"]: e for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db-app", "key": "uri"}
    job = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "Job" and doc["metadata"]["name"].startswith("mlflow-users-"))
    job_env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert job_env["MLFLOW_AUTH_DATABASE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db-app", "key": "uri"}
    # One instance on one node; three on different nodes in production.
    instances = cluster["spec"]["instances"]
    assert instances == (1 if inventory == "lab" else 3)
    assert cluster["spec"]["affinity"]["podAntiAffinityType"] == ("preferred" if instances == 1 else "required")
    assert mlflow["spec"]["replicas"] == (1 if inventory == "lab" else 2)
    assert cluster["spec"]["imageName"] == f"{BOM['bom_images']['postgresql']['repository']}:{BOM['bom_images']['postgresql']['tag']}"
    backup = first(tree_docs, "ScheduledBackup", "mlflow-db-daily")["spec"]
    assert backup["cluster"] == {"name": "mlflow-db"} and backup["immediate"] is True and len(backup["schedule"].split()) == 6


def test_gpu_runtimes_request_gpus_on_the_gpu_products_only(rendered):
    inventory, _, tree_docs = rendered
    runtimes = {doc["metadata"]["name"]: doc["spec"] for _, doc in documents(tree_docs) if doc["kind"] == "ClusterServingRuntime"}
    cpu = {"kserve-sklearnserver", "kserve-xgbserver"}
    assert set(runtimes) == (cpu if inventory == "lab" else cpu | GPU_RUNTIMES)
    for name, spec in runtimes.items():
        container = spec["containers"][0]
        asks = {**container["resources"].get("requests", {}), **container["resources"].get("limits", {})}
        assert (asks.get("nvidia.com/gpu") == 1) is (name in GPU_RUNTIMES), name
        assert ("affinity" in spec) is (name in GPU_RUNTIMES), name
        if name in GPU_RUNTIMES:
            terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            products = {v.removesuffix("-SHARED") for v in terms[0]["matchExpressions"][0]["values"]}
            assert products == {"NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"}
        repository, tag = container["image"].rsplit(":", 1)
        assert tag and tag != "latest" and {"repository": repository, "tag": tag} in BOM["bom_images"].values(), container["image"]
        # Restricted Pod Security, and the metrics port the predictors' PodMonitor reads.
        assert container["securityContext"]["runAsNonRoot"] is True and container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["annotations"]["prometheus.kserve.io/port"] in ("8080", "8002")
    if "kserve-huggingfaceserver" in runtimes:
        env = {e["name"]: e["value"] for e in runtimes["kserve-huggingfaceserver"]["containers"][0]["env"]}
        assert env["HF_HUB_OFFLINE"] == "1"


def test_serving_namespace_admits_only_the_gateway_and_reaches_only_storage_and_mlflow(rendered):
    _, _, tree_docs = rendered
    docs = by_kind(tree_docs)
    deny = docs[("NetworkPolicy", "ml-serving", "default-deny")]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    inbound = docs[("NetworkPolicy", "ml-serving", "allow-inference")]["spec"]["ingress"]
    assert inbound[0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ml-serving"}},
                                   "podSelector": {"matchLabels": {"app.kubernetes.io/name": "inference-gateway"}}}]
    # The model servers' port, and KServe's agent's, which the predictor Service of an
    # InferenceService that logs its requests targets.
    assert inbound[0]["ports"] == [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 9081}]
    assert inbound[1]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    outbound = docs[("NetworkPolicy", "ml-serving", "allow-models-and-registry")]["spec"]["egress"]
    assert outbound[0] == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "minio"}}}], "ports": [{"protocol": "TCP", "port": 9000}]}
    assert outbound[1]["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ml-tracking"}}
    assert outbound[1]["ports"] == [{"protocol": "TCP", "port": 5000}]
    mlflow_port = {p["name"]: p["containerPort"] for p in first(tree_docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert mlflow_port["http"] == 5000
    gateway = docs[("CiliumNetworkPolicy", "ml-serving", "inference-gateway-from-gateway")]["spec"]
    assert gateway["ingress"] == [{"fromEntities": ["ingress"], "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}]
    # The MinIO pods listen on 9000 (the Tenant serves S3 there, no TLS).
    tenant = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "Tenant")
    assert tenant["spec"]["requestAutoCert"] is False


def test_the_gateway_certificate_comes_from_the_platform_ca(rendered):
    _, _, tree_docs = rendered
    docs = by_kind(tree_docs)
    gateway = docs[("Gateway", "platform-gateway", "platform")]
    https = next(listener for listener in gateway["spec"]["listeners"] if listener["protocol"] == "HTTPS")
    certificate = docs[("Certificate", "platform-gateway", "platform-gateway")]["spec"]
    assert https["tls"]["certificateRefs"] == [{"kind": "Secret", "name": certificate["secretName"]}]
    assert certificate["dnsNames"] == [f"*.{DOMAIN}", DOMAIN]
    assert certificate["issuerRef"] == {"name": "platform-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    ca = docs[("Certificate", "cert-manager", "platform-ca")]["spec"]
    # A CA ClusterIssuer reads its key from cert-manager's own namespace.
    assert docs[("ClusterIssuer", None, "platform-ca")]["spec"] == {"ca": {"secretName": ca["secretName"]}}
    assert ca["isCA"] is True and ca["issuerRef"]["name"] == "platform-selfsigned"
    assert docs[("ClusterIssuer", None, "platform-selfsigned")]["spec"] == {"selfSigned": {}}


def test_chart_values_say_what_the_pinned_charts_read(rendered):
    """The KServe chart has no values schema, so a misspelt key would be ignored: these are
    the keys of kserve-resources v0.20.0 (values.yaml, configmap-patch.yaml) and
    cert-manager v1.21.1 that the platform relies on."""
    _, _, tree_docs = rendered
    apps = {doc["metadata"]["name"]: doc["spec"]["source"] for _, doc in documents(tree_docs) if doc["kind"] == "Application"}
    assert apps["serving-kserve"]["chart"] == "kserve-resources" and apps["serving-kserve-crd"]["chart"] == "kserve-crd"
    kserve = apps["serving-kserve"]["helm"]["valuesObject"]["kserve"]
    assert kserve["controller"]["deploymentMode"] == "Standard"
    assert kserve["controller"]["gateway"]["disableIngressCreation"] is True
    assert kserve["storage"]["containerSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert kserve["metricsaggregator"] == {"enableMetricAggregation": "false", "enablePrometheusScraping": "false"}
    manager = apps["serving-cert-manager"]["helm"]["valuesObject"]
    assert manager["crds"] == {"enabled": True, "keep": True} and manager["prometheus"]["servicemonitor"]["enabled"] is True
    assert manager["global"]["leaderElection"]["namespace"] == "cert-manager"
    cnpg = apps["tracking-cloudnative-pg"]["helm"]["valuesObject"]
    assert cnpg["monitoring"]["podMonitorEnabled"] is True and cnpg["crds"]["create"] is True


def test_crd_releases_are_never_pruned(rendered):
    _, _, tree_docs = rendered
    app = first(tree_docs, "Application", "serving-kserve-crd")
    assert "finalizers" not in app["metadata"] and app["spec"]["syncPolicy"]["automated"]["prune"] is False


def test_predictors_and_mlflow_are_monitored(rendered):
    _, _, tree_docs = rendered
    docs = by_kind(tree_docs)
    monitor = docs[("PodMonitor", "ml-serving", "predictors")]["spec"]
    relabel = {r.get("targetLabel"): r for r in monitor["podMetricsEndpoints"][0]["relabelings"]}
    assert relabel["service"]["sourceLabels"] == ["__meta_kubernetes_pod_label_serving_kserve_io_inferenceservice"]
    assert relabel["__address__"]["sourceLabels"][1] == "__meta_kubernetes_pod_annotation_prometheus_kserve_io_port"
    # The serving namespace first, then the teams' (test_render_tenancy.py).
    assert monitor["namespaceSelector"]["matchNames"][0] == "ml-serving"
    assert docs[("ConfigMap", "ml-serving", "dashboard-serving")]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert docs[("PodMonitor", "ml-tracking", "mlflow-db")]["spec"]["selector"] == {"matchLabels": {"cnpg.io/cluster": "mlflow-db"}}
    assert docs[("ServiceMonitor", "ml-tracking", "mlflow")]["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics"}]


MLFLOW_IMAGE = f"{BOM['bom_images']['mlflow']['repository']}:{BOM['bom_images']['mlflow']['tag']}"
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def telemetry_problems(docs):
    """Containers of the MLflow image (the server, its jobs, the pipeline steps: Deployments,
    Jobs, Argo templates) that leave MLflow's usage telemetry on: in a cluster that reaches the
    internet, its client and server would report usage outside the site."""
    problems = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("image") == MLFLOW_IMAGE:
                env = {e["name"]: e.get("value") for e in node.get("env") or []}
                missing = sorted(k for k, v in NO_TELEMETRY.items() if env.get(k) != v)
                if missing:
                    problems.append(f"{where} container {node.get('name', '(unnamed)')}: {', '.join(missing)} not true")
            for value in node.values():
                walk(value, where)
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    for doc in docs:
        walk(doc, f"{doc['kind']} {doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}")
    return problems


def test_no_mlflow_container_reports_telemetry(rendered):
    _, _, tree_docs = rendered
    docs = [doc for _, doc in documents(tree_docs)]
    assert any(MLFLOW_IMAGE in json.dumps(doc) for doc in docs), "no container of the MLflow image"
    assert telemetry_problems(docs) == []


def test_the_telemetry_check_sees_a_step_that_reports():
    step = {"kind": "WorkflowTemplate", "metadata": {"name": "train", "namespace": "ml-training"},
            "spec": {"templates": [{"name": "fit", "container": {"image": MLFLOW_IMAGE, "env": [{"name": "DO_NOT_TRACK", "value": "true"}]}}]}}
    assert telemetry_problems([step]) == ["WorkflowTemplate ml-training/train container (unnamed): MLFLOW_DISABLE_TELEMETRY not true"]


def test_mlflow_is_reached_through_the_gateway_and_training_jobs_get_its_client_secret(rendered):
    _, tree, tree_docs = rendered
    route = by_kind(tree_docs)[("HTTPRoute", "ml-tracking", "mlflow")]["spec"]
    assert route["hostnames"] == [f"mlflow.{DOMAIN}"] and route["parentRefs"][0]["sectionName"] == "https"
    assert route["rules"] == [{"backendRefs": [{"name": "mlflow", "port": 5000}]}]
    client = skipped_secrets(tree)[("ml-training", "mlflow-client")]
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_S3_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= client


def test_the_inferenceservice_template_validates_and_uses_what_the_layer_installs(rendered):
    inventory, _, tree_docs = rendered
    example = yaml.safe_load((ROOT / "docs" / "examples" / "iris-inferenceservice.yaml").read_text())
    assert validate(example, BOM["bom_kubernetes"]["kubeadm"]) == []
    predictor = example["spec"]["predictor"]
    runtimes = {doc["metadata"]["name"]: doc["spec"] for _, doc in documents(tree_docs) if doc["kind"] == "ClusterServingRuntime"}
    formats = {f["name"] for spec in runtimes.values() for f in spec["supportedModelFormats"]}
    assert predictor["model"]["modelFormat"]["name"] in formats and predictor["model"]["runtime"] in runtimes
    assert predictor["serviceAccountName"] == "kserve-models" and example["metadata"]["namespace"] == "ml-serving"
    assert predictor["model"]["storageUri"].startswith("s3://kserve-models/")
    # Restricted Pod Security: the pod-level settings the runtime containers do not set themselves.
    assert predictor["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


@pytest.mark.parametrize("mode, expected", [("serverless", "Knative"), ("raw", "Standard")])
def test_the_deployment_mode_is_one_variable(tmp_path, mode, expected):
    tree = tmp_path / "tree"
    result = render_gitops("lab", tree, "serving", "-e", f"serving_deployment_mode={mode}")
    assert result.returncode == 0, result.stdout[-3000:]
    app = first(load_tree(tree), "Application", "serving-kserve")
    assert app["spec"]["source"]["helm"]["valuesObject"]["kserve"]["controller"]["deploymentMode"] == expected


def _scopes(policy):
    """{(bucket, prefix): writes} of the objects a policy document lets its user read or write
    ("" prefix: the whole bucket), read from its statements."""
    scopes = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "Condition" not in statement and "NotResource" not in statement, statement
        for resource in statement["Resource"]:
            assert resource.startswith("arn:aws:s3:::"), resource
            path = resource.removeprefix("arn:aws:s3:::")
            if "/" not in path:  # bucket-level actions: listing, never an object
                assert set(statement["Action"]) <= {"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"}
                continue
            assert path.endswith("/*"), resource
            bucket, _, prefix = path.removesuffix("*").rstrip("/").partition("/")
            writes = "s3:PutObject" in statement["Action"] or "s3:DeleteObject" in statement["Action"]
            scopes[(bucket, prefix)] = scopes.get((bucket, prefix), False) or writes
    return scopes


def _overlap(one, other):
    (bucket, prefix), (bucket2, prefix2) = one, other
    a, b = (prefix + "/" if prefix else ""), (prefix2 + "/" if prefix2 else "")
    return bucket == bucket2 and (a.startswith(b) or b.startswith(a))


def write_problems(policies, grants):
    """What the setup job's policies grant beyond each user's entry, and objects two users may
    both write: walked from the policy documents themselves."""
    problems, writers = [], []
    for user, policy in sorted(policies.items()):
        declared = {(g.partition("/")[0], g.partition("/")[2]) for g in grants[user]}
        for scope, writes in _scopes(policy).items():
            if scope not in declared:
                problems.append(f"{user}: {scope} is not among its grants {sorted(declared)}")
            if writes:
                writers.append((user, scope))
    for i, (user, scope) in enumerate(writers):
        problems += [f"{user} and {other} may both write {scope} / {other_scope}" for other, other_scope in writers[i + 1:] if _overlap(scope, other_scope)]
    return problems


def test_each_policy_grants_only_its_own_buckets_and_no_two_users_write_the_same_objects(rendered):
    inventory, _, tree_docs = rendered
    setup = first(tree_docs, "ConfigMap", "minio-setup")["data"]
    policies = {name.removeprefix("policy-platform-").removesuffix(".json"): json.loads(text) for name, text in setup.items() if name.startswith("policy-")}
    defaults = yaml.safe_load((ROOT / "roles" / "platform" / "defaults" / "main.yml").read_text())["platform_object_store_users"]
    group_vars = ROOT / "inventories" / inventory / "group_vars"
    files = [group_vars / "all.yml"] if (group_vars / "all.yml").is_file() else sorted((group_vars / "all").glob("*.yml"))
    teams = [t for f in files for t in (yaml.safe_load(f.read_text()) or {}).get("platform_teams") or []]
    grants = {user: spec["buckets"] for user, spec in defaults.items()}
    grants.update({f"team-{t['name']}": {f"team-{t['name']}": "readwrite", **(t.get("buckets") or {})} for t in teams})
    assert set(policies) == set(grants)
    assert write_problems(policies, grants) == []


def test_the_policy_walk_finds_a_grant_too_wide_and_two_writers():
    """The check above, fed known-bad policies: a user whose policy reaches beyond its entry,
    and two users that may both write one prefix."""
    wide = {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::platform-backups/*"]}]}
    scoped = {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["arn:aws:s3:::platform-backups/velero/*"]}]}
    problems = write_problems({"postgres": wide, "velero": scoped},
                              {"postgres": {"platform-backups/postgres": "readwrite"}, "velero": {"platform-backups/velero": "readwrite"}})
    assert any(p.startswith("postgres: ('platform-backups', '')") for p in problems), problems
    assert any("postgres and velero may both write" in p for p in problems), problems
