"""Model rollouts as promote.yml writes them into the GitOps tree (docs/lifecycle.md):
a canary and its rollback in KServe's raw-deployment mode (two InferenceServices and
a weighted HTTPRoute bound to the predictor Service the inference-gateway proxies to),
an A/B test in serverless mode (KServe's canaryTrafficPercent), every document valid
against the pinned schemas, and the promotions that cannot be made refused by name.
The README's promote command, run in a copy of the project. And the monitoring of a
promoted model: its InferenceServices log to the inference-logger, its drift job judges
the serving version, its dashboard reads metrics the platform has, in the tree and applied
by direct delivery to a real API server; the serving and orchestration layers' new
documents, and the network policy around the inference-logger."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import BOM, ROOT, session_render
from k8s_schemas import CRD_DIR, load_tree, shared_crd_file, validate
from test_dashboards import KNOWN, PROMTOOL, expressions, metric_names
from test_render_orchestration import promote
from test_render_serving_tracking import telemetry_problems

KUBERNETES = BOM["bom_kubernetes"]["kubeadm"]
MODEL_FILE = "manifests/model-{}/resources/resources.yaml"
# The inference-gateway's upstream (roles/serving/templates/inference-gateway.conf.j2):
# the Service every request with a good token goes to.
GATEWAY_UPSTREAM = "proxy_pass http://$isvc-predictor.$ns.svc.cluster.local;"


def split_problems(docs):
    """What would make a model's traffic split wrong or bypass the token check: each
    HTTPRoute of a model layer must be bound to the predictor Service of an
    InferenceService of the layer (the one the inference-gateway proxies to, never a
    Gateway, which would skip the token), name backends that are predictor Services of
    the layer's InferenceServices, and weigh them to 100."""
    found = []
    services = {f"{d['metadata']['name']}-predictor" for d in docs if d["kind"] == "InferenceService"}
    for route in (d for d in docs if d["kind"] == "HTTPRoute"):
        name, spec = route["metadata"]["name"], route["spec"]
        for parent in spec["parentRefs"]:
            if parent.get("kind") != "Service" or parent.get("group") != "" or parent["name"] not in services:
                found.append(f"HTTPRoute {name}: parent {parent} is not the predictor Service of an InferenceService of the layer")
        for rule in spec["rules"]:
            refs = rule["backendRefs"]
            missing = [ref["name"] for ref in refs if ref["name"] not in services]
            if missing:
                found.append(f"HTTPRoute {name}: backends {missing} are no predictor Service of the layer")
            if len(refs) != 2 or sum(ref.get("weight", 1) for ref in refs) != 100:
                found.append(f"HTTPRoute {name}: weights {[ref.get('weight', 1) for ref in refs]} of two backends must sum to 100")
    return found


def model_docs(tree, model="iris"):
    return load_tree(tree)[MODEL_FILE.format(model)]


