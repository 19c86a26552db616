"""The model-drift WorkflowTemplate's step: compare the inputs a served model was asked
over the last window (KServe's logger, written by the inference-logger into the
inference-logs bucket) with the training reference stored with the model version in
MLflow, per feature, and its predictions with the reference's; write the report to
MLflow as an artifact of a run in the experiment model-drift, tag the model version
with the outcome, and post the scores to the inference-logger, whose /metrics
Prometheus scrapes (ModelDataDrift, ModelPredictionDrift).

The statistics are Evidently's data-drift defaults (evidently 0.7.23,
legacy/calculations/stattests/registry.py _get_default_stattest), computed here with
numpy and scipy because the platform's MLflow image, which runs this step, does not
carry Evidently (nor its dependencies: litestar, nltk, statsmodels, plotly), and an
air-gapped site cannot install it at run time. For each column:
- reference of at most 1000 rows: numerical with more than 5 values, the two-sample
  Kolmogorov-Smirnov test; otherwise chi-square (more than 2 values) or the z-test of
  two proportions; drift when the p-value is below P_VALUE (0.05);
- more rows: numerical with more than 5 values, the Wasserstein distance normed by the
  reference's standard deviation; otherwise the Jensen-Shannon distance of the value
  frequencies; drift when the distance is at least DISTANCE (0.1).
The dataset drifted when at least DRIFT_SHARE (0.5) of the features did.

Reads (environment): MODEL, VERSION (the registered model and version serving it),
LOG_BUCKET, WINDOW_SECONDS, MIN_ROWS, DRIFT_SHARE, P_VALUE, DISTANCE, LOGGER_URL
(the inference-logger), WORKFLOW_NAME, EXPERIMENT; MLflow's address and login and the
training user's S3 keys (the mlflow-client Secret). The reference is the artifact
reference/reference.json of the version's run (train_iris.py logs it): {"features":
[names], "rows": [[values]], "predictions": [values], "categorical": [names]}.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import numpy as np
from scipy import stats
from scipy.spatial import distance

REFERENCE_ARTIFACT = "reference/reference.json"
SMALL_REFERENCE = 1000


# --- the statistics (Evidently's defaults) -------------------------------------------

def _counts(reference, current):
    keys = sorted(set(reference) | set(current), key=str)
    ref = np.array([sum(1 for v in reference if v == k) for k in keys], dtype=float)
    cur = np.array([sum(1 for v in current if v == k) for k in keys], dtype=float)
    return keys, ref, cur


def chi_square(reference, current):
    """p-value of the chi-square test of current's frequencies against reference's."""
    _, ref, cur = _counts(reference, current)
    expected = ref * (len(current) / len(reference))
    return float(stats.chisquare(cur, expected)[1])


def z_proportions(reference, current):
    """p-value of the two-sided z-test of two proportions (a column of at most 2 values)."""
    keys = sorted(set(reference) | set(current), key=str)
    if len(keys) == 1:
        return 1.0
    p1 = sum(1 for v in reference if v != keys[0]) / len(reference)
    p2 = sum(1 for v in current if v != keys[0]) / len(current)
    pooled = (p1 * len(reference) + p2 * len(current)) / (len(reference) + len(current))
    spread = math.sqrt(pooled * (1 - pooled) * (1 / len(reference) + 1 / len(current)))
    if spread == 0:
        return 1.0
    return float(2 * stats.norm.sf(abs((p1 - p2) / spread)))


def wasserstein_normed(reference, current):
    norm = max(float(np.std(reference)), 0.001)
    return float(stats.wasserstein_distance(reference, current) / norm)


def jensen_shannon(reference, current, numerical):
    """Jensen-Shannon distance of the two samples' frequencies: over Sturges bins of both
    for a numerical column of more than 20 values, else over the values."""
    if numerical and len(set(reference)) > 20:
        bins = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        ref = np.histogram(reference, bins)[0] / len(reference)
        cur = np.histogram(current, bins)[0] / len(current)
    else:
        _, ref, cur = _counts(list(reference), list(current))
        ref, cur = ref / len(reference), cur / len(current)
    return float(distance.jensenshannon(ref, cur))


def column_drift(reference, current, categorical=False, p_value=0.05, distance_threshold=0.1):
    """{method, score, threshold, drifted} of one column, by Evidently's default choice."""
    values = len(set(list(reference) + list(current)))
    numerical = not categorical
    if len(reference) <= SMALL_REFERENCE:
        if numerical and values > 5:
            method, score = "ks", float(stats.ks_2samp(reference, current)[1])
            return {"method": method, "score": score, "threshold": p_value, "drifted": score <= p_value}
        method = "chisquare" if values > 2 else "z"
        score = chi_square(list(reference), list(current)) if values > 2 else z_proportions(list(reference), list(current))
        return {"method": method, "score": score, "threshold": p_value, "drifted": score < p_value}
    if numerical and values > 5:
        method, score = "wasserstein", wasserstein_normed(reference, current)
    else:
        method, score = "jensenshannon", jensen_shannon(np.asarray(reference), np.asarray(current), numerical)
    return {"method": method, "score": score, "threshold": distance_threshold, "drifted": score >= distance_threshold}


