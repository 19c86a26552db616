"""Direct mode removes what a layer no longer declares (platform_k8s_apply's prune, the last tasks of
roles/platform/tasks/deliver_direct.yml), proven on the real API server through the platform
role's own delivery (`tasks_from: deliver`) of a test layer, in a copy of the project whose lab
state directory holds the server's kubeconfig, as layer 1 would leave it:

1. a team's objects are delivered (a namespace, a RoleBinding, a ResourceQuota, a
   NetworkPolicy, a ConfigMap) beside objects that are not the layer's: one another field
   manager applied with the layer's label, one a controller owns, one of another layer;
2. the team is removed from the declaration and the NetworkPolicy kind dropped altogether:
   --check names what would go and deletes nothing;
3. the real run deletes the removed team's RoleBinding, ResourceQuota and the dropped kind's
   NetworkPolicy (found through the layer's record of the kinds it declared), leaves its
   Namespace (it holds data) and names it with the way to delete it, and touches nothing that
   is not the layer's;
4. a further run changes nothing; with -e platform_prune_data=true the Namespace goes too.
"""

from __future__ import annotations

import json

import pytest
import yaml

from apiserver import APIError, api_get, apply_server_side
from conftest import ROOT, layer_delivery_project, run, tool

pytestmark = pytest.mark.xdist_group("apiserver")

FIELD_MANAGER = yaml.safe_load((ROOT / "roles" / "platform" / "defaults" / "main.yml").read_text())["platform_field_manager"]
LAYER = "prunetest"
LABELS = {"app.kubernetes.io/part-of": "ml-platform", "platform.ml/layer": LAYER}


def _team(team):
    ns = f"prune-{team}"
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": f"{team}-edit", "namespace": ns, "labels": LABELS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": f"team:{team}"}]},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "quota", "namespace": ns, "labels": LABELS},
         "spec": {"hard": {"requests.cpu": "4"}}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "default-deny", "namespace": ns, "labels": LABELS},
         "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
    ]


def _layer(teams, network_policies=True):
    manifests = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept", "namespace": "prune-keep", "labels": LABELS},
                  "data": {"a": "1"}}]
    for team in teams:
        manifests += [d for d in _team(team) if network_policies or d["kind"] != "NetworkPolicy"]
    return {"name": LAYER, "wave": 90, "namespaces": [{"name": f"prune-{t}", "pod_security": "restricted"} for t in ["keep", *teams]],
            "manifests": manifests}


def _deliver(project, layer, *extra):
    (project / "layer.json").write_text(json.dumps({"test_layer": layer}))
    return run(
        [tool("ansible-playbook"), "deliver-test-layer.yml", "-i", "inventories/lab", "-e", "@layer.json", "-e", "platform_delivery=direct", *extra],
        cwd=project, timeout=300,
    )


def _exists(server, path):
    try:
        api_get(server, path)
        return True
    except APIError as error:
        if error.code == 404:
            return False
        raise


@pytest.fixture()
def prune_project(tmp_path, apiserver):
    return layer_delivery_project(tmp_path, apiserver)


def test_what_a_layer_no_longer_declares_is_removed_and_data_is_kept(prune_project, apiserver):
    project, server = prune_project, apiserver
    first = _deliver(project, _layer(["old"]))
    assert first.returncode == 0, first.stdout[-4000:]

    # Not the layer's, each in its own way: nothing may remove them.
    owner = api_get(server, "/api/v1/namespaces/prune-keep/configmaps/kept")
    others = [
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "by-hand", "namespace": "prune-keep", "labels": LABELS}}, "kubectl"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": "owned", "namespace": "prune-keep", "labels": LABELS,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "kept", "uid": owner["metadata"]["uid"], "controller": True}]}},
         FIELD_MANAGER),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other-layer", "namespace": "prune-keep",
                                                               "labels": dict(LABELS, **{"platform.ml/layer": "storage"})}}, FIELD_MANAGER),
    ]
    for doc, manager in others:
        apply_server_side(server, [doc], manager)

    removed = [
        "/apis/rbac.authorization.k8s.io/v1/namespaces/prune-old/rolebindings/old-edit",
        "/api/v1/namespaces/prune-old/resourcequotas/quota",
        "/apis/networking.k8s.io/v1/namespaces/prune-old/networkpolicies/default-deny",
    ]
    kept = ["/api/v1/namespaces/prune-old", "/api/v1/namespaces/prune-keep/configmaps/kept"] + [
        f"/api/v1/namespaces/prune-keep/configmaps/{doc['metadata']['name']}" for doc, _ in others
    ]
    assert all(_exists(server, path) for path in removed + kept)

    # The team goes, and with it the layer's last NetworkPolicy: only the record knows the kind.
    smaller = _layer([], network_policies=False)
    checked = _deliver(project, smaller, "--check")
    assert checked.returncode == 0, checked.stdout[-4000:]
    said = " ".join(checked.stdout.split())
    assert ("Would remove, as layer prunetest no longer declares them: NetworkPolicy prune-old/default-deny,"
            " RoleBinding prune-old/old-edit, ResourceQuota prune-old/quota") in said, said[-4000:]
    assert all(_exists(server, path) for path in removed + kept), "--check deleted something"

    pruned = _deliver(project, smaller)
    assert pruned.returncode == 0, pruned.stdout[-4000:]
    assert not any(_exists(server, path) for path in removed), pruned.stdout[-4000:]
    assert all(_exists(server, path) for path in kept), pruned.stdout[-4000:]
    said = " ".join(pruned.stdout.split())  # the callback wraps long messages
    assert "Removed, as layer prunetest no longer declares them: NetworkPolicy prune-old/default-deny," in said, said[-4000:]
    assert "no longer declares Namespace prune-old, which hold data: left in place" in said, said[-4000:]
    assert "re-run with -e platform_prune_data=true" in said

    again = _deliver(project, smaller)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-4000:]

    data = _deliver(project, smaller, "-e", "platform_prune_data=true")
    assert data.returncode == 0, data.stdout[-4000:]
    namespace = api_get(server, "/api/v1/namespaces/prune-old") if _exists(server, "/api/v1/namespaces/prune-old") else None
    # No namespace controller runs here to finish the deletion: it is marked for deletion.
    assert namespace is None or namespace["metadata"].get("deletionTimestamp"), namespace
    assert all(_exists(server, path) for path in kept[1:])
