"""Judge one host's preflight facts against the platform's requirements.

``preflight_host_problems`` takes what the ``preflight_host_facts`` module read
on a host and returns every problem as a message naming the host, the check
and the fix.  It runs on the controller, so the rules live in one place and
are unit-tested without a host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


def _requirement_for(groups_of_host, minimums):
    """The strictest CPU and memory minimum over the groups a host is in."""
    cpus, memory = 0, 0
    for group in groups_of_host:
        need = minimums.get(group) or {}
        cpus = max(cpus, int(need.get("cpus", 0)))
        memory = max(memory, int(need.get("memory_mb", 0)))
    return cpus, memory


def _ports_for(groups_of_host, distribution, port_table):
    ports = set()
    table = port_table.get(distribution) or {}
    for group in ["all", *groups_of_host]:
        ports.update(int(p) for p in table.get(group, ()))
    return sorted(ports)


def preflight_required_ports(groups_of_host, distribution, port_table):
    """Filter: the TCP ports a host must have free, for its groups and the distribution."""
    return _ports_for(list(groups_of_host), distribution, port_table or {})


def host_problems(host, facts, groups_of_host, requirements):
    """Every problem of one host, as messages.

    requirements keys: supported_os ({id: [version_id, ...]}), minimums ({group: {cpus, memory_mb}}),
    kernel_modules, ports, fail_on_swap, require_time_sync, gpu (bool: host is in group gpu).
    """
    problems = []
    say = problems.append
    req = requirements

    os_facts = facts.get("os") or {}
    supported = req.get("supported_os") or {}
    os_id, version = os_facts.get("id", ""), str(os_facts.get("version_id", ""))
    if supported and not any(version == str(v) or version.startswith(f"{v}.") for v in supported.get(os_id, [])):
        listed = "; ".join(f"{name} {', '.join(str(v) for v in versions)}" for name, versions in sorted(supported.items()))
        say(
            f"host {host}: operating system {os_facts.get('pretty_name') or os_id + ' ' + version} is not supported. "
            f"Fix: install one of: {listed} (or extend preflight_supported_os if you have tested another)."
        )

    need_cpus, need_memory = _requirement_for(groups_of_host, req.get("minimums") or {})
    if facts.get("cpus", 0) < need_cpus:
        say(f"host {host}: {facts.get('cpus')} CPUs, but its groups ({', '.join(groups_of_host)}) need at least {need_cpus}. Fix: give the host more CPUs or move it to another group.")
    if facts.get("memory_mb", 0) < need_memory:
        say(f"host {host}: {facts.get('memory_mb')} MiB of memory, but its groups ({', '.join(groups_of_host)}) need at least {need_memory} MiB. Fix: add memory or move the host to another group.")

    swap = facts.get("swap") or []
    if swap and req.get("fail_on_swap", True):
        devices = ", ".join(f"{d['device']} ({d['size_mb']} MiB)" for d in swap)
        say(
            f"host {host}: swap is on ({devices}); the kubelet refuses to start with swap by default. "
            "Fix: run 'swapoff -a' and remove the swap entries from /etc/fstab (and disable swap units such as dev-zram0.swap)."
        )

    states = facts.get("kernel_modules") or {}
    for module in req.get("kernel_modules") or []:
        if states.get(module, "missing") == "missing":
            say(
                f"host {host}: kernel module {module} is neither loaded, built in nor installed for kernel {facts.get('kernel', '?')}. "
                f"Fix: install the kernel's modules package (linux-modules-extra or linux-image matching 'uname -r') so 'modprobe {module}' works."
            )

    if req.get("require_time_sync", True) and not facts.get("clock_synchronised", False):
        services = facts.get("time_services") or []
        running = f" ({', '.join(services)} is running but has not synchronised yet)" if services else " (no chrony, systemd-timesyncd or ntpd is active)"
        say(
            f"host {host}: the clock is not synchronised{running}; etcd and certificates need agreeing clocks. "
            "Fix: install and enable chrony (or systemd-timesyncd) pointing at a reachable NTP server, and wait until it reports synchronised."
        )

    # On a node that already runs the platform's cluster, its own services hold these ports.
    listeners = {} if facts.get("kubernetes_node_configured") else (facts.get("listeners") or {})
    for port in req.get("ports") or []:
        owners = listeners.get(str(port)) or listeners.get(port) or []
        if owners:
            named = ", ".join("a process this user cannot see" if o == "?" else o for o in owners)
            say(
                f"host {host}: port {port}/tcp is already in use by {named}, and the platform needs it. "
                f"Fix: stop or move that service ('ss -ltnp sport = :{port}' shows it)."
            )

    hostname = facts.get("hostname") or {}
    if not hostname.get("resolves", False):
        say(
            f"host {host}: its hostname '{hostname.get('name', '?')}' does not resolve. "
            "Fix: add it to /etc/hosts with the node's address, or to your DNS."
        )

    if req.get("gpu"):
        problems += gpu_problems(host, facts, req.get("gpu_settings") or {})
    return problems


# Operating systems (os-release ID) NVIDIA publishes GPU Operator driver containers for.
DRIVER_CONTAINER_OS = ("ubuntu", "rhel", "rocky", "centos", "rhcos", "sles")


def _version(text):
    return tuple(int(part) for part in re.findall(r"\d+", str(text))[:3])


def _product(name):
    """nvidia-smi's name as GPU Feature Discovery labels it (spaces to dashes), upper-cased."""
    return re.sub(r"\s+", "-", str(name).strip()).upper()


