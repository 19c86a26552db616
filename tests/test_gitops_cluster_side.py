"""What gitops mode never writes to Git, a layer's Secrets and node labels, proven on the real API
server through the platform role's own delivery (`tasks_from: deliver`) of a test layer that has
both, in a copy of the project whose lab state directory holds the server's kubeconfig:

1. platform_gitops_secrets apply (the default): the tree is written without the Secret; the
   Secret's namespace (with its Pod Security labels), the Secret and the node's labels are set
   in the cluster, and the output shows no Secret value;
2. the same run again changes nothing;
3. platform_gitops_secrets skip: nothing is set in the cluster, and one message names the Secret
   by its keys (never a value) and the node label as the kubectl command that sets it.
"""

from __future__ import annotations

import json

import pytest

from apiserver import APIError, api_get, apply_server_side
from conftest import layer_delivery_project, run, state_dir, tool

pytestmark = pytest.mark.xdist_group("apiserver")

VALUE = "NeverInGitNorOutput0123456789"
NODE = "gitops-gpu-1"


def _layer(namespace):
    labels = {"app.kubernetes.io/part-of": "ml-platform", "platform.ml/layer": "gitopstest"}
    return {
        "name": "gitopstest", "wave": 90,
        "namespaces": [{"name": namespace, "pod_security": "restricted"}],
        "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace, "labels": labels},
                       "data": {"a": "1"}}],
        "secrets": [{"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "login", "namespace": namespace, "labels": labels},
                     "stringData": {"password": VALUE, "user": "admin"}}],
        "node_labels": [{"name": NODE, "labels": {"nvidia.com/mig.config": "all-balanced"}}],
    }


@pytest.fixture()
def gitops_project(tmp_path, apiserver):
    return layer_delivery_project(tmp_path, apiserver)


def _deliver(project, layer, secrets):
    (project / "layer.json").write_text(json.dumps({"test_layer": layer}))
    return run([tool("ansible-playbook"), "deliver-test-layer.yml", "-i", "inventories/lab", "-e", "@layer.json",
                "-e", "platform_delivery=gitops", "-e", f"platform_gitops_dir={project / 'tree'}",
                "-e", "platform_gitops_repo_url=https://git.example.internal/platform.git", "-e", f"platform_gitops_secrets={secrets}"],
               cwd=project, timeout=300)


def _missing(server, path):
    try:
        api_get(server, path)
    except APIError as error:
        return error.code == 404
    return False


def test_gitops_sets_secrets_and_node_labels_in_the_cluster_or_names_them(gitops_project, apiserver):
    project, server = gitops_project, apiserver
    apply_server_side(server, [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}], "test")

    applied = _deliver(project, _layer("gitops-apply"), "apply")
    assert applied.returncode == 0, applied.stdout[-4000:]
    tree = "".join(p.read_text() for p in (project / "tree").rglob("*.yaml"))
    assert "name: settings" in tree and "kind: Secret" not in tree and VALUE not in tree
    assert VALUE not in applied.stdout
    namespace = api_get(server, "/api/v1/namespaces/gitops-apply")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert set(api_get(server, "/api/v1/namespaces/gitops-apply/secrets/login")["data"]) == {"password", "user"}
    assert api_get(server, f"/api/v1/nodes/{NODE}")["metadata"]["labels"]["nvidia.com/mig.config"] == "all-balanced"

    again = _deliver(project, _layer("gitops-apply"), "apply")
    assert again.returncode == 0 and "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-4000:]

    skipped = _deliver(project, _layer("gitops-skip"), "skip")
    assert skipped.returncode == 0, skipped.stdout[-4000:]
    assert _missing(server, "/api/v1/namespaces/gitops-skip")
    said = " ".join(skipped.stdout.split())
    assert VALUE not in said
    shown = said.split("Show the Secrets, by name and keys only, and the node labels left to you, of layer gitopstest")[1]
    assert ("platform_gitops_secrets is skip, so create these Secrets yourself (values in"
            f" {state_dir(project, 'lab')}/credentials): gitops-skip/login (password, user)") in shown
    assert f"platform_gitops_secrets is skip, so label the nodes yourself: kubectl label node {NODE} --overwrite nvidia.com/mig.config=all-balanced" in shown
