#!/usr/bin/python
"""Apply server-side, in one module run, a list of Kubernetes objects in order; then, optionally,
wait until a list of objects is ready and remove what a layer no longer declares.

Direct delivery applied a layer's namespaces, its Secrets, its bundles and its manifests, waited
and pruned in a kubernetes.core.k8s task or a module of its own each: a new Python process each,
which imports the Kubernetes client and compiles kubernetes.core's module_utils (most of a
second of CPU), for a few requests. This module does, in one process, what those did: each
object is applied as kubernetes.core.k8s applies it (server-side, with the field manager,
forcing conflicts; the same requests and failure messages, changed when the server's object
differs from what it was); the wait and the prune are plugins/module_utils/k8s_wait.py and k8s_prune.py.

A Secret's data never leaves the module: the result names Secrets (as every object) by kind,
namespace and name only, and every value of a Secret (as given, and base64-encoded or decoded)
is masked in whatever the module returns, a failure's message included."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: platform_k8s_apply
short_description: Apply server-side a list of Kubernetes objects, then wait and prune, in one run
description:
  - Applies server-side, in order, each object of I(definitions), then each document of the files
    of I(src), as C(kubernetes.core.k8s) with C(apply) and C(server_side_apply) does, stopping at
    the first object the API server refuses, with its message.
  - Then patches each object of I(patches) that exists.
  - Then, with I(ready), polls every object listed there until each exists and is ready, or
    I(timeout) seconds have passed for the whole list; then fails naming each object that is not
    ready and what it shows. Ready means what kubernetes.core.k8s_info's C(wait) means, with
    kubernetes.core's own predicates; with a C(condition), that the object's status condition of
    that type has that status (and reason, when given); with a C(field), that the field at that
    dotted path has that value; a kind with none of them only has to exist. An object that
    reaches its C(failure) condition (a Job's C(Failed)) stops the wait at once, with what it
    shows and, with C(logs), the last lines of its pods' logs.
  - Then, with I(prune), lists, for every kind the layer declares now or declared at its last run
    (its record, the ConfigMap C(ml-platform-layer-<layer>) in C(kube-system)) or may hold
    without declaring it, the objects labelled C(platform.ml/layer=<layer>) that I(field_manager)
    applied and no controller owns, and deletes each that it does not declare; a kind of
    I(data_kinds) is only named (C(kept)) unless I(prune_data) is true. Then writes the record.
  - Returns no object, only names; a Secret's values appear in no result or message.
  - Supports check mode (server-side dry run; the prune deletes nothing).
options:
  definitions:
    description: Objects to apply, in this order.
    type: list
    elements: dict
    default: []
  src:
    description: Paths, on the host the module runs on, of YAML files whose documents are applied, in order, after I(definitions).
    type: list
    elements: path
    default: []
  patches:
    description:
      - Merge patches (JSON merge patch, as C(kubernetes.core.k8s) with C(state=patched) and C(merge_type=merge)
        sends them), each a whole object's C(apiVersion), C(kind), C(metadata.name) and the fields to set, applied
        in order after I(definitions) and I(src), to objects that exist; one that does not is named in a warning
        and never created (a node that has not joined the cluster yet).
    type: list
    elements: dict
    default: []
  field_manager:
    description: The field manager to apply with.
    type: str
    required: true
  force_conflicts:
    description: Take over the fields another manager holds.
    type: bool
    default: true
  ready:
    description:
      - What to wait for after applying, each C({api_version, kind, name, namespace, condition, field, failure, logs});
        C(namespace) is omitted or empty for cluster-scoped kinds; C(condition) and C(failure) are
        C({type, status, reason}) or empty; C(field) is C({path, value}) or empty; C(logs) is true to read the logs
        of a failed Job's pods. Nothing is waited for when it is empty.
    type: list
    elements: dict
    default: []
  timeout:
    description: Seconds to wait for the whole I(ready) list.
    type: int
    default: 600
  sleep:
    description: Seconds between two checks of the objects not ready yet.
    type: float
    default: 1
  prune:
    description:
      - With it, after the wait, what the layer applied and no longer declares is removed, under I(field_manager).
        Its keys are C(layer) (the value of the layer's C(platform.ml/layer) label), C(declared) (every object the
        layer declares, each C({apiVersion, kind, namespace, name})), C(undeclared_kinds) (kinds, each
        C({apiVersion, kind}), the layer may hold without declaring them, such as the canary a model's retraining
        starts), C(data_kinds) (C(group/Kind), C(Kind) for the core group, whose objects hold data) and
        C(prune_data) (delete those too).
    type: dict
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
requirements:
  - kubernetes >= 24.2.0
author:
  - Platform team
"""

