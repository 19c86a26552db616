"""A stand-in for the controllers the test API server does not run (tests/apiserver.py runs no
controller manager, kubelet or operator): it watches the server and writes the status the real
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

    with StatusWriter(server) as writer:   # a thread per kind: a list, then a watch
        ...                                 # (nothing is written once the block is left)
    writer.errors   # what the server refused (a test asserts it is empty)

It reacts to each event of a watch (list, then watch from the list's resourceVersion, again
every WATCH_SECONDS), so it costs the server nothing while nothing changes and answers a new
object at once (polling every kind every 0.3 s cost a fifth of a core, server and client, for
as long as it ran).
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request

LOAD_BALANCER_ADDRESS = "192.0.2.10"  # TEST-NET-1: documentation only, never routed


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _template_hash(template) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


class _Stopped(Exception):
    """A write after the writer was stopped: the controllers it stands in for are gone."""


WATCH_SECONDS = 10


class StatusWriter:
    def __init__(self, server, fail_jobs=()):
        self.server = server
        # (namespace, name) of Jobs to mark Failed instead of Complete.
        self.fail_jobs = set(fail_jobs)
        self.errors: list[str] = []
        self.written: list[str] = []
        self._stop = threading.Event()
        # Held while writing, and to stop: once __exit__ has returned nothing more is written.
        self._writing = threading.Lock()
        self._context = ssl.create_default_context(cafile=str(server.ca))
        address = urllib.parse.urlsplit(server.url)
        self._host, self._port = address.hostname, address.port
        self._watches: set[http.client.HTTPSConnection] = set()
        self._kinds = [
            ("/apis/apps/v1/deployments", self._deployment),
            ("/apis/apps/v1/statefulsets", self._statefulset),
            ("/apis/apps/v1/daemonsets", self._daemonset),
            ("/apis/batch/v1/jobs", self._job),
            ("/api/v1/persistentvolumeclaims", self._claim),
            ("/api/v1/services", self._service),
        ]
        self._threads = [
            threading.Thread(target=self._watch, args=(path, handle), name=f"status-writer {path}", daemon=True) for path, handle in self._kinds
        ]

    # -- HTTP ---------------------------------------------------------------------------------
    def _open(self, method, path, body=None, content_type="application/json"):
        request = urllib.request.Request(
            f"{self.server.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.server.token}", "Accept": "application/json", "Content-Type": content_type},
        )
        return urllib.request.urlopen(request, context=self._context, timeout=30)

    def _call(self, method, path, body=None, content_type="application/json"):
        if method == "GET":
            with self._open(method, path) as response:
                return json.loads(response.read() or b"{}")
        with self._writing:
            if self._stop.is_set():
                raise _Stopped(path)
            with self._open(method, path, body, content_type) as response:
                return json.loads(response.read() or b"{}")

    def _error(self, message):
        if not self._stop.is_set():
            self.errors.append(message)

    def _patch_status(self, kind_path, obj, status):
        meta = obj["metadata"]
        namespace = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
        path = kind_path.format(ns=namespace) + f"/{meta['name']}/status"
        try:
            self._call("PATCH", path, {"status": status}, "application/merge-patch+json")
            self.written.append(f"{path}")
        except urllib.error.HTTPError as error:
            if error.code in (404, 409):  # deleted meanwhile, or a newer version: its next event
                return
            self._error(f"PATCH {path}: {error.code} {error.read().decode()[:500]}")

    # -- controllers --------------------------------------------------------------------------
    def _deployment(self, deployment):
        meta, spec, status = deployment["metadata"], deployment["spec"], deployment.get("status") or {}
        replicas = spec.get("replicas", 1)
        template_hash = _template_hash(spec["template"])
        rs_name = f"{meta['name']}-{template_hash}"
        rs_path = f"/apis/apps/v1/namespaces/{meta['namespace']}/replicasets"
        if status.get("observedGeneration") == meta.get("generation") and status.get("availableReplicas", 0) == replicas:
            return
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
                return
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

    def _statefulset(self, sts):
        meta, status = sts["metadata"], sts.get("status") or {}
        replicas = sts["spec"].get("replicas", 1)
        revision = f"{meta['name']}-{_template_hash(sts['spec']['template'])}"
        if status.get("observedGeneration") == meta.get("generation") and status.get("updateRevision") == revision and status.get("readyReplicas", 0) == replicas:
            return
        self._patch_status(
            "/apis/apps/v1{ns}/statefulsets",
            sts,
            {"observedGeneration": meta.get("generation"), "replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
             "updatedReplicas": replicas, "availableReplicas": replicas, "currentRevision": revision, "updateRevision": revision},
        )

    def _daemonset(self, ds):
        meta, status = ds["metadata"], ds.get("status") or {}
        if status.get("observedGeneration") == meta.get("generation") and status.get("numberReady") == 1:
            return
        self._patch_status(
            "/apis/apps/v1{ns}/daemonsets",
            ds,
            {"observedGeneration": meta.get("generation"), "currentNumberScheduled": 1, "desiredNumberScheduled": 1, "numberReady": 1,
             "updatedNumberScheduled": 1, "numberAvailable": 1, "numberMisscheduled": 0},
        )

    def _job(self, job):
        meta, status = job["metadata"], job.get("status") or {}
        if status.get("conditions") or job["spec"].get("suspend"):
            return
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

    def _claim(self, claim):
        if (claim.get("status") or {}).get("phase") != "Bound":
            self._patch_status("/api/v1{ns}/persistentvolumeclaims", claim, {"phase": "Bound"})

    def _service(self, service):
        if service["spec"].get("type") == "LoadBalancer" and not ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
            self._patch_status("/api/v1{ns}/services", service, {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_ADDRESS}]}})

    # -- watches ------------------------------------------------------------------------------
    def _watch(self, path, handle):
        """List path, handle each object, then handle each object the watch from that list's
        resourceVersion reports added or modified, until the server ends the watch (after
        WATCH_SECONDS); then again (so every object is looked at anew at least that often)."""
        while not self._stop.is_set():
            try:
                listing = self._call("GET", path)
                for obj in listing.get("items") or []:
                    handle(obj)
                version = listing["metadata"]["resourceVersion"]
                query = f"?watch=1&allowWatchBookmarks=true&timeoutSeconds={WATCH_SECONDS}&resourceVersion={version}"
                connection = http.client.HTTPSConnection(self._host, self._port, context=self._context, timeout=WATCH_SECONDS + 30)
                with self._writing:  # connected here, so that __exit__ can shut it down
                    if self._stop.is_set():
                        return
                    connection.connect()
                    self._watches.add(connection)
                try:
                    connection.request("GET", path + query, headers={"Authorization": f"Bearer {self.server.token}", "Accept": "application/json"})
                    events = connection.getresponse()
                    if events.status != 200:
                        raise RuntimeError(f"watch {path}: {events.status} {events.read().decode()[:500]}")
                    for line in events:
                        if self._stop.is_set():
                            return
                        event = json.loads(line)
                        if event["type"] == "ERROR":  # e.g. 410 Gone: the version is too old; list anew
                            break
                        if event["type"] in ("ADDED", "MODIFIED"):
                            handle(event["object"])
                finally:
                    with self._writing:
                        self._watches.discard(connection)
                    connection.close()
            except _Stopped:
                return
            except urllib.error.HTTPError as error:
                if error.code != 404:  # 404: a kind this server does not serve (yet)
                    self._error(f"{path}: {error.code} {error.read().decode()[:500]}")
                self._stop.wait(1)
            except Exception as error:  # noqa: BLE001 - reported to the test through errors
                self._error(f"{path}: {type(error).__name__}: {error}")
                self._stop.wait(1)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        # Every write checks _stop under _writing: once it is set, nothing more is written.
        # The watches are shut down, so that no thread sits in a read and the server has no
        # connection left open for it to wait on when it stops.
        with self._writing:
            self._stop.set()
            for connection in self._watches:
                if connection.sock is not None:
                    connection.sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=30)
        return False
