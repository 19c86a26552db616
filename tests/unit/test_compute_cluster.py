"""Unit tests of the layer 1 helpers (plugins/filter/compute_cluster.py)."""

from __future__ import annotations

import pytest
import yaml

import compute_cluster as cc

ADMIN_CONF = """
apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority-data: Q0E=, server: 'https://127.0.0.1:6443'}
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
users:
- name: default
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""
HASH = "sha256:" + "ab" * 32
KEY = "cd" * 32


def test_the_kubeconfig_points_at_the_endpoint_under_the_platforms_name():
    config = yaml.safe_load(cc.kubeconfig_for(ADMIN_CONF, "https://10.20.0.10:6443", "ml-platform"))
    assert config["clusters"] == [{"name": "ml-platform", "cluster": {"certificate-authority-data": "Q0E=", "server": "https://10.20.0.10:6443"}}]
    assert config["users"][0] == {"name": "ml-platform-admin", "user": {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}}
    assert config["current-context"] == "ml-platform-admin"
    assert config["contexts"][0]["context"] == {"cluster": "ml-platform", "user": "ml-platform-admin"}


def test_something_that_is_not_a_kubeconfig_is_refused():
    with pytest.raises(ValueError):
        cc.kubeconfig_for("apiVersion: v1\nkind: Config\n", "https://x:6443", "c")


def test_join_credentials_are_read_from_kubeadms_output():
    command = f"kubeadm join 10.20.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {HASH} \n"
    upload = f"[upload-certs] Storing the certificates in Secret \"kubeadm-certs\"\n[upload-certs] Using certificate key:\n{KEY}\n"
    assert cc.join_credentials(command, upload) == {"token": "abcdef.0123456789abcdef", "ca_hash": HASH, "certificate_key": KEY}
    assert cc.join_credentials(command)["certificate_key"] == ""


def test_output_without_a_join_command_fails_loudly():
    with pytest.raises(ValueError, match="no join command"):
        cc.join_credentials("error: could not connect")


def test_registry_hosts_send_pulls_to_the_mirror():
    files = cc.registry_hosts({"docker.io": "https://registry.example.internal:5000", "ghcr.io": "https://registry.example.internal:5000"})
    docker = files["/etc/containerd/certs.d/docker.io/hosts.toml"]["content"]
    assert 'server = "https://registry-1.docker.io"' in docker
    assert '[host."https://registry.example.internal:5000"]\n  capabilities = ["pull", "resolve"]' in docker
    assert 'server = "https://ghcr.io"' in files["/etc/containerd/certs.d/ghcr.io/hosts.toml"]["content"]
    assert cc.registry_hosts({}) == {}
