"""Unit tests of a served model's retraining (roles/orchestration/files/retrain.py): the
guard that lets one start (no rollout in progress, the minimum interval passed) and the
decision on the new version (a better and a worse candidate get opposite decisions, a tie
never starts a canary), on inputs the tests make."""

from __future__ import annotations

import pytest

from conftest import load_script

DAY = 86400


@pytest.fixture(scope="module")
def retrain():
    return load_script("roles/orchestration/files/retrain.py")


class Cluster:
    """The one kind of read the guard makes: InferenceServices by name (None: there is none)."""

    def __init__(self, isvcs):
        self.isvcs = isvcs

    def get(self, path, missing_ok=False):
        assert path.startswith("/apis/serving.kserve.io/v1beta1/namespaces/ml-serving/inferenceservices/") and missing_ok
        return self.isvcs.get(path.rsplit("/", 1)[1])


def isvc(version, canary=None):
    predictor = {"model": {"storageUri": "s3://kserve-models/iris/a"}}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return {"metadata": {"annotations": {"platform.ml/model-version": version}}, "spec": {"predictor": predictor}}


def test_a_rollout_in_progress_is_seen_in_both_serving_modes(retrain):
    alone = Cluster({"iris": isvc("3")})
    assert retrain.rollout_in_progress(alone, "ml-serving", "iris", "raw") is None
    assert retrain.rollout_in_progress(alone, "ml-serving", "iris", "serverless") is None
    raw = Cluster({"iris": isvc("3"), "iris-canary": isvc("4")})
    assert retrain.rollout_in_progress(raw, "ml-serving", "iris", "raw") == \
        "a rollout of iris is in progress (the InferenceService iris-canary serves version 4)"
    serverless = Cluster({"iris": isvc("4", canary=10)})
    assert "sends 10% of its requests to version 4" in retrain.rollout_in_progress(serverless, "ml-serving", "iris", "serverless")


def test_the_guard_refuses_during_a_rollout_and_within_the_minimum_interval(retrain):
    now = 1_800_000_000
    assert retrain.guard_verdict(now, None, None, DAY)[0] is True
    assert retrain.guard_verdict(now, None, str(now - DAY), DAY)[0] is True
    proceed, reason = retrain.guard_verdict(now, None, str(now - 3600), DAY)
    assert proceed is False and "started 3600 s ago, less than the minimum interval of 86400 s" in reason
    proceed, reason = retrain.guard_verdict(now, "a rollout of iris is in progress (...)", None, DAY)
    assert proceed is False and reason.startswith("a rollout of iris is in progress") and "promote.yml" in reason
    # A tag that is no number does not block retraining for ever.
    assert retrain.guard_verdict(now, None, "yesterday", DAY)[0] is True


def result(score, serving):
    return {"metric": "accuracy", "score": score, "serving_score": serving, "model_version": "5", "serving_uri": "s3://kserve-models/iris/r"}


def test_a_better_and_a_worse_candidate_get_opposite_decisions(retrain):
    better, reason = retrain.decide_verdict(result(0.97, 0.90), 0.01)
    assert better == "canary" and "accuracy 0.9700 against the serving version's 0.9000" in reason and "+0.0700" in reason
    worse, reason = retrain.decide_verdict(result(0.85, 0.90), 0.01)
    assert worse == "rejected" and "gain of -0.0500, less than the required 0.0100" in reason


def test_a_tie_never_starts_a_canary(retrain):
    assert retrain.decide_verdict(result(0.9, 0.9), 0.01)[0] == "rejected"
    decision, reason = retrain.decide_verdict(result(0.9, 0.9), 0)
    assert decision == "rejected" and reason.endswith("no better than the serving version")
    # Exactly the required gain is enough, however the floats round.
    assert retrain.decide_verdict(result(0.9666666666666667, 0.9566666666666667), 0.01)[0] == "canary"
    assert retrain.decide_verdict(result(0.965, 0.9566666666666667), 0.01)[0] == "rejected"


def test_an_unknown_serving_score_is_no_reason_for_a_canary(retrain):
    decision, reason = retrain.decide_verdict(result(0.99, None), 0.01)
    assert decision == "rejected" and "serving version's accuracy is unknown" in reason
    assert retrain.decide_verdict({"metric": "accuracy"}, 0.01)[0] == "rejected"


def test_the_promote_time_documents_are_filled_in_for_the_new_version(retrain):
    text = '[{"metadata": {"name": "rollout-iris-__RETRAIN_VERSION__"}, "spec": {"storageUri": "__RETRAIN_STORAGE_URI__"}}]'
    assert retrain.filled(text, "7", "s3://kserve-models/iris/retrain-iris-x") == [
        {"metadata": {"name": "rollout-iris-7"}, "spec": {"storageUri": "s3://kserve-models/iris/retrain-iris-x"}}]


def test_the_rest_paths_of_the_kinds_the_steps_touch():
    api = load_script("roles/orchestration/files/platform_api.py")
    assert api.resource_path("cilium.io/v2", "CiliumNetworkPolicy", "ml-serving", "iris-rollout") == \
        "/apis/cilium.io/v2/namespaces/ml-serving/ciliumnetworkpolicies/iris-rollout"
    assert api.resource_path("serving.kserve.io/v1beta1", "InferenceService", "ml-serving") == \
        "/apis/serving.kserve.io/v1beta1/namespaces/ml-serving/inferenceservices"
    assert api.resource_path("v1", "ConfigMap", "ml-training", "x") == "/api/v1/namespaces/ml-training/configmaps/x"


class Registry:
    """MLflow's registry as decide() tags it: every tag kept."""
    tags = {}

    def tag_version(self, model, version, tags):
        Registry.tags[(model, version)] = dict(tags)


@pytest.mark.parametrize("delivery, approval, says", [
    ("gitops", "false", "start its canary with ansible-playbook playbooks/promote.yml -e promote_model=iris -e promote_version=5 "
                        "-e promote_storage_uri=s3://kserve-models/iris/r -e promote_strategy=canary"),
    ("direct", "true", "its canary waits for approval: argo resume retrain-iris-abc (argo stop refuses it)"),
])
def test_decide_records_the_decision_and_says_how_the_canary_starts(retrain, monkeypatch, tmp_path, delivery, approval, says):
    import json

    monkeypatch.setattr(retrain, "MLflow", Registry)
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path))
    env = {"MODEL": "iris", "RESULT": json.dumps(result(0.97, 0.9)), "MIN_IMPROVEMENT": "0.01", "DELIVERY": delivery, "APPROVAL": approval,
           "TRIGGER": "drift", "WORKFLOW_NAME": "retrain-iris-abc"}
    assert retrain.decide(env) == 0
    outputs = {f.name: f.read_text() for f in tmp_path.iterdir()}
    assert outputs["decision"] == "canary" and outputs["version"] == "5" and outputs["storage-uri"] == "s3://kserve-models/iris/r"
    assert says in outputs["reason"]
    assert Registry.tags[("iris", "5")] == {"retrain_decision": "canary", "retrain_reason": outputs["reason"], "retrain_trigger": "drift",
                                            "retrain_workflow": "retrain-iris-abc"}
