"""The inference-logger (roles/serving/files/inference_logger.py) run as the serving
layer runs it, against moto's S3 server on 127.0.0.1, fed real CloudEvent HTTP posts
in the binary mode KServe v0.20's agent sends (pkg/logger/worker.go: the payload as
the body, the attributes as ce-* headers): the events of each InferenceService land
in batches under its own prefix, none is lost when the object store refuses a batch
or when the logger stops, and /metrics serves the drift reports the drift job posts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, free_port, moto_s3

SCRIPT = ROOT / "roles" / "serving" / "files" / "inference_logger.py"
KEYS = {"AWS_ACCESS_KEY_ID": "inference-logger", "AWS_SECRET_ACCESS_KEY": "secret-for-the-test", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def object_store():
    yield from moto_s3()


def start(endpoint, bucket, **env):
    port = free_port()
    process = subprocess.Popen([sys.executable, str(SCRIPT)], env={
        **os.environ, **KEYS, "AWS_ENDPOINT_URL": endpoint, "LOG_BUCKET": bucket, "PORT": str(port), "WRITER": "logger-0", **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return process, url
        except OSError:
            if process.poll() is not None:
                pytest.fail(process.stdout.read())
            time.sleep(0.05)
    process.kill()
    pytest.fail("the inference-logger did not listen")


def stop(process):
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    return out


def post_event(url, isvc, event_id, kind, payload):
    """One CloudEvent as KServe's agent posts it (binary mode)."""
    headers = {
        "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": event_id,
        "ce-type": f"org.kubeflow.serving.inference.{kind}", "ce-source": "http://localhost:9081/",
        "ce-time": "2026-12-06T10:00:00Z", "ce-recordedtime": "2026-12-06T10:00:00.1Z",
        "ce-inferenceservicename": isvc, "ce-namespace": "ml-serving", "ce-component": "predictor", "ce-endpoint": "default",
    }
    request = urllib.request.Request(url + "/", data=json.dumps(payload).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def logged(client, bucket, prefix=""):
    """Every record written under prefix, and the batches' keys."""
    records, keys = [], []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            keys.append(item["Key"])
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            records += [json.loads(line) for line in body.splitlines()]
    return records, keys


def metrics(url):
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        return response.read().decode()


def test_every_event_lands_in_a_batch_under_its_inferenceservice(object_store):
    endpoint, client = object_store
    client.create_bucket(Bucket="logs-a")
    process, url = start(endpoint, "logs-a", BATCH_EVENTS="25", FLUSH_SECONDS="0.5")
    sent = []

    def send(i):
        isvc = ("iris", "iris-canary", "fraud")[i % 3]
        post_event(url, isvc, f"req-{i}", "request", {"instances": [[5.1, 3.5, 1.4, i / 10]]})
        post_event(url, isvc, f"req-{i}", "response", {"predictions": [i % 3]})
        return isvc, f"req-{i}"

    try:
        with ThreadPoolExecutor(8) as pool:
            sent = list(pool.map(send, range(300)))
        # Batches are written while events keep arriving; the rest when the logger stops.
    finally:
        out = stop(process)
    assert "stopped with 0 events unwritten" in out, out
    records, keys = logged(client, "logs-a")
    # Nothing lost and nothing twice: one request and one response record per id.
    assert len(records) == 600
    assert sorted((r["inferenceservice"], r["id"], r["kind"]) for r in records) == sorted(
        (isvc, event_id, kind) for isvc, event_id in sent for kind in ("request", "response"))
    # Each batch is one InferenceService's, under its own prefix, by hour.
    for key in keys:
        isvc = key.split("/")[0]
        assert key.endswith(".jsonl") and len(key.split("/")) == 6 and "-logger-0-" in key
        batch, _ = logged(client, "logs-a", key)
        assert {r["inferenceservice"] for r in batch} == {isvc} and len(batch) <= 50
    assert {k.split("/")[0] for k in keys} == {"iris", "iris-canary", "fraud"}
    request = next(r for r in records if r["id"] == "req-4" and r["kind"] == "request")
    assert request["json"] == {"instances": [[5.1, 3.5, 1.4, 0.4]]}
    assert (request["namespace"], request["component"], request["endpoint"]) == ("ml-serving", "predictor", "default")


def test_a_batch_the_object_store_refuses_is_written_by_a_later_flush(object_store):
    endpoint, client = object_store
    # The bucket does not exist yet: every write fails until it does.
    process, url = start(endpoint, "logs-b", BATCH_EVENTS="5", FLUSH_SECONDS="0.3")
    try:
        for i in range(12):
            assert post_event(url, "iris", f"id-{i}", "request", {"instances": [[1, 2, 3, i]]}) == 200
        # Every write fails, and every event stays counted as waiting (queued or being written).
        for _ in range(20):
            text = metrics(url)
            assert "inference_logger_pending_events 12" in text, text
            time.sleep(0.05)
        assert "inference_logger_write_errors_total 0" not in text, text
        client.create_bucket(Bucket="logs-b")
        deadline = time.time() + 10
        while "inference_logger_pending_events 0" not in metrics(url) and time.time() < deadline:
            time.sleep(0.1)
    finally:
        stop(process)
    records, _ = logged(client, "logs-b", "iris/")
    assert sorted(r["id"] for r in records) == sorted(f"id-{i}" for i in range(12))


def test_what_is_not_an_inference_event_is_refused_and_the_queue_is_bounded(object_store):
    endpoint, client = object_store
    process, url = start(endpoint, "logs-missing", BATCH_EVENTS="1000", FLUSH_SECONDS="60", MAX_PENDING_EVENTS="3")
    try:
        bad = urllib.request.Request(url + "/", data=b"{}", headers={"Content-Type": "application/json", "ce-type": "com.example.other",
                                                                       "ce-id": "1", "ce-inferenceservicename": "iris"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=5)
        assert refused.value.code == 400
        for i in range(3):
            post_event(url, "iris", f"id-{i}", "request", {"instances": [[i]]})
        with pytest.raises(urllib.error.HTTPError) as full:
            post_event(url, "iris", "id-3", "request", {"instances": [[3]]})
        assert full.value.code == 503
        assert "inference_logger_dropped_events_total 1" in metrics(url)
    finally:
        process.kill()
        process.communicate()


def test_drift_reports_are_kept_in_the_bucket_and_served_as_metrics(object_store):
    endpoint, client = object_store
    client.create_bucket(Bucket="logs-c")
    report = {"model": "iris", "version": "3", "status": "judged", "rows": 240, "timestamp": 1796551200, "drift_share": 0.5, "data_drift": True,
              "features": {"petal length (cm)": {"method": "ks", "score": 0.0001, "drifted": True},
                           "sepal width (cm)": {"method": "ks", "score": 0.61, "drifted": False}},
              "prediction": {"method": "chisquare", "score": 0.002, "drifted": True}}
    process, url = start(endpoint, "logs-c", FLUSH_SECONDS="0.3")
    try:
        request = urllib.request.Request(url + "/drift/iris", data=json.dumps(report).encode(), headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        text = metrics(url)
    finally:
        stop(process)
    assert 'model_drift_feature_score{model="iris",version="3",feature="petal length (cm)",method="ks"} 0.0001' in text
    assert 'model_drift_feature_drifted{model="iris",version="3",feature="sepal width (cm)"} 0.0' in text
    assert 'model_data_drift{model="iris",version="3"} 1.0' in text and 'model_drift_share{model="iris",version="3"} 0.5' in text
    assert 'model_prediction_drift{model="iris",version="3"} 1.0' in text
    assert 'model_prediction_drift_score{model="iris",version="3",method="chisquare"} 0.002' in text
    # Another replica (or this one restarted) serves the same report from the bucket.
    assert json.loads(client.get_object(Bucket="logs-c", Key="_drift/iris.json")["Body"].read()) == report
    process, url = start(endpoint, "logs-c", FLUSH_SECONDS="60")
    try:
        assert 'model_data_drift{model="iris",version="3"} 1.0' in metrics(url)
    finally:
        stop(process)
