"""Direct delivery's applies (plugins/modules/platform_k8s_apply.py, the module behind
roles/platform/tasks/deliver_direct.yml's two applying tasks and gitops' Secrets), proven on the
real API server through the platform role's own delivery (`tasks_from: deliver`) of test layers,
fed what the server refuses:

1. an object the API server refuses stops the run at once, with the server's message, and is
   not retried: what came before it is applied, nothing after it; a merge patch (a node label)
   for a node that has not joined is a warning, and the node is never created; --check reports
   the change it would make and makes none;
2. while an admission webhook does not serve ("failed calling webhook"), the manifests are
   retried, a bounded number of times, then the run fails with the server's message;
3. a Secret the server refuses with a message that holds its value (a ValidatingAdmissionPolicy
   whose message quotes the data) shows no value: neither in the failure, nor, at -vvv, in the
   module's invocation, in direct delivery or in gitops (which applies Secrets with it too).
"""

from __future__ import annotations

import base64
import json
import time

import pytest
import yaml

from apiserver import APIError, api_get, apply_server_side, request
from conftest import ROOT, layer_delivery_project, run, tool

pytestmark = pytest.mark.xdist_group("apiserver")

FIELD_MANAGER = yaml.safe_load((ROOT / "roles" / "platform" / "defaults" / "main.yml").read_text())["platform_field_manager"]
LAYER = "applytest"
LABELS = {"app.kubernetes.io/part-of": "ml-platform", "platform.ml/layer": LAYER}
VALUE = "NeverShownApplyValue0123456789"
RETRIES = "2"


def _configmap(name, namespace, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "labels": LABELS}, "data": data}


def _layer(namespace, manifests=(), secrets=(), node_labels=()):
    return {"name": LAYER, "wave": 90, "namespaces": [{"name": namespace, "pod_security": "restricted"}],
            "manifests": list(manifests), "secrets": list(secrets), "node_labels": list(node_labels)}


def _deliver(project, layer, *extra, delivery="direct"):
    """The layer delivered as the layer roles deliver theirs; the webhook retry bounded to two
    retries, one second apart, as a test can wait for (a role variable, given as -e)."""
    (project / "layer.json").write_text(json.dumps({"test_layer": layer}))
    gitops = ["-e", f"platform_gitops_dir={project / 'tree'}", "-e", "platform_gitops_repo_url=https://git.example.internal/platform.git"]
    return run(
        [tool("ansible-playbook"), "deliver-test-layer.yml", "-i", "inventories/lab", "-e", "@layer.json", "-e", f"platform_delivery={delivery}",
         "-e", f"__platform_webhook_retries={RETRIES}", "-e", "__platform_webhook_delay=1", *(gitops if delivery == "gitops" else []), *extra],
        cwd=project, timeout=300,
    )


def _get(server, path):
    try:
        return api_get(server, path)
    except APIError as error:
        if error.code == 404:
            return None
        raise


def _recap(result):
    return result.stdout.split("PLAY RECAP")[-1]


@pytest.fixture()
def apply_project(tmp_path, apiserver):
    return layer_delivery_project(tmp_path, apiserver)