EXAMPLES = r"""
- name: Create the namespaces and Secrets of layer tracking
  platform_k8s_apply:
    kubeconfig: "{{ platform_kubeconfig }}"
    definitions: "{{ (platform_layer | mlplatform.baremetal.platform_namespace_documents) + platform_layer.secrets }}"
    field_manager: ml-platform
"""

RETURN = r"""
applied:
  description: Each object applied or patched (or, in check mode, that would be), as C(Kind namespace/name), in order.
  returned: always
  type: list
changed_objects:
  description: Those of I(applied) whose object on the server changed (or would).
  returned: always
  type: list
apply_failed:
  description: True when the API server refused an object (the message says why), not when the wait or the prune failed.
  returned: on failure to apply
  type: bool
ready:
  description: Each object of I(ready), when all are ready.
  returned: with ready
  type: list
waited:
  description: Seconds the module waited for I(ready).
  returned: with ready
  type: float
deleted:
  description: What the prune deleted (or, in check mode, would), as C(Kind namespace/name).
  returned: with prune
  type: list
kept:
  description: What the prune found no longer declared and left, as it holds data.
  returned: with prune
  type: list
"""

import base64
import binascii
import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.service import decode_warnings, diff_objects
from ansible_collections.mlplatform.baremetal.plugins.module_utils.k8s_prune import Cluster, argument_problems, prune
from ansible_collections.mlplatform.baremetal.plugins.module_utils.k8s_wait import (
    Checker,
    ObjectFailed,
    label,
    not_ready_message,
    object_problems,
    wait_all,
)

try:
    import yaml

    _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
except ImportError:  # AnsibleK8SModule reports the missing library
    yaml = None

try:
    from kubernetes.dynamic.exceptions import MethodNotAllowedError, NotFoundError, ResourceNotFoundError, ResourceNotUniqueError
except ImportError:  # AnsibleK8SModule reports the missing library
    MethodNotAllowedError = NotFoundError = ResourceNotFoundError = ResourceNotUniqueError = type("Missing", (Exception,), {})


class ApplyError(Exception):
    """The API server refused an object (or could not be asked): kubernetes.core's message."""

    def __init__(self, msg, reason=None):
        super().__init__(msg)
        self.reason = reason


def load_documents(path):
    """The documents of a YAML file, empty ones left out, List kinds replaced by their items
    (as kubernetes.core.k8s reads I(src)), with libyaml's loader when PyYAML has it: a bundle of
    CRDs is a megabyte, which the pure-Python loader takes seconds to read."""
    with open(path, "rb") as stream:
        return flatten(d for d in yaml.load_all(stream, Loader=_Loader) if d)


def flatten(definitions):
    """Each definition, a List kind replaced by its items (their kind and apiVersion defaulted
    from the List's), as kubernetes.core does."""
    out = []
    for definition in definitions:
        kind = definition.get("kind") or ""
        if kind.endswith("List"):
            for item in definition.get("items") or []:
                item.setdefault("kind", kind[:-4])
                item.setdefault("apiVersion", definition.get("apiVersion"))
                item.setdefault("metadata", {})
                out.append(item)
        else:
            definition.setdefault("metadata", {})
            out.append(definition)
    return out


def obj_label(definition):
    meta = definition.get("metadata") or {}
    return label({"kind": definition.get("kind"), "namespace": meta.get("namespace"), "name": meta.get("name")})


