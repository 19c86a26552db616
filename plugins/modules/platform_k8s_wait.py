#!/usr/bin/python
"""Wait, in one module run, until every object of a list is ready.

Direct delivery waits on a layer's readiness signals (Deployments, DaemonSets,
StatefulSets, Jobs) and on the CRDs of its bundles. One kubernetes.core.k8s_info
task per object costs a module run each (the Kubernetes client's import and its
discovery, about two seconds), which dominated a no-op re-run of a layer, and
k8s_info polls every 5 s. This module checks all of them in one run, polling
every `sleep` seconds, with one deadline for the whole list, and reads
readiness exactly as kubernetes.core does: its own predicates (Deployment,
DaemonSet, StatefulSet) or its condition check."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: platform_k8s_wait
short_description: Wait until every listed Kubernetes object is ready, in one run
description:
  - Polls every object of I(objects) until each exists and is ready, or I(timeout) seconds have
    passed for the whole list; then fails naming each object that is not ready and what it shows.
  - Ready means what kubernetes.core.k8s_info's C(wait) means, with kubernetes.core's own
    predicates; with a C(condition), that the object's status condition of that type has that
    status (and reason, when given); with a C(field), that the field at that dotted path has
    that value (the GPU Operator's ClusterPolicy has C(status.state) C(ready)); a kind with none
    of them only has to exist.
  - An object that reaches its C(failure) condition (a Job's C(Failed)) stops the wait at once,
    not at the timeout, with what the object shows and, with C(logs), the last lines of the log
    of each of its pods (a Job's, by the C(batch.kubernetes.io/job-name) label).
  - Reads only; supports check mode (it waits there too, as k8s_info does).
options:
  objects:
    description:
      - What to wait for, each C({api_version, kind, name, namespace, condition, field, failure,
        logs}); C(namespace) is omitted or empty for cluster-scoped kinds; C(condition) and
        C(failure) are C({type, status, reason}) or empty; C(field) is C({path, value}) or empty;
        C(logs) is true to read the logs of a failed Job's pods.
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds to wait for the whole list.
    type: int
    default: 600
  sleep:
    description: Seconds between two checks of the objects not ready yet.
    type: float
    default: 1
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
requirements:
  - kubernetes >= 24.2.0
author:
  - Platform team
"""

EXAMPLES = r"""
- name: Wait for every readiness signal of the layer
  platform_k8s_wait:
    kubeconfig: "{{ platform_kubeconfig }}"
    objects:
      - {api_version: apps/v1, kind: Deployment, namespace: kube-system, name: cilium-operator}
      - {api_version: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, name: gateways.gateway.networking.k8s.io,
         condition: {type: Established, status: "True"}}
    timeout: 600
"""

RETURN = r"""
ready:
  description: Each object, as C(Kind namespace/name) (C(Kind name) when cluster-scoped), in the order given.
  returned: success
  type: list
waited:
  description: Seconds the module waited.
  returned: always
  type: float
"""

import time
from functools import partial

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
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


def main():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        objects=dict(type="list", elements="dict", required=True),
        timeout=dict(type="int", default=600),
        sleep=dict(type="float", default=1),
    )
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=spec, supports_check_mode=True)
    objects = module.params["objects"]
    for item in objects:
        missing = [key for key in ("api_version", "kind", "name") if not item.get(key)]
        if missing:
            module.fail_json(msg=f"an object to wait for lacks {', '.join(missing)}: {item}")
    try:
        checker = Checker(get_api_client(module))
        waited, not_ready = wait_all(checker, objects, module.params["timeout"], module.params["sleep"])
    except CoreException as error:
        module.fail_from_exception(error)
    except ObjectFailed as error:
        module.fail_json(msg=str(error))
    if not_ready:
        module.fail_json(
            msg=f"Not ready after {int(waited)} s: " + "; ".join(f"{name} ({shown})" for name, shown in not_ready.items()),
            waited=round(waited, 1),
        )
    module.exit_json(changed=False, ready=[label(item) for item in objects], waited=round(waited, 1))


if __name__ == "__main__":
    main()
