"""Judge one host's preflight facts against the platform's requirements.

``preflight_host_problems`` takes what the ``preflight_host_facts`` module read
on a host and returns every problem as a message naming the host, the check
and the fix.  It runs on the controller, so the rules live in one place and
are unit-tested without a host.
"""

from __future__ import annotations

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
    return problems


def preflight_host_problems(facts, host, groups_of_host, requirements):
    """Filter: ``facts | preflight_host_problems(inventory_hostname, group_names, requirements)``."""
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
