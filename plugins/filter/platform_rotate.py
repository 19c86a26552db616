"""The credentials playbooks/rotate.yml can rotate, by name, and the layers each rotation runs.

A name is <credentials file>/<entry>: the file of the platform's credentials directory the
entry is kept in (object-store.yml, tracking.yml, observability.yml, serving.yml,
orchestration.yml) without .yml, then the entry, as docs/security.md lists them. Rotating it
runs the layer that keeps the file with the entry in its <layer>_rotate_credentials list (the
entry is generated again, the Secrets updated, the old value made invalid there), then every
later layer that builds a Secret or a pod's digest from the same entry, with nothing to rotate,
so that its Secrets carry the new value and the pods that read it roll. The layers run in the
order site.yml runs them.
"""

from __future__ import annotations

# The layers in site.yml's order (those that keep or read credentials).
LAYER_ORDER = ["storage", "observability", "serving", "tracking", "orchestration", "tenancy", "backup"]

# Which layer keeps each credentials file (and its rotate list, <layer>_rotate_credentials).
FILES = {
    "object-store": "storage",
    "observability": "observability",
    "serving": "serving",
    "tracking": "tracking",
    "orchestration": "orchestration",
}

# Object-store entries other layers read too: the tracking layer puts the training user's
# keys in ml-training's mlflow-client and MLflow's in its pods' digest; the backup layer
# puts Velero's in its pod's digest, the serving layer the inference-logger's in its pods'. Every team's keys are the tenancy layer's Secrets.
OBJECT_STORE_READERS = {"mlflow": ["tracking"], "training": ["tracking"], "velero": ["backup"], "inference-logger": ["serving"]}

# The entries of the files whose entries are fixed (no inventory setting adds any).
OBSERVABILITY_ENTRIES = ["grafana", "monitoring-ui"]
ORCHESTRATION_ENTRIES = ["argocd", "argocd-server", "workflows-ui"]
TRACKING_ENTRIES = ["admin", "training", "flask"]


def _plan(file, entry, readers=()):
    owner = FILES[file]
    layers = {owner, *readers}
    return {"file": f"{file}.yml", "entry": entry, "layer": owner,
            "layers": [layer for layer in LAYER_ORDER if layer in layers]}


def catalogue(object_store="minio", object_store_users=None, team_users=(), inference_clients=()):
    """{name: {file, entry, layer (keeps the file), layers (to run, in site.yml's order)}} for an
    inventory: object-store/<user> (MinIO only: an external store's keys are yours, written into
    object-store.yml), tracking/<login>, observability/<login>, serving/<client>,
    orchestration/<login>."""
    names = {}
    teams = sorted(str(user) for user in team_users or [])
    if object_store == "minio":
        for user in ["root", *sorted(object_store_users or {})]:
            names[f"object-store/{user}"] = _plan("object-store", user, OBJECT_STORE_READERS.get(user, []))
        for user in teams:
            names[f"object-store/{user}"] = _plan("object-store", user, ["tenancy"])
    for login in TRACKING_ENTRIES:
        names[f"tracking/{login}"] = _plan("tracking", login)
    for user in teams:
        names[f"tracking/{user}"] = _plan("tracking", user, ["tenancy"])
    for login in OBSERVABILITY_ENTRIES:
        names[f"observability/{login}"] = _plan("observability", login)
    for client in sorted(str(c) for c in inference_clients or []):
        names[f"serving/{client}"] = _plan("serving", client)
    for login in ORCHESTRATION_ENTRIES:
        names[f"orchestration/{login}"] = _plan("orchestration", login)
    return dict(sorted(names.items()))


def rotate_problems(name, names):
    """[] when name is one of the catalogue's names, else the one problem, listing them all."""
    if isinstance(name, str) and name in names:
        return []
    given = "nothing" if name in (None, "") else f"{name!r}"
    return [
        f"rotate is {given}, which is not a credential of this inventory. Fix: -e rotate=<name>, one of: "
        + ", ".join(names)
    ]


def rotate_lists(plan):
    """{layer: [entry]} for the layer that keeps the entry's file, and [] for each other layer
    the rotation runs: the <layer>_rotate_credentials lists of the run."""
    return {layer: ([plan["entry"]] if layer == plan["layer"] else []) for layer in plan["layers"]}


class FilterModule:
    def filters(self):
        return {
            "platform_rotate_catalogue": catalogue,
            "platform_rotate_problems": rotate_problems,
            "platform_rotate_lists": rotate_lists,
        }
