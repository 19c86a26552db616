"""Render the platform with platform_delivery=gitops for the sample inventories and
check every document the tree holds: schemas, pins, namespaces, and no secrets."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import BOM, KUBERNETES, ROOT, STALE_FILE, documents, render, render_gitops, rendered_credentials
from k8s_schemas import CRD_DIR, load_tree, validate

def test_every_document_is_valid_for_its_schema(rendered):
    _, _, tree_docs = rendered
    errors = [f"{path}: {e}" for path, doc in documents(tree_docs) for e in validate(doc, KUBERNETES)]
    assert errors == []


# Rendering twice is byte-identical and changes nothing: tests/test_operator_path.py runs the
# README's render a second time on each session render.


def test_stale_files_are_removed(rendered):
    """The session's render started on a tree holding a file no layer declares (conftest's STALE_FILE)."""
    _, tree, tree_docs = rendered
    assert not (tree / STALE_FILE).exists() and STALE_FILE not in tree_docs


def test_every_release_is_pinned_to_the_bom(rendered):
    _, _, tree_docs = rendered
    pinned = {(c["repository"].removeprefix("oci://"), c["chart"]): str(c["version"]) for c in BOM["bom_charts"].values()}
    apps = [doc for _, doc in documents(tree_docs) if doc["kind"] == "Application" and "chart" in doc["spec"]["source"]]
    assert apps
    for app in apps:
        source = app["spec"]["source"]
        assert pinned.get((source["repoURL"], source["chart"])) == source["targetRevision"] or source["repoURL"].startswith("registry.example.internal"), app["metadata"]["name"]


def cpu_and_memory_requested(node):
    """Yield True for every `requests` mapping in chart values that names both cpu and memory."""
    if isinstance(node, dict):
        requests = node.get("requests")
        if isinstance(requests, dict) and {"cpu", "memory"} <= set(requests):
            yield True
        for value in node.values():
            yield from cpu_and_memory_requested(value)
    elif isinstance(node, list):
        for value in node:
            yield from cpu_and_memory_requested(value)


# Charts that install CustomResourceDefinitions only and run no pod.
CRD_ONLY_CHARTS = {"kserve-crd"}


def test_releases_request_resources(rendered):
    _, _, tree_docs = rendered
    for _, doc in documents(tree_docs):
        if doc["kind"] == "Application" and "helm" in doc["spec"]["source"] and doc["spec"]["source"]["chart"] not in CRD_ONLY_CHARTS:
            assert any(cpu_and_memory_requested(doc["spec"]["source"]["helm"]["valuesObject"])), doc["metadata"]["name"]


def test_sync_waves_follow_layer_order(rendered):
    _, _, tree_docs = rendered
    waves = {doc["metadata"]["name"]: int(doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for _, doc in documents(tree_docs) if doc["kind"] == "Application"}
    assert waves["ml-platform"] == 0
    assert waves["network-namespaces"] == waves["network-gateway-api-crds"] < waves["network-cilium"] < waves["network-metallb"] < waves["network-manifests"]
    assert waves["network-manifests"] < waves["storage-namespaces"] < waves["storage-longhorn"] < waves["storage-minio-operator"] < waves["storage-manifests"]
    assert waves["storage-manifests"] < waves["observability-namespaces"] < waves["observability-kube-prometheus-stack"] < waves["observability-manifests"]
    assert waves["observability-manifests"] < waves["serving-namespaces"] < waves["serving-cert-manager"] < waves["serving-kserve-crd"] < waves["serving-kserve"] < waves["serving-manifests"]
    assert waves["serving-manifests"] < waves["tracking-namespaces"] < waves["tracking-cloudnative-pg"] < waves["tracking-manifests"]
    assert waves["tracking-manifests"] < waves["orchestration-namespaces"] < waves["orchestration-argo-workflows"] < waves["orchestration-argo-cd"] < waves["orchestration-manifests"]


def test_every_namespace_has_pod_security_labels(rendered):
    _, _, tree_docs = rendered
    namespaces = [doc for _, doc in documents(tree_docs) if doc["kind"] == "Namespace"]
    assert namespaces
    for ns in namespaces:
        labels = ns["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] in ("privileged", "baseline", "restricted")
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_no_secret_or_credential_is_written(rendered):
    inventory, tree, tree_docs = rendered
    assert not [doc for _, doc in documents(tree_docs) if doc["kind"] == "Secret"]
    credentials = rendered_credentials(tree, inventory)
    generated = yaml.safe_load((credentials / "object-store.yml").read_text())
    secrets = [fields["secret_key"] for name, fields in generated.items() if name != "kms"]
    secrets.append(yaml.safe_load((credentials / "observability.yml").read_text())["grafana"]["password"])
    tracking = yaml.safe_load((credentials / "tracking.yml").read_text())
    # Seven service users and MinIO's root, Grafana's password, MLflow's admin, training and flask
    # key; production's two teams add an object-store user and an MLflow login each.
    secrets += [fields.get("password") or fields["secret_key"] for fields in tracking.values()]
    assert len(secrets) == (12 if inventory == "lab" else 16) and all(len(s) == 40 for s in secrets)
    # MinIO's KMS key (32 bytes, base64), which only the tenant's configuration Secret carries.
    secrets.append(generated["kms"]["key"])
    assert len(secrets[-1]) == 44
    orchestration = yaml.safe_load((credentials / "orchestration.yml").read_text())
    secrets += [orchestration[name]["password"] for name in ("argocd", "workflows-ui")] + [orchestration["argocd"]["password_bcrypt"]]
    secrets += [fields["token"] for fields in yaml.safe_load((credentials / "serving.yml").read_text()).values()]
    assert len(secrets[-1]) == 48
    for path in tree.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"\b(password|secretKey|accessKey|token)\s*:\s*\S", text, re.I), path
            assert not [s for s in secrets if s in text], path


def test_metallb_resources_match_the_inventory(rendered):
    inventory, _, tree_docs = rendered
    pools = yaml.safe_load((ROOT / "inventories" / "production" / "group_vars" / "all.yml").read_text())["network_metallb_pools"]
    kinds = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in documents(tree_docs) if doc["apiVersion"].startswith("metallb.io/")}
    if inventory == "lab":
        assert set(kinds) == {("IPAddressPool", "lab"), ("L2Advertisement", "platform-l2")}
        return
    assert {name for kind, name in kinds if kind == "IPAddressPool"} == {p["name"] for p in pools}
    assert kinds[("L2Advertisement", "platform-l2")]["spec"]["ipAddressPools"] == ["platform"]
    assert kinds[("BGPAdvertisement", "platform-bgp")]["spec"]["ipAddressPools"] == ["inference"]
    assert kinds[("BGPPeer", "tor-a")]["spec"] == {"myASN": 64513, "peerASN": 64512, "peerAddress": "10.20.0.1"}


def test_airgap_charts_come_from_the_mirror(rendered):
    inventory, _, tree_docs = rendered
    sources = [doc["spec"]["source"] for _, doc in documents(tree_docs) if doc["kind"] == "Application" and "chart" in doc["spec"]["source"]]
    mirrored = [s["repoURL"].startswith("registry.example.internal:5000/charts") for s in sources]
    assert all(mirrored) if inventory == "airgap" else not any(mirrored)


def test_cilium_values_follow_the_inventory(rendered):
    inventory, _, tree_docs = rendered
    cilium = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "Application" and doc["metadata"]["name"] == "network-cilium")
    values = cilium["spec"]["source"]["helm"]["valuesObject"]
    expected = {"lab": ("127.0.0.1", "10.42.0.0/16", 1), "production": ("10.20.0.10", "10.128.0.0/16", 2), "airgap": ("10.20.0.10", "10.128.0.0/16", 2)}
    host, pods, replicas = expected[inventory]
    assert values["kubeProxyReplacement"] is True
    assert values["k8sServiceHost"] == host
    assert values["ipam"]["operator"]["clusterPoolIPv4PodCIDRList"] == [pods]
    assert values["operator"]["replicas"] == replicas


@pytest.mark.skipif(not CRD_DIR.is_dir(), reason="../shared/crds is missing")
def test_the_validator_rejects_what_the_api_server_would_drop():
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"}, "spec": {"adresses": ["10.0.0.0/30"]}}
    assert any("adresses" in e for e in validate(pool, KUBERNETES))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "lables": {}}}
    assert validate(namespace, KUBERNETES)
    unknown = {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert validate(unknown, KUBERNETES)


def test_the_gateway_api_crds_are_pinned_and_the_gateway_follows_the_inventory(rendered):
    inventory, _, tree_docs = rendered
    docs = dict(((doc["kind"], doc["metadata"]["name"]), doc) for _, doc in documents(tree_docs))
    crds = docs[("Application", "network-gateway-api-crds")]["spec"]["source"]
    pinned = BOM["bom_manifests"]["gateway_api"]
    expected_repo = "https://git.example.internal/mirror/gateway-api.git" if inventory == "airgap" else pinned["git"]
    assert crds == {"repoURL": expected_repo, "targetRevision": pinned["version"], "path": "config/crd/standard"}
    # CRDs are never pruned or cascade-deleted with their Application.
    assert "finalizers" not in docs[("Application", "network-gateway-api-crds")]["metadata"]
    gateway = docs[("Gateway", "platform")]
    assert gateway["spec"]["gatewayClassName"] == "cilium"
    pool = "lab" if inventory == "lab" else "platform"
    assert gateway["spec"]["infrastructure"]["annotations"] == {"metallb.io/address-pool": pool}
    assert {listener["port"] for listener in gateway["spec"]["listeners"]} == {80, 443}
    cilium = docs[("Application", "network-cilium")]["spec"]["source"]["helm"]["valuesObject"]
    assert cilium["gatewayAPI"] == {"enabled": True, "gatewayClass": {"create": "true"}} and cilium["l7Proxy"] is True


def test_storage_is_sized_from_the_inventory(rendered):
    inventory, _, tree_docs = rendered
    docs = dict(((doc["kind"], doc["metadata"]["name"]), doc) for _, doc in documents(tree_docs))
    longhorn = docs[("Application", "storage-longhorn")]["spec"]["source"]["helm"]["valuesObject"]
    tenant = docs[("Tenant", "platform")]["spec"]
    pool = tenant["pools"][0]
    if inventory == "lab":
        assert longhorn["persistence"]["defaultClassReplicaCount"] == 1
        assert longhorn["defaultSettings"]["replicaSoftAntiAffinity"] is True
        assert (pool["servers"], pool["volumesPerServer"]) == (1, 1)
        assert docs[("Application", "storage-minio-operator")]["spec"]["source"]["helm"]["valuesObject"]["operator"]["replicaCount"] == 1
    else:
        assert longhorn["persistence"]["defaultClassReplicaCount"] == 3
        assert (pool["servers"], pool["volumesPerServer"]) == (4, 1)
    assert longhorn["persistence"]["defaultClass"] is True
    # MinIO's erasure coding already protects its drives: single-replica, node-local volumes.
    assert pool["volumeClaimTemplate"]["spec"]["storageClassName"] == "longhorn-local"
    assert docs[("StorageClass", "longhorn-local")]["parameters"]["numberOfReplicas"] == "1"
    assert tenant["image"] == f"{BOM['bom_images']['minio']['repository']}:{BOM['bom_images']['minio']['tag']}"


def test_the_object_store_setup_covers_every_bucket_and_service(rendered):
    inventory, _, tree_docs = rendered
    # The production inventory's teams (platform_teams) have a bucket and a user each.
    teams = [] if inventory == "lab" else ["team-fraud", "team-vision"]
    docs = dict(((doc["kind"], doc["metadata"]["name"]), doc) for _, doc in documents(tree_docs))
    data = docs[("ConfigMap", "minio-setup")]["data"]
    buckets = dict(line.split() for line in data["buckets"].splitlines())
    assert buckets == {"mlflow-artifacts": "on", "training-datasets": "on", "kserve-models": "on", "workflow-artifacts": "on", "platform-backups": "on",
                       "inference-logs": "on"} | dict.fromkeys(teams, "on")
    for bucket in buckets:
        rules = json.loads(data[f"lifecycle-{bucket}.json"])["Rules"]
        assert {"ID": "expire-scratch", "Status": "Enabled", "Filter": {"Prefix": "scratch/"}, "Expiration": {"Days": 7}} in rules
    users = dict(line.split() for line in data["users"].splitlines())
    assert users == {u: f"platform-{u}" for u in ("argo", "inference-logger", "kserve", "mlflow", "postgres", "training", "velero", *teams)}
    kserve = json.loads(data["policy-platform-kserve.json"])
    assert all(not a.startswith(("s3:Put", "s3:Delete")) for st in kserve["Statement"] for a in st["Action"])
    jobs = [doc for (kind, name), doc in docs.items() if kind == "Job" and name.startswith("minio-setup-")]
    assert len(jobs) == 1
    namespaces = {doc["metadata"]["name"] for (kind, _), doc in docs.items() if kind == "Namespace"}
    assert {"ml-tracking", "ml-serving", "ml-training"} <= namespaces


@pytest.mark.long
def test_openebs_replaces_longhorn_behind_one_variable(tmp_path):
    result = render("lab", tmp_path / "tree", "-e", "storage_block=openebs")
    assert result.returncode == 0, result.stdout[-3000:]
    tree_docs = load_tree(tmp_path / "tree")
    apps = {doc["metadata"]["name"]: doc for _, doc in documents(tree_docs) if doc["kind"] == "Application"}
    assert "storage-longhorn" not in apps
    values = apps["storage-openebs"]["spec"]["source"]["helm"]["valuesObject"]
    assert values["localpv-provisioner"]["hostpathClass"]["isDefaultClass"] is True
    assert values["engines"]["replicated"]["mayastor"]["enabled"] is False
    tenant = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "Tenant")
    assert tenant["spec"]["pools"][0]["volumeClaimTemplate"]["spec"]["storageClassName"] == "openebs-hostpath"
    assert not [doc for _, doc in documents(tree_docs) if doc["kind"] == "StorageClass"]


@pytest.mark.long
def test_an_external_object_store_needs_its_endpoint_and_keys(tmp_path):
    tree = tmp_path / "tree"
    args = ("-e", "platform_object_store=external")
    result = render("lab", tree, *args)
    assert result.returncode != 0
    # Preflight refuses it before any layer runs.
    assert "platform_object_store_endpoint: not set, but platform_object_store is external" in result.stdout
    args += ("-e", "platform_object_store_endpoint=https://s3.example.internal")
    result = render("lab", tree, *args)
    assert result.returncode != 0
    # The platform cannot lock or encrypt the backups bucket there: the operator must say.
    assert "storage_external_backups_protected: not set, but platform_object_store is external" in result.stdout
    args += ("-e", "storage_external_backups_protected=true")
    result = render("lab", tree, *args)
    assert result.returncode != 0
    assert "lacks argo.access_key, argo.secret_key" in result.stdout
    credentials = rendered_credentials(tree, "lab")
    credentials.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = {u: {"access_key": f"{u}-key", "secret_key": f"{u}-secret-value"} for u in ("argo", "inference-logger", "kserve", "mlflow", "postgres", "training", "velero")}
    (credentials / "object-store.yml").write_text(yaml.safe_dump(keys))
    (credentials / "object-store.yml").chmod(0o600)
    result = render("lab", tree, *args)
    assert result.returncode == 0, result.stdout[-3000:]
    tree_docs = load_tree(tree)
    apps = {doc["metadata"]["name"] for _, doc in documents(tree_docs) if doc["kind"] == "Application"}
    assert "storage-minio-operator" not in apps and "storage-longhorn" in apps
    assert not [doc for _, doc in documents(tree_docs) if doc["kind"] == "Tenant" or doc["metadata"]["name"].startswith("minio-setup")]
    assert yaml.safe_load((credentials / "object-store.yml").read_text()) == keys


def test_grafana_links_metrics_traces_and_logs(rendered):
    _, _, tree_docs = rendered
    apps = {doc["metadata"]["name"]: doc for _, doc in documents(tree_docs) if doc["kind"] == "Application"}
    values = apps["observability-kube-prometheus-stack"]["spec"]["source"]["helm"]["valuesObject"]
    grafana = values["grafana"]
    # Admin credentials come from a generated Secret, never the chart's default.
    assert grafana["admin"] == {"existingSecret": "grafana-admin", "userKey": "admin-user", "passwordKey": "admin-password"}
    assert "adminPassword" not in grafana
    assert grafana["sidecar"]["datasources"]["exemplarTraceIdDestinations"]["datasourceUid"] == "tempo"
    sources = {d["uid"]: d for d in grafana["additionalDataSources"]}
    assert sources["tempo"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert sources["loki"]["jsonData"]["derivedFields"][0]["datasourceUid"] == "tempo"
    assert sources["loki"]["url"] == "http://loki.monitoring.svc.cluster.local:3100"
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "15d" and spec["enableFeatures"] == ["exemplar-storage"]
    assert all(spec[k] is False for k in ("serviceMonitorSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues", "ruleSelectorNilUsesHelmValues"))
    # Cilium replaces kube-proxy, so there is none to scrape.
    assert values["kubeProxy"] == {"enabled": False}
    loki = apps["observability-loki"]["spec"]["source"]["helm"]["valuesObject"]
    assert loki["deploymentMode"] == "SingleBinary" and loki["singleBinary"]["replicas"] == 1
    assert all(loki[part]["replicas"] == 0 for part in ("read", "write", "backend"))
    alloy = apps["observability-alloy"]["spec"]["source"]["helm"]["valuesObject"]
    assert "{{" not in alloy["alloy"]["configMap"]["content"]
    assert "http://loki.monitoring.svc.cluster.local:3100/loki/api/v1/push" in alloy["alloy"]["configMap"]["content"]


def test_the_layers_before_observability_are_monitored(rendered):
    _, _, tree_docs = rendered
    monitors = {
        (doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"]) for _, doc in documents(tree_docs)
        if doc["kind"] in ("PodMonitor", "ServiceMonitor") and doc["metadata"]["labels"].get("platform.ml/layer") in ("network", "storage", "observability")
    }
    assert monitors == {
        ("PodMonitor", "kube-system", "cilium-agent"), ("PodMonitor", "kube-system", "cilium-operator"),
        ("ServiceMonitor", "metallb-system", "metallb"), ("ServiceMonitor", "longhorn-system", "longhorn"),
        ("PodMonitor", "minio", "minio"),
    }
    tenant = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "Tenant")
    assert {"name": "MINIO_PROMETHEUS_AUTH_TYPE", "value": "public"} in tenant["spec"]["env"]
    metallb = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "ServiceMonitor" and doc["metadata"]["name"] == "metallb")
    assert metallb["spec"]["endpoints"][0]["scheme"] == "https" and "bearerTokenFile" in metallb["spec"]["endpoints"][0]


def test_uis_are_reached_through_the_gateway_over_https_only(rendered):
    _, _, tree_docs = rendered
    routes = {(doc["metadata"]["namespace"], doc["metadata"]["name"]): doc for _, doc in documents(tree_docs) if doc["kind"] == "HTTPRoute"}
    redirect = routes[("platform-gateway", "https-redirect")]["spec"]
    assert redirect["parentRefs"] == [{"name": "platform", "sectionName": "http"}]
    assert redirect["rules"] == [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]
    grafana = routes[("monitoring", "grafana")]["spec"]
    assert grafana["parentRefs"] == [{"name": "platform", "namespace": "platform-gateway", "sectionName": "https"}]
    assert grafana["hostnames"] == ["grafana.ml-platform.internal"]
    # Prometheus and Alertmanager have no login of their own: they are routed to
    # the monitoring-ui proxy, which asks for one on every request.
    assert set(routes) == {("platform-gateway", "https-redirect"), ("monitoring", "grafana"), ("monitoring", "prometheus"), ("monitoring", "alertmanager"),
                           ("ml-serving", "inference"), ("ml-tracking", "mlflow"), ("argo", "workflows"), ("argocd", "argocd")}
    assert all(route["spec"]["parentRefs"][0]["sectionName"] == "https" for key, route in routes.items() if key[1] != "https-redirect")
    for ui in ("prometheus", "alertmanager"):
        spec = routes[("monitoring", ui)]["spec"]
        assert spec["hostnames"] == [f"{ui}.ml-platform.internal"] and spec["parentRefs"][0]["sectionName"] == "https"
        assert spec["rules"][0]["backendRefs"] == [{"name": "monitoring-ui", "port": 80}]
    config = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "monitoring-ui")
    servers = re.findall(r"server \{(.*?)\n\}", config["data"]["default.conf"], re.S)
    proxied = {re.search(r"server_name (\S+);", block).group(1): block for block in servers if "proxy_pass" in block}
    assert set(proxied) == {"prometheus.ml-platform.internal", "alertmanager.ml-platform.internal"}
    assert all("auth_basic_user_file /etc/nginx/auth/htpasswd;" in block for block in proxied.values())
    assert "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090" in proxied["prometheus.ml-platform.internal"]
    proxy = next(doc for _, doc in documents(tree_docs) if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "monitoring-ui")
    volumes = {v["name"]: v for v in proxy["spec"]["template"]["spec"]["volumes"]}
    assert volumes["auth"]["secret"]["secretName"] == "monitoring-ui-htpasswd"
    container = proxy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{BOM['bom_images']['nginx']['repository']}:{BOM['bom_images']['nginx']['tag']}"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True and container["securityContext"]["runAsNonRoot"] is True
    apps = {doc["metadata"]["name"]: doc for _, doc in documents(tree_docs) if doc["kind"] == "Application"}
    ini = apps["observability-kube-prometheus-stack"]["spec"]["source"]["helm"]["valuesObject"]["grafana"]["grafana.ini"]
    assert ini["server"]["root_url"] == "https://grafana.ml-platform.internal"
    assert ini["auth.anonymous"]["enabled"] is False
    values = apps["observability-kube-prometheus-stack"]["spec"]["source"]["helm"]["valuesObject"]
    assert values["prometheus"]["prometheusSpec"]["externalUrl"] == "https://prometheus.ml-platform.internal"
    assert values["alertmanager"]["alertmanagerSpec"]["externalUrl"] == "https://alertmanager.ml-platform.internal"


def test_the_control_plane_is_scraped_where_layer_1_exposes_it(rendered, tmp_path):
    inventory, _, tree_docs = rendered
    apps = {doc["metadata"]["name"]: doc for _, doc in documents(tree_docs) if doc["kind"] == "Application"}
    values = apps["observability-kube-prometheus-stack"]["spec"]["source"]["helm"]["valuesObject"]
    parts = ("kubeControllerManager", "kubeScheduler", "kubeEtcd")
    if inventory == "lab":
        # The lab turns it off (its one node has no address in the inventory).
        assert all(values[part] == {"enabled": False} for part in parts)
    else:
        # kubeadm: static pods the chart's Services select by their component label.
        assert not any(part in values for part in parts)
    if inventory != "production":
        return
    tree = tmp_path / "tree"
    result = render_gitops("production", tree, "observability", "-e", "compute_distribution=k3s")
    assert result.returncode == 0, result.stdout[-3000:]
    app = next(doc for _, doc in documents(load_tree(tree)) if doc["metadata"]["name"] == "observability-kube-prometheus-stack")
    values = app["spec"]["source"]["helm"]["valuesObject"]
    # k3s runs them in its own process: the chart finds them at the control planes' addresses.
    assert all(values[part]["endpoints"] == ["10.20.0.11", "10.20.0.12", "10.20.0.13"] for part in parts)


def test_gpu_layer_follows_each_hosts_sharing(rendered):
    inventory, _, tree_docs = rendered
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in documents(tree_docs)}
    if inventory == "lab":
        # No gpu hosts: no GPU Operator.
        assert not any(kind == "ClusterPolicy" for kind, _ in docs)
        return
    if inventory != "production":
        assert ("ClusterPolicy", "cluster-policy") in docs
        return
    policy = docs[("ClusterPolicy", "cluster-policy")]["spec"]
    assert policy["mig"] == {"strategy": "mixed"}
    assert policy["migManager"]["config"] == {"name": "gpu-mig-layouts", "default": "all-disabled"}
    assert policy["devicePlugin"]["config"] == {"name": "gpu-sharing", "default": "default"}
    assert policy["driver"]["enabled"] is True and policy["driver"]["version"] == BOM["bom_gpu_operands"]["driver"]["version"]
    assert policy["dcgmExporter"]["serviceMonitor"]["enabled"] is True and policy["dcgmExporter"]["serviceMonitor"]["honorLabels"] is True
    # kubeadm: the toolkit's defaults (its drop-in, which layer 1's containerd imports).
    assert policy["toolkit"]["env"] == []
    layouts = yaml.safe_load(docs[("ConfigMap", "gpu-mig-layouts")]["data"]["config.yaml"])
    assert layouts["mig-configs"]["all-disabled"] == [{"devices": "all", "mig-enabled": False}]
    assert layouts["mig-configs"]["balanced-inference"] == [{"devices": "all", "mig-enabled": True, "mig-devices": {"2g.20gb": 2, "1g.10gb": 3}}]
    sharing = docs[("ConfigMap", "gpu-sharing")]["data"]
    assert sorted(sharing) == ["default", "time-slicing-4"]
    assert yaml.safe_load(sharing["time-slicing-4"])["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    apps = {doc["metadata"]["name"]: doc for _, doc in documents(tree_docs) if doc["kind"] == "Application"}
    values = apps["gpu-gpu-operator"]["spec"]["source"]["helm"]["valuesObject"]
    assert values["clusterPolicy"] == {"deployCR": False}
    assert docs[("PrometheusRule", "gpu")] and docs[("ConfigMap", "dashboard-gpu")]["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_node_labels_pick_each_gpu_hosts_layout_and_driver(tmp_path):
    tree = tmp_path / "tree"
    result = render_gitops("production", tree, "gpu", "--skip-tags", "gpu_hosts", "-e", "gpu_host_driver=true", "-e", "compute_distribution=k3s")
    assert result.returncode == 0, result.stdout[-3000:]
    out = result.stdout.replace("\n", " ")
    out = re.sub(r"\s+", " ", out)
    assert "kubectl label node gpu-a100-01 --overwrite nvidia.com/mig.config=balanced-inference nvidia.com/device-plugin.config=default nvidia.com/gpu.deploy.driver=false" in out
    assert "kubectl label node gpu-h100-02 --overwrite nvidia.com/mig.config=all-disabled nvidia.com/device-plugin.config=time-slicing-4" in out
    # Every host brings its driver: the operator's driver container is off.
    policy = next(doc for _, doc in documents(load_tree(tree)) if doc["kind"] == "ClusterPolicy")
    assert policy["spec"]["driver"]["enabled"] is False
    # k3s: the toolkit is told only k3s's containerd socket.
    assert policy["spec"]["toolkit"]["env"] == [{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]


@pytest.mark.long
def test_a_verbose_render_prints_no_credential(tmp_path):
    """Every layer, rendered with -vvv: not one generated secret (keys, passwords, their bcrypt
    hashes, tokens) appears in Ansible's output or in the tree; no_log holds everywhere."""
    tree = tmp_path / "tree"
    # A credential the operator supplies (the second site's keys for replication) is as hidden.
    credentials = rendered_credentials(tree, "production")
    credentials.mkdir(mode=0o700, parents=True)
    (credentials / "object-store.yml").write_text(yaml.safe_dump({"replication": {"access_key": "site-a-replicator", "secret_key": "Supplied0nlyBy7heOperator0123456789abcdef"}}))
    (credentials / "object-store.yml").chmod(0o600)
    result = render("production", tree, "-vvv", "-e", "storage_replication_target=https://minio.site-b.example:9000")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "minio/minio-replication (access_key, endpoint, secret_key)" in " ".join(result.stdout.split()), "the replication Secret is declared"
    generated = []

    def walk(node, field=""):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, key)
        elif field in ("secret_key", "password", "password_bcrypt", "token", "key"):
            generated.append(str(node))

    for path in credentials.glob("*.yml"):
        walk(yaml.safe_load(path.read_text()))
    assert len(generated) >= 15
    text = result.stdout + result.stderr + "".join(p.read_text() for p in tree.rglob("*.yaml"))
    assert [s[:6] + "..." for s in generated if s in text] == []


