"""Unit tests of what layers 5 and 6 check and compute (plugins/filter/serving_layer.py,
tracking_mlflow.py), and of the shared pieces they added (platform_proxy.py, the
role-settings and Secret-listing filters, CRD releases kept)."""

from __future__ import annotations

import pytest

import platform_delivery as pd
import platform_inventory as pi
import platform_proxy as pp
import serving_layer as sl
import tracking_mlflow as tm

SERVING = {
    "serving_deployment_mode": "raw",
    "serving_runtimes": ["sklearn", "xgboost", "triton", "huggingface"],
    "serving_inference_clients": ["default"],
    "serving_gpu_products": [],
}
TRACKING = {
    "tracking_postgres_backup_schedule": "0 0 2 * * *",
    "tracking_postgres_backup_retention": "30d",
    "tracking_mlflow_default_permission": "READ",
    "tracking_postgres_instances": 0,
    "tracking_mlflow_workers": 2,
}


def test_sound_serving_settings_pass():
    assert sl.problems(SERVING, ["NVIDIA-H100-80GB-HBM3"]) == []
    assert sl.problems(dict(SERVING, serving_gpu_products="training"), [], {"training": ["NVIDIA-H100-80GB-HBM3"]}) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"serving_deployment_mode": "rawdeployment"}, "serving_deployment_mode: 'rawdeployment' is not one of raw, serverless"),
        ({"serving_runtimes": ["sklearn", "xgb"]}, "serving_runtimes: 'xgb' is not a runtime the platform installs (did you mean xgboost?)"),
        ({"serving_runtimes": "sklearn"}, "serving_runtimes: 'sklearn' must be a list"),
        ({"serving_inference_clients": []}, "serving_inference_clients: empty"),
        ({"serving_inference_clients": ["Batch_Scoring"]}, "'Batch_Scoring' must be a DNS label"),
        ({"serving_inference_clients": ["a", "a"]}, "'a' is listed twice"),
        ({"serving_gpu_products": ["NVIDIA-H200"]}, "serving_gpu_products: 'NVIDIA-H200' is the gpu_product of no host in group gpu (NVIDIA-H100-80GB-HBM3)"),
        ({"serving_gpu_products": "inference"}, "serving_gpu_products: 'inference' is not a class of gpu_classes (none defined)"),
    ],
)
def test_each_bad_serving_setting_is_named_with_its_fix(change, expected):
    found = sl.problems(dict(SERVING, **change), ["NVIDIA-H100-80GB-HBM3"])
    assert len(found) == 1 and expected in found[0] and "Fix:" in found[0]


def test_the_token_map_holds_each_client_and_refuses_what_nginx_could_misread():
    tokens = {"default": {"token": "a" * 48}, "batch": {"token": "B1" * 24}}
    assert sl.token_map(tokens) == f'"Bearer {"B1" * 24}" batch;\n"Bearer {"a" * 48}" default;\n'
    with pytest.raises(ValueError, match="letters and digits"):
        sl.token_map({"default": {"token": 'x" ok; "y' + "a" * 40}})
    with pytest.raises(ValueError, match="DNS label"):
        sl.token_map({"Default Client": {"token": "a" * 48}})


def test_sound_tracking_settings_pass():
    assert tm.problems(TRACKING, 3, "10.42.0.0/16") == []


@pytest.mark.parametrize(
    "change, nodes, cidr, expected",
    [
        ({"tracking_postgres_backup_schedule": "0 2 * * *"}, 3, None, "has 5 fields; CloudNativePG's schedule has six, seconds first"),
        ({"tracking_postgres_backup_retention": "30"}, 3, None, "tracking_postgres_backup_retention: '30' is not a number of days"),
        ({"tracking_mlflow_default_permission": "read"}, 3, None, "tracking_mlflow_default_permission: 'read' is not one of READ"),
        ({"tracking_postgres_instances": 3}, 1, None, "3 PostgreSQL instances, but the inventory has 1 node(s)"),
        ({"tracking_postgres_instances": -1}, 3, None, "must be 0 (derive from the nodes) or a positive number"),
        ({"tracking_mlflow_workers": 0}, 3, None, "tracking_mlflow_workers: 0 must be a positive number"),
        ({}, 3, "fd00:10:42::/56", "compute_pod_cidr: fd00:10:42::/56: only IPv4 pod CIDRs are supported"),
    ],
)
def test_each_bad_tracking_setting_is_named(change, nodes, cidr, expected):
    found = tm.problems(dict(TRACKING, **change), nodes, cidr)
    assert len(found) == 1 and expected in found[0]


@pytest.mark.parametrize(
    "cidr, pattern", [("10.42.0.0/16", "10.42.*"), ("10.128.0.0/9", "10.*"), ("192.168.10.0/24", "192.168.10.*"), ("0.0.0.0/0", "*"), ("10.1.2.3/32", "10.1.2.3")]
)
def test_the_pod_host_pattern_covers_the_whole_cidr(cidr, pattern):
    assert tm.cidr_host_pattern(cidr) == pattern


def test_role_settings_put_the_inventory_over_the_defaults():
    assert pi.role_settings({"a": 1, "b": [2]}, {"b": [3], "c": 4}) == {"a": 1, "b": [3]}


def test_skipped_secrets_are_listed_by_name_and_keys_never_values():
    layer = {"secrets": [{"kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "stringData": {"password": "hunter2-secret", "user": "u"}}]}
    assert pd.secret_summaries(layer) == ["n/s (password, user)"]


def test_a_kept_release_is_never_pruned_or_cascade_deleted():
    settings = {"argocd_namespace": "argocd", "argocd_project": "default", "repo_url": "https://git", "revision": "HEAD", "repo_path": ""}
    charts = {"crds": {"repository": "https://charts.example", "chart": "crds", "version": "1.0.0"}}
    layer = {"name": "serving", "wave": 60, "releases": [{"name": "crds", "chart": "crds", "namespace": "x", "keep": True}]}
    assert pd.declaration_problems(layer, charts) == []
    (_, app), = pd.argocd_applications(layer, charts, settings)
    assert "finalizers" not in app["metadata"] and app["spec"]["syncPolicy"]["automated"]["prune"] is False


def test_a_login_proxy_is_hardened_and_rolls_with_its_credentials():
    docs = pp.proxy_documents("p", "ns", {"a": "b"}, "server {}", "p-auth", "nginx:1", 2, "digest-1")
    config, service, deployment = docs
    assert config["data"] == {"default.conf": "server {}"} and service["spec"]["ports"][0]["targetPort"] == "http"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "auth", "secret": {"secretName": "p-auth", "defaultMode": 0o440}} in pod["volumes"]
    rotated = pp.proxy_documents("p", "ns", {"a": "b"}, "server {}", "p-auth", "nginx:1", 2, "digest-2")[2]
    annotation = "checksum/config"
    assert deployment["spec"]["template"]["metadata"]["annotations"][annotation] != rotated["spec"]["template"]["metadata"]["annotations"][annotation]
