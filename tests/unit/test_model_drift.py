"""Unit tests of the drift computation of the model-drift step
(roles/orchestration/files/model_drift.py), on samples the tests make: a shifted and an
unshifted sample of the same reference get opposite decisions, by each of Evidently's
default tests the step reimplements; the logged requests are read back into rows in
both of KServe's protocols; and the drift settings preflight checks
(plugins/filter/orchestration_rollout.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import orchestration_rollout as ro
from conftest import load_script

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
SETTINGS = {"orchestration_drift_schedule": "0 * * * *", "orchestration_drift_window": "24h", "orchestration_drift_min_rows": 100,
            "orchestration_drift_p_value": 0.05, "orchestration_drift_distance": 0.1, "orchestration_drift_share": 0.5}


@pytest.fixture(scope="module")
def drift():
    return load_script("roles/orchestration/files/model_drift.py")


def iris_like(rng, rows, shift=0.0):
    """Rows like iris's four measurements (means and spreads of the data set), shifted by shift
    standard deviations, and a class per row."""
    means, spreads = np.array([5.84, 3.06, 3.76, 1.2]), np.array([0.83, 0.44, 1.77, 0.76])
    data = rng.normal(means + shift * spreads, spreads, size=(rows, 4))
    return data, rng.integers(0, 3, size=rows)


def reference(rng, rows=120):
    data, classes = iris_like(rng, rows)
    return {"features": FEATURES, "rows": data.tolist(), "predictions": classes.tolist(), "categorical": [], "prediction_type": "categorical"}


def test_a_shifted_sample_drifts_and_an_unshifted_one_does_not(drift):
    rng = np.random.default_rng(19)
    ref = reference(rng)
    same, same_classes = iris_like(rng, 300)
    moved, _ = iris_like(rng, 300, shift=1.5)
    # The shifted requests are also answered with one class far more often.
    moved_classes = rng.choice(3, size=300, p=[0.8, 0.1, 0.1])
    calm = drift.drift_report(ref, same.tolist(), same_classes.tolist(), min_rows=100)
    alarm = drift.drift_report(ref, moved.tolist(), moved_classes.tolist(), min_rows=100)
    assert calm["status"] == alarm["status"] == "judged"
    assert calm["data_drift"] is False and calm["drift_share"] < 0.5 and calm["prediction"]["drifted"] is False
    assert alarm["data_drift"] is True and alarm["drift_share"] == 1.0 and alarm["prediction"]["drifted"] is True
    # 120 reference rows of continuous values: Kolmogorov-Smirnov per feature, chi-square for the 3 classes.
    assert {r["method"] for r in alarm["features"].values()} == {"ks"} and alarm["prediction"]["method"] == "chisquare"
    assert all(r["score"] < 0.001 for r in alarm["features"].values())
    assert json.loads(json.dumps(alarm)) == alarm  # what is posted and logged is plain JSON


def test_one_drifted_feature_of_four_is_below_the_default_share(drift):
    rng = np.random.default_rng(7)
    ref = reference(rng)
    current, classes = iris_like(rng, 300)
    current[:, 2] += 3 * 1.77
    report = drift.drift_report(ref, current.tolist(), classes.tolist(), min_rows=100)
    assert [name for name, r in report["features"].items() if r["drifted"]] == ["petal length (cm)"]
    assert report["drift_share"] == 0.25 and report["data_drift"] is False
    assert drift.drift_report(ref, current.tolist(), classes.tolist(), drift_share=0.25, min_rows=100)["data_drift"] is True


@pytest.mark.parametrize("rows, categorical, values, method", [
    (500, False, None, "ks"),            # small reference, numerical: Kolmogorov-Smirnov (p-value)
    (2000, False, None, "wasserstein"),  # large reference, numerical: Wasserstein distance, normed
    (500, True, 3, "chisquare"),         # small reference, categorical of 3 values: chi-square (p-value)
    (500, True, 2, "z"),                 # small reference, 2 values: z-test of two proportions (p-value)
    (2000, True, 3, "jensenshannon"),    # large reference, categorical: Jensen-Shannon distance
    (2000, False, 4, "jensenshannon"),   # large reference, numerical of few values: Jensen-Shannon
])
def test_each_default_test_gives_opposite_decisions_on_shifted_and_unshifted_samples(drift, rows, categorical, values, method):
    rng = np.random.default_rng(rows + (values or 0))
    if values is None:
        ref, same, moved = rng.normal(0, 1, rows), rng.normal(0, 1, 400), rng.normal(0.8, 1, 400)
    else:
        # Unshifted: the reference's proportions exactly (a random draw would be flagged in 5% of
        # draws by design of a 0.05 test); shifted: one value takes 70%.
        weights = np.full(values, 1 / values)
        skewed = np.array([0.7] + [0.3 / (values - 1)] * (values - 1))
        ref, same, moved = rng.choice(values, rows, p=weights), rng.permutation(np.arange(396) % values), rng.choice(values, 400, p=skewed)
    calm = drift.column_drift(ref, same, categorical)
    alarm = drift.column_drift(ref, moved, categorical)
    assert calm["method"] == alarm["method"] == method
    assert calm["drifted"] is False and alarm["drifted"] is True, (calm, alarm)
    # p-values fall with drift, distances rise; each against its own default threshold.
    if method in ("ks", "chisquare", "z"):
        assert alarm["score"] < 0.05 <= calm["score"] and alarm["threshold"] == 0.05
    else:
        assert calm["score"] < 0.1 <= alarm["score"] and alarm["threshold"] == 0.1


def test_too_few_logged_requests_decide_nothing(drift):
    rng = np.random.default_rng(3)
    report = drift.drift_report(reference(rng), iris_like(rng, 20, shift=3)[0].tolist(), [], min_rows=100)
    assert report["status"] == "too-few-rows" and "20 logged requests in the window, fewer than 100" in report["reason"]
    assert "data_drift" not in report


def test_logged_requests_are_read_back_in_both_protocols(drift):
    v1 = [{"id": "a", "kind": "request", "json": {"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}},
          {"id": "a", "kind": "response", "json": {"predictions": [0, 1]}},
          {"id": "b", "kind": "request", "json": {"instances": [dict(zip(FEATURES, [7.7, 3.0, 6.1, 2.3]))]}},
          {"id": "b", "kind": "response", "json": {"predictions": [2]}},
          # A response whose request is not in the window, and a payload kept as base64: neither counts.
          {"id": "c", "kind": "response", "json": {"predictions": [1]}},
          {"id": "d", "kind": "request", "base64": "AAEC"}]
    rows, predictions = drift.window_records(v1, FEATURES)
    assert rows == [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]] and predictions == [0, 1, 2]
    v2 = [{"id": "e", "kind": "request", "json": {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                                                              "data": [5.1, 3.5, 1.4, 0.2, 6.2, 2.9, 4.3, 1.3]}]}},
          {"id": "e", "kind": "response", "json": {"outputs": [{"name": "output-0", "shape": [2], "datatype": "INT64", "data": [0, 1]}]}}]
    assert drift.window_records(v2, FEATURES) == ([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]], [0, 1])


class Listing:
    """The two S3 calls read_window makes, over objects the test lays out."""

    def __init__(self, objects):
        self.objects = objects  # key -> (last modified, records)

    def get_paginator(self, _):
        return self

    def paginate(self, Bucket, Prefix):  # noqa: N803 - boto3's names
        return [{"Contents": [{"Key": k, "LastModified": t} for k, (t, _) in sorted(self.objects.items()) if k.startswith(Prefix)]}]

    def get_object(self, Bucket, Key):  # noqa: N803
        body = "".join(json.dumps(r) + "\n" for r in self.objects[Key][1]).encode()
        return {"Body": type("Body", (), {"read": lambda self: body})()}


def test_the_window_reads_the_models_own_batches_of_the_hours_it_covers(drift):
    now = datetime(2026, 12, 6, 10, 30, tzinfo=timezone.utc)
    record = lambda i: {"id": str(i), "kind": "request", "json": {"instances": [[i, 0, 0, 0]]}}  # noqa: E731
    store = Listing({
        "iris/2026/12/06/08/old.jsonl": (now - timedelta(hours=2, minutes=10), [record(1)]),   # before the window
        "iris/2026/12/06/09/a.jsonl": (now - timedelta(minutes=50), [record(2)]),
        "iris/2026/12/06/10/b.jsonl": (now - timedelta(minutes=5), [record(3), record(4)]),
        "iris-canary/2026/12/06/10/c.jsonl": (now - timedelta(minutes=5), [record(5)]),        # another InferenceService
    })
    records = drift.read_window(store, "inference-logs", "iris", 3600, now=now)
    assert sorted(r["id"] for r in records) == ["2", "3", "4"]


def test_the_default_drift_settings_pass():
    assert ro.drift_problems(SETTINGS) == []
    assert ro.drift_problems(dict(SETTINGS, orchestration_drift_schedule="@daily")) == []


@pytest.mark.parametrize("change, expect", [
    ({"orchestration_drift_schedule": "0 0 * * * *"}, "orchestration_drift_schedule: '0 0 * * * *' is not a five-field cron schedule"),
    ({"orchestration_drift_schedule": "hourly"}, "orchestration_drift_schedule: 'hourly'"),
    ({"orchestration_drift_window": "1 day"}, "orchestration_drift_window: '1 day' is not a duration"),
    ({"orchestration_drift_min_rows": 5}, "orchestration_drift_min_rows: 5 must be a whole number of at least 10"),
    ({"orchestration_drift_share": 50}, "orchestration_drift_share: 50 must be a fraction of the features above 0 and at most 1"),
    ({"orchestration_drift_share": 0}, "orchestration_drift_share: 0 must be a fraction"),
    ({"orchestration_drift_p_value": 5}, "orchestration_drift_p_value: 5 must be a significance level between 0 and 1"),
    ({"orchestration_drift_distance": -0.1}, "orchestration_drift_distance: -0.1 must be a positive distance"),
])
def test_bad_drift_settings_are_named_with_their_fix(change, expect):
    found = ro.drift_problems(dict(SETTINGS, **change))
    assert len(found) == 1 and found[0].startswith(expect) and "Fix:" in found[0], found


def test_durations_become_seconds():
    assert [ro.duration_seconds(v) for v in ("30s", "10m", "24h", "1 day", "0h")] == [30, 600, 86400, None, None]


# ---- automated retraining's settings (docs/lifecycle.md, "Automated retraining")

RETRAIN = {"orchestration_retrain_on_drift": True, "orchestration_retrain_schedule": "", "orchestration_retrain_min_interval": "24h",
           "orchestration_retrain_min_improvement": 0.01, "orchestration_retrain_approval": False, "orchestration_retrain_models": {}}


def test_the_default_retraining_settings_pass_and_apply_to_every_model():
    assert ro.retrain_problems(RETRAIN) == []
    good = {"iris": {"on_drift": False, "schedule": "@weekly", "approval": True, "template": "train-iris", "data_uri": ""},
            "fraud": {"data_uri": "s3://training-datasets/fraud/2026-12.csv"}}
    assert ro.retrain_problems(dict(RETRAIN, orchestration_retrain_models=good)) == []
    assert ro.retrain_settings(RETRAIN, "fraud") == {
        "on_drift": True, "schedule": "", "approval": False, "template": "train-fraud", "data_uri": "s3://training-datasets/fraud/current.csv",
        "min_interval_seconds": 86400, "min_improvement": 0.01, "enabled": True}
    iris = ro.retrain_settings(dict(RETRAIN, orchestration_retrain_models=good), "iris")
    assert (iris["on_drift"], iris["schedule"], iris["approval"], iris["data_uri"], iris["enabled"]) == (False, "@weekly", True, "", True)
    off = ro.retrain_settings(dict(RETRAIN, orchestration_retrain_on_drift=False), "iris")
    assert off["enabled"] is False
    # As -e orchestration_retrain_on_drift=false gives it: a string.
    assert ro.retrain_problems(dict(RETRAIN, orchestration_retrain_on_drift="false")) == []
    assert ro.retrain_settings(dict(RETRAIN, orchestration_retrain_on_drift="false"), "iris")["enabled"] is False


@pytest.mark.parametrize("change, expect", [
    ({"orchestration_retrain_on_drift": "yes"}, "orchestration_retrain_on_drift: 'yes' must be true or false"),
    ({"orchestration_retrain_schedule": "weekly"}, "orchestration_retrain_schedule: 'weekly' is not a five-field cron schedule"),
    ({"orchestration_retrain_min_interval": "1 day"}, "orchestration_retrain_min_interval: '1 day' is not a duration"),
    ({"orchestration_retrain_min_improvement": 1}, "orchestration_retrain_min_improvement: 1 must be a fraction from 0 to below 1"),
    ({"orchestration_retrain_models": ["iris"]}, "orchestration_retrain_models: ['iris'] must be a mapping"),
    ({"orchestration_retrain_models": {"iris": {"aproval": True}}}, "orchestration_retrain_models.iris: 'aproval' is not a retraining setting"),
    ({"orchestration_retrain_models": {"iris": {"approval": "no"}}}, "orchestration_retrain_models.iris.approval: 'no' must be true or false"),
    ({"orchestration_retrain_models": {"iris": {"template": "Train_Iris"}}}, "orchestration_retrain_models.iris.template: 'Train_Iris' must be"),
    ({"orchestration_retrain_models": {"iris": {"data_uri": "s3://kserve-models/iris/x.csv"}}},
     "orchestration_retrain_models.iris.data_uri: 's3://kserve-models/iris/x.csv' must be a CSV file in the training-datasets bucket"),
    ({"orchestration_retrain_models": {"iris": "approval"}}, "orchestration_retrain_models.iris: 'approval' must be a mapping"),
])
def test_bad_retraining_settings_are_named_with_their_fix(change, expect):
    found = ro.retrain_problems(dict(RETRAIN, **change))
    assert len(found) == 1 and found[0].startswith(expect) and "Fix:" in found[0], found
