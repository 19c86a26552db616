"""What the tracking layer checks and computes.

- ``tracking_problems``: the tracking settings an operator can get wrong, each named
  with its fix (preflight, and the role itself for runs with --tags tracking);
- ``tracking_cidr_host_pattern``: the Host pattern (MLflow's --allowed-hosts, fnmatch)
  that admits every address of a pod CIDR, so Prometheus, which names a pod by its
  address, can scrape /metrics while the security middleware refuses other hosts.
"""

from __future__ import annotations

import json

import ipaddress
import re

PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
# The longest an MLflow worker may keep trusting a login it checked (a rotated or
# removed one works that long).
AUTH_CACHE_MAX = 300
RETENTION = re.compile(r"^[1-9][0-9]*[dwm]$")


def problems(settings, node_count, pod_cidr=None):
    """settings: the tracking role's variables (defaults under the inventory's values);
    node_count: the nodes PostgreSQL's instances can spread over."""
    found = []
    schedule = str(settings.get("tracking_postgres_backup_schedule", ""))
    if len(schedule.split()) != 6:
        found.append(
            f"tracking_postgres_backup_schedule: {schedule!r} has {len(schedule.split())} fields; CloudNativePG's schedule has six, "
            "seconds first. Fix: such as '0 0 2 * * *' (02:00 every day)."
        )
    retention = str(settings.get("tracking_postgres_backup_retention", ""))
    if not RETENTION.match(retention):
        found.append(f"tracking_postgres_backup_retention: {retention!r} is not a number of days, weeks or months. Fix: such as 30d, 8w or 6m.")
    permission = settings.get("tracking_mlflow_default_permission")
    if permission not in PERMISSIONS:
        found.append(f"tracking_mlflow_default_permission: {permission!r} is not one of {', '.join(PERMISSIONS)}. Fix: READ lets users see each other's runs.")
    instances = settings.get("tracking_postgres_instances", 0)
    if not isinstance(instances, int) or isinstance(instances, bool) or instances < 0:
        found.append(f"tracking_postgres_instances: {instances!r} must be 0 (derive from the nodes) or a positive number.")
    elif instances > max(1, int(node_count)):
        found.append(
            f"tracking_postgres_instances: {instances} PostgreSQL instances, but the inventory has {node_count} node(s) and each instance "
            "needs its own. Fix: set it to at most the node count, or 0 to derive it."
        )
    workers = settings.get("tracking_mlflow_workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        found.append(f"tracking_mlflow_workers: {workers!r} must be a positive number.")
    cache = settings.get("tracking_mlflow_auth_cache_seconds", 0)
    if not isinstance(cache, int) or isinstance(cache, bool) or not 0 <= cache <= AUTH_CACHE_MAX:
        found.append(
            f"tracking_mlflow_auth_cache_seconds: {cache!r} is not a number of seconds from 0 to {AUTH_CACHE_MAX}: a rotated or removed "
            "login keeps working that long. Fix: 5 (the default), or 0 to check the password on every request."
        )
    if pod_cidr:
        try:
            cidr_host_pattern(pod_cidr)
        except ValueError as err:
            found.append(f"compute_pod_cidr: {err}; MLflow admits Prometheus's scrapes by pod address. Fix: use an IPv4 pod CIDR.")
    return found


def cidr_host_pattern(cidr):
    """'10.42.0.0/16' -> '10.42.*'. The pattern covers the whole CIDR (it may cover more
    when the prefix is not a multiple of 8: 172.16.0.0/12 -> '172.*'). IPv6 CIDRs are
    refused: MLflow's IPv6 Host patterns match brackets, which Prometheus's targets lack."""
    network = ipaddress.ip_network(str(cidr), strict=False)
    if network.version != 4:
        raise ValueError(f"{cidr}: only IPv4 pod CIDRs are supported")
    octets = network.prefixlen // 8
    if octets == 0:
        return "*"
    if octets == 4:
        return str(network.network_address)
    return ".".join(str(network.network_address).split(".")[:octets]) + ".*"


def _plain(value):
    """Ansible's lazy, tagged values as plain data."""
    return json.loads(json.dumps(value))


def client_secrets(clients, url, endpoint, region, labels):
    """The mlflow-client Secret of each client namespace: the MLflow login and the object-store
    keys a training job needs (envFrom). clients: [{namespace, login {user, password}, keys
    {access_key, secret_key}, labels}] (the platform's training namespace, and each team's)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "mlflow-client", "namespace": client["namespace"], "labels": {**labels, **(client.get("labels") or {})}},
            "stringData": {
                "MLFLOW_TRACKING_URI": url,
                "MLFLOW_TRACKING_USERNAME": client["login"]["user"],
                "MLFLOW_TRACKING_PASSWORD": client["login"]["password"],
                "MLFLOW_S3_ENDPOINT_URL": endpoint,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": region,
                "AWS_ACCESS_KEY_ID": client["keys"]["access_key"],
                "AWS_SECRET_ACCESS_KEY": client["keys"]["secret_key"],
                "MLFLOW_DISABLE_TELEMETRY": "true",
            },
        }
        for client in clients
    ]


def login_entries(users):
    """platform_credentials entries of MLflow logins: {user: {user, password: generated}}."""
    return {str(user): {"user": str(user), "password": None} for user in users}


class FilterModule:
    def filters(self):
        return {
            "tracking_cidr_host_pattern": cidr_host_pattern,
            "tracking_problems": problems,
            "tracking_mlflow_client_secrets": lambda clients, *a: client_secrets(*map(_plain, (clients, *a))),
            "tracking_mlflow_login_entries": lambda users: login_entries(_plain(users)),
        }
