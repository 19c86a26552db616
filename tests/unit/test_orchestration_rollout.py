"""Unit tests of model rollouts: the settings preflight checks and the plan promote.yml
makes (plugins/filter/orchestration_rollout.py), and the decision the rollout-analysis
step takes on what Prometheus measured (roles/orchestration/files/rollout_analysis.py),
on candidates the tests make."""

from __future__ import annotations


import pytest

import orchestration_rollout as ro
from conftest import load_script

SETTINGS = {
    "orchestration_rollout_canary_percent": 10,
    "orchestration_rollout_steps": [25, 50],
    "orchestration_rollout_window": "10m",
    "orchestration_rollout_max_error_rate": 0.01,
    "orchestration_rollout_max_latency_p95_seconds": 0.5,
    "orchestration_rollout_min_requests": 20,
}
THRESHOLDS = {"max_error_rate": 0.01, "max_latency_p95_seconds": 0.5, "min_requests": 20}


@pytest.fixture(scope="module")
def analysis():
    return load_script("roles/orchestration/files/rollout_analysis.py")


def isvc(name, version, uri, annotations=None, canary=None):
    predictor = {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return {"kind": "InferenceService", "metadata": {"name": name, "annotations": {"platform.ml/model-version": version, **(annotations or {})}},
            "spec": {"predictor": predictor}}


def test_the_default_rollout_settings_pass():
    assert ro.rollout_problems(SETTINGS) == []


@pytest.mark.parametrize("change, expect", [
    ({"orchestration_rollout_canary_percent": 0}, "orchestration_rollout_canary_percent: 0 must be a whole percentage from 1 to 99"),
    ({"orchestration_rollout_canary_percent": "ten"}, "orchestration_rollout_canary_percent: 'ten'"),
    ({"orchestration_rollout_steps": "25,50"}, "orchestration_rollout_steps: '25,50' must be a list"),
    ({"orchestration_rollout_steps": [25, 100]}, "must hold whole percentages from 1 to 99"),
    ({"orchestration_rollout_steps": [50, 25]}, "must rise step by step"),
    ({"orchestration_rollout_steps": [5, 50]}, "the first step 5 must be above orchestration_rollout_canary_percent (10)"),
    ({"orchestration_rollout_window": "10 minutes"}, "orchestration_rollout_window: '10 minutes' is not a Prometheus duration"),
    ({"orchestration_rollout_window": "0m"}, "orchestration_rollout_window: '0m'"),
    ({"orchestration_rollout_max_error_rate": 5}, "must be a fraction of requests from 0 to below 1"),
    ({"orchestration_rollout_max_latency_p95_seconds": -1}, "must be a positive number of seconds"),
    ({"orchestration_rollout_min_requests": 0}, "orchestration_rollout_min_requests: 0 must be a whole number of at least 1"),
    ({"orchestration_rollout_min_requests": True}, "orchestration_rollout_min_requests: True"),
])
def test_bad_rollout_settings_are_named_with_their_fix(change, expect):
    found = ro.rollout_problems(dict(SETTINGS, **change))
    assert len(found) == 1 and expect in found[0] and "Fix:" in found[0], found


REQUEST = {"model": "iris", "version": "4", "storage_uri": "s3://kserve-models/iris/b", "format": "sklearn", "canary_percent": 10, "ab_weight": 50}
SERVING = [isvc("iris", "3", "s3://kserve-models/iris/a")]


def test_replace_serves_the_version_alone_whatever_serves_now():
    plan = ro.promote_plan(dict(REQUEST, strategy="replace"), SERVING)
    assert plan["problems"] == [] and plan["candidate"] is None and plan["weight"] == 0
    assert plan["stable"] == {"version": "4", "storage_uri": "s3://kserve-models/iris/b", "format": "sklearn"}


@pytest.mark.parametrize("strategy, weight", [("canary", 10), ("ab", 50)])
def test_a_canary_or_ab_keeps_the_serving_version_beside_the_new_one(strategy, weight):
    plan = ro.promote_plan(dict(REQUEST, strategy=strategy), SERVING)
    assert plan["problems"] == [] and plan["weight"] == weight
    assert plan["stable"] == {"version": "3", "storage_uri": "s3://kserve-models/iris/a", "format": "sklearn"}
    assert plan["candidate"]["version"] == "4"
    # Stepping up: the same promotion again with a larger share reads the same stable version.
    again = ro.promote_plan(dict(REQUEST, strategy="canary", canary_percent=50), SERVING + [isvc("iris-canary", "4", "s3://kserve-models/iris/b")])
    assert again["stable"]["version"] == "3" and again["weight"] == 50


def test_rollback_keeps_the_stable_version_in_both_modes():
    raw = ro.promote_plan({"model": "iris", "strategy": "rollback"}, SERVING + [isvc("iris-canary", "4", "s3://kserve-models/iris/b")])
    assert raw["problems"] == [] and raw["stable"]["version"] == "3" and raw["candidate"] is None
    annotations = {"platform.ml/stable-version": "3", "platform.ml/stable-storage-uri": "s3://kserve-models/iris/a"}
    serverless = [isvc("iris", "4", "s3://kserve-models/iris/b", annotations, canary=10)]
    assert ro.current_rollout("iris", serverless, "serverless")[2] == 10
    plan = ro.promote_plan({"model": "iris", "strategy": "rollback"}, serverless, "serverless")
    assert plan["problems"] == [] and plan["stable"] == {"version": "3", "storage_uri": "s3://kserve-models/iris/a", "format": "sklearn"}


@pytest.mark.parametrize("request_change, current, expect", [
    ({"strategy": "blue-green"}, SERVING, "promote_strategy: 'blue-green' is not one of replace, canary, ab, rollback"),
    ({"strategy": "canary"}, [], "nothing serves iris yet, so there is no version to split traffic with"),
    ({"strategy": "rollback"}, [], "nothing serves iris yet, so there is no version to roll back to"),
    ({"strategy": "rollback"}, SERVING, "no rollout of iris is running (version 3 alone serves it)"),
    ({"strategy": "canary", "version": "3"}, SERVING, "promote_version: 3 is the version serving iris already"),
    ({"strategy": "canary", "canary_percent": 100}, SERVING, "promote_canary_percent: 100 must be a whole percentage from 1 to 99"),
    ({"strategy": "ab", "ab_weight": 0}, SERVING, "promote_ab_weight: 0 must be a whole percentage"),
    ({"strategy": "canary", "model": "a" * 40}, [isvc("a" * 40, "3", "s3://x/y")], "must be a DNS label of at most 38 characters for a canary"),
])
def test_a_promotion_that_cannot_be_made_is_named(request_change, current, expect):
    plan = ro.promote_plan(dict(REQUEST, **request_change), current)
    assert any(expect in problem for problem in plan["problems"]), plan["problems"]
    assert all("Fix:" in problem for problem in plan["problems"])


def test_a_good_and_a_bad_candidate_get_opposite_decisions(analysis):
    good = {"requests": 600.0, "errors": 2.0, "latency_p95": 0.08}
    decision, reason = analysis.decide(good, THRESHOLDS)
    assert decision == "promote" and "0.33%" in reason
    failing = dict(good, errors=30.0)
    decision, reason = analysis.decide(failing, THRESHOLDS)
    assert decision == "rollback" and reason == "error rate 5.00% is above the allowed 1.00%"
    slow = dict(good, latency_p95=0.9)
    decision, reason = analysis.decide(slow, THRESHOLDS)
    assert decision == "rollback" and reason == "latency p95 0.900s is above the allowed 0.5s"


def test_a_candidate_that_cannot_be_judged_is_rolled_back(analysis):
    assert analysis.decide({"requests": 5.0, "errors": 0.0, "latency_p95": 0.01}, THRESHOLDS)[0] == "rollback"
    assert analysis.decide({"requests": None, "errors": None, "latency_p95": None}, THRESHOLDS)[0] == "rollback"
    decision, reason = analysis.decide({"requests": 100.0, "errors": 0.0, "latency_p95": None}, THRESHOLDS)
    assert decision == "rollback" and "no prediction latency" in reason
    # Exactly at the thresholds passes; they are maxima.
    assert analysis.decide({"requests": 20.0, "errors": 0.2, "latency_p95": 0.5}, THRESHOLDS)[0] == "promote"
    assert analysis.seconds("10m") == 600 and analysis.seconds("1h") == 3600 and analysis.seconds("30s") == 30
