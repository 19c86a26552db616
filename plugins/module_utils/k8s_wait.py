"""Waiting until Kubernetes objects are ready, for platform_k8s_apply
(its ready option): every object of a list checked in one run, polling every `sleep` seconds,
with one deadline for the whole list, readiness read exactly as kubernetes.core does: its own
predicates (Deployment, DaemonSet, StatefulSet) or its condition check."""

from __future__ import annotations

import time
from functools import partial

from ansible_collections.kubernetes.core.plugins.module_utils.k8s.waiter import (
    RESOURCE_PREDICATES,
    custom_condition,
    exists,
)

try:
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
    from urllib3.exceptions import HTTPError
except ImportError:  # AnsibleK8SModule reports the missing library
    NotFoundError = ResourceNotFoundError = HTTPError = type("Missing", (Exception,), {})


def label(item):
    """'Kind namespace/name', or 'Kind name' for a cluster-scoped object."""
    where = f"{item['namespace']}/{item['name']}" if item.get("namespace") else item["name"]
    return f"{item['kind']} {where}"


def describe(instance):
    """What an object that is not ready shows: its conditions, else its status's counters."""
    if instance is None:
        return "not found"
    status = instance.get("status") or {}
    conditions = status.get("conditions") or []
    if conditions:
        return "; ".join(
            f"{c.get('type')}={c.get('status')}" + (f" ({c.get('reason')}: {c.get('message')})" if c.get("reason") else "") for c in conditions
        )
    shown = {k: v for k, v in status.items() if isinstance(v, (int, str)) and not isinstance(v, bool)}
    generation = (instance.get("metadata") or {}).get("generation")
    if generation is not None:
        shown["generation"] = generation
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "no status"


class ObjectFailed(Exception):
    """An object reached its failure condition: waiting longer cannot make it ready."""

    def __init__(self, name, shown, logs=""):
        super().__init__(f"{name} failed ({shown})" + (f"; {logs}" if logs else ""))


LOG_LINES = 20


def field_value(obj, path):
    """The value at a dotted path of an object (a dict), None when any part is missing."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def wait_all(check, objects, timeout, sleep, clock=time.monotonic, pause=time.sleep):
    """Check every object until all are ready or timeout seconds have passed.

    check(item) -> (ready, what it shows); it raises ObjectFailed for an object that has failed,
    which ends the wait at once. Returns (waited seconds, {label: shown} of the
    objects still not ready: empty when all are)."""
    started = clock()
    pending = {label(item): item for item in objects}
    shown = {}
    while True:
        for name, item in list(pending.items()):
            ready, shown[name] = check(item)
            if ready:
                del pending[name]
        waited = clock() - started
        if not pending or waited >= timeout:
            return waited, {name: shown[name] for name in pending}
        pause(min(sleep, max(timeout - waited, 0)))


class Checker:
    """check() for wait_all() against a cluster, through kubernetes.core's client."""

    def __init__(self, client):
        self.client = client
        self.resources = {}

    def _resource(self, item):
        key = (item["api_version"], item["kind"])
        if key not in self.resources:
            self.resources[key] = self.client.resource(item["kind"], item["api_version"])
        return self.resources[key]

    def __call__(self, item):
        try:
            resource = self._resource(item)
        except ResourceNotFoundError:
            return False, f"the API server does not serve {item['api_version']} {item['kind']} (yet)"
        try:
            instance = self.client.get(resource, name=item["name"], namespace=item.get("namespace") or None)
        except NotFoundError:
            return False, "not found"
        except HTTPError as error:  # retried, as kubernetes.core's waiter does
            return False, f"{type(error).__name__}: {error}"
        condition, field = item.get("condition") or None, item.get("field") or None
        failure = item.get("failure") or None
        if failure and failure.get("type") and exists(instance) and custom_condition(failure, instance):
            raise ObjectFailed(label(item), describe(instance.to_dict()), self._logs(item) if item.get("logs") else "")
        if condition and condition.get("type"):
            predicate = partial(custom_condition, condition)
        elif field and field.get("path"):
            predicate = lambda found: field_value(found.to_dict(), field["path"]) == field.get("value")  # noqa: E731
        else:
            predicate = RESOURCE_PREDICATES.get(resource.kind, exists)
        if exists(instance) and predicate(instance):
            return True, "ready"
        shown = describe(instance.to_dict())
        if field and field.get("path"):
            shown = f"{field['path']}={field_value(instance.to_dict(), field['path'])!r}, {shown}"
        return False, shown

    def _logs(self, item):
        """The last LOG_LINES lines of each container of each pod of a Job, as one text."""
        pods = self.client.resource("Pod", "v1")
        try:
            listed = self.client.get(pods, namespace=item.get("namespace"), label_selector=f"batch.kubernetes.io/job-name={item['name']}")
        except (NotFoundError, HTTPError) as error:
            return f"its pods could not be listed: {error}"
        found = listed.to_dict().get("items") or []
        if not found:
            return "no pod of it is left to read a log from"
        texts = []
        for pod in found:
            name = pod["metadata"]["name"]
            for container in (pod.get("spec") or {}).get("containers") or []:
                try:
                    log = pods.log.get(name=name, namespace=item.get("namespace"), serialize=False,
                                       query_params=[("container", container["name"]), ("tailLines", LOG_LINES)])
                    text = log.data.decode("utf8", errors="replace").rstrip() or "(empty)"
                except Exception as error:  # noqa: BLE001 - the failure is reported either way
                    text = f"(no log: {getattr(error, 'reason', None) or error})"
                texts.append(f"log of pod {name}, container {container['name']} (last {LOG_LINES} lines):\n{text}")
        return "\n".join(texts)


def object_problems(objects):
    """Why an object of the list cannot be waited for: one message, or None."""
    for item in objects:
        missing = [key for key in ("api_version", "kind", "name") if not item.get(key)]
        if missing:
            return f"an object to wait for lacks {', '.join(missing)}: {item}"
    return None


def not_ready_message(waited, not_ready):
    """The failure of a wait that timed out, naming each object not ready with what it shows."""
    return f"Not ready after {int(waited)} s: " + "; ".join(f"{name} ({shown})" for name, shown in not_ready.items())
