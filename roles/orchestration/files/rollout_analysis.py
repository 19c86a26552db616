"""The rollout-analysis WorkflowTemplate's step: judge a model's canary on what
Prometheus measured of it over a window, step its share of the traffic up or roll it
back, and record each decision as an MLflow model-version tag and a Kubernetes Event.

Reads (environment): MODEL, NAMESPACE (the serving namespace), MODE (raw or
serverless, KServe's deployment mode), ACT (true: change the weights in the cluster,
direct delivery; false: only record the decision, gitops, where the weights are in
the tree), WINDOW (a Prometheus duration), STEPS (shares to step through after the
current one, such as "25,50"), MAX_ERROR_RATE, MAX_LATENCY_P95_SECONDS, MIN_REQUESTS,
PROMETHEUS_URL, WORKFLOW_NAME; MLflow's address and login (the mlflow-client Secret);
the pod's ServiceAccount token for the Kubernetes API. WAIT_SECONDS (default: the
window) is how long each share serves before it is judged.

Only the Python standard library: MLflow and Kubernetes are called over their REST APIs
(platform_api.py, shipped beside it).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse

from platform_api import Kubernetes, call, tag_version

# What is measured of the candidate: its requests and 5xx answers as Cilium's Hubble
# sees them (httpV2 metrics; the platform's InferenceErrorRateAfterRollout alert reads
# the same series), and its prediction latency as the model server reports it (the
# PodMonitor predictors labels it with the InferenceService's name, service).
QUERIES = {
    "requests": 'sum(increase(hubble_http_requests_total{{destination_namespace="{namespace}",destination_workload="{workload}"}}[{window}]))',
    "errors": 'sum(increase(hubble_http_requests_total{{destination_namespace="{namespace}",destination_workload="{workload}",status=~"5.."}}[{window}]))',
    "latency_p95": 'histogram_quantile(0.95, sum by (le) (rate(request_predict_seconds_bucket{{namespace="{namespace}",service="{service}"}}[{window}])))',
}


def decide(measured, thresholds):
    """measured: {requests, errors, latency_p95 (seconds, or None when nothing was
    measured)} of the candidate over the window; thresholds: {max_error_rate,
    max_latency_p95_seconds, min_requests}. Returns (decision, reason), decision being
    "promote" or "rollback": a candidate that could not be judged is rolled back."""
    requests = float(measured.get("requests") or 0)
    errors = float(measured.get("errors") or 0)
    latency = measured.get("latency_p95")
    if requests < float(thresholds["min_requests"]):
        return "rollback", f"only {requests:.0f} requests reached the candidate in the window, fewer than the {thresholds['min_requests']} needed to judge it"
    rate = errors / requests
    if rate > float(thresholds["max_error_rate"]):
        return "rollback", f"error rate {rate:.2%} is above the allowed {float(thresholds['max_error_rate']):.2%}"
    if latency is None:
        return "rollback", "no prediction latency was measured for the candidate"
    if float(latency) > float(thresholds["max_latency_p95_seconds"]):
        return "rollback", f"latency p95 {float(latency):.3f}s is above the allowed {float(thresholds['max_latency_p95_seconds'])}s"
    return "promote", f"error rate {rate:.2%} and latency p95 {float(latency):.3f}s over {requests:.0f} requests are within the thresholds"


def seconds(duration):
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def value(self, query):
        """The value of an instant query, None when it has no series (or NaN)."""
        answer = call(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
        result = answer["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if value != value else value

    def measure(self, namespace, model, window):
        service = f"{model}-canary"
        fields = {"namespace": namespace, "service": service, "workload": f"{service}-predictor", "window": window}
        return {name: self.value(query.format(**fields)) for name, query in QUERIES.items()}


class Rollout:
    """The canary as the cluster holds it: the HTTPRoute <model> (raw) or the
    InferenceService <model> with canaryTrafficPercent (serverless)."""

    def __init__(self, kube, namespace, model, mode):
        self.kube, self.namespace, self.model, self.mode = kube, namespace, model, mode
        group = "gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes" if mode == "raw" else "serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
        self.path = f"/apis/{group.format(ns=namespace)}/{model}"
        self.object = kube.get(self.path)
        annotations = self.object["metadata"].get("annotations") or {}
        if mode == "raw":
            self.candidate = annotations["platform.ml/candidate-version"]
            self.weight = int(self.object["spec"]["rules"][0]["backendRefs"][1].get("weight", 1))
        else:
            self.candidate = annotations["platform.ml/model-version"]
            self.weight = int(self.object["spec"]["predictor"].get("canaryTrafficPercent", 100))

    def set_weight(self, weight):
        if self.mode == "raw":
            rules = json.loads(json.dumps(self.object["spec"]["rules"]))
            rules[0]["backendRefs"][0]["weight"] = 100 - weight
            rules[0]["backendRefs"][1]["weight"] = weight
            self.object = self.kube.patch(self.path, {"spec": {"rules": rules}})
        else:
            # KServe: 0 sends every request back to the last ready revision (the stable
            # version); 100 promotes the candidate's revision.
            self.object = self.kube.patch(self.path, {"spec": {"predictor": {"canaryTrafficPercent": weight}}})
        self.weight = weight


def main():
    env = os.environ
    model, namespace, mode, window = env["MODEL"], env["NAMESPACE"], env.get("MODE", "raw"), env["WINDOW"]
    act = env.get("ACT", "true") == "true"
    thresholds = {"max_error_rate": float(env["MAX_ERROR_RATE"]), "max_latency_p95_seconds": float(env["MAX_LATENCY_P95_SECONDS"]),
                  "min_requests": int(env["MIN_REQUESTS"])}
    wait = int(env.get("WAIT_SECONDS") or seconds(window))
    prometheus, kube = Prometheus(env["PROMETHEUS_URL"]), Kubernetes()
    rollout = Rollout(kube, namespace, model, mode)
    shares = [rollout.weight] + [int(s) for s in env.get("STEPS", "").split(",") if s.strip() and int(s) > rollout.weight]
    if not act:
        shares = shares[:1]  # gitops: the tree holds the weights, so one window is judged and the decision recorded
    decision, reason = "promote", ""
    for index, share in enumerate(shares):
        time.sleep(wait)
        measured = prometheus.measure(namespace, model, window)
        decision, reason = decide(measured, thresholds)
        print(f"{model} version {rollout.candidate} at {share}%: {decision}: {reason}", flush=True)
        if decision == "rollback":
            break
        if index + 1 < len(shares):
            rollout.set_weight(shares[index + 1])
            kube.event(namespace, rollout.object, "RolloutStepped", f"Version {rollout.candidate} passed at {share}% ({reason}); it now takes {shares[index + 1]}%")
    if act:
        rollout.set_weight(100 if decision == "promote" else 0)
    applied = "" if act else " (gitops: apply it with playbooks/promote.yml; the tree holds the weights)"
    if decision == "promote":
        message = f"Version {rollout.candidate} of {model} promoted to 100%: {reason}{applied}"
    else:
        message = f"Version {rollout.candidate} of {model} rolled back: {reason}{applied}"
    kube.event(namespace, rollout.object, "RolloutPromoted" if decision == "promote" else "RolloutRolledBack", message, warning=decision != "promote")
    tag_version(model, rollout.candidate, {"rollout_decision": decision, "rollout_reason": reason,
                                           "rollout_workflow": env.get("WORKFLOW_NAME", "")})
    print(message, flush=True)
    with open(env.get("RESULT_FILE", "/tmp/decision.json"), "w") as result:
        json.dump({"decision": decision, "reason": reason, "version": rollout.candidate}, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
