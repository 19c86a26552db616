"""Model rollouts as promote.yml writes them into the GitOps tree (docs/lifecycle.md):
a canary and its rollback in KServe's raw-deployment mode (two InferenceServices and
a weighted HTTPRoute bound to the predictor Service the inference-gateway proxies to),
an A/B test in serverless mode (KServe's canaryTrafficPercent), every document valid
against the pinned schemas, and the promotions that cannot be made refused by name.
The README's promote command, run in a copy of the project."""

from __future__ import annotations

import copy
import re

from conftest import BOM
from k8s_schemas import load_tree, validate
from test_render_orchestration import promote

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


def test_a_canary_splits_the_predictor_service_by_weight_and_a_rollback_restores_the_tree(tmp_path):
    tree = tmp_path / "tree"
    ok(promote(tree, "-e", "promote_model=iris", "-e", "promote_version=3", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-a"))
    serving = (tree / MODEL_FILE.format("iris")).read_text()
    ok(promote(tree, "-e", "promote_model=iris", "-e", "promote_version=4", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-b",
               "-e", "promote_strategy=canary", "-e", "promote_canary_percent=20"))
    docs = model_docs(tree)
    for doc in docs:
        assert validate(doc, KUBERNETES) == [], doc["kind"]
    assert split_problems(docs) == []
    found = by_kind(docs)
    assert sorted(found) == [("CiliumNetworkPolicy", "iris-rollout"), ("HTTPRoute", "iris"),
                             ("InferenceService", "iris"), ("InferenceService", "iris-canary")]
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
    assert policy["ingress"] == [{"fromEntities": ["ingress"], "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}]
    # One command rolls back: the tree is again exactly what served before the canary.
    ok(promote(tree, "-e", "promote_model=iris", "-e", "promote_strategy=rollback"))
    assert (tree / MODEL_FILE.format("iris")).read_text() == serving


def test_an_ab_test_in_serverless_mode_is_kserves_canary_traffic_percent(tmp_path):
    tree = tmp_path / "tree"
    serverless = ("-e", "serving_deployment_mode=serverless")
    ok(promote(tree, *serverless, "-e", "promote_model=fraud", "-e", "promote_version=7", "-e", "promote_storage_uri=s3://kserve-models/fraud/a"))
    ok(promote(tree, *serverless, "-e", "promote_model=fraud", "-e", "promote_version=8", "-e", "promote_storage_uri=s3://kserve-models/fraud/b",
               "-e", "promote_strategy=ab", "-e", "promote_ab_weight=30"))
    docs = model_docs(tree, "fraud")
    assert [d["kind"] for d in docs] == ["InferenceService"] and validate(docs[0], KUBERNETES) == []
    isvc = docs[0]
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 30
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "s3://kserve-models/fraud/b"
    assert isvc["metadata"]["annotations"] == {"platform.ml/registered-model": "fraud", "platform.ml/model-version": "8",
                                               "platform.ml/rollout-strategy": "ab", "platform.ml/stable-version": "7",
                                               "platform.ml/stable-storage-uri": "s3://kserve-models/fraud/a"}


def test_promotions_that_cannot_be_made_are_refused_and_write_nothing(tmp_path):
    tree = tmp_path / "tree"
    result = promote(tree, "-e", "promote_model=iris", "-e", "promote_version=4", "-e", "promote_storage_uri=s3://kserve-models/iris/b",
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
