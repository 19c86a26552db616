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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.mlplatform.baremetal.plugins.module_utils.k8s_wait import (  # noqa: F401 - the unit tests read them here
    LOG_LINES,
    Checker,
    ObjectFailed,
    describe,
    field_value,
    label,
    not_ready_message,
    object_problems,
    wait_all,
)


def main():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        objects=dict(type="list", elements="dict", required=True),
        timeout=dict(type="int", default=600),
        sleep=dict(type="float", default=1),
    )
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=spec, supports_check_mode=True)
    objects = module.params["objects"]
    problem = object_problems(objects)
    if problem:
        module.fail_json(msg=problem)
    try:
        checker = Checker(get_api_client(module))
        waited, not_ready = wait_all(checker, objects, module.params["timeout"], module.params["sleep"])
    except CoreException as error:
        module.fail_from_exception(error)
    except ObjectFailed as error:
        module.fail_json(msg=str(error))
    if not_ready:
        module.fail_json(
            msg=not_ready_message(waited, not_ready),
            waited=round(waited, 1),
        )
    module.exit_json(changed=False, ready=[label(item) for item in objects], waited=round(waited, 1))


if __name__ == "__main__":
    main()
