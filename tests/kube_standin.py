#!/usr/bin/python
"""A stand-in for kubernetes.core's k8s, k8s_info and k8s_log, for running a role that talks to
a cluster where there is none. The test installs this file as each of the three modules of a
kubernetes.core collection found before the real one (ANSIBLE_COLLECTIONS_PATH); the module's
file name says which one it is. Its directory is $KUBE_STANDIN:

- store.json: the objects, as applied (k8s state=present) and not deleted since;
- config.json: {"status": {kind: status}} merged into every object of that kind k8s_info returns
  (what the controllers would write), {"exist": {kind: object}} objects of a kind that exist
  whatever their name (the platform's Gateway), {"logs": {job: [lines]}} what k8s_log returns;
- calls.jsonl: every call, one JSON line {"module", "params"}.

Results have the real modules' shape, in the parts a role reads: k8s returns the object applied
(a Secret's stringData turned into base64 data, as the API server does) or the object deleted
(the API answers a delete with it), k8s_info the objects with their status, k8s_log the lines.
So whatever a task would print with -v against a cluster, it prints here too."""

from __future__ import annotations

import base64
import copy
import json
import os

from ansible.module_utils.basic import AnsibleModule

MODULE = os.path.basename(__file__).rsplit(".", 1)[0]
RAW = {"type": "raw"}
ARGUMENTS = {
    "k8s": ["kubeconfig", "state", "definition", "api_version", "kind", "namespace", "name", "wait", "wait_condition",
            "wait_timeout", "label_selectors", "delete_options", "apply", "server_side_apply"],
    "k8s_info": ["kubeconfig", "api_version", "kind", "namespace", "name", "label_selectors", "wait", "wait_condition",
                 "wait_timeout"],
    "k8s_log": ["kubeconfig", "namespace", "name", "label_selectors", "container"],
}


def load(directory, name, default):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def key(obj):
    meta = obj.get("metadata", {})
    return "/".join([obj["kind"], meta.get("namespace", ""), meta["name"]])


def selected(obj, selectors):
    labels = obj.get("metadata", {}).get("labels", {}) or {}
    return all(labels.get(s.split("=", 1)[0]) == s.split("=", 1)[1] for s in selectors or [])


def as_stored(obj):
    """The object as the API server keeps and returns it: a Secret's stringData becomes data, in base64."""
    obj = copy.deepcopy(obj)
    if obj.get("kind") == "Secret" and "stringData" in obj:
        data = obj.setdefault("data", {})
        for name, value in obj.pop("stringData").items():
            data[name] = base64.b64encode(str(value).encode()).decode()
    return obj


def main():
    module = AnsibleModule(argument_spec={name: RAW for name in ARGUMENTS[MODULE]})
    params = module.params
    directory = os.environ["KUBE_STANDIN"]
    with open(os.path.join(directory, "calls.jsonl"), "a", encoding="utf-8") as calls:
        calls.write(json.dumps({"module": MODULE, "params": params}) + "\n")
    store = load(directory, "store.json", {})
    config = load(directory, "config.json", {})

    if MODULE == "k8s_log":
        job = next((s.split("=", 1)[1] for s in params["label_selectors"] or [] if s.startswith("job-name=")), "")
        lines = config.get("logs", {}).get(job, [f"PASS {job} (stand-in)"])
        module.exit_json(changed=False, log="\n".join(lines) + "\n", log_lines=lines)

    if MODULE == "k8s_info":
        found = [obj for k, obj in store.items()
                 if obj["kind"] == params["kind"]
                 and (not params["namespace"] or obj["metadata"].get("namespace") == params["namespace"])
                 and (not params["name"] or obj["metadata"]["name"] == params["name"])
                 and selected(obj, params["label_selectors"])]
        if not found and params["kind"] in config.get("exist", {}):
            found = [dict(config["exist"][params["kind"]], metadata={"name": params["name"], "namespace": params["namespace"]})]
        resources = []
        for obj in found:
            obj = copy.deepcopy(obj)
            obj.setdefault("status", {}).update(config.get("status", {}).get(obj["kind"], {}))
            resources.append(obj)
        module.exit_json(changed=False, api_found=True, resources=resources)

    state = params["state"] or "present"
    if state == "absent":
        if params["name"]:
            gone = store.pop("/".join([params["kind"], params["namespace"] or "", params["name"]]), None)
            result = gone or {}
        else:
            gone = [k for k, obj in store.items() if obj["kind"] == params["kind"]
                    and obj["metadata"].get("namespace") == params["namespace"] and selected(obj, params["label_selectors"])]
            result = [store.pop(k) for k in gone] or {}
        changed = bool(result)
    else:
        definitions = params["definition"] if isinstance(params["definition"], list) else [params["definition"]]
        definitions = [as_stored(obj) for obj in definitions]
        for obj in definitions:
            store[key(obj)] = obj
        result = definitions[0] if len(definitions) == 1 else definitions
        changed = True
    with open(os.path.join(directory, "store.json"), "w", encoding="utf-8") as handle:
        json.dump(store, handle)
    module.exit_json(changed=changed, method="delete" if state == "absent" else "apply", result=result)


if __name__ == "__main__":
    main()