def by_kind(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def ok(result):
    assert result.returncode == 0, result.stdout[-3000:]
    return result


# The first promotion of three tests below (a canary then goes beside it): iris version 3 alone.
IRIS_3 = ("-e", "promote_model=iris", "-e", "promote_version=3", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-a")


def promoted(project, tmp_path_factory, tree, *extra):
    """tree as promote(project, tree, *extra) leaves a fresh tree (the tree only: the project holds no
    state in gitops mode). The promotion is made once for the whole run, as the session renders
    are (conftest.session_render: the workers share it under a lock), and copied to tree."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    made = shared / f"promoted-{hashlib.sha256(json.dumps(extra).encode()).hexdigest()[:16]}"
    with FileLock(f"{made}.lock"):
        if not (made / "done").exists():
            shutil.rmtree(made, ignore_errors=True)
            ok(promote(project, made / "tree", *extra))
            (made / "done").touch()
    shutil.copytree(made / "tree", tree)
    return tree


def test_a_canary_splits_the_predictor_service_by_weight_and_a_rollback_restores_the_tree(promote_project, tmp_path_factory, tmp_path):
    tree = promoted(promote_project, tmp_path_factory, tmp_path / "tree", *IRIS_3)
    serving = (tree / MODEL_FILE.format("iris")).read_text()
    ok(promote(promote_project, tree, "-e", "promote_model=iris", "-e", "promote_version=4", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-b",
               "-e", "promote_strategy=canary", "-e", "promote_canary_percent=20"))
    docs = model_docs(tree)
    for doc in docs:
        assert validate(doc, KUBERNETES) == [], doc["kind"]
    assert split_problems(docs) == []
    found = by_kind(docs)
    assert sorted(found) == [("CiliumNetworkPolicy", "iris-rollout"), ("ConfigMap", "dashboard-model-iris"), ("CronWorkflow", "drift-iris"),
                             ("HTTPRoute", "iris"), ("InferenceService", "iris"), ("InferenceService", "iris-canary")]
    # No retraining while a rollout is in progress (retrain-iris is declared again when one version serves).
    assert {p["name"]: p["value"] for p in found[("CronWorkflow", "drift-iris")]["spec"]["workflowSpec"]["arguments"]["parameters"]}["retrain"] == "false"
    stable, candidate = found[("InferenceService", "iris")], found[("InferenceService", "iris-canary")]
    assert stable["metadata"]["annotations"]["platform.ml/model-version"] == "3"
    assert stable["spec"]["predictor"]["model"]["storageUri"] == "s3://kserve-models/iris/train-iris-a"
    assert candidate["metadata"]["annotations"]["platform.ml/model-version"] == "4"
    # The candidate answers to the model's own name, so /v1/models/iris:predict works on both.
    assert candidate["spec"]["predictor"]["model"]["args"] == ["--model_name=iris"]
    route = found[("HTTPRoute", "iris")]
    # Bound to the Service the token-checked inference-gateway proxies to, not to a Gateway.
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "iris-predictor", "port": 80}]
    assert GATEWAY_UPSTREAM.replace("$isvc", "iris").replace("$ns", "ml-serving") == \
        f"proxy_pass http://{route['spec']['parentRefs'][0]['name']}.{route['metadata']['namespace']}.svc.cluster.local;"
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "iris-predictor", "port": 80, "weight": 80},
                                                        {"name": "iris-canary-predictor", "port": 80, "weight": 20}]
    assert route["metadata"]["annotations"]["platform.ml/candidate-version"] == "4"
    policy = found[("CiliumNetworkPolicy", "iris-rollout")]["spec"]
    assert policy["ingress"] == [{"fromEntities": ["ingress"], "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"},
                                                                                    {"port": "9081", "protocol": "TCP"}]}]}]
    # One command rolls back: the tree is again exactly what served before the canary.
    ok(promote(promote_project, tree, "-e", "promote_model=iris", "-e", "promote_strategy=rollback"))
    assert (tree / MODEL_FILE.format("iris")).read_text() == serving


def test_an_ab_test_in_serverless_mode_is_kserves_canary_traffic_percent(promote_project, tmp_path):
    tree = tmp_path / "tree"
    serverless = ("-e", "serving_deployment_mode=serverless")
    ok(promote(promote_project, tree, *serverless, "-e", "promote_model=fraud", "-e", "promote_version=7", "-e", "promote_storage_uri=s3://kserve-models/fraud/a"))
    ok(promote(promote_project, tree, *serverless, "-e", "promote_model=fraud", "-e", "promote_version=8", "-e", "promote_storage_uri=s3://kserve-models/fraud/b",
               "-e", "promote_strategy=ab", "-e", "promote_ab_weight=30"))
    docs = model_docs(tree, "fraud")
    assert [d["kind"] for d in docs] == ["InferenceService", "CronWorkflow", "ConfigMap"] and validate(docs[0], KUBERNETES) == []
    isvc = docs[0]
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 30
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "s3://kserve-models/fraud/b"
    assert isvc["metadata"]["annotations"] == {"platform.ml/registered-model": "fraud", "platform.ml/model-version": "8",
                                               "platform.ml/rollout-strategy": "ab", "platform.ml/stable-version": "7",
                                               "platform.ml/stable-storage-uri": "s3://kserve-models/fraud/a"}


def test_promotions_that_cannot_be_made_are_refused_and_write_nothing(promote_project, tmp_path):
    tree = tmp_path / "tree"
    result = promote(promote_project, tree, "-e", "promote_model=iris", "-e", "promote_version=4", "-e", "promote_storage_uri=s3://kserve-models/iris/b",
                     "-e", "promote_strategy=canary", "-e", "promote_canary_percent=150")
    assert result.returncode != 0
    out = re.sub(r"\s+", " ", result.stdout)
    assert "Nothing was promoted: promote_strategy=canary: nothing serves iris yet" in out and "Fix: promote a first version" in out
    assert not (tree / MODEL_FILE.format("iris")).exists()


def test_the_split_check_sees_a_broken_split():
    """The check the tests above rely on, on splits broken on purpose."""
    good = [{"kind": "InferenceService", "metadata": {"name": n}} for n in ("iris", "iris-canary")] + [{
        "kind": "HTTPRoute", "metadata": {"name": "iris"},
        "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "iris-predictor", "port": 80}],
                 "rules": [{"backendRefs": [{"name": "iris-predictor", "port": 80, "weight": 90},
                                            {"name": "iris-canary-predictor", "port": 80, "weight": 10}]}]}}]
    assert split_problems(good) == []
    route = lambda docs: docs[2]["spec"]  # noqa: E731
    weights = copy.deepcopy(good)
    route(weights)["rules"][0]["backendRefs"][1]["weight"] = 20
    assert split_problems(weights) == ["HTTPRoute iris: weights [90, 20] of two backends must sum to 100"]
    missing = copy.deepcopy(good)[1:]
    assert split_problems(missing)[0].startswith("HTTPRoute iris: parent")
    assert "backends ['iris-predictor'] are no predictor Service of the layer" in split_problems(missing)[1]
    bypass = copy.deepcopy(good)
    route(bypass)["parentRefs"] = [{"name": "platform", "namespace": "platform-gateway", "sectionName": "https"}]
    assert split_problems(bypass) == [f"HTTPRoute iris: parent {route(bypass)['parentRefs'][0]} is not the predictor Service of an InferenceService of the layer"]


# ---- monitoring of the model (docs/lifecycle.md, "Monitoring of the model")

LOGGER_URL = "http://inference-logger.ml-serving.svc.cluster.local/"


def monitoring_problems(docs, namespace="ml-serving"):
    """What would leave a served model unmonitored or misjudged: every InferenceService of
    the serving namespace must log all of its requests and responses to the
    inference-logger; the layer's drift job must run the model-drift WorkflowTemplate, one
    run at a time, for the version its stable InferenceService serves; and the layer must
    hold the model's dashboard."""
    found = []
    isvcs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "InferenceService"}
    for name, isvc in isvcs.items():
        if isvc["metadata"]["namespace"] == namespace and isvc["spec"]["predictor"].get("logger") != {"mode": "all", "url": LOGGER_URL}:
            found.append(f"InferenceService {name}: does not log all requests and responses to the inference-logger")
    stable = next((d for name, d in isvcs.items() if not name.endswith("-canary")), None)
    jobs = [d for d in docs if d["kind"] == "CronWorkflow" and d["metadata"]["name"].startswith("drift-")]
    if stable is None or stable["metadata"]["namespace"] != namespace:
        return found
    model = stable["metadata"]["name"]
    if [j["metadata"]["name"] for j in jobs] != [f"drift-{model}"]:
        return found + [f"model {model}: no drift job drift-{model} (has {[j['metadata']['name'] for j in jobs]})"]
    spec = jobs[0]["spec"]
    parameters = {p["name"]: p["value"] for p in spec["workflowSpec"]["arguments"]["parameters"] if p["name"] in ("model", "version")}
    if spec["workflowSpec"].get("workflowTemplateRef") != {"name": "model-drift"}:
        found.append(f"CronWorkflow drift-{model}: does not run the WorkflowTemplate model-drift")
    if spec.get("concurrencyPolicy") != "Forbid":
        found.append(f"CronWorkflow drift-{model}: two runs could overlap (concurrencyPolicy {spec.get('concurrencyPolicy')})")
    if parameters != {"model": model, "version": stable["metadata"]["annotations"]["platform.ml/model-version"]}:
        found.append(f"CronWorkflow drift-{model}: judges {parameters}, not the version serving {model}")
    if not any(d["kind"] == "ConfigMap" and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1" for d in docs):
        found.append(f"model {model}: no dashboard")
    return found


def dashboard_of(docs):
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(maps) == 1
    return json.loads(next(iter(maps[0]["data"].values())))


def test_a_promoted_model_logs_its_requests_and_has_its_drift_job_and_dashboard(promote_project, tmp_path_factory, tmp_path):
    tree = promoted(promote_project, tmp_path_factory, tmp_path / "tree", *IRIS_3)
    ok(promote(promote_project, tree, "-e", "promote_model=iris", "-e", "promote_version=4", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-b",
               "-e", "promote_strategy=canary"))
    docs = model_docs(tree)
    for doc in docs:
        assert validate(doc, KUBERNETES) == [], doc["kind"]
    assert monitoring_problems(docs) == []
    found = by_kind(docs)
    # The drift job judges the stable version (3); the candidate is the rollout analysis's.
    cron = found[("CronWorkflow", "drift-iris")]
    assert cron["metadata"]["namespace"] == "ml-training" and cron["spec"]["schedules"] == ["0 * * * *"]
    assert {p["name"]: p["value"] for p in cron["spec"]["workflowSpec"]["arguments"]["parameters"]} == {"model": "iris", "version": "3", "retrain": "false"}
    dashboard = dashboard_of(docs)
    assert dashboard["uid"] == "ml-platform-model-iris" and dashboard["title"] == "ML platform: model iris"
    exprs = expressions(dashboard)
    for expr in exprs:
        assert metric_names(expr) <= KNOWN, f"{sorted(metric_names(expr) - KNOWN)} in {expr}"
    read = set().union(*(metric_names(e) for e in exprs))
    assert {"hubble_http_requests_total", "request_predict_seconds_bucket", "model_drift_feature_score", "model_data_drift",
            "model_prediction_drift"} <= read
    assert all('"iris(-canary)?' in e or 'model="iris"' in e for e in exprs)
    if os.path.exists(PROMTOOL):
        rules = tmp_path / "queries.yaml"
        rules.write_text(yaml.safe_dump({"groups": [{"name": "model", "rules": [{"record": f"model:iris:{i}", "expr": e} for i, e in enumerate(exprs)]}]}))
        checked = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # A model promoted elsewhere than the serving namespace is not logged, and has no drift job.
    ok(promote(promote_project, tree, "-e", "promote_model=vision", "-e", "promote_version=1", "-e", "promote_storage_uri=s3://kserve-models/vision/a",
               "-e", "promote_namespace=team-vision"))
    vision = model_docs(tree, "vision")
    assert [d["kind"] for d in vision] == ["InferenceService"] and "logger" not in vision[0]["spec"]["predictor"]
    # -e promote_drift=false: logged, but no drift job and no dashboard.
    ok(promote(promote_project, tree, "-e", "promote_model=fraud", "-e", "promote_version=1", "-e", "promote_storage_uri=s3://kserve-models/fraud/a",
               "-e", "promote_drift=false"))
    fraud = model_docs(tree, "fraud")
    assert [d["kind"] for d in fraud] == ["InferenceService"] and fraud[0]["spec"]["predictor"]["logger"]["url"] == LOGGER_URL


def test_the_monitoring_check_sees_a_model_left_unmonitored():
    """The check the tests above rely on, on model layers broken on purpose."""
    def layer():
        isvc = lambda name: {"kind": "InferenceService", "metadata": {"name": name, "namespace": "ml-serving",  # noqa: E731
                                                                      "annotations": {"platform.ml/model-version": "3"}},
                             "spec": {"predictor": {"logger": {"mode": "all", "url": LOGGER_URL}}}}
        cron = {"kind": "CronWorkflow", "metadata": {"name": "drift-iris"},
                "spec": {"concurrencyPolicy": "Forbid", "workflowSpec": {"workflowTemplateRef": {"name": "model-drift"},
                         "arguments": {"parameters": [{"name": "model", "value": "iris"}, {"name": "version", "value": "3"}]}}}}
        board = {"kind": "ConfigMap", "metadata": {"name": "dashboard-model-iris", "labels": {"grafana_dashboard": "1"}}}
        return [isvc("iris"), isvc("iris-canary"), cron, board]
    assert monitoring_problems(layer()) == []
    unlogged = layer()
    unlogged[1]["spec"]["predictor"]["logger"]["mode"] = "request"
    assert monitoring_problems(unlogged) == ["InferenceService iris-canary: does not log all requests and responses to the inference-logger"]
    stale = layer()
    stale[2]["spec"]["workflowSpec"]["arguments"]["parameters"][1]["value"] = "2"
    stale[2]["spec"]["concurrencyPolicy"] = "Allow"
    assert monitoring_problems(stale) == ["CronWorkflow drift-iris: two runs could overlap (concurrencyPolicy Allow)",
                                          "CronWorkflow drift-iris: judges {'model': 'iris', 'version': '2'}, not the version serving iris"]
    assert monitoring_problems(layer()[:2] + layer()[3:]) == ["model iris: no drift job drift-iris (has [])"]
    assert monitoring_problems(layer()[:3]) == ["model iris: no dashboard"]


@pytest.fixture(scope="module")
def layers(tmp_path_factory):
    """The serving and orchestration layers of the production inventory (and the tree's root), by
    (kind, name), as the session's gitops render of every layer wrote them (conftest.session_render):
    the documents a render of those two layers alone writes. Read them, never change them."""
    _, _, tree_docs = session_render("production", tmp_path_factory)
    return {(d["kind"], d["metadata"]["name"]): d for path, docs in tree_docs.items()
            if path == "root.yaml" or re.match(r"(apps|manifests)/(serving|orchestration)[-/]", path) for d in docs}


def test_the_inference_logger_and_the_drift_template_are_declared_as_the_monitoring_needs(layers):
    for key in [k for k in layers if k[1] in ("inference-logger", "predictors-to-inference-logger", "model-drift", "model-drift-executor")]:
        assert validate(layers[key], KUBERNETES) == [], key
    deployment = layers[("Deployment", "inference-logger")]["spec"]["template"]["spec"]
    container = deployment["containers"][0]
    mlflow = BOM["bom_images"]["mlflow"]
    assert container["image"] == f"{mlflow['repository']}:{mlflow['tag']}" and container["command"] == ["python", "/scripts/inference_logger.py"]
    # Its keys by reference only; its one writable place a memory-backed /tmp.
    assert container["envFrom"] == [{"secretRef": {"name": "object-store-inference-logger"}}]
    assert all("value" in var or "fieldRef" in var.get("valueFrom", {}) for var in container["env"])
    assert {v["name"]: v.get("value") for v in container["env"]}["LOG_BUCKET"] == "inference-logs"
    assert container["resources"]["requests"] and container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["automountServiceAccountToken"] is False
    script = layers[("ConfigMap", "inference-logger")]["data"]["inference_logger.py"]
    assert script == (ROOT / "roles" / "serving" / "files" / "inference_logger.py").read_text().rstrip("\n")
    assert policy_problems(layers) == []
    template = layers[("WorkflowTemplate", "model-drift")]["spec"]
    assert judge_of(template)["container"]["envFrom"] == [{"secretRef": {"name": "mlflow-client"}}]


def judge_of(spec):
    """The model-drift WorkflowTemplate's step that judges (and talks to the inference-logger)."""
    return next(t for t in spec["templates"] if t["name"] == "judge")


def policy_problems(docs):
    """Who can reach the inference-logger: only predictors of the serving namespace (which may
    send to it) and the model-drift workflows' pods (by the label their template gives them),
    on the port it listens on; Prometheus scrapes the same port."""
    found = []
    port = next(p["containerPort"] for p in docs[("Deployment", "inference-logger")]["spec"]["template"]["spec"]["containers"][0]["ports"])
    ingress = docs[("NetworkPolicy", "inference-logger")]["spec"]["ingress"]
    drift_labels = judge_of(docs[("WorkflowTemplate", "model-drift")]["spec"]).get("metadata", {}).get("labels", {})
    for rule in ingress:
        if [p["port"] for p in rule["ports"]] != [port]:
            found.append(f"inference-logger: admitted on {[p['port'] for p in rule['ports']]}, listens on {port}")
        for peer in rule["from"]:
            selector = peer.get("podSelector", {})
            if "namespaceSelector" in peer and not (selector.get("matchLabels") and selector["matchLabels"].items() <= drift_labels.items()):
                found.append(f"inference-logger: admits {peer}, not only the model-drift pods (labelled {drift_labels})")
            if "namespaceSelector" not in peer and selector != {"matchExpressions": [{"key": "serving.kserve.io/inferenceservice", "operator": "Exists"}]}:
                found.append(f"inference-logger: admits {peer} of the serving namespace, not only predictors")
    egress = docs[("NetworkPolicy", "predictors-to-inference-logger")]["spec"]["egress"]
    if [p["port"] for rule in egress for p in rule["ports"]] != [port]:
        found.append(f"predictors: may send to the inference-logger on {[p['port'] for rule in egress for p in rule['ports']]}, it listens on {port}")
    return found


def test_the_policy_check_sees_a_wrong_opening(layers):
    broken = copy.deepcopy(layers)
    judge_of(broken[("WorkflowTemplate", "model-drift")]["spec"])["metadata"]["labels"] = {"app.kubernetes.io/name": "drift"}
    broken[("NetworkPolicy", "inference-logger")]["spec"]["ingress"][0]["from"][0] = {"podSelector": {}}
    broken[("NetworkPolicy", "predictors-to-inference-logger")]["spec"]["egress"][0]["ports"][0]["port"] = 9090
    assert policy_problems(broken) == [
        "inference-logger: admits {'podSelector': {}} of the serving namespace, not only predictors",
        "inference-logger: admits {'namespaceSelector': {'matchLabels': {'kubernetes.io/metadata.name': 'ml-training'}}, "
        "'podSelector': {'matchLabels': {'app.kubernetes.io/name': 'model-drift'}}}, not only the model-drift pods "
        "(labelled {'app.kubernetes.io/name': 'drift'})",
        "predictors: may send to the inference-logger on [9090], it listens on 8080",
    ]


def crd_file(path):
    """The CRD of a file of ../shared/crds (k8s_schemas.shared_crd_file: parsed once, kept in
    .cache/). Read it, never change it."""
    return shared_crd_file(path)[0]


# {API server URL: {CRD name: the document}}: what install_crds applied in this process, to the
# session's one API server. Applying an unchanged CRD again changes nothing and costs the server
# the CEL compilation of its whole schema (seconds for KServe's).
_INSTALLED: dict = {}


def install_crds(server, files, documents=()):
    """Apply CRD files (and CRD documents) to the API server, but those this process applied there
    already, and wait until each is Established; create the serving and workflows namespaces."""
    from apiserver import api_get, apply_server_side, kubectl

    crds = [crd_file(path) for path in files] + list(documents)
    installed = _INSTALLED.setdefault(server.url, {})
    new = [crd for crd in crds if installed.get(crd["metadata"]["name"]) != crd]
    apply_server_side(server, new, "crd-installer", force_conflicts=True)
    installed.update((crd["metadata"]["name"], crd) for crd in new)
    # Polled, not `kubectl wait`: kubectl 1.35 fails at once ("status.conditions accessor error")
    # on a CRD whose status the API server has not written yet.
    deadline = time.monotonic() + 60
    for name in (crd["metadata"]["name"] for crd in crds):
        while not any(c["type"] == "Established" and c["status"] == "True" for c in
                      (api_get(server, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").get("status") or {})
                      .get("conditions") or []):
            assert time.monotonic() < deadline, f"{name} is not Established after 60 s"
            time.sleep(0.2)
    for namespace in ("ml-serving", "ml-training"):
        created = kubectl(server, "create", "namespace", namespace)
        assert created.returncode == 0 or "AlreadyExists" in created.stderr, created.stderr


# On the run's one API server (tests/apiserver.py's session fixture), in its worker.
@pytest.mark.xdist_group("apiserver")
def test_direct_delivery_applies_a_promoted_model_with_its_monitoring_and_a_second_run_changes_nothing(apiserver, tmp_path):
    """promote.yml in direct delivery (the default), as the README gives it, against a real API
    server holding the pinned KServe and Argo Workflows CRDs: the InferenceService with its
    logger, the drift job, the dashboard and the retraining (retrain-iris, its ConfigMap and Role) are accepted and applied under the platform's field
    manager, and a second run reports no change."""
    from apiserver import kubectl

    from conftest import project_copy, run, state_dir, tool

    server = apiserver
    install_crds(server, [CRD_DIR / "kserve" / "serving.kserve.io_inferenceservices.yaml", CRD_DIR / "argo-workflows" / "argoproj.io_cronworkflows.yaml",
                          CRD_DIR / "argo-workflows" / "argoproj.io_workflowtemplates.yaml"])
    project = project_copy(tmp_path / "project")
    state = state_dir(project, "production")
    state.mkdir(parents=True)
    shutil.copy(server.kubeconfig, state / "admin.conf")
    (state / "admin.conf").chmod(0o600)
    command = [tool("ansible-playbook"), "playbooks/promote.yml", "-i", "inventories/production", "-e", "promote_model=iris",
               "-e", "promote_version=3", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-x7k2p"]
    first = ok(run(command, cwd=project))
    second = ok(run(command, cwd=project))
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", second.stdout), second.stdout[-3000:]
    got = {}
    for kind, namespace, name in (("inferenceservice", "ml-serving", "iris"), ("cronworkflow", "ml-training", "drift-iris"),
                                  ("configmap", "ml-serving", "dashboard-model-iris"), ("workflowtemplate", "ml-training", "retrain-iris"),
                                  ("configmap", "ml-training", "retrain-iris")):
        read = kubectl(server, "get", kind, "-n", namespace, name, "-o", "json", "--show-managed-fields")
        assert read.returncode == 0, (kind, read.stderr, first.stdout[-2000:])
        got[kind, name] = json.loads(read.stdout)
        assert any(m["manager"] == "ml-platform" and m["operation"] == "Apply" for m in got[kind, name]["metadata"]["managedFields"]), kind
    assert got["inferenceservice", "iris"]["spec"]["predictor"]["logger"] == {"mode": "all", "url": LOGGER_URL}
    assert monitoring_problems([dict(got[key], kind=kind) for key, kind in ((("inferenceservice", "iris"), "InferenceService"),
                                (("cronworkflow", "drift-iris"), "CronWorkflow"), (("configmap", "dashboard-model-iris"), "ConfigMap"))]) == []
    assert retraining_problems([dict(got["workflowtemplate", "retrain-iris"], kind="WorkflowTemplate")],
                               "s3://kserve-models/iris/train-iris-x7k2p") == []


# ---- automated retraining (docs/lifecycle.md, "Automated retraining")

def retraining_problems(docs, stable_uri):
    """What would make a model's retraining unsafe or broken: its WorkflowTemplate must hold a
    mutex named for the model (one retraining at a time), run the guard first and the rest only
    when it says proceed, compare the new version with the one serving (serving-uri the stable
    InferenceService's storage URI), approve and start a canary only when decide says canary,
    and no step may read the outputs of a step that may have been skipped (Argo fails the run)."""
    found = []
    for template in (d for d in docs if d["kind"] == "WorkflowTemplate" and d["metadata"]["name"].startswith("retrain-")):
        name, spec = template["metadata"]["name"], template["spec"]
        if spec.get("synchronization", {}).get("mutexes") != [{"name": name}]:
            found.append(f"{name}: no mutex {name}, two retrainings of the model could run at once")
        templates = {t["name"]: t for t in spec["templates"]}
        entry = [[step["name"] for step in group] for group in templates[spec["entrypoint"]]["steps"]]
        gate = templates[spec["entrypoint"]]["steps"][-1][0].get("when", "")
        if entry[0] != ["guard"] or gate != "{{steps.guard.outputs.parameters.proceed}} == true":
            found.append(f"{name}: runs {entry} (the last when {gate!r}), not the guard first and the rest only when it says proceed")
        for steps in (t for t in templates.values() if "steps" in t):
            skippable = set()
            for group in steps["steps"]:
                for step in group:
                    read = json.dumps({k: step.get(k) for k in ("arguments", "when")})
                    for earlier in sorted(skippable):
                        if f"steps.{earlier}.outputs" in read:
                            found.append(f"{name}: step {step['name']} reads the outputs of {earlier}, which may have been skipped")
                    if step["name"] == "train" and {p["name"]: p["value"] for p in step["arguments"]["parameters"]}.get("serving-uri") != stable_uri:
                        found.append(f"{name}: trains without comparing with the serving version {stable_uri}")
                    if step["name"] in ("approve", "canary") and step.get("when") != "{{steps.decide.outputs.parameters.decision}} == canary":
                        found.append(f"{name}: step {step['name']} runs when {step.get('when')!r}, not only when decide says canary")
                    if "when" in step:
                        skippable.add(step["name"])
    return found


def test_the_retraining_check_sees_an_unsafe_retraining():
    """The check the tests of retraining rely on, on WorkflowTemplates broken on purpose."""
    def template():
        return {"kind": "WorkflowTemplate", "metadata": {"name": "retrain-iris"}, "spec": {
            "entrypoint": "retrain", "synchronization": {"mutexes": [{"name": "retrain-iris"}]},
            "templates": [
                {"name": "retrain", "steps": [[{"name": "guard", "template": "guard"}],
                                              [{"name": "run", "template": "run", "when": "{{steps.guard.outputs.parameters.proceed}} == true"}]]},
                {"name": "run", "steps": [
                    [{"name": "train", "arguments": {"parameters": [{"name": "serving-uri", "value": "s3://kserve-models/iris/a"}]}}],
                    [{"name": "decide", "arguments": {"parameters": [{"name": "result", "value": "{{steps.train.outputs.parameters.result}}"}]}}],
                    [{"name": "canary", "when": "{{steps.decide.outputs.parameters.decision}} == canary",
                      "arguments": {"parameters": [{"name": "version", "value": "{{steps.decide.outputs.parameters.version}}"}]}}]]},
                {"name": "guard"}]}}
    assert retraining_problems([template()], "s3://kserve-models/iris/a") == []
    broken = template()
    broken["spec"].pop("synchronization")
    retrain, run = broken["spec"]["templates"][0], broken["spec"]["templates"][1]
    retrain["steps"][1][0].pop("when")
    run["steps"][1][0]["when"] = "true"
    run["steps"][2][0]["when"] = "{{steps.decide.outputs.parameters.decision}} != rejected"
    assert retraining_problems([broken], "s3://kserve-models/iris/b") == [
        "retrain-iris: no mutex retrain-iris, two retrainings of the model could run at once",
        "retrain-iris: runs [['guard'], ['run']] (the last when ''), not the guard first and the rest only when it says proceed",
        "retrain-iris: trains without comparing with the serving version s3://kserve-models/iris/b",
        "retrain-iris: step canary reads the outputs of decide, which may have been skipped",
        "retrain-iris: step canary runs when '{{steps.decide.outputs.parameters.decision}} != rejected', not only when decide says canary",
    ]


def test_a_served_model_gets_its_retraining_in_the_tree_with_its_guard_rails(promote_project, tmp_path):
    """gitops delivery, both serving modes: beside the drift job (which starts a retraining
    when the inputs drifted), the WorkflowTemplate retrain-<model> with no canary step (the
    tree holds the weights: decide names the promote.yml command) and, with a schedule, its
    CronWorkflow; none with promote_drift=false, or when neither drift nor a schedule starts it
    (nor during a rollout: the canary test above)."""
    tree = tmp_path / "tree"
    settings = ("-e", "orchestration_retrain_schedule=@weekly",
                "-e", '{"orchestration_retrain_models": {"iris": {"approval": true, "data_uri": "s3://training-datasets/iris/2026-12.csv"}}}')
    ok(promote(promote_project, tree, *settings, "-e", "promote_model=iris", "-e", "promote_version=3", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-a"))
    docs = model_docs(tree)
    for doc in docs:
        assert validate(doc, KUBERNETES) == [], doc["kind"]
    assert monitoring_problems(docs) == [] and retraining_problems(docs, "s3://kserve-models/iris/train-iris-a") == []
    assert telemetry_problems(docs) == []
    found = by_kind(docs)
    assert sorted(found) == [("ConfigMap", "dashboard-model-iris"), ("CronWorkflow", "drift-iris"), ("CronWorkflow", "retrain-iris"),
                             ("InferenceService", "iris"), ("WorkflowTemplate", "retrain-iris")]
    drift = {p["name"]: p["value"] for p in found[("CronWorkflow", "drift-iris")]["spec"]["workflowSpec"]["arguments"]["parameters"]}
    assert drift["retrain"] == "true"
    spec = found[("WorkflowTemplate", "retrain-iris")]["spec"]
    assert spec["serviceAccountName"] == "retrain" and spec["arguments"]["parameters"] == [
        {"name": "trigger", "value": "manual", "enum": ["drift", "schedule", "manual"]}]
    templates = {t["name"]: t for t in spec["templates"]}
    # gitops: no approval and no canary step; the decision names the command that starts the canary.
    assert [[s["name"] for s in group] for group in templates["run"]["steps"]] == [["train"], ["decide"]]
    train = templates["run"]["steps"][0][0]
    assert train["templateRef"] == {"name": "train-iris", "template": "fit"}
    assert {p["name"]: p["value"] for p in train["arguments"]["parameters"]} == {
        "model-name": "iris", "experiment": "iris", "data-uri": "s3://training-datasets/iris/2026-12.csv",
        "serving-uri": "s3://kserve-models/iris/train-iris-a", "run-name": "{{workflow.name}}"}
    decide = {e["name"]: e["value"] for e in templates["decide"]["container"]["env"]}
    assert decide["DELIVERY"] == "gitops" and decide["MIN_IMPROVEMENT"] == "0.01" and decide["APPROVAL"] == "false"
    guard = {e["name"]: e["value"] for e in templates["guard"]["container"]["env"]}
    assert guard["MIN_INTERVAL_SECONDS"] == "86400" and guard["MODE"] == "raw" and guard["NAMESPACE"] == "ml-serving"
    for step in (templates["guard"], templates["decide"]):
        assert step["container"]["envFrom"] == [{"secretRef": {"name": "mlflow-client"}}]
        assert step["volumes"][0] == {"name": "scripts", "configMap": {"name": "retrain"}}
    cron = found[("CronWorkflow", "retrain-iris")]["spec"]
    assert cron["schedules"] == ["@weekly"] and cron["concurrencyPolicy"] == "Forbid"
    assert cron["workflowSpec"] == {"workflowTemplateRef": {"name": "retrain-iris"}, "arguments": {"parameters": [{"name": "trigger", "value": "schedule"}]}}

    # During a rollout there is no retraining, and the drift job starts none: the canary test above
    # finds no retrain-iris in the layer, and drift-iris says retrain "false" there.
    # Serverless: the guard reads KServe's canary field; retraining on drift only, so no CronWorkflow.
    ok(promote(promote_project, tree, "-e", "serving_deployment_mode=serverless", "-e", "promote_model=fraud", "-e", "promote_version=1",
               "-e", "promote_storage_uri=s3://kserve-models/fraud/a"))
    fraud = by_kind(model_docs(tree, "fraud"))
    assert sorted(k for k in fraud if "retrain-fraud" in k) == [("WorkflowTemplate", "retrain-fraud")]
    assert validate(fraud[("WorkflowTemplate", "retrain-fraud")], KUBERNETES) == []
    guard = next(t for t in fraud[("WorkflowTemplate", "retrain-fraud")]["spec"]["templates"] if t["name"] == "guard")
    assert {e["name"]: e["value"] for e in guard["container"]["env"]}["MODE"] == "serverless"
    # Neither drift nor a schedule: no retraining; -e promote_drift=false: none either.
    ok(promote(promote_project, tree, "-e", "orchestration_retrain_on_drift=false", "-e", "promote_model=fraud", "-e", "promote_version=1",
               "-e", "promote_storage_uri=s3://kserve-models/fraud/a"))
    assert [d["kind"] for d in model_docs(tree, "fraud")] == ["InferenceService", "CronWorkflow", "ConfigMap"]
    ok(promote(promote_project, tree, *settings, "-e", "promote_model=iris", "-e", "promote_version=4", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-b",
               "-e", "promote_drift=false"))
    assert [d["kind"] for d in model_docs(tree)] == ["InferenceService"]


def test_the_retraining_objects_of_the_orchestration_layer(layers):
    """The ConfigMap retrain ships retrain.py with the REST module it shares with the rollout
    analysis; the retrain account may only read InferenceServices (the canary rights are each
    model's, in direct delivery); the drift job's account may create Workflows, held by the
    ValidatingAdmissionPolicy; model-drift starts a retraining only when the inputs drifted and
    its drift job says so."""
    keys = [("ConfigMap", "retrain"), ("ServiceAccount", "retrain"), ("Role", "retrain"), ("RoleBinding", "retrain"),
            ("RoleBinding", "retrain-executor"), ("Role", "workflow-starter"), ("RoleBinding", "workflow-starter"),
            ("ValidatingAdmissionPolicy", "ml-platform-workflow-starters"), ("ValidatingAdmissionPolicyBinding", "ml-platform-workflow-starters")]
    for key in keys:
        assert validate(layers[key], KUBERNETES) == [], key
    files = ROOT / "roles" / "orchestration" / "files"
    data = layers[("ConfigMap", "retrain")]["data"]
    assert data == {"retrain.py": (files / "retrain.py").read_text().rstrip("\n"), "platform_api.py": (files / "platform_api.py").read_text().rstrip("\n")}
    assert layers[("ConfigMap", "rollout-analysis")]["data"]["platform_api.py"] == data["platform_api.py"]
    assert layers[("Role", "retrain")]["rules"] == [{"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": ["get"]}]
    assert layers[("Role", "workflow-starter")]["rules"] == [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]}]
    assert layers[("RoleBinding", "workflow-starter")]["subjects"] == [{"kind": "ServiceAccount", "name": "model-drift", "namespace": "ml-training"}]
    spec = layers[("WorkflowTemplate", "model-drift")]["spec"]
    entry = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])
    assert [[s["name"] for s in group] for group in entry["steps"]] == [["judge"], ["retrain"]]
    assert entry["steps"][1][0]["when"] == "{{steps.judge.outputs.parameters.drifted}} == true && {{workflow.parameters.retrain}} == true"
    retrain = next(t for t in spec["templates"] if t["name"] == "retrain")
    assert retrain["container"]["command"] == ["python", "/retrain/retrain.py", "submit"] and "envFrom" not in retrain["container"]

def cilium_crd():
    """A CRD for CiliumNetworkPolicy (Cilium's are not in ../shared/crds) whose spec is open: the
    API server stores what is applied; the documents themselves are validated by k8s_schemas."""
    schema = {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "ciliumnetworkpolicies.cilium.io"},
            "spec": {"group": "cilium.io", "scope": "Namespaced",
                     "names": {"kind": "CiliumNetworkPolicy", "plural": "ciliumnetworkpolicies", "singular": "ciliumnetworkpolicy", "listKind": "CiliumNetworkPolicyList"},
                     "versions": [{"name": "v2", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}]}}


def within(applied, stored):
    """Whether stored holds every field of applied (the API server adds its defaults)."""
    if isinstance(applied, dict):
        return isinstance(stored, dict) and all(k in stored and within(v, stored[k]) for k, v in applied.items())
    if isinstance(applied, list):
        return isinstance(stored, list) and len(applied) == len(stored) and all(within(a, b) for a, b in zip(applied, stored))
    return applied == stored


def service_account_dir(server, tmp_path, account):
    """A directory as Kubernetes mounts a pod's ServiceAccount: a token of account (ml-training)
    from the TokenRequest API, and the API server's CA."""
    from apiserver import request

    answer = request(server, "POST", f"/api/v1/namespaces/ml-training/serviceaccounts/{account}/token",
                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
    directory = tmp_path / f"sa-{account}"
    directory.mkdir()
    (directory / "token").write_text(answer["status"]["token"])
    shutil.copy(server.ca, directory / "ca.crt")
    return directory


def run_step(server, scripts, account_dir, command, **env):
    """retrain.py (from the rendered ConfigMap retrain, beside platform_api.py) as a step of the
    WorkflowTemplate runs it: as the ServiceAccount whose token is in account_dir."""
    import sys

    full = dict(os.environ, KUBE_API_URL=server.url, SA_DIR=str(account_dir), **env)
    return subprocess.run([sys.executable, str(scripts / "retrain.py"), command], env=full, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.xdist_group("apiserver")
def test_a_retrainings_canary_is_what_promote_yml_applies_and_the_next_promotion_removes_it(promote_project, apiserver, layers, tmp_path_factory, tmp_path):
    """On a real API server with the KServe, Argo Workflows, Gateway API and (test-side) Cilium
    CRDs and the orchestration layer's retraining objects (ServiceAccounts, Roles, the
    ValidatingAdmissionPolicy): promote.yml (direct, replace) declares retrain-iris with its
    ConfigMap; the canary step (retrain.py canary, as the ServiceAccount retrain, with a token
    of its own) applies for version 7 exactly what promote.yml -e promote_strategy=canary
    renders for 7 and starts its analysis, and may touch nothing else; the guard then sees the
    rollout; promote.yml -e promote_strategy=rollback removes the canary's objects, none of which
    the layer ever declared. The drift job's account may start a retraining and nothing else."""
    from apiserver import APIError, api_get, apply_server_side, request

    from conftest import load_script, project_copy, run, state_dir, tool

    server = apiserver
    install_crds(server, [CRD_DIR / "kserve" / "serving.kserve.io_inferenceservices.yaml",
                          *(CRD_DIR / "argo-workflows" / f"argoproj.io_{k}.yaml" for k in ("cronworkflows", "workflowtemplates", "workflows")),
                          CRD_DIR / "gateway-api" / "gateway.networking.k8s.io_httproutes.yaml"], [cilium_crd()])
    shared = [layers[key] for key in layers if key[1] in ("retrain", "workflow-starter", "ml-platform-workflow-starters", "model-drift")
              and key[0] in ("ConfigMap", "ServiceAccount", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
    assert sorted(d["kind"] for d in shared) == ["ConfigMap", "ConfigMap", "Role", "Role", "RoleBinding", "RoleBinding", "ServiceAccount", "ServiceAccount",
                                                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
    apply_server_side(server, shared, "ml-platform", force_conflicts=True)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name, text in layers[("ConfigMap", "retrain")]["data"].items():
        (scripts / name).write_text(text)

    project = project_copy(tmp_path / "project")
    state = state_dir(project, "production")
    state.mkdir(parents=True)
    shutil.copy(server.kubeconfig, state / "admin.conf")
    (state / "admin.conf").chmod(0o600)
    promote_direct = [tool("ansible-playbook"), "playbooks/promote.yml", "-i", "inventories/production", "-e", "promote_model=iris"]
    approval = ("-e", '{"orchestration_retrain_models": {"iris": {"approval": true}}}')
    ok(run([*promote_direct, *approval, "-e", "promote_version=3", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-a"], cwd=project))
    template = api_get(server, "/apis/argoproj.io/v1alpha1/namespaces/ml-training/workflowtemplates/retrain-iris")
    templates = {t["name"]: t for t in template["spec"]["templates"]}
    assert [group[0]["name"] for group in templates["run"]["steps"]] == ["train", "decide", "approve", "canary"]
    assert templates["approve"]["suspend"] == {} and "envFrom" not in templates["canary"]["container"]
    assert {e["name"]: e["value"] for e in templates["decide"]["container"]["env"]}["APPROVAL"] == "true"
    assert validate(dict(template, metadata={k: template["metadata"][k] for k in ("name", "namespace", "labels", "annotations")}), KUBERNETES) == []
    role = api_get(server, "/apis/rbac.authorization.k8s.io/v1/namespaces/ml-serving/roles/retrain-iris")
    assert sorted((r["resources"][0], tuple(r["resourceNames"])) for r in role["rules"]) == [
        ("ciliumnetworkpolicies", ("iris-rollout",)), ("httproutes", ("iris",)), ("inferenceservices", ("iris", "iris-canary"))]
    assert retraining_problems([dict(template, kind="WorkflowTemplate")], "s3://kserve-models/iris/train-iris-a") == []
    stored = api_get(server, "/api/v1/namespaces/ml-training/configmaps/retrain-iris")["data"]

    # What promote.yml renders for a canary of version 7 beside version 3 (gitops, the same template).
    tree = promoted(promote_project, tmp_path_factory, tmp_path / "tree", *IRIS_3)
    ok(promote(promote_project, tree, "-e", "promote_model=iris", "-e", "promote_version=7", "-e", "promote_storage_uri=s3://kserve-models/iris/retrain-iris-k2",
               "-e", "promote_strategy=canary"))
    expected = [d for d in model_docs(tree) if d["kind"] in ("InferenceService", "HTTPRoute", "CiliumNetworkPolicy")]
    retrain = load_script("roles/orchestration/files/retrain.py")
    assert retrain.filled(stored["documents.json"], "7", "s3://kserve-models/iris/retrain-iris-k2") == expected
    for doc in expected:
        assert validate(doc, KUBERNETES) == [], doc["kind"]

    (tmp_path / "retrain").mkdir()
    for name, text in stored.items():
        (tmp_path / "retrain" / name).write_text(text)
    account = service_account_dir(server, tmp_path, "retrain")
    step = run_step(server, scripts, account, "canary", MODEL="iris", VERSION="7", STORAGE_URI="s3://kserve-models/iris/retrain-iris-k2",
                    DOCUMENTS_FILE=str(tmp_path / "retrain" / "documents.json"), ANALYSIS_FILE=str(tmp_path / "retrain" / "analysis.json"),
                    FIELD_MANAGER="ml-platform", OUTPUT_DIR=str(tmp_path / "out"))
    assert step.returncode == 0, step.stdout + step.stderr[-3000:]
    paths = {"InferenceService": "/apis/serving.kserve.io/v1beta1/namespaces/ml-serving/inferenceservices/",
             "HTTPRoute": "/apis/gateway.networking.k8s.io/v1/namespaces/ml-serving/httproutes/",
             "CiliumNetworkPolicy": "/apis/cilium.io/v2/namespaces/ml-serving/ciliumnetworkpolicies/"}
    for doc in expected:
        got = api_get(server, paths[doc["kind"]] + doc["metadata"]["name"])
        assert any(m["manager"] == "ml-platform" and m["operation"] == "Apply" for m in got["metadata"]["managedFields"]), doc["kind"]
        assert within(doc["spec"], got["spec"]), (doc["kind"], got["spec"])
        assert got["metadata"]["labels"]["platform.ml/layer"] == "model-iris"
    analysis = api_get(server, "/apis/argoproj.io/v1alpha1/namespaces/ml-training/workflows/rollout-iris-7")
    assert analysis["spec"] == {"workflowTemplateRef": {"name": "rollout-analysis"},
                                "arguments": {"parameters": [{"name": "model", "value": "iris"}, {"name": "namespace", "value": "ml-serving"}]}}
    assert (tmp_path / "out" / "analysis").read_text() == "rollout-iris-7"

    # The guard, with the same account's right to read, sees the rollout now.
    os.environ.update(KUBE_API_URL=server.url, SA_DIR=str(account))
    try:
        platform_api = load_script("roles/orchestration/files/platform_api.py")
        assert "the InferenceService iris-canary serves version 7" in retrain.rollout_in_progress(platform_api.Kubernetes(), "ml-serving", "iris", "raw")
    finally:
        del os.environ["KUBE_API_URL"], os.environ["SA_DIR"]
    # Least privilege: the account may apply the model's canary objects, by name, and nothing else.
    other = copy.deepcopy(next(d for d in expected if d["metadata"]["name"] == "iris-canary"))
    other["metadata"]["name"] = "fraud"
    (tmp_path / "other.json").write_text(json.dumps([other]))
    refused = run_step(server, scripts, account, "canary", MODEL="iris", VERSION="7", STORAGE_URI="s3://kserve-models/iris/x",
                       DOCUMENTS_FILE=str(tmp_path / "other.json"), ANALYSIS_FILE=str(tmp_path / "retrain" / "analysis.json"), FIELD_MANAGER="ml-platform")
    assert refused.returncode != 0 and "403" in refused.stderr, refused.stderr[-2000:]

    # The next promotion (one command, the rollback) removes the canary the retraining made.
    ok(run([*promote_direct, "-e", "promote_strategy=rollback"], cwd=project))
    for doc in expected:
        if doc["metadata"]["name"] != "iris" or doc["kind"] != "InferenceService":
            with pytest.raises(APIError) as gone:
                api_get(server, paths[doc["kind"]] + doc["metadata"]["name"])
            assert gone.value.code == 404, doc["kind"]
    assert api_get(server, paths["InferenceService"] + "iris")["metadata"]["annotations"]["platform.ml/model-version"] == "3"

    # Serverless: the canary is the InferenceService <model> with KServe's canaryTrafficPercent,
    # the only object the step applies and may apply.
    serverless = ("-e", "serving_deployment_mode=serverless", "-e", "promote_model=fraud")
    ok(run([*promote_direct[:-2], *serverless, "-e", "promote_version=1", "-e", "promote_storage_uri=s3://kserve-models/fraud/a"], cwd=project))
    documents = api_get(server, "/api/v1/namespaces/ml-training/configmaps/retrain-fraud")["data"]["documents.json"]
    ok(promote(promote_project, tree, *serverless, "-e", "promote_version=1", "-e", "promote_storage_uri=s3://kserve-models/fraud/a"))
    ok(promote(promote_project, tree, *serverless, "-e", "promote_version=2", "-e", "promote_storage_uri=s3://kserve-models/fraud/b", "-e", "promote_strategy=canary"))
    expected = [d for d in model_docs(tree, "fraud") if d["kind"] == "InferenceService"]
    assert retrain.filled(documents, "2", "s3://kserve-models/fraud/b") == expected and expected[0]["spec"]["predictor"]["canaryTrafficPercent"] == 10
    role = api_get(server, "/apis/rbac.authorization.k8s.io/v1/namespaces/ml-serving/roles/retrain-fraud")
    assert [(r["resources"], r["resourceNames"], r["verbs"]) for r in role["rules"]] == [(["inferenceservices"], ["fraud"], ["create", "patch"])]

    # The drift job's account may start a retraining of a model: a Workflow that only names
    # retrain-<model> and passes it parameters. Anything else it would create is refused.
    drift = service_account_dir(server, tmp_path, "model-drift")
    submitted = run_step(server, scripts, drift, "submit", MODEL="iris", NAMESPACE="ml-training", TRIGGER="drift", OUTPUT_DIR=str(tmp_path / "submit"))
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr[-3000:]
    name = (tmp_path / "submit" / "workflow").read_text()
    created = api_get(server, f"/apis/argoproj.io/v1alpha1/namespaces/ml-training/workflows/{name}")
    assert name.startswith("retrain-iris-") and created["spec"]["arguments"]["parameters"] == [{"name": "trigger", "value": "drift"}]
    token = (drift / "token").read_text()

    def create_as(token, spec):
        body = json.dumps({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "x-", "namespace": "ml-training"},
                           "spec": spec}).encode()
        req = urllib.request.Request(f"{server.url}/apis/argoproj.io/v1alpha1/namespaces/ml-training/workflows", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(server.ca)), timeout=30) as answer:
                return answer.status, ""
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read()).get("message", "")
    own_pods = {"workflowTemplateRef": {"name": "retrain-iris"}, "serviceAccountName": "argo-workflow",
                "templates": [{"name": "x", "container": {"image": "busybox"}}]}
    status, message = create_as(token, own_pods)
    assert status == 403 and "may only start a Workflow from a WorkflowTemplate with arguments; its spec also has " in message, message
    assert {"serviceAccountName", "templates"} == set(message.rsplit("also has ", 1)[1].split(", ")), message
    status, message = create_as(token, {"workflowTemplateRef": {"name": "train-iris"}})
    assert status == 403 and "model-drift may start a Workflow only from a WorkflowTemplate retrain-<model>, not train-iris" in message
    # The retraining's account starts the rollout analysis only.
    status, message = create_as((account / "token").read_text(), {"workflowTemplateRef": {"name": "retrain-iris"}})
    assert status == 403 and "retrain may start a Workflow only from the WorkflowTemplate rollout-analysis, not retrain-iris" in message, message
    assert request(server, "GET", "/apis/argoproj.io/v1alpha1/namespaces/ml-training/workflows")["items"]
