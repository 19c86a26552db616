"""The inference-logger: where KServe's logger sends what the platform's
InferenceServices were asked and answered, written in batches to the object store,
and the metrics endpoint Prometheus reads the models' drift scores from.

KServe's agent (the logger sidecar of each predictor, v0.20 pkg/logger/worker.go)
POSTs one CloudEvent per request and one per response, in binary mode: the payload
is the body, with its Content-Type, and the attributes are headers: ce-id (the
request's id, shared by its response), ce-type (org.kubeflow.serving.inference.request
or .response), ce-source, ce-time, and the extensions ce-inferenceservicename,
ce-namespace, ce-component, ce-endpoint. A structured event (Content-Type
application/cloudevents+json) is read too.

Events are kept per InferenceService and written as one JSON-lines object per batch,
s3://LOG_BUCKET/<inferenceservice>/YYYY/MM/DD/HH/<time>-<writer>-<n>.jsonl, when
BATCH_EVENTS events are waiting or every FLUSH_SECONDS, and on SIGTERM. A batch the
object store refuses goes back in front of the queue and is written by the next
flush: nothing is dropped unless MAX_PENDING_EVENTS are waiting (the object store is
down for long), and then the new event is refused with 503 and counted.

The drift jobs (WorkflowTemplate model-drift) POST each model's last drift report to
/drift/<model>; it is kept in the bucket under _drift/<model>.json (the logger is
the bucket's only writer), read back by every replica each FLUSH_SECONDS, and served
on /metrics with the logger's own counters.

Environment: LOG_BUCKET, PORT (8080), FLUSH_SECONDS (30), BATCH_EVENTS (500),
MAX_PENDING_EVENTS (20000), WRITER (the pod's name), and the object-store user's
Secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION).
Only the standard library and boto3 (what the platform's MLflow image carries).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
KINDS = {REQUEST: "request", RESPONSE: "response"}
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
FEATURE_LABEL = re.compile(r'[\\"\n]')
DRIFT_PREFIX = "_drift/"
ATTRIBUTES = ("id", "type", "source", "time", "recordedtime", "inferenceservicename", "namespace", "component", "endpoint")


def _escape(value):
    return FEATURE_LABEL.sub(lambda m: {"\\": "\\\\", '"': '\\"', "\n": "\\n"}[m.group(0)], str(value))


def _labels(**labels):
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _payload(body, content_type):
    """The payload as JSON when it is JSON, else base64 (kept, not interpreted)."""
    if "json" in (content_type or "") or body[:1] in (b"{", b"["):
        try:
            return {"json": json.loads(body.decode("utf-8"))}
        except (UnicodeDecodeError, ValueError):
            pass
    return {"base64": base64.b64encode(body).decode("ascii")}


def event_record(headers, body):
    """The record kept of one CloudEvent (binary or structured mode), or raise ValueError."""
    content_type = headers.get("Content-Type", "")
    if content_type.startswith("application/cloudevents+json"):
        event = json.loads(body.decode("utf-8"))
        attributes = {key: event.get(key) for key in ATTRIBUTES}
        data = event.get("data")
        payload = {"json": data} if "data_base64" not in event else _payload(base64.b64decode(event["data_base64"]), event.get("datacontenttype"))
        content_type = event.get("datacontenttype", "application/json")
    else:
        attributes = {key: headers.get(f"ce-{key}") for key in ATTRIBUTES}
        payload = _payload(body, content_type)
    if attributes["type"] not in KINDS:
        raise ValueError(f"not an inference event: type {attributes['type']!r}")
    if not attributes["id"]:
        raise ValueError("the event has no id")
    name = attributes["inferenceservicename"] or ""
    if not NAME.match(name):
        raise ValueError(f"inferenceservicename {name!r} is not an InferenceService name")
    return {"id": attributes["id"], "kind": KINDS[attributes["type"]], "inferenceservice": name,
            "namespace": attributes["namespace"], "component": attributes["component"], "endpoint": attributes["endpoint"],
            "time": attributes["time"], "recorded": attributes["recordedtime"], "content_type": content_type, **payload}


class Logger:
    """The batches waiting to be written, the drift reports, and the counters."""

    def __init__(self, s3, bucket, writer, batch_events=500, max_pending=20000):
        self.s3, self.bucket, self.writer = s3, bucket, writer
        self.batch_events, self.max_pending = batch_events, max_pending
        self.lock = threading.Lock()
        self.flushing = threading.Lock()
        self.pending = {}  # inference service -> [records]
        self.inflight = 0  # records taken by a flush and not yet written or queued again
        self.events = {}  # (inference service, kind) -> count
        self.batches = {}  # inference service -> count
        self.dropped = 0
        self.write_errors = 0
        self.sequence = 0
        self.drift = {}  # model -> last report
        self.wake = threading.Event()

    def pending_count(self):
        """Records not written yet: queued, or being written by a flush."""
        return sum(len(records) for records in self.pending.values()) + self.inflight

    def add(self, record):
        """Queue a record; False when too many are waiting already (refused, counted)."""
        with self.lock:
            if self.pending_count() >= self.max_pending:
                self.dropped += 1
                return False
            queue = self.pending.setdefault(record["inferenceservice"], [])
            queue.append(record)
            key = (record["inferenceservice"], record["kind"])
            self.events[key] = self.events.get(key, 0) + 1
            full = len(queue) >= self.batch_events
        if full:
            self.wake.set()
        return True

    def _key(self, name, now):
        self.sequence += 1
        return f"{name}/{now:%Y/%m/%d/%H}/{now:%Y%m%dT%H%M%S%fZ}-{self.writer}-{self.sequence}.jsonl"

    def flush(self):
        """Write every waiting batch; a batch that fails goes back in front of its queue."""
        with self.flushing:
            with self.lock:
                batches, self.pending = self.pending, {}
                self.inflight = sum(len(records) for records in batches.values())
            for name, records in sorted(batches.items()):
                if not records:
                    continue
                body = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records).encode("utf-8")
                key = self._key(name, datetime.now(timezone.utc))
                try:
                    self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")
                except Exception as err:  # noqa: BLE001 - any failure keeps the batch for the next flush
                    print(f"inference-logger: could not write {len(records)} events of {name} ({err}); kept for the next flush", file=sys.stderr, flush=True)
                    with self.lock:
                        self.write_errors += 1
                        self.pending[name] = records + self.pending.get(name, [])
                        self.inflight -= len(records)
                    continue
                with self.lock:
                    self.batches[name] = self.batches.get(name, 0) + 1
                    self.inflight -= len(records)

    def put_drift(self, model, report):
        self.s3.put_object(Bucket=self.bucket, Key=f"{DRIFT_PREFIX}{model}.json", Body=json.dumps(report, sort_keys=True).encode("utf-8"),
                           ContentType="application/json")
        with self.lock:
            self.drift[model] = report

    def load_drift(self):
        """The drift reports in the bucket (what any replica was given)."""
        reports = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=DRIFT_PREFIX):
            for item in page.get("Contents", []):
                model = item["Key"][len(DRIFT_PREFIX):].removesuffix(".json")
                if NAME.match(model):
                    reports[model] = json.loads(self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read())
        with self.lock:
            self.drift = reports

    def metrics(self):
        with self.lock:
            events, batches, drift = dict(self.events), dict(self.batches), dict(self.drift)
            pending, dropped, errors = self.pending_count(), self.dropped, self.write_errors
        lines = ["# HELP inference_logger_events_total Inference events received, by InferenceService and kind (request, response).",
                 "# TYPE inference_logger_events_total counter"]
        lines += [f"inference_logger_events_total{_labels(inferenceservice=n, kind=k)} {v}" for (n, k), v in sorted(events.items())]
        lines += ["# HELP inference_logger_batches_total Batches written to the object store, by InferenceService.",
                  "# TYPE inference_logger_batches_total counter"]
        lines += [f"inference_logger_batches_total{_labels(inferenceservice=n)} {v}" for n, v in sorted(batches.items())]
        lines += ["# HELP inference_logger_pending_events Events waiting to be written.", "# TYPE inference_logger_pending_events gauge",
                  f"inference_logger_pending_events {pending}",
                  "# HELP inference_logger_dropped_events_total Events refused because too many were waiting.",
                  "# TYPE inference_logger_dropped_events_total counter", f"inference_logger_dropped_events_total {dropped}",
                  "# HELP inference_logger_write_errors_total Batches the object store refused (kept and written later).",
                  "# TYPE inference_logger_write_errors_total counter", f"inference_logger_write_errors_total {errors}"]
        lines += drift_metrics(drift)
        return "\n".join(lines) + "\n"


def drift_metrics(reports):
    """Prometheus text of each model's last drift report (the drift job's JSON)."""
    families = {
        "model_drift_feature_score": ("gauge", "Per-feature drift score of the model's inputs (p-value for a test, distance otherwise; see method)."),
        "model_drift_feature_drifted": ("gauge", "1 when the feature drifted from the training reference."),
        "model_drift_share": ("gauge", "Share of the model's features that drifted."),
        "model_data_drift": ("gauge", "1 when the share of drifted features reached the threshold (ModelDataDrift)."),
        "model_prediction_drift_score": ("gauge", "Drift score of the model's predictions against the reference's."),
        "model_prediction_drift": ("gauge", "1 when the model's predictions drifted (ModelPredictionDrift)."),
        "model_drift_rows": ("gauge", "Logged requests (rows) in the window the drift job compared."),
        "model_drift_last_run_timestamp_seconds": ("gauge", "When the drift job last judged the model."),
    }
    samples = {name: [] for name in families}
    for model, report in sorted(reports.items()):
        base = {"model": model, "version": str(report.get("version", ""))}
        samples["model_drift_rows"].append((base, report.get("rows", 0)))
        samples["model_drift_last_run_timestamp_seconds"].append((base, report.get("timestamp", 0)))
        if report.get("status") != "judged":
            continue
        for feature, result in sorted(report.get("features", {}).items()):
            samples["model_drift_feature_score"].append(({**base, "feature": feature, "method": result["method"]}, result["score"]))
            samples["model_drift_feature_drifted"].append(({**base, "feature": feature}, int(bool(result["drifted"]))))
        samples["model_drift_share"].append((base, report.get("drift_share", 0)))
        samples["model_data_drift"].append((base, int(bool(report.get("data_drift")))))
        prediction = report.get("prediction")
        if prediction:
            samples["model_prediction_drift_score"].append(({**base, "method": prediction["method"]}, prediction["score"]))
            samples["model_prediction_drift"].append((base, int(bool(prediction["drifted"]))))
    lines = []
    for name, (kind, text) in families.items():
        if samples[name]:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines += [f"{name}{_labels(**labels)} {float(value)!r}" for labels, value in samples[name]]
    return lines


def handler_for(logger):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status, text="", content_type="text/plain; charset=utf-8"):
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self):
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path == "/metrics":
                self._reply(200, logger.metrics(), "text/plain; version=0.0.4; charset=utf-8")
            elif self.path in ("/healthz", "/readyz"):
                self._reply(200, "ok\n")
            else:
                self._reply(404, "not found\n")

        def do_POST(self):  # noqa: N802
            body = self._body()
            drift = re.fullmatch(r"/drift/([a-z0-9][-a-z0-9]*)", self.path)
            if drift:
                try:
                    report = json.loads(body.decode("utf-8"))
                    assert isinstance(report, dict)
                except (ValueError, AssertionError):
                    self._reply(400, "a drift report is a JSON object\n")
                    return
                try:
                    logger.put_drift(drift.group(1), report)
                except Exception as err:  # noqa: BLE001
                    self._reply(503, f"could not keep the report: {err}\n")
                    return
                self._reply(200, "kept\n")
                return
            try:
                record = event_record(self.headers, body)
            except (ValueError, KeyError) as err:
                self._reply(400, f"{err}\n")
                return
            if not logger.add(record):
                self._reply(503, "too many events waiting for the object store\n")
                return
            self._reply(200, "")

        def log_message(self, *args):  # requests are counted, not printed
            pass

    return Handler


def flusher(logger, interval, stop):
    while not stop.is_set():
        logger.wake.wait(interval)
        logger.wake.clear()
        logger.flush()
        try:
            logger.load_drift()
        except Exception as err:  # noqa: BLE001 - the next round tries again
            print(f"inference-logger: could not read the drift reports ({err})", file=sys.stderr, flush=True)


def serve(logger, port, interval, host="0.0.0.0"):  # noqa: S104 - a Service in front, network policy around it
    """Serve until SIGTERM or SIGINT, then write what is waiting. Returns the server's thread-safe stop."""
    server = ThreadingHTTPServer((host, port), handler_for(logger))
    server.daemon_threads = True
    stop = threading.Event()
    thread = threading.Thread(target=flusher, args=(logger, interval, stop), daemon=True)

    def shutdown(*_):
        stop.set()
        logger.wake.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        logger.load_drift()
    except Exception as err:  # noqa: BLE001
        print(f"inference-logger: could not read the drift reports yet ({err})", file=sys.stderr, flush=True)
    thread.start()
    print(f"inference-logger: listening on {host}:{port}, writing to s3://{logger.bucket}", flush=True)
    server.serve_forever()
    server.server_close()
    thread.join(timeout=interval + 5)
    logger.flush()
    print(f"inference-logger: stopped with {logger.pending_count()} events unwritten", flush=True)


def main():
    logger = Logger(boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL")), os.environ["LOG_BUCKET"],
                    os.environ.get("WRITER") or socket.gethostname(), int(os.environ.get("BATCH_EVENTS", "500")),
                    int(os.environ.get("MAX_PENDING_EVENTS", "20000")))
    serve(logger, int(os.environ.get("PORT", "8080")), float(os.environ.get("FLUSH_SECONDS", "30")))


if __name__ == "__main__":
    main()
