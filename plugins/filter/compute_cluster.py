"""Layer 1 helpers: the admin kubeconfig as the controller keeps it, and the
join credentials kubeadm prints."""

from __future__ import annotations

import re

import yaml


def kubeconfig_for(text, server, cluster_name):
    """The admin kubeconfig read on a control plane, rewritten for the controller: the cluster
    reached at `server` (the control-plane endpoint, not 127.0.0.1) and named after the platform,
    so several clusters' kubeconfigs can be merged without clashing."""
    config = yaml.safe_load(text)
    if not isinstance(config, dict) or not config.get("clusters") or not config.get("users") or not config.get("contexts"):
        raise ValueError("not a kubeconfig with clusters, users and contexts")
    cluster = dict(config["clusters"][0]["cluster"], server=str(server))
    user = config["users"][0]["user"]
    user_name = f"{cluster_name}-admin"
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster_name, "cluster": cluster}],
            "users": [{"name": user_name, "user": user}],
            "contexts": [{"name": user_name, "context": {"cluster": cluster_name, "user": user_name}}],
            "current-context": user_name,
            "preferences": {},
        },
        default_flow_style=False,
        sort_keys=True,
    )


def join_credentials(join_command, upload_certs_output=""):
    """{token, ca_hash, certificate_key} from `kubeadm token create --print-join-command` and,
    for control planes, the last line of `kubeadm init phase upload-certs --upload-certs`."""
    token = re.search(r"--token\s+(\S+)", join_command or "")
    ca_hash = re.search(r"--discovery-token-ca-cert-hash\s+(sha256:[0-9a-f]{64})", join_command or "")
    if not token or not ca_hash:
        raise ValueError("kubeadm printed no join command with a token and a CA hash")
    lines = [line.strip() for line in (upload_certs_output or "").splitlines() if line.strip()]
    key = lines[-1] if lines and re.fullmatch(r"[0-9a-f]{64}", lines[-1]) else ""
    return {"token": token.group(1), "ca_hash": ca_hash.group(1), "certificate_key": key}


def registry_hosts(mirrors):
    """containerd's hosts.toml per mirrored registry: {path: {content}} for platform_files.

    mirrors: {upstream registry: mirror URL}. Pulls and resolves go to the mirror; the
    upstream server stays the fallback containerd names (Docker Hub's is registry-1.docker.io).
    """
    files = {}
    for registry, mirror in sorted((mirrors or {}).items()):
        upstream = "registry-1.docker.io" if registry == "docker.io" else registry
        files[f"/etc/containerd/certs.d/{registry}/hosts.toml"] = {
            "content": (
                "# Written by the ml-platform installer (compute role).\n"
                f'server = "https://{upstream}"\n\n'
                f'[host."{mirror}"]\n'
                '  capabilities = ["pull", "resolve"]\n'
            )
        }
    return files


class FilterModule:
    def filters(self):
        return {
            "compute_kubeconfig_for": kubeconfig_for,
            "compute_join_credentials": join_credentials,
            "compute_registry_hosts": registry_hosts,
        }
