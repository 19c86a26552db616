"""A stand-in for the controllers the test API server does not run (tests/apiserver.py runs no
controller manager, kubelet or operator): it polls the server and writes the status the real
controllers would, so that helm's --wait and the platform's readiness waits are satisfied by the
same fields they read on a real cluster.

- Deployment: a ReplicaSet owned by it with its pod template (the deployment controller's
  work; helm 3's --wait looks for it), the ReplicaSet's and the Deployment's status
  (replicas ready and available, observedGeneration, the Available and Progressing conditions);
- StatefulSet and DaemonSet (one node): replicas ready, current and updated revision equal,
  observedGeneration;
- Job: Complete (SuccessCriteriaMet, then Complete, with start and completion times, as the job
  controller writes them since Kubernetes 1.31), or Failed (FailureTarget, then Failed) for a
  Job `fail_jobs` names;
- PersistentVolumeClaim: Bound; Service of type LoadBalancer: an address (what MetalLB writes).

CustomResourceDefinitions are Established by the API server itself. Nothing else is invented: no
pod runs, so no webhook serves and no operator creates what it would create at run time.

    with StatusWriter(server) as writer:   # a thread, polling every `interval` seconds
        ...
    writer.errors   # what the server refused (a test asserts it is empty)
"""

from __future__ import annotations

import datetime
import hashlib
import json
import ssl
import threading
import time
import urllib.error
import urllib.request

LOAD_BALANCER_ADDRESS = "192.0.2.10"  # TEST-NET-1: documentation only, never routed


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _template_hash(template) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