def secret_values(definitions):
    """Every value a Secret of definitions holds, as given and base64-encoded or decoded: what
    must appear in no output of the module."""
    values = set()
    for definition in definitions:
        if definition.get("kind") != "Secret":
            continue
        for value in (definition.get("data") or {}).values():
            value = str(value)
            values.add(value)
            try:
                values.add(base64.b64decode(value, validate=True).decode("utf-8"))
            except (binascii.Error, ValueError):
                pass
        for value in (definition.get("stringData") or {}).values():
            value = str(value)
            values.add(value)
            values.add(base64.b64encode(value.encode("utf-8")).decode("ascii"))
    return {value for value in values if value}


def without_secret_data(definitions):
    """definitions, each Secret's data and stringData replaced by its keys."""
    return [
        dict(d, **{field: sorted(d[field]) for field in ("data", "stringData") if isinstance(d.get(field), dict)}) if d.get("kind") == "Secret" else d
        for d in definitions
    ]


def _body(error):
    return error.body if hasattr(error, "body") else error


class Applier:
    """Server-side apply of one object at a time, as kubernetes.core.k8s (apply, server_side_apply)
    does it: the same requests and messages; its object read and decoded once, as JSON, without
    the Kubernetes client's object wrappers (a CRD's schema is thousands of them)."""

    def __init__(self, client, field_manager, force_conflicts, check_mode):
        self.client, self.field_manager, self.force_conflicts, self.check_mode = client, field_manager, force_conflicts, check_mode
        self.warnings = []

    def resource(self, definition):
        try:
            return self.client.resource(definition.get("kind"), definition.get("apiVersion"))
        except (ResourceNotFoundError, ResourceNotUniqueError) as error:
            raise ApplyError(
                "Failed to find exact match for %s.%s by [kind, name, singularName, shortNames]" % (definition.get("apiVersion"), definition.get("kind"))
            ) from error

    def _existing(self, resource, name, namespace):
        """The object as the server has it, {} when there is none."""
        try:
            if name:
                return json.loads(self.client.get(resource, name=name, namespace=namespace, serialize=False).data.decode("utf8"))
        except (NotFoundError, MethodNotAllowedError):
            pass
        except Exception as error:
            raise ApplyError("Failed to retrieve requested object: {0}".format(_body(error)), getattr(error, "reason", None)) from error
        return {}

    def _target(self, definition):
        """(resource, name, namespace, the object as the server has it) of a definition, whose kind
        and apiVersion are set to the served resource's."""
        resource = self.resource(definition)
        definition["kind"], definition["apiVersion"] = resource.kind, resource.group_version
        name, namespace = definition["metadata"].get("name"), definition["metadata"].get("namespace")
        return resource, name, namespace, self._existing(resource, name, namespace)

    def apply(self, definition):
        """Whether the server's object changed (or, in a dry run, would)."""
        resource, name, namespace, existing = self._target(definition)
        try:
            response = self.client.apply(resource, definition, namespace=namespace, serialize=False, server_side=True,
                                         field_manager=self.field_manager, force_conflicts=self.force_conflicts)
        except Exception as error:
            raise ApplyError("Failed to apply object: {0}".format(_body(error)), getattr(error, "reason", None)) from error
        return self._changed(existing, response)

    def patch(self, definition):
        """Whether the server's object changed (or would); None when there is no such object."""
        resource, name, namespace, existing = self._target(definition)
        if not existing:
            # kubernetes.core.k8s's warning (state: patched), word for word.
            self.warnings.append(
                "resource 'kind={kind},name={name}' was not found but will not be created as 'state' parameter has been set to "
                "'{state}'".format(kind=definition["kind"], name=name, state="patched")
            )
            return None
        try:
            response = self.client.patch(resource, definition, name=name, namespace=namespace, serialize=False,
                                         content_type="application/merge-patch+json")
        except Exception as error:
            raise ApplyError("Failed to patch object: {0}".format(_body(error)), getattr(error, "reason", None)) from error
        return self._changed(existing, response)

    def _changed(self, existing, response):
        instance = json.loads(response.data.decode("utf8"))
        if response.headers is not None and response.headers.get("warning"):
            self.warnings += decode_warnings(response.headers["warning"].split(", "))
        if not existing:
            return True
        # Not written (the same resourceVersion): unchanged, without comparing a CRD's schema
        # field by field. Otherwise, and in a dry run (which returns what would be under the same
        # resourceVersion), as kubernetes.core decides, on the whole objects: a write that changed
        # only metadata.resourceVersion or generation (the server re-encoding what it stores) is
        # no change, with kubernetes.core's warning.
        if not self.check_mode and (existing.get("metadata") or {}).get("resourceVersion") == (instance.get("metadata") or {}).get("resourceVersion"):
            return False
        match, diffs = diff_objects(existing, instance)
        if match and diffs:
            self.warnings.append("No meaningful diff was generated, but the API may not be idempotent "
                                 "(only metadata.generation or metadata.resourceVersion were changed)")
        return not match