def test_a_refused_object_stops_the_run_at_once_with_the_servers_message(apply_project, apiserver):
    project, server, ns = apply_project, apiserver, "apply-refused"
    good = _configmap("first", ns, {"a": "1"})
    missing_node = {"name": "apply-never-joined", "labels": {"platform.ml/test": "x"}}
    applied = _deliver(project, _layer(ns, [good], node_labels=[missing_node]))
    assert applied.returncode == 0, applied.stdout[-4000:]
    assert _get(server, f"/api/v1/namespaces/{ns}/configmaps/first")["data"] == {"a": "1"}
    # The label of a node that has not joined: a warning, and no node made.
    assert "resource 'kind=Node,name=apply-never-joined' was not found but will not be created" in " ".join(applied.stderr.split())
    assert _get(server, "/api/v1/nodes/apply-never-joined") is None
    again = _deliver(project, _layer(ns, [good]))
    assert again.returncode == 0 and "changed=0" in _recap(again), again.stdout[-4000:]

    # --check: the change it would make, reported and not made.
    checked = _deliver(project, _layer(ns, [_configmap("first", ns, {"a": "2"})]), "--check")
    assert checked.returncode == 0 and "changed=1" in _recap(checked), checked.stdout[-4000:]
    assert _get(server, f"/api/v1/namespaces/{ns}/configmaps/first")["data"] == {"a": "1"}

    refused = _configmap("second", ns, {"not a key!": "x"})
    after = _configmap("third", ns, {"c": "3"})
    began = time.monotonic()
    failed = _deliver(project, _layer(ns, [_configmap("first", ns, {"a": "4"}), refused, after]))
    assert failed.returncode != 0
    said = " ".join(failed.stdout.split())
    assert "Failed to apply object" in said and "not a key!" in said and "a valid config key must consist of" in said, failed.stdout[-4000:]
    assert "FAILED - RETRYING" not in failed.stdout and time.monotonic() - began < 60
    assert _get(server, f"/api/v1/namespaces/{ns}/configmaps/first")["data"] == {"a": "4"}
    assert _get(server, f"/api/v1/namespaces/{ns}/configmaps/third") is None


def test_manifests_are_retried_while_a_webhook_does_not_serve_then_the_run_fails(apply_project, apiserver):
    project, server, ns = apply_project, apiserver, "apply-webhook"
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "apply-test-webhook"},
        "webhooks": [{
            "name": "configmaps.apply-test.invalid", "failurePolicy": "Fail", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": ns, "name": "no-such-service", "port": 443}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}],
        }],
    }
    apply_server_side(server, [webhook], "test")
    try:
        failed = _deliver(project, _layer(ns, [_configmap("held", ns, {"a": "1"})]))
    finally:
        request(server, "DELETE", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/apply-test-webhook")
    assert failed.returncode != 0
    assert failed.stdout.count("FAILED - RETRYING: [localhost]: Apply server-side the manifests") == int(RETRIES), failed.stdout[-4000:]
    assert "failed calling webhook" in failed.stdout and "configmaps.apply-test.invalid" in failed.stdout
    # The namespace was created before the releases; the ConfigMap never got past the webhook.
    assert _get(server, f"/api/v1/namespaces/{ns}") is not None
    assert _get(server, f"/api/v1/namespaces/{ns}/configmaps/held") is None


@pytest.mark.parametrize("delivery", ["direct", "gitops"])
def test_a_refused_secret_shows_no_value_even_when_the_servers_message_quotes_it(apply_project, apiserver, delivery):
    project, server, ns = apply_project, apiserver, f"apply-secret-{delivery}"
    name = f"apply-test-quotes-secrets-{delivery}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            },
            # The message quotes the value, as the API holds it (base64).
            "validations": [{"expression": "false", "messageExpression": "'refused, quoting ' + string(object.data['password'])"}],
        },
    }
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
               "spec": {"policyName": name, "validationActions": ["Deny"]}}
    apply_server_side(server, [policy, binding], "test")
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "login", "namespace": ns, "labels": LABELS},
              "stringData": {"password": VALUE, "user": "admin"}}
    try:
        # The policy is enforced once the API server has compiled it: until then the Secret is created.
        deadline = time.monotonic() + 60
        while True:
            failed = _deliver(project, _layer(ns, secrets=[secret]), "-vvv", delivery=delivery)
            if failed.returncode != 0 or time.monotonic() > deadline:
                break
            request(server, "DELETE", f"/api/v1/namespaces/{ns}/secrets/login")
            time.sleep(1)
    finally:
        for kind in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
            request(server, "DELETE", f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}")
    shown = failed.stdout + failed.stderr
    assert failed.returncode != 0, shown[-4000:]
    # The server said it, quoting the value: the run shows the refusal, not the value.
    assert "refused, quoting ********" in " ".join(shown.split()), shown[-4000:]
    assert VALUE not in shown and base64.b64encode(VALUE.encode()).decode() not in shown
    # -vvv shows the module's invocation: the Secret by its keys.
    assert "module_args" in shown and "password" in shown
    assert _get(server, f"/api/v1/namespaces/{ns}/secrets/login") is None
