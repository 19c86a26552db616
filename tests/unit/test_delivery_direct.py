"""The direct path's own logic: interrupted Helm releases, first installs, bundle CRDs,
per-release timeouts (plugins/filter/platform_delivery.py)."""

import json

import platform_delivery as pd

CHARTS = {"metallb": {"repository": "https://metallb.github.io/metallb", "chart": "metallb", "version": "0.16.1"}}


def listed(name, namespace, *releases):
    """What the `helm list --all --output json` task registers for one declared release."""
    return {"item": {"name": name, "namespace": namespace, "chart": "metallb"}, "stdout": json.dumps(list(releases))}


def release(name, status, revision="2"):
    return {"name": name, "namespace": "metallb-system", "revision": revision, "status": status, "chart": "metallb-0.16.1"}


def test_a_pending_upgrade_names_the_rollback_command():
    results = [listed("metallb", "metallb-system", release("metallb", "pending-upgrade", "3"))]
    (problem,) = pd.pending_releases(results, "/state/bin/helm", "/state/admin.conf")
    assert "metallb-system/metallb is pending-upgrade (revision 3)" in problem
    assert "`/state/bin/helm rollback metallb --namespace metallb-system --kubeconfig /state/admin.conf`" in problem


def test_a_pending_install_has_nothing_to_roll_back_to_and_is_uninstalled():
    results = [listed("metallb", "metallb-system", release("metallb", "pending-install", "1"))]
    (problem,) = pd.pending_releases(results)
    assert "`helm uninstall metallb --namespace metallb-system`" in problem


def test_deployed_failed_and_missing_releases_are_not_pending():
    results = [
        listed("metallb", "metallb-system", release("metallb", "deployed")),
        listed("cilium", "kube-system", release("cilium", "failed")),
        listed("velero", "velero"),
        # --filter is a regular expression: a release whose name only contains the declared one is not it.
        listed("loki", "monitoring", release("loki-canary", "pending-install")),
    ]
    assert pd.pending_releases(results) == []


def test_only_a_release_helm_does_not_hold_is_a_first_install():
    results = [
        listed("metallb", "metallb-system", release("metallb", "failed")),
        listed("cilium", "kube-system"),
        listed("loki", "monitoring", release("loki-canary", "deployed")),
    ]
    assert pd.installed_releases(results) == ["metallb-system/metallb"]


def test_a_bundle_wait_names_only_its_crds():
    text = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gateways.gateway.networking.k8s.io}\n---\n"
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: safe-upgrades.gateway.networking.k8s.io}\n---\n"
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: safe-upgrades.gateway.networking.k8s.io}\n"
    )
    assert pd.crd_names(text) == ["gateways.gateway.networking.k8s.io"]


def test_a_release_timeout_must_be_seconds():
    layer = {"name": "storage", "wave": 30, "releases": [{"name": "metallb", "chart": "metallb", "namespace": "metallb-system", "timeout": "15m"}]}
    assert pd.declaration_problems(layer, CHARTS) == ["layer storage: release metallb has timeout '15m'; it must be a number of seconds"]
    layer["releases"][0]["timeout"] = 1800
    assert pd.declaration_problems(layer, CHARTS) == []