def drift_report(reference, current_rows, current_predictions, drift_share=0.5, p_value=0.05, distance_threshold=0.1, min_rows=30):
    """The drift of current (rows of feature values in reference's order, and the
    predictions made for them) from reference ({features, rows, predictions,
    categorical}). status: judged, or too-few-rows (nothing decided)."""
    features = list(reference["features"])
    report = {"rows": len(current_rows), "reference_rows": len(reference["rows"]), "drift_share_threshold": drift_share}
    if len(current_rows) < min_rows:
        return {**report, "status": "too-few-rows", "reason": f"{len(current_rows)} logged requests in the window, fewer than {min_rows}"}
    ref = np.asarray(reference["rows"], dtype=float)
    cur = np.asarray(current_rows, dtype=float)
    categorical = set(reference.get("categorical", []))
    results = {name: column_drift(ref[:, i], cur[:, i], name in categorical, p_value, distance_threshold) for i, name in enumerate(features)}
    share = sum(1 for r in results.values() if r["drifted"]) / len(features)
    report.update(status="judged", features=results, drift_share=share, data_drift=share >= drift_share)
    if reference.get("predictions") and current_predictions:
        report["prediction"] = column_drift(list(reference["predictions"]), list(current_predictions),
                                            reference.get("prediction_type", "categorical") == "categorical", p_value, distance_threshold)
    return report


# --- the logged requests -----------------------------------------------------------

def _rows_of(payload, features):
    """Feature rows of a logged request: KServe's v1 ({"instances": [[...]] or [{name: value}]})
    or Open Inference Protocol v2 ({"inputs": [{"shape", "data"}]}) body."""
    if isinstance(payload, dict) and "instances" in payload:
        rows = []
        for instance in payload["instances"]:
            rows.append([instance[f] for f in features] if isinstance(instance, dict) else list(instance))
        return rows
    if isinstance(payload, dict) and "inputs" in payload:
        tensor = payload["inputs"][0]
        data = np.asarray(tensor["data"], dtype=float).reshape(tensor.get("shape") or (-1, len(features)))
        return data.reshape(-1, len(features)).tolist()
    return []


def _predictions_of(payload):
    if isinstance(payload, dict) and "predictions" in payload:
        return list(payload["predictions"])
    if isinstance(payload, dict) and "outputs" in payload:
        return list(np.asarray(payload["outputs"][0]["data"]).ravel().tolist())
    return []


def window_records(records, features):
    """(rows, predictions) of logged records: requests give rows, responses predictions,
    each counted only where the request's row count matches (joined by event id)."""
    requests, responses = {}, {}
    for record in records:
        if "json" not in record:
            continue
        if record["kind"] == "request":
            requests[record["id"]] = _rows_of(record["json"], features)
        elif record["kind"] == "response":
            responses[record["id"]] = _predictions_of(record["json"])
    rows = [row for event in requests.values() for row in event if len(row) == len(features)]
    predictions = [p for event_id, preds in responses.items() if len(preds) == len(requests.get(event_id, [])) for p in preds]
    return rows, predictions


def read_window(s3, bucket, model, window_seconds, now=None):
    """The records the inference-logger wrote for model's InferenceService in the window:
    the batches under <model>/<hour>/ of each hour it covers, written since its start."""
    now = now or datetime.now(timezone.utc)
    start = now - timedelta(seconds=window_seconds)
    records, hour = [], start.replace(minute=0, second=0, microsecond=0)
    while hour <= now:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{model}/{hour:%Y/%m/%d/%H}/"):
            for item in page.get("Contents", []):
                if item["LastModified"] >= start:
                    body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
                    records += [json.loads(line) for line in body.splitlines() if line.strip()]
        hour += timedelta(hours=1)
    return records


# --- the report, in MLflow and Prometheus --------------------------------------------