class StatusWriter:
    def __init__(self, server, interval: float = 0.3, fail_jobs=()):
        self.server = server
        self.interval = interval
        # (namespace, name) of Jobs to mark Failed instead of Complete.
        self.fail_jobs = set(fail_jobs)
        self.errors: list[str] = []
        self.written: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="status-writer", daemon=True)
        self._context = ssl.create_default_context(cafile=str(server.ca))

    # -- HTTP ---------------------------------------------------------------------------------
    def _call(self, method, path, body=None, content_type="application/json"):
        request = urllib.request.Request(
            f"{self.server.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.server.token}", "Accept": "application/json", "Content-Type": content_type},
        )
        with urllib.request.urlopen(request, context=self._context, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def _list(self, path):
        try:
            return self._call("GET", path).get("items") or []
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise

    def _patch_status(self, kind_path, obj, status):
        meta = obj["metadata"]
        namespace = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
        path = kind_path.format(ns=namespace) + f"/{meta['name']}/status"
        try:
            self._call("PATCH", path, {"status": status}, "application/merge-patch+json")
            self.written.append(f"{path}")
        except urllib.error.HTTPError as error:
            if error.code in (404, 409):  # deleted meanwhile, or a newer version: next round
                return
            self.errors.append(f"PATCH {path}: {error.code} {error.read().decode()[:500]}")

    # -- controllers --------------------------------------------------------------------------
    def _deployments(self):
        for deployment in self._list("/apis/apps/v1/deployments"):
            meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status") or {}
            replicas = spec.get("replicas", 1)
            template_hash = _template_hash(spec["template"])
            rs_name = f"{meta['name']}-{template_hash}"
            rs_path = f"/apis/apps/v1/namespaces/{meta['namespace']}/replicasets"
            if status.get("observedGeneration") == meta.get("generation") and status.get("availableReplicas", 0) == replicas:
                continue
            template = json.loads(json.dumps(spec["template"]))
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = template_hash
            selector = json.loads(json.dumps(spec["selector"]))
            selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
            replica_set = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": meta["namespace"],
                    "labels": dict(template["metadata"]["labels"]),
                    "annotations": {"deployment.kubernetes.io/revision": "1"},
                    "ownerReferences": [
                        {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"], "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}
                    ],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            }
            try:
                created = self._call("POST", rs_path, replica_set)
            except urllib.error.HTTPError as error:
                if error.code != 409:
                    self.errors.append(f"POST {rs_path} {rs_name}: {error.code} {error.read().decode()[:500]}")
                    continue
                created = self._call("GET", f"{rs_path}/{rs_name}")
            self._patch_status(
                "/apis/apps/v1{ns}/replicasets",
                created,
                {"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                 "observedGeneration": created["metadata"].get("generation", 1)},
            )
            now = _now()
            self._patch_status(
                "/apis/apps/v1{ns}/deployments",
                deployment,
                {
                    "observedGeneration": meta.get("generation"),
                    "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                    "conditions": [
                        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
                         "lastUpdateTime": now, "lastTransitionTime": now},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                         "message": f'ReplicaSet "{rs_name}" has successfully progressed.', "lastUpdateTime": now, "lastTransitionTime": now},
                    ],
                },
            )

    def _statefulsets(self):
        for sts in self._list("/apis/apps/v1/statefulsets"):
            meta, status = sts["metadata"], sts.get("status") or {}
            replicas = sts["spec"].get("replicas", 1)
            revision = f"{meta['name']}-{_template_hash(sts['spec']['template'])}"
            if status.get("observedGeneration") == meta.get("generation") and status.get("updateRevision") == revision and status.get("readyReplicas", 0) == replicas:
                continue
            self._patch_status(
                "/apis/apps/v1{ns}/statefulsets",
                sts,
                {"observedGeneration": meta.get("generation"), "replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
                 "updatedReplicas": replicas, "availableReplicas": replicas, "currentRevision": revision, "updateRevision": revision},
            )

    def _daemonsets(self):
        for ds in self._list("/apis/apps/v1/daemonsets"):
            meta, status = ds["metadata"], ds.get("status") or {}
            if status.get("observedGeneration") == meta.get("generation") and status.get("numberReady") == 1:
                continue
            self._patch_status(
                "/apis/apps/v1{ns}/daemonsets",
                ds,
                {"observedGeneration": meta.get("generation"), "currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberReady": 1,
                 "updatedNumberScheduled": 1, "numberAvailable": 1, "numberMisscheduled": 0},
            )

    def _jobs(self):
        for job in self._list("/apis/batch/v1/jobs"):
            meta, status = job["metadata"], job.get("status") or {}
            if status.get("conditions") or job["spec"].get("suspend"):
                continue
            now = _now()
            if (meta["namespace"], meta["name"]) in self.fail_jobs:
                status = {
                    "startTime": now, "failed": 1,
                    "conditions": [
                        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit",
                         "lastProbeTime": now, "lastTransitionTime": now},
                        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit",
                         "lastProbeTime": now, "lastTransitionTime": now},
                    ],
                }
            else:
                status = {
                    "startTime": now, "completionTime": now, "succeeded": job["spec"].get("completions", 1),
                    "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods",
                         "lastProbeTime": now, "lastTransitionTime": now},
                        {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods",
                         "lastProbeTime": now, "lastTransitionTime": now},
                    ],
                }
            self._patch_status("/apis/batch/v1{ns}/jobs", job, status)

    def _claims_and_services(self):
        for claim in self._list("/api/v1/persistentvolumeclaims"):
            if (claim.get("status") or {}).get("phase") != "Bound":
                self._patch_status("/api/v1{ns}/persistentvolumeclaims", claim, {"phase": "Bound"})
        for service in self._list("/api/v1/services"):
            if service["spec"].get("type") == "LoadBalancer" and not ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                self._patch_status("/api/v1{ns}/services", service, {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_ADDRESS}]}})

    def round(self):
        """One pass over every kind (the thread repeats it)."""
        self._deployments()
        self._statefulsets()
        self._daemonsets()
        self._jobs()
        self._claims_and_services()

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.round()
            except Exception as error:  # noqa: BLE001 - reported to the test through errors
                self.errors.append(f"{type(error).__name__}: {error}")
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)
        return False
