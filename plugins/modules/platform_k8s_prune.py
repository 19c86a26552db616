#!/usr/bin/python
"""Remove, in one module run, what direct delivery applied for a layer and the layer no longer
declares: what Argo CD's prune does in gitops mode.

An object is the layer's when it carries the label platform.ml/layer=<layer>, the platform's
field manager applied it (server-side apply), and no controller owns it. The kinds searched are
those the layer declares now and those it declared at its last run, kept in a record (a
ConfigMap in kube-system, as an ApplySet's parent keeps its group-kinds), so a kind the layer
stopped declaring altogether is still searched, and those the layer says it may hold without
declaring them (undeclared_kinds: what something else applies for it under the platform's field
manager, such as the canary a model's retraining starts). Data-bearing kinds (a Namespace, a
PersistentVolumeClaim, a database or object-store resource) are only named, never deleted,
unless prune_data is true."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: platform_k8s_prune
short_description: Delete what a platform layer applied and no longer declares
description:
  - Lists, for every kind the layer declares now or declared at its last run (its record, the
    ConfigMap C(ml-platform-layer-<layer>) in C(kube-system)), the objects labelled
    C(platform.ml/layer=<layer>) that I(field_manager) applied and no controller owns, and
    deletes each that I(declared) does not name.
  - A kind of I(data_kinds) is never deleted unless I(prune_data) is true; such objects are
    returned in C(kept), for the play to name.
  - Then writes the record. Supports check mode (reports, deletes and writes nothing).
options:
  layer:
    description: The layer's name (the value of its C(platform.ml/layer) label).
    type: str
    required: true
  declared:
    description: Every object the layer declares, each C({apiVersion, kind, namespace, name}).
    type: list
    elements: dict
    required: true
  field_manager:
    description: The field manager the platform applies with.
    type: str
    required: true
  undeclared_kinds:
    description:
      - Kinds, each C({apiVersion, kind}), the layer may hold without declaring them now (applied for it under
        I(field_manager) by something else, such as a model's retraining starting a canary); searched on every
        run, so such an object goes when the layer does not declare it.
    type: list
    elements: dict
    default: []
  data_kinds:
    description: Kinds (C(group/Kind), C(Kind) for the core group) whose objects hold data.
    type: list
    elements: str
    default: []
  prune_data:
    description: Delete objects of I(data_kinds) too.
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
requirements:
  - kubernetes >= 24.2.0
author:
  - Platform team
"""

EXAMPLES = r"""
- name: Remove what layer tenancy no longer declares
  platform_k8s_prune:
    kubeconfig: "{{ platform_kubeconfig }}"
    layer: tenancy
    declared: "{{ platform_layer | mlplatform.baremetal.platform_declared_objects }}"
    field_manager: ml-platform
    data_kinds: [Namespace, PersistentVolumeClaim]
"""

RETURN = r"""
deleted:
  description: Each object deleted (or, in check mode, that would be), as C(Kind namespace/name).
  returned: always
  type: list
kept:
  description: Each object of a data kind the layer no longer declares, left in place.
  returned: always
  type: list
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.mlplatform.baremetal.plugins.module_utils.k8s_prune import (  # noqa: F401 - the unit tests read them here
    Cluster,
    argument_problems,
    candidates,
    identity,
    prune,
    split_data,
)


def main():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        layer=dict(type="str", required=True),
        declared=dict(type="list", elements="dict", required=True),
        field_manager=dict(type="str", required=True),
        data_kinds=dict(type="list", elements="str", default=[]),
        prune_data=dict(type="bool", default=False),
        undeclared_kinds=dict(type="list", elements="dict", default=[]),
    )
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=spec, supports_check_mode=True)
    params = module.params
    problem = argument_problems(params["declared"], params["undeclared_kinds"])
    if problem:
        module.fail_json(msg=problem)
    try:
        cluster = Cluster(get_api_client(module), module.check_mode)
        deleted, kept, recorded = prune(cluster, params["layer"], params["declared"], params["field_manager"], params["data_kinds"], params["prune_data"],
                                       params["undeclared_kinds"])
    except CoreException as error:
        module.fail_from_exception(error)
    module.exit_json(changed=bool(deleted) or recorded, deleted=deleted, kept=kept)


if __name__ == "__main__":
    main()