def html_report(model, version, report):
    rows = "".join(f"<tr><td>{name}</td><td>{r['method']}</td><td>{r['score']:.4g}</td><td>{r['threshold']}</td><td>{'yes' if r['drifted'] else 'no'}</td></tr>"
                   for name, r in report.get("features", {}).items())
    prediction = report.get("prediction")
    if prediction:
        rows += (f"<tr><td><b>prediction</b></td><td>{prediction['method']}</td><td>{prediction['score']:.4g}</td>"
                 f"<td>{prediction['threshold']}</td><td>{'yes' if prediction['drifted'] else 'no'}</td></tr>")
    verdict = report.get("reason") or (f"data drift: {'yes' if report['data_drift'] else 'no'} "
                                       f"({report['drift_share']:.0%} of the features drifted; threshold {report['drift_share_threshold']:.0%})")
    return (f"<html><head><title>Drift of {model} version {version}</title></head><body><h1>Drift of {model} version {version}</h1>"
            f"<p>{report['rows']} logged requests against {report['reference_rows']} reference rows. {verdict}</p>"
            f"<table border='1'><tr><th>column</th><th>method</th><th>score</th><th>threshold</th><th>drifted</th></tr>{rows}</table></body></html>")


def post(url, document):
    request = urllib.request.Request(url, data=json.dumps(document).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def main():
    import boto3
    import mlflow
    from mlflow import MlflowClient

    model, version = os.environ["MODEL"], os.environ["VERSION"]
    client = MlflowClient()
    run_id = client.get_model_version(model, version).run_id
    with tempfile.TemporaryDirectory() as work:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=work)
        except Exception as err:  # noqa: BLE001 - said plainly, then the step fails
            print(f"{model} version {version} has no training reference ({REFERENCE_ARTIFACT} of run {run_id}: {err}); "
                  "log one with the model (train_iris.py does), or promote it with -e promote_drift=false", file=sys.stderr)
            return 2
        with open(path) as handle:
            reference = json.load(handle)
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    records = read_window(s3, os.environ["LOG_BUCKET"], model, int(os.environ["WINDOW_SECONDS"]))
    rows, predictions = window_records(records, reference["features"])
    report = drift_report(reference, rows, predictions, float(os.environ.get("DRIFT_SHARE", "0.5")), float(os.environ.get("P_VALUE", "0.05")),
                          float(os.environ.get("DISTANCE", "0.1")), int(os.environ.get("MIN_ROWS", "30")))
    report.update(model=model, version=str(version), timestamp=int(time.time()), workflow=os.environ.get("WORKFLOW_NAME", ""))
    mlflow.set_experiment(os.environ.get("EXPERIMENT", "model-drift"))
    with mlflow.start_run(run_name=f"{model}-v{version}-{os.environ.get('WORKFLOW_NAME', report['timestamp'])}") as run:
        mlflow.set_tags({"model": model, "model_version": str(version), "drift_status": report["status"]})
        mlflow.log_metric("rows", report["rows"])
        if report["status"] == "judged":
            mlflow.log_metrics({"drift_share": report["drift_share"], "data_drift": int(report["data_drift"]),
                                **({"prediction_drift": int(report["prediction"]["drifted"])} if "prediction" in report else {})})
            # MLflow's metric names allow letters, digits, _ - . / and spaces.
            mlflow.log_metrics({"drift_score/" + re.sub(r"[^A-Za-z0-9_\-. /]", "_", name): result["score"]
                                for name, result in report["features"].items()})
        mlflow.log_dict(report, "drift/report.json")
        mlflow.log_text(html_report(model, version, report), "drift/report.html")
        report["run_id"] = run.info.run_id
    client.set_model_version_tag(model, version, "drift_status", report["status"])
    client.set_model_version_tag(model, version, "drift_run", report["run_id"])
    if report["status"] == "judged":
        client.set_model_version_tag(model, version, "drift_detected", str(bool(report["data_drift"] or report.get("prediction", {}).get("drifted"))).lower())
    post(f"{os.environ['LOGGER_URL'].rstrip('/')}/drift/{model}", report)
    print(json.dumps({k: v for k, v in report.items() if k != "features"}))
    # Whether the inputs drifted, for the drift job's next step (the model's retraining).
    if os.environ.get("DRIFTED_FILE"):
        with open(os.environ["DRIFTED_FILE"], "w") as handle:
            handle.write(str(report["status"] == "judged" and bool(report["data_drift"])).lower())
    result_file = os.environ.get("RESULT_FILE")
    if result_file:
        with open(result_file, "w") as handle:
            json.dump({k: v for k, v in report.items() if k != "features"}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