def main():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        definitions=dict(type="list", elements="dict", default=[]),
        src=dict(type="list", elements="path", default=[]),
        patches=dict(type="list", elements="dict", default=[]),
        field_manager=dict(type="str", required=True),
        force_conflicts=dict(type="bool", default=True),
        ready=dict(type="list", elements="dict", default=[]),
        timeout=dict(type="int", default=600),
        sleep=dict(type="float", default=1),
        prune=dict(type="dict"),
    )
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=spec, supports_check_mode=True)
    params = module.params
    # Before anything can fail: no output of the module may carry a Secret's values, and its
    # invocation shows Secrets by their keys.
    definitions = flatten(params["definitions"])
    module._module.no_log_values.update(secret_values(definitions))
    invocation = {"module_args": dict(params, definitions=without_secret_data(params["definitions"]))}
    result = {"changed": False, "applied": [], "changed_objects": [], "invocation": invocation}

    def fail(msg, **extra):
        module.fail_json(msg=msg, **dict(result, **extra))

    problem = object_problems(params["ready"])
    prune_args = params["prune"]
    if prune_args is not None:
        prune_args = dict({"declared": [], "data_kinds": [], "prune_data": False, "undeclared_kinds": []}, **prune_args)
        if not prune_args.get("layer"):
            problem = problem or "prune needs the layer's name (layer)"
        problem = problem or argument_problems(prune_args["declared"], prune_args["undeclared_kinds"])
    if problem:
        fail(problem)
    try:
        for path in params["src"]:
            loaded = load_documents(path)
            module._module.no_log_values.update(secret_values(loaded))
            definitions += loaded
    except (OSError, yaml.YAMLError) as error:
        fail(f"Failed to load resource definition: {error}")

    try:
        client = get_api_client(module)
        applier = Applier(client, params["field_manager"], params["force_conflicts"], module.check_mode)
        for definition in definitions:
            try:
                changed = applier.apply(definition)
            except ApplyError as error:
                fail(str(error), apply_failed=True, **({"reason": error.reason} if error.reason else {}))
            result["applied"].append(obj_label(definition))
            if changed:
                result["changed_objects"].append(obj_label(definition))
        for definition in flatten(params["patches"]):
            try:
                changed = applier.patch(definition)
            except ApplyError as error:
                fail(str(error), apply_failed=True, **({"reason": error.reason} if error.reason else {}))
            if changed is None:
                continue
            result["applied"].append(obj_label(definition))
            if changed:
                result["changed_objects"].append(obj_label(definition))
        result["changed"] = bool(result["changed_objects"])
        for warning in applier.warnings:
            module.warn(warning)
        if params["ready"]:
            try:
                waited, not_ready = wait_all(Checker(client), params["ready"], params["timeout"], params["sleep"])
            except ObjectFailed as error:
                fail(str(error))
            result["waited"] = round(waited, 1)
            if not_ready:
                fail(not_ready_message(waited, not_ready))
            result["ready"] = [label(item) for item in params["ready"]]
        if prune_args is not None:
            cluster = Cluster(client, module.check_mode)
            deleted, kept, recorded = prune(cluster, prune_args["layer"], prune_args["declared"], params["field_manager"], prune_args["data_kinds"],
                                            prune_args["prune_data"], prune_args["undeclared_kinds"])
            result.update(deleted=deleted, kept=kept)
            result["changed"] = result["changed"] or bool(deleted) or recorded
    except CoreException as error:
        fail(str(error))
    except Exception as error:  # noqa: BLE001 - reported, masked, rather than as a traceback, which is not
        fail(f"{type(error).__name__}: {error}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