def gpu_problems(host, facts, gpu):
    """A gpu host's hardware and driver against its inventory settings.

    gpu keys: product, sharing, host_driver (auto, true or false), driver_minimum, airgap.
    """
    problems = []
    say = problems.append
    if not facts.get("nvidia_pci_devices"):
        say(
            f"host {host}: in group gpu but no NVIDIA GPU is on its PCI bus. "
            "Fix: check the card is seated and enabled in the firmware ('lspci -d 10de:'), or remove the host from group gpu."
        )
    if facts.get("nouveau_loaded"):
        say(
            f"host {host}: the nouveau driver is loaded and will block the NVIDIA driver. "
            "Fix: blacklist it (echo 'blacklist nouveau' > /etc/modprobe.d/blacklist-nouveau.conf), rebuild the initramfs and reboot."
        )
    loaded = facts.get("nvidia_driver")
    declared = str(gpu.get("host_driver", "auto")).lower()
    minimum = gpu.get("driver_minimum")
    if declared in ("true", "yes") and not loaded:
        say(
            f"host {host}: gpu_host_driver is true, but no NVIDIA driver is loaded. "
            "Fix: install the driver on the host and reboot, or set gpu_host_driver: auto so the GPU Operator installs its own."
        )
    if declared in ("false", "no") and loaded:
        say(
            f"host {host}: gpu_host_driver is false, but the host already runs NVIDIA driver {loaded}, and the GPU Operator's driver container cannot load beside it. "
            "Fix: set gpu_host_driver: auto (the operator then skips its driver on this host), or uninstall the host's driver."
        )
    if loaded and minimum and _version(loaded) < _version(minimum):
        say(
            f"host {host}: NVIDIA driver {loaded} is older than {minimum}, the oldest the platform's GPU Operator and CUDA images support. "
            f"Fix: upgrade the host's driver to {minimum} or newer, or uninstall it and set gpu_host_driver: auto."
        )
    if not loaded and declared not in ("true", "yes"):
        # The GPU Operator's driver container will build and load the kernel modules here.
        os_id = (facts.get("os") or {}).get("id", "")
        if os_id not in DRIVER_CONTAINER_OS:
            say(
                f"host {host}: no NVIDIA driver is installed, and NVIDIA publishes no GPU Operator driver container for {os_id or 'this system'}. "
                "Fix: install the driver on the host (Debian: nvidia-driver from non-free, or NVIDIA's CUDA repository), reboot and re-run; the operator then skips its driver here."
            )
        if facts.get("secure_boot"):
            say(
                f"host {host}: Secure Boot is on, and the kernel modules the GPU Operator's driver container builds are unsigned, so the kernel would refuse them. "
                "Fix: install a signed driver on the host (your distribution's, enrolled with MOK), or turn Secure Boot off in the firmware."
            )
        if gpu.get("airgap") and not facts.get("kernel_headers"):
            say(
                f"host {host}: the headers of kernel {facts.get('kernel', '?')} are not installed, and air-gapped the driver container cannot download them. "
                f"Fix: install linux-headers-{facts.get('kernel', '$(uname -r)')} on the host, or install the driver on the host."
            )
    gpus = facts.get("nvidia_smi") or []
    product = gpu.get("product")
    for index, card in enumerate(gpus):
        if "error" in card:
            say(f"host {host}: nvidia-smi failed ({card['error']}). Fix: check the driver with 'nvidia-smi' on the host; a driver and kernel out of step need a reboot.")
            continue
        if product and _product(card.get("name", "")) != _product(product) and _product("NVIDIA " + card.get("name", "")) != _product(product):
            say(
                f"host {host}: GPU {index} is {card.get('name')}, but gpu_product is {product}. "
                f"Fix: set gpu_product: {_product(card.get('name', ''))} for this host (MIG layouts and placement depend on it)."
            )
        current, pending = card.get("mig_current", ""), card.get("mig_pending", "")
        if gpu.get("sharing") == "mig" and current.startswith("[N/A]"):
            say(f"host {host}: GPU {index} ({card.get('name')}) reports no MIG mode, but gpu_sharing is mig. Fix: use gpu_sharing: time-slicing or exclusive on this host.")
        elif current != pending and not pending.startswith("[N/A]"):
            say(
                f"host {host}: GPU {index} has a MIG mode change pending ({current} now, {pending} after a reset). "
                "Fix: drain the node and reset the GPU (nvidia-smi -r) or reboot, then re-run."
            )
    return problems


def preflight_host_problems(facts, host, groups_of_host, requirements):
    """Filter: ``facts | mlplatform.baremetal.preflight_host_problems(inventory_hostname, group_names, requirements)``."""
    if not isinstance(facts, Mapping):
        return [f"host {host}: preflight could not read the host's facts."]
    if facts.get("unreachable"):
        return [f"host {host}: unreachable ({facts.get('msg', 'no detail')}). Fix: check ansible_host, SSH access and the network, then re-run."]
    if facts.get("failed"):
        return [f"host {host}: reading the host's facts failed ({facts.get('msg', 'no detail')})."]
    return host_problems(host, dict(facts), list(groups_of_host), dict(requirements))


class FilterModule:
    def filters(self):
        return {
            "preflight_host_problems": preflight_host_problems,
            "preflight_required_ports": preflight_required_ports,
        }
