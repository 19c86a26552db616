"""Inventory contract checks, run on the controller before any host is touched.

The one entry point, ``platform_inventory_problems``, reads the inventory
(``hostvars`` and ``groups``) and returns every problem it finds as a list of
messages.  Each message names the host or variable at fault and the fix, so
the preflight role can fail once with all of them.

The checks are plain functions over plain data so they can be unit-tested
without Ansible; the filter wrapper only copies the variables the contract
uses out of ``hostvars``.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Mapping

CLUSTER_GROUPS = ("control_plane", "workers", "gpu")
BUILTIN_GROUPS = ("all", "ungrouped")
DISTRIBUTIONS = ("kubeadm", "k3s", "existing")
DELIVERY_MODES = ("direct", "gitops")
GPU_SHARING = ("exclusive", "mig", "time-slicing")
METALLB_MODES = ("l2", "bgp")
METALLB_POOL_KEYS = ("name", "addresses", "mode", "auto_assign")
BGP_PEER_KEYS = ("name", "peer_address", "peer_asn", "my_asn", "peer_port", "hold_time", "password_secret")
AIRGAP_MIRRORS = ("platform_mirror_binaries", "platform_mirror_images", "platform_mirror_charts")
MAX_ETCD_MEMBERS = 7
BLOCK_STORAGE = ("longhorn", "openebs")
OBJECT_STORES = ("minio", "external")
# Cilium's cluster-pool IPAM (and kube-controller-manager) hand each node a /24.
NODE_POD_PREFIX = 24
# kube-apiserver refuses a service range with more than 2^20 addresses.
MAX_SERVICE_PREFIX_V4 = 12
MAX_SERVICE_PREFIX_V6 = 108

# Variables that shape the whole platform: every cluster host must agree on them.
PLATFORM_VARS = (
    "compute_distribution",
    "compute_pod_cidr",
    "compute_service_cidr",
    "compute_node_cidr",
    "compute_control_plane_endpoint",
    "compute_kube_vip",
    "platform_control_plane_metrics",
    "platform_delivery",
    "platform_gitops_dir",
    "platform_kubeconfig",
    "platform_airgap",
    "network_metallb_pools",
    "network_metallb_bgp_peers",
    "gpu_mig_configs",
    "platform_mirror_git",
    "platform_object_store",
    "platform_object_store_endpoint",
    "storage_block",
    "storage_longhorn_replicas",
    "storage_minio_servers",
    "storage_minio_volumes_per_server",
    "storage_minio_volume_size",
) + AIRGAP_MIRRORS
HOST_VARS = ("ansible_host", "gpu_product", "gpu_sharing", "gpu_mig_config", "gpu_time_slicing_replicas")
GPU_HOST_VARS = HOST_VARS[1:]

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MIG_PROFILE = re.compile(r"^([1-7]c\.)?[1-7]g\.[0-9]+gb(\+(me|gfx|me\.all))?$")
K3S_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+k3s\d+$")
KUBE_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
URL = re.compile(r"^(https?|oci)://[^\s/]+(/\S*)?$")


# ---------------------------------------------------------------- helpers


def _closest(name, candidates):
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _fmt(value):
    return "'" + str(value) + "'" if isinstance(value, str) else str(value)


def _network(value, variable, problems):
    """Parse a CIDR strictly, recording a problem (and returning None) when it is wrong."""
    if value is None or value == "":
        return None
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError as err:
        try:
            loose = ipaddress.ip_network(str(value), strict=False)
            hint = f"it has host bits set; did you mean {loose}?"
        except ValueError:
            hint = str(err)
        problems.append(f"{variable}: {_fmt(value)} is not a valid CIDR ({hint}). Fix: give a network address such as 10.42.0.0/16.")
        return None


def _address(value):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def parse_address_range(entry):
    """Return (first, last) addresses of a MetalLB address entry: a CIDR or 'a-b'.

    Raises ValueError with a readable reason.
    """
    text = str(entry).strip()
    if "-" in text:
        start_text, end_text = (part.strip() for part in text.split("-", 1))
        start, end = ipaddress.ip_address(start_text), ipaddress.ip_address(end_text)
        if start.version != end.version:
            raise ValueError("the range mixes IPv4 and IPv6")
        if end < start:
            raise ValueError("the range ends before it starts")
        return start, end
    net = ipaddress.ip_network(text, strict=True)
    return net.network_address, net.broadcast_address


def _ranges_overlap(a, b):
    return a[0].version == b[0].version and a[0] <= b[1] and b[0] <= a[1]


def _net_range(net):
    return (net.network_address, net.broadcast_address)


def _in_range(addr, rng):
    return addr.version == rng[0].version and rng[0] <= addr <= rng[1]


def _minor(version_text, distribution):
    """Kubernetes minor, as (1, 34), of a kubeadm ('1.34.2') or k3s ('v1.34.2+k3s1') version, or None."""
    m = (K3S_VERSION if distribution == "k3s" else KUBE_VERSION).match(str(version_text))
    return (int(m.group(1)), int(m.group(2))) if m else None


def _parse_minor(text):
    m = re.match(r"^v?(\d+)\.(\d+)$", str(text))
    return (int(m.group(1)), int(m.group(2))) if m else None


def _minor_str(minor):
    return f"{minor[0]}.{minor[1]}"


# ---------------------------------------------------------------- checks


def check_groups(groups, hosts, extra_groups):
    problems = []
    allowed = set(CLUSTER_GROUPS) | set(BUILTIN_GROUPS) | set(extra_groups or ())
    for group in sorted(groups):
        if group not in allowed:
            problems.append(
                f"group '{group}': not part of the inventory contract{_closest(group, CLUSTER_GROUPS)}. "
                f"Fix: use control_plane, workers or gpu, or list '{group}' in preflight_extra_groups if it is your own group."
            )
    members = {name: set(groups.get(name, ())) for name in CLUSTER_GROUPS}
    for host in sorted(hosts):
        in_cluster = host in members["control_plane"] or host in members["workers"]
        if host in members["gpu"] and not in_cluster:
            problems.append(
                f"host {host}: in group gpu but in neither control_plane nor workers, so it would never join the cluster. "
                "Fix: add it to workers (a host may be in workers and gpu)."
            )
        if not in_cluster and host not in members["gpu"] and not any(
            host in groups.get(g, ()) for g in (extra_groups or ())
        ):
            problems.append(
                f"host {host}: in no cluster group. Fix: add it to control_plane or workers, or remove it from the inventory."
            )
    return problems


def check_hostnames(hosts):
    problems = []
    for host in sorted(hosts):
        if len(host) > 253 or not DNS1123_SUBDOMAIN.match(host) or any(len(label) > 63 for label in host.split(".")):
            suggestion = re.sub(r"[^a-z0-9.-]", "-", host.lower()).strip("-.")
            problems.append(
                f"host {host}: the inventory name becomes the Kubernetes node name and must be a lowercase RFC 1123 name "
                f"(letters, digits, '-' and '.'). Fix: rename it, for example to '{suggestion}', and keep the address in ansible_host."
            )
    return problems


def check_control_plane(distribution, groups, platform, node_vars=None):
    problems = []
    node_vars = node_vars or {}
    if distribution not in ("kubeadm", "k3s"):
        return problems
    planes = list(groups.get("control_plane", ()))
    count = len(planes)
    if count == 0:
        problems.append(
            f"group control_plane: empty, but compute_distribution is {distribution}. "
            "Fix: put at least one host in control_plane (its first host bootstraps the cluster)."
        )
    elif count % 2 == 0:
        problems.append(
            f"group control_plane: {count} hosts; etcd needs an odd number of members ({count} tolerate no more failures than {count - 1}). "
            f"Fix: use 1 control plane, or {count + 1} for high availability."
        )
    elif count > MAX_ETCD_MEMBERS:
        problems.append(
            f"group control_plane: {count} hosts; etcd slows down beyond {MAX_ETCD_MEMBERS} members. "
            f"Fix: use 3, 5 or {MAX_ETCD_MEMBERS} control planes and put the rest in workers."
        )
    if distribution == "kubeadm" and count > 1 and not platform.get("compute_control_plane_endpoint"):
        problems.append(
            f"compute_control_plane_endpoint: not set, but kubeadm with {count} control planes needs one stable API address. "
            "Fix: set it to a free virtual IP on the nodes' subnet (kube-vip serves it) or to your load balancer's address."
        )
    endpoint = str(platform.get("compute_control_plane_endpoint") or "")
    host = endpoint.rsplit(":", 1)[0] if endpoint.count(":") == 1 else endpoint
    if endpoint and platform.get("compute_kube_vip", True) is not False and _address(host) is None and distribution in ("kubeadm", "k3s"):
        problems.append(
            f"compute_control_plane_endpoint: {_fmt(endpoint)} is a name, and kube-vip (compute_kube_vip) can only announce an address. "
            "Fix: use a free address on the nodes' subnet, or set compute_kube_vip: false and point the name at your load balancer."
        )
    if distribution == "k3s" and str(platform.get("platform_control_plane_metrics", True)).lower() not in ("false", "no", "off", "0"):
        # k3s runs the controller manager, scheduler and etcd inside its own
        # process: Prometheus reaches them at the control planes' addresses.
        for host in planes:
            if _address(str(node_vars.get(host, {}).get("ansible_host", ""))) is None:
                problems.append(
                    f"host {host}: ansible_host is {_fmt(node_vars.get(host, {}).get('ansible_host', 'not set'))}, not an address, and with k3s Prometheus scrapes "
                    "the control plane's components at its address (platform_control_plane_metrics). "
                    "Fix: set ansible_host to the node's IP address, or set platform_control_plane_metrics: false."
                )
    if distribution in ("kubeadm", "k3s") and not groups.get("workers") and count == 0:
        problems.append(f"group workers: empty and there is no control plane either; compute_distribution {distribution} has no host to install.")
    return problems


def check_distribution(platform, controller_paths_exist):
    problems = []
    distribution = platform.get("compute_distribution")
    if distribution is None:
        problems.append(
            "compute_distribution: not set. Fix: set it in the inventory's group_vars/all.yml to kubeadm (multi-node), "
            "k3s (single node or edge) or existing (a cluster you already have)."
        )
    elif distribution not in DISTRIBUTIONS:
        problems.append(
            f"compute_distribution: {_fmt(distribution)} is not one of {', '.join(DISTRIBUTIONS)}{_closest(str(distribution), DISTRIBUTIONS)}."
            " Fix: correct it in the inventory's group_vars/all.yml."
        )
    if distribution == "existing":
        kubeconfig = platform.get("platform_kubeconfig")
        if not kubeconfig:
            problems.append(
                "platform_kubeconfig: not set, but compute_distribution is existing. "
                "Fix: set it to the path of an admin kubeconfig for your cluster on the controller."
            )
        elif controller_paths_exist and not os.path.isfile(os.path.expanduser(str(kubeconfig))):
            problems.append(
                f"platform_kubeconfig: {kubeconfig} does not exist on the controller. Fix: copy the cluster's admin kubeconfig there or correct the path."
            )
    delivery = platform.get("platform_delivery", "direct")
    if delivery not in DELIVERY_MODES:
        problems.append(
            f"platform_delivery: {_fmt(delivery)} is not one of {', '.join(DELIVERY_MODES)}{_closest(str(delivery), DELIVERY_MODES)}. "
            "Fix: use direct (apply to the cluster) or gitops (write an Argo CD tree)."
        )
    elif delivery == "gitops" and not platform.get("platform_gitops_dir"):
        problems.append(
            "platform_gitops_dir: not set, but platform_delivery is gitops. Fix: set it to the directory of the Git checkout the tree is written to."
        )
    return problems


def check_networks(platform, node_addresses, node_count, distribution):
    """CIDRs parse, do not overlap, and leave the node addresses alone."""
    problems = []
    named = {}
    required = ("compute_pod_cidr", "compute_service_cidr")
    for variable in required + ("compute_node_cidr",):
        value = platform.get(variable)
        if value in (None, ""):
            if variable in required:
                problems.append(f"{variable}: not set. Fix: set it in the inventory's group_vars/all.yml (for example 10.42.0.0/16 for pods, 10.43.0.0/16 for services).")
            continue
        net = _network(value, variable, problems)
        if net is not None:
            named[variable] = net

    pods, services, nodes = named.get("compute_pod_cidr"), named.get("compute_service_cidr"), named.get("compute_node_cidr")
    pairs = [("compute_pod_cidr", "compute_service_cidr"), ("compute_pod_cidr", "compute_node_cidr"), ("compute_service_cidr", "compute_node_cidr")]
    for a, b in pairs:
        if a in named and b in named and named[a].overlaps(named[b]):
            problems.append(f"{a} {named[a]} overlaps {b} {named[b]}. Fix: choose ranges that do not overlap.")

    if services is not None:
        limit = MAX_SERVICE_PREFIX_V4 if services.version == 4 else MAX_SERVICE_PREFIX_V6
        if services.prefixlen < limit:
            problems.append(
                f"compute_service_cidr {services} is larger than the API server accepts (at most /{limit}). Fix: use a /{limit} or smaller, such as 10.43.0.0/16."
            )
    if pods is not None and pods.version == 4 and node_count:
        capacity = 2 ** max(NODE_POD_PREFIX - pods.prefixlen, 0) if pods.prefixlen <= NODE_POD_PREFIX else 0
        if capacity < node_count:
            needed = NODE_POD_PREFIX - math.ceil(math.log2(max(node_count, 1)))
            problems.append(
                f"compute_pod_cidr {pods} holds {capacity} node /{NODE_POD_PREFIX} blocks but the inventory has {node_count} nodes. "
                f"Fix: use a /{needed} or larger."
            )

    seen = {}
    for host, addr in sorted(node_addresses.items()):
        if addr in seen:
            problems.append(f"host {host}: ansible_host {addr} is also the address of {seen[addr]}. Fix: give each node its own address.")
        seen.setdefault(addr, host)
        for variable in ("compute_pod_cidr", "compute_service_cidr"):
            net = named.get(variable)
            if net is not None and addr in net:
                problems.append(f"host {host}: ansible_host {addr} lies inside {variable} {net}. Fix: move {variable} to a range no node uses.")
        if nodes is not None and addr.version == nodes.version and addr not in nodes:
            problems.append(f"host {host}: ansible_host {addr} is outside compute_node_cidr {nodes}. Fix: correct the address or compute_node_cidr.")

    endpoint = platform.get("compute_control_plane_endpoint")
    if endpoint and distribution == "kubeadm":
        ep = _address(str(endpoint).rsplit(":", 1)[0] if str(endpoint).count(":") == 1 else endpoint)
        if ep is not None:
            for variable in ("compute_pod_cidr", "compute_service_cidr"):
                net = named.get(variable)
                if net is not None and ep in net:
                    problems.append(f"compute_control_plane_endpoint {ep} lies inside {variable} {net}. Fix: use an address on the nodes' subnet.")
            if ep in seen:
                problems.append(
                    f"compute_control_plane_endpoint {ep} is the address of node {seen[ep]}; the endpoint must survive that node failing. "
                    "Fix: use a free virtual IP or a load balancer address."
                )
    return problems, named


def check_metallb(platform, node_addresses, networks):
    problems = []
    pools = platform.get("network_metallb_pools") or []
    peers = platform.get("network_metallb_bgp_peers") or []
    if not isinstance(pools, list):
        return [f"network_metallb_pools: must be a list of {{name, addresses, mode}}, got {type(pools).__name__}. Fix: see inventories/production/group_vars/all.yml."]
    names = {}
    ranges = []
    endpoint = _address(platform.get("compute_control_plane_endpoint") or "")
    for index, pool in enumerate(pools):
        label = f"network_metallb_pools[{index}]"
        if not isinstance(pool, Mapping):
            problems.append(f"{label}: must be a mapping with name, addresses and mode.")
            continue
        name = pool.get("name")
        if name:
            label = f"network_metallb_pools[{index}] ({name})"
        for key in pool:
            if key not in METALLB_POOL_KEYS:
                problems.append(f"{label}: unknown key '{key}'{_closest(str(key), METALLB_POOL_KEYS)}. Fix: use only {', '.join(METALLB_POOL_KEYS)}.")
        if not name or not DNS1123_LABEL.match(str(name)):
            problems.append(f"{label}: name {_fmt(name)} must be a lowercase RFC 1123 label (it names the IPAddressPool). Fix: set name such as 'default'.")
        elif name in names:
            problems.append(f"{label}: name '{name}' is used twice. Fix: give each pool its own name.")
        names[name] = index
        mode = pool.get("mode")
        if mode not in METALLB_MODES:
            problems.append(f"{label}: mode {_fmt(mode)} is not l2 or bgp{_closest(str(mode), METALLB_MODES)}. Fix: set mode: l2 or mode: bgp.")
        addresses = pool.get("addresses")
        if isinstance(addresses, str):
            addresses = [addresses]
        if not addresses:
            problems.append(f"{label}: addresses is empty. Fix: list CIDRs or ranges such as 192.168.10.240-192.168.10.250.")
            continue
        for entry in addresses:
            try:
                rng = parse_address_range(entry)
            except ValueError as err:
                problems.append(f"{label}: address entry '{entry}' is not a CIDR or a range ({err}). Fix: write 192.168.10.0/28 or 192.168.10.240-192.168.10.250.")
                continue
            for other_label, other_entry, other in ranges:
                if _ranges_overlap(rng, other):
                    problems.append(f"{label}: '{entry}' overlaps {other_label} '{other_entry}'. Fix: MetalLB pools must not share addresses.")
            ranges.append((label, entry, rng))
            for variable in ("compute_pod_cidr", "compute_service_cidr"):
                net = networks.get(variable)
                if net is not None and _ranges_overlap(rng, _net_range(net)):
                    problems.append(f"{label}: '{entry}' overlaps {variable} {net}. Fix: take pool addresses from the nodes' network, outside the cluster ranges.")
            for host, addr in sorted(node_addresses.items()):
                if _in_range(addr, rng):
                    problems.append(f"{label}: '{entry}' contains {addr}, the address of host {host}. Fix: exclude node addresses from the pool.")
            if endpoint is not None and _in_range(endpoint, rng):
                problems.append(f"{label}: '{entry}' contains compute_control_plane_endpoint {endpoint}. Fix: keep the API endpoint out of LoadBalancer pools.")
            node_net = networks.get("compute_node_cidr")
            if mode == "l2" and node_net is not None and rng[0].version == node_net.version and not (
                rng[0] in node_net and rng[1] in node_net
            ):
                problems.append(
                    f"{label}: '{entry}' is outside compute_node_cidr {node_net}; L2 mode answers ARP/NDP only on the nodes' subnet. "
                    "Fix: take the pool from the nodes' subnet, or use mode: bgp."
                )
    if any(isinstance(p, Mapping) and p.get("mode") == "bgp" for p in pools):
        if not peers:
            problems.append(
                "network_metallb_bgp_peers: empty, but a MetalLB pool uses mode bgp. Fix: list your routers as {name, peer_address, peer_asn, my_asn}."
            )
    for index, peer in enumerate(peers if isinstance(peers, list) else []):
        label = f"network_metallb_bgp_peers[{index}]"
        if not isinstance(peer, Mapping):
            problems.append(f"{label}: must be a mapping with name, peer_address, peer_asn and my_asn.")
            continue
        for key in peer:
            if key not in BGP_PEER_KEYS:
                problems.append(f"{label}: unknown key '{key}'{_closest(str(key), BGP_PEER_KEYS)}. Fix: use only {', '.join(BGP_PEER_KEYS)}.")
        if _address(peer.get("peer_address", "")) is None:
            problems.append(f"{label}: peer_address {_fmt(peer.get('peer_address'))} is not an IP address. Fix: set the router's address.")
        for key in ("peer_asn", "my_asn"):
            asn = peer.get(key)
            if not isinstance(asn, int) or isinstance(asn, bool) or not 1 <= asn <= 4294967295:
                problems.append(f"{label}: {key} {_fmt(asn)} is not an AS number (1-4294967295). Fix: set the ASN your network team assigned.")
        if "password" in peer:
            problems.append(f"{label}: a plain-text BGP password does not belong in the inventory. Fix: put it in a Secret and name it in password_secret.")
    return problems


def check_gpus(hosts_vars, groups, platform):
    problems = []
    gpu_hosts = set(groups.get("gpu", ()))
    layouts = platform.get("gpu_mig_configs") or {}
    if not isinstance(layouts, Mapping):
        problems.append("gpu_mig_configs: must be a mapping of layout name to {profile: count}. Fix: see inventories/production/group_vars/all.yml.")
        layouts = {}
    for name, layout in layouts.items():
        if not isinstance(layout, Mapping) or not layout:
            problems.append(f"gpu_mig_configs.{name}: must map MIG profiles to counts, for example {{'1g.10gb': 7}}.")
            continue
        for profile, count in layout.items():
            if not MIG_PROFILE.match(str(profile)):
                problems.append(f"gpu_mig_configs.{name}: '{profile}' is not a MIG profile name (such as 1g.10gb or 3g.40gb). Fix: use the names nvidia-smi mig -lgip prints.")
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                problems.append(f"gpu_mig_configs.{name}: count {_fmt(count)} for {profile} must be a positive integer.")

    for host in sorted(hosts_vars):
        hv = hosts_vars[host]
        if host not in gpu_hosts:
            stray = [key for key in GPU_HOST_VARS if key in hv]
            if stray:
                problems.append(
                    f"host {host}: sets {', '.join(stray)} but is not in group gpu, so no GPU configuration would apply. "
                    "Fix: add the host to gpu, or remove those variables."
                )
            continue
        product = hv.get("gpu_product")
        if not product or not isinstance(product, str):
            problems.append(
                f"host {host}: gpu_product is not set. Fix: set it to the product name nvidia-smi reports, such as NVIDIA-H100-80GB-HBM3 or NVIDIA-A100-SXM4-80GB."
            )
        sharing = hv.get("gpu_sharing")
        if sharing not in GPU_SHARING:
            shown = "not set" if sharing is None else f"{_fmt(sharing)}, not one of {', '.join(GPU_SHARING)}{_closest(str(sharing), GPU_SHARING)}"
            problems.append(f"host {host}: gpu_sharing is {shown}. Fix: set gpu_sharing to exclusive, mig or time-slicing.")
        layout = hv.get("gpu_mig_config")
        if sharing == "mig":
            if not layout:
                problems.append(
                    f"host {host}: gpu_sharing is mig but gpu_mig_config is not set. Fix: set gpu_mig_config to one of: {', '.join(sorted(layouts)) or '(define gpu_mig_configs first)'}."
                )
            elif layout not in layouts:
                problems.append(
                    f"host {host}: gpu_mig_config '{layout}' is not defined in gpu_mig_configs{_closest(str(layout), layouts)}. "
                    f"Fix: use one of: {', '.join(sorted(layouts)) or '(none defined)'}, or add '{layout}' to gpu_mig_configs."
                )
        elif layout:
            problems.append(f"host {host}: gpu_mig_config is set but gpu_sharing is {_fmt(sharing)}. Fix: set gpu_sharing: mig, or remove gpu_mig_config.")
        replicas = hv.get("gpu_time_slicing_replicas")
        if sharing == "time-slicing":
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2:
                problems.append(
                    f"host {host}: gpu_time_slicing_replicas is {_fmt(replicas) if replicas is not None else 'not set'}; time-slicing needs an integer of at least 2. "
                    "Fix: set it to the number of pods that may share each GPU."
                )
        elif replicas is not None:
            problems.append(f"host {host}: gpu_time_slicing_replicas is set but gpu_sharing is {_fmt(sharing)}. Fix: set gpu_sharing: time-slicing, or remove it.")
    return problems


def check_airgap(platform):
    problems = []
    if not platform.get("platform_airgap"):
        return problems
    for variable in AIRGAP_MIRRORS:
        value = platform.get(variable)
        if not value:
            problems.append(
                f"{variable}: not set, but platform_airgap is true, so nothing could be downloaded. Fix: point it at your local mirror (see inventories/airgap)."
            )
        elif variable == "platform_mirror_images":
            if "://" in str(value) or not re.match(r"^[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._/-]+)?$", str(value)):
                problems.append(f"{variable}: {_fmt(value)} must be a registry host[:port][/path] without a scheme, such as registry.example.internal:5000.")
        elif not URL.match(str(value)) and not str(value).startswith("/"):
            problems.append(f"{variable}: {_fmt(value)} is not an http(s)://, oci:// URL or an absolute path on the controller.")
        elif re.match(r"^[a-z]+://[^/]*@", str(value)):
            problems.append(
                f"{variable}: the URL holds credentials, which would be logged and written to every node. "
                "Fix: drop them; give the mirror anonymous read access inside the site, or its CA and a netrc on the hosts."
            )
    if platform.get("platform_delivery") == "gitops":
        git = platform.get("platform_mirror_git")
        if not git:
            problems.append(
                "platform_mirror_git: not set, but platform_airgap is true and platform_delivery is gitops, so Argo CD could not read "
                "the upstream manifests (Gateway API CRDs) it applies from Git. Fix: set it to the base URL of your Git mirror, "
                "which holds each upstream repository under its own name (see inventories/airgap)."
            )
        elif not re.match(r"^(https?|ssh)://|^git@", str(git)):
            problems.append(f"platform_mirror_git: {_fmt(git)} is not an http(s)://, ssh:// or git@ Git URL.")
    return problems + chart_mirror_problems(platform.get("platform_delivery"), platform.get("platform_mirror_charts"))


def chart_mirror_problems(delivery, charts):
    """The chart mirror (an air-gapped site's platform_mirror_charts) against the delivery mode:
    Argo CD reads charts from a repository or a registry, never from the controller's disk.
    Preflight's rule, and the filter platform_chart_mirror_problems for deliver.yml's check of a
    layer run alone (--tags <layer> skips preflight)."""
    if delivery != "gitops" or not charts or not str(charts).startswith("/"):
        return []
    return [
        f"platform_mirror_charts: {_fmt(charts)} is a directory on the controller, which Argo CD cannot read, and platform_delivery "
        "is gitops: the tree's Applications would name no chart repository. Fix: serve the charts as an OCI registry "
        "(oci://<registry>/<path>, helm push) or an HTTP(S) Helm repository (helm repo index), and point platform_mirror_charts "
        "at it (docs/airgap.md); a directory serves direct delivery only."
    ]


def check_bom(distribution, bom):
    """The Kubernetes version the distribution installs is supported by every pinned component."""
    problems = []
    if not bom or distribution not in ("kubeadm", "k3s"):
        return problems
    kubernetes = bom.get("kubernetes") or {}
    key = "kubeadm" if distribution == "kubeadm" else "k3s"
    version = kubernetes.get(key)
    minor = _minor(version, distribution) if version else None
    if minor is None:
        problems.append(
            f"bom_kubernetes.{key}: {_fmt(version)} is not a {'kubeadm version such as 1.34.2' if key == 'kubeadm' else 'k3s version such as v1.34.2+k3s1'}. "
            "Fix: correct group_vars/all/bom.yml."
        )
        return problems
    supported = [m for m in (_parse_minor(s) for s in bom.get("supported_minors") or []) if m]
    if supported and minor not in supported:
        problems.append(
            f"bom_kubernetes.{key}: {version} is Kubernetes {_minor_str(minor)}, which this installer does not support with {distribution} "
            f"(supported: {', '.join(_minor_str(m) for m in supported)}). Fix: pin a supported version in group_vars/all/bom.yml."
        )
    for name, chart in sorted((bom.get("charts") or {}).items()):
        span = chart.get("kubernetes") or {}
        low, high = _parse_minor(span.get("min", "")), _parse_minor(span.get("max", ""))
        if (low and minor < low) or (high and minor > high):
            supports = " to ".join(str(span[k]) for k in ("min", "max") if span.get(k)) + ("" if high else " and later")
            problems.append(
                f"bom_charts.{name}: {chart.get('chart', name)} {chart.get('version')} supports Kubernetes {supports}, "
                f"but {distribution} installs {_minor_str(minor)} ({version}). Fix: pin a {name} version that supports {_minor_str(minor)}, or another Kubernetes version, in group_vars/all/bom.yml."
            )
    return problems


def check_storage(platform, node_count):
    """Layer 3's choices: block and object storage, and a MinIO tenant the nodes can hold.

    Only variables the inventory sets are checked; the role defaults are sound.
    """
    problems = []
    block = platform.get("storage_block", "longhorn")
    if block not in BLOCK_STORAGE:
        problems.append(f"storage_block: {_fmt(block)} is not one of {', '.join(BLOCK_STORAGE)}{_closest(str(block), BLOCK_STORAGE)}.")
    store = platform.get("platform_object_store", "minio")
    if store not in OBJECT_STORES:
        problems.append(f"platform_object_store: {_fmt(store)} is not one of {', '.join(OBJECT_STORES)}{_closest(str(store), OBJECT_STORES)}.")
    endpoint = platform.get("platform_object_store_endpoint") or ""
    if store == "external" and not endpoint:
        problems.append(
            "platform_object_store_endpoint: not set, but platform_object_store is external. "
            "Fix: set it to your S3 service's URL, such as https://s3.example.internal."
        )
    elif endpoint and not re.match(r"^https?://[^\s/]+/?$", str(endpoint)):
        problems.append(f"platform_object_store_endpoint: {_fmt(endpoint)} must be an http(s):// URL with no path, such as https://s3.example.internal.")
    replicas = platform.get("storage_longhorn_replicas", 0)
    if block == "longhorn" and isinstance(replicas, int) and replicas > max(node_count, 1):
        problems.append(
            f"storage_longhorn_replicas: {replicas} replicas, but the cluster has {node_count} node(s), so volumes could never be healthy. "
            f"Fix: set at most {node_count}, or 0 to derive it."
        )
    if store != "minio":
        return problems
    servers = platform.get("storage_minio_servers", 0)
    volumes = platform.get("storage_minio_volumes_per_server", 0)
    for variable, value in (("storage_minio_servers", servers), ("storage_minio_volumes_per_server", volumes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(f"{variable}: {_fmt(value)} must be a whole number (0 derives it from the inventory).")
    if isinstance(servers, int) and servers > max(node_count, 1):
        problems.append(
            f"storage_minio_servers: {servers} servers, but the cluster has {node_count} node(s) and each server needs its own. "
            f"Fix: set at most {node_count}, or 0 to derive it."
        )
    if isinstance(servers, int) and isinstance(volumes, int) and servers > 1 and volumes > 0 and servers * volumes < 4:
        problems.append(
            f"storage_minio_volumes_per_server: {servers} servers with {volumes} drive(s) each is {servers * volumes} drives; "
            "erasure coding across servers needs at least 4. Fix: raise the drives per server, or set 0 to derive it."
        )
    size = platform.get("storage_minio_volume_size")
    if size is not None and not re.match(r"^[1-9][0-9]*(Mi|Gi|Ti|Pi)$", str(size)):
        problems.append(f"storage_minio_volume_size: {_fmt(size)} is not a size such as 500Gi or 2Ti.")
    return problems


# ---------------------------------------------------------------- entry point


def _platform_values(hosts_vars, cluster_hosts, controller):
    """One value per platform variable; problems where cluster hosts disagree."""
    problems = []
    platform = {}
    for variable in PLATFORM_VARS:
        values = {}
        for host in cluster_hosts:
            if variable in hosts_vars[host]:
                values.setdefault(repr(hosts_vars[host][variable]), []).append(host)
        if len(values) > 1:
            detail = "; ".join(f"{', '.join(hs)} = {v}" for v, hs in sorted(values.items(), key=lambda kv: kv[1]))
            problems.append(f"{variable}: cluster hosts disagree ({detail}). Fix: set it once, in the inventory's group_vars/all.yml.")
        if values:
            first_host = next(iter(values.values()))[0]
            platform[variable] = hosts_vars[first_host][variable]
        elif variable in controller:
            platform[variable] = controller[variable]
    return platform, problems


def inventory_problems(hosts_vars, groups, controller=None, extra_groups=(), bom=None, controller_paths_exist=True):
    """All contract problems of an inventory, as messages (an empty list when it is sound).

    hosts_vars: {inventory_hostname: {variable: value}} for every inventory host.
    groups: {group: [hosts]} as Ansible's ``groups``.
    controller: the controller's own values of the platform variables (used when no cluster host sets them).
    """
    controller = controller or {}
    all_hosts = sorted(hosts_vars)
    cluster_hosts = sorted({h for g in CLUSTER_GROUPS for h in groups.get(g, ())})
    problems = []
    problems += check_groups(groups, all_hosts, extra_groups)
    problems += check_hostnames(cluster_hosts)
    platform, disagreements = _platform_values(hosts_vars, cluster_hosts, controller)
    problems += disagreements
    problems += check_distribution(platform, controller_paths_exist)
    distribution = platform.get("compute_distribution")
    problems += check_control_plane(distribution, groups, platform, hosts_vars)
    node_addresses = {}
    for host in cluster_hosts:
        addr = _address(hosts_vars[host].get("ansible_host", ""))
        if addr is not None and not addr.is_loopback:
            node_addresses[host] = addr
    network_problems, networks = check_networks(platform, node_addresses, len(cluster_hosts), distribution)
    problems += network_problems
    problems += check_metallb(platform, node_addresses, networks)
    problems += check_gpus({h: hosts_vars[h] for h in all_hosts}, groups, platform)
    problems += check_airgap(platform)
    problems += check_storage(platform, len(cluster_hosts))
    problems += check_bom(distribution, bom)
    return problems


def _plain(value):
    """Copy Ansible's lazy/tagged containers into plain Python data."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    return str(value)


def platform_inventory_problems(hostvars, groups, controller=None, extra_groups=None, bom=None):
    """Filter: ``hostvars | mlplatform.baremetal.platform_inventory_problems(groups, controller, extra_groups, bom)``.

    controller: the controller's variables (``hostvars['localhost']``), read for the platform
    variables when no cluster host sets them (compute_distribution: existing with no hosts).
    """
    hosts_vars = {}
    for host in groups.get("all", []):
        hv = hostvars[host]
        hosts_vars[host] = {key: _plain(hv[key]) for key in PLATFORM_VARS + HOST_VARS if key in hv}
    plain_groups = {name: list(members) for name, members in groups.items()}
    controller = controller or {}
    return inventory_problems(
        hosts_vars,
        plain_groups,
        controller={key: _plain(controller[key]) for key in PLATFORM_VARS if key in controller},
        extra_groups=list(extra_groups or ()),
        bom=_plain(bom or {}),
    )


def role_settings(defaults, host_vars):
    """A layer role's variables as the layer will see them: its defaults (defaults/main.yml,
    the one place each is defined) under what the inventory or -e sets. Lets preflight judge
    a layer's settings without the layer's play having run."""
    return {key: host_vars[key] if key in host_vars else value for key, value in (defaults or {}).items()}


class FilterModule:
    def filters(self):
        return {
            "platform_inventory_problems": platform_inventory_problems,
            "platform_role_settings": role_settings,
            "platform_chart_mirror_problems": chart_mirror_problems,
        }