def test_a_layer_run_alone_checks_the_delivery_settings_before_writing_anything(project):
    """`--tags <layer>` skips preflight: the delivery entry point's own argument check (its first
    task, deliver.yml, from meta/argument_specs.yml) still refuses a setting outside its choices
    or of the wrong type, naming it, before the layer writes anything."""
    from conftest import run, tool

    tree = project / "tree"
    for setting, expected in (("platform_delivery=gitopz", "platform_delivery must be one of: direct, gitops, got: gitopz"),
                              ("platform_wait_timeout=soon", "platform_wait_timeout")):
        result = run([tool("ansible-playbook"), "site.yml", "-i", "inventories/lab", "--tags", "network", "-e", f"platform_gitops_dir={tree}",
                      "-e", "platform_gitops_repo_url=https://git.example.internal/platform.git", "-e", setting], cwd=project)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Check the delivery settings" in output and expected in output, output[-3000:]
        assert not tree.exists()


def test_a_layer_run_alone_names_what_its_delivery_needs_before_delivering(project):
    """The layer's first check after the settings' (deliver.yml) stops a delivery that cannot be
    made, in words that say what to set: gitops without a checkout to write to, or with an
    air-gapped chart mirror that is a directory on the controller (preflight's rule and message,
    for a run that skips preflight), direct without the cluster's kubeconfig on the controller. Nothing is
    written, nothing is contacted."""
    from conftest import run, state_dir, tool

    kubeconfig = state_dir(project, "lab") / "admin.conf"
    checkout = ("-e", f"platform_gitops_dir={project / 'tree'}", "-e", "platform_gitops_repo_url=https://git.example.internal/platform.git")
    for delivery, extra, expected in (
        ("gitops", (), "platform_delivery is gitops, so set platform_gitops_dir (your Git checkout) and"
                       " platform_gitops_repo_url (where Argo CD reads it) in the inventory."),
        ("gitops", (*checkout, "-e", "platform_airgap=true", "-e", "platform_mirror_charts=/srv/charts"),
         "platform_mirror_charts: '/srv/charts' is a directory on the controller, which Argo CD cannot read, and platform_delivery is gitops"),
        ("direct", (), f"Direct delivery of layer network needs the cluster's kubeconfig at platform_kubeconfig ({kubeconfig})"
                       " on the controller: run layer 1 (--tags compute) first"),
    ):
        result = run([tool("ansible-playbook"), "site.yml", "-i", "inventories/lab", "--tags", "network", "-e", f"platform_delivery={delivery}",
                      *extra], cwd=project)
        output = " ".join((result.stdout + result.stderr).split())
        assert result.returncode != 0 and expected in output, output[-3000:]
        assert "Write the Applications" not in output and "Install the pinned helm" not in output, output[-3000:]
