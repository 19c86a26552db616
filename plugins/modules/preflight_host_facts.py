#!/usr/bin/python
"""Collect, in one round trip, what the preflight host checks need to know."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: preflight_host_facts
short_description: Read the facts the platform's preflight host checks need, in one round trip
description:
  - Reads the operating system, CPUs, memory, swap, kernel modules, clock synchronisation,
    listening TCP ports with their owning processes, hostname resolution and NVIDIA PCI devices.
  - Changes nothing on the host; safe in check mode. The checks themselves run on the controller
    (the C(preflight_host_problems) filter), so this module only reports.
options:
  kernel_modules:
    description: Kernel modules whose availability is reported (loaded, built in or loadable).
    type: list
    elements: str
    default: []
  ports:
    description: TCP ports whose listeners are reported.
    type: list
    elements: int
    default: []
  gpu:
    description:
      - Also read the NVIDIA driver state (loaded module and its version, kernel headers) and, where
        C(nvidia-smi) exists, each GPU's product name, driver version and MIG mode.
    type: bool
    default: false
author:
  - Platform team
"""

EXAMPLES = r"""
- name: Read the host facts the preflight checks use
  preflight_host_facts:
    kernel_modules: [overlay, br_netfilter]
    ports: [6443, 10250]
  register: facts
"""

RETURN = r"""
os:
  description: ID, VERSION_ID and PRETTY_NAME from /etc/os-release.
  returned: always
  type: dict
cpus:
  description: Online CPUs.
  returned: always
  type: int
memory_mb:
  description: MemTotal in MiB.
  returned: always
  type: int
swap:
  description: Active swap devices with their size in MiB.
  returned: always
  type: list
kernel_modules:
  description: For each requested module, how it is available (loaded, builtin, loadable) or missing.
  returned: always
  type: dict
clock_synchronised:
  description: Whether the kernel reports the clock as synchronised (adjtimex is not TIME_ERROR).
  returned: always
  type: bool
time_services:
  description: Time synchronisation services that are active.
  returned: always
  type: list
listeners:
  description: For each requested port that something listens on, the owning process names.
  returned: always
  type: dict
hostname:
  description: The host's name and whether it resolves.
  returned: always
  type: dict
nvidia_pci_devices:
  description: PCI addresses of NVIDIA display or 3D controllers.
  returned: always
  type: list
nouveau_loaded:
  description: Whether the nouveau driver is loaded.
  returned: always
  type: bool
secure_boot:
  description: Whether UEFI Secure Boot is enabled (null when not a UEFI system).
  returned: always
  type: bool
kubernetes_node_configured:
  description: Whether the host already is a kubeadm or k3s node (its own services then hold the cluster ports).
  returned: always
  type: bool
architecture:
  description: The machine's architecture as the kernel reports it (x86_64, aarch64).
  returned: always
  type: str
ufw_active:
  description: Whether ufw is installed and enabled.
  returned: always
  type: bool
nvidia_driver:
  description: The loaded NVIDIA kernel driver's version (/proc/driver/nvidia/version), or null.
  returned: when gpu
  type: str
kernel_headers:
  description: Whether the running kernel's headers are installed (/lib/modules/<release>/build).
  returned: when gpu
  type: bool
nvidia_smi:
  description: Per GPU, name, driver_version, mig_current and mig_pending as nvidia-smi reports them; null without nvidia-smi.
  returned: when gpu
  type: list
"""

import ctypes
import ctypes.util
import glob
import os
import platform
import re
import shutil
import socket
import subprocess

from ansible.module_utils.basic import AnsibleModule

NVIDIA_VENDOR = "0x10de"
# PCI classes 0x0300 (VGA) and 0x0302 (3D controller); data-centre GPUs are the latter.
GPU_CLASSES = ("0x0300", "0x0302")
TIME_ERROR = 5
TCP_LISTEN = "0A"
# Kernel features that, when built in, leave no trace under /sys/module.
FEATURE_PROBES = {
    "overlay": lambda root: "overlay" in _read(os.path.join(root, "proc/filesystems")).split(),
    "br_netfilter": lambda root: os.path.exists(os.path.join(root, "proc/sys/net/bridge/bridge-nf-call-iptables")),
}
NODE_MARKERS = (
    "etc/kubernetes/kubelet.conf",
    "etc/kubernetes/admin.conf",
    "etc/rancher/k3s/k3s.yaml",
    "var/lib/rancher/k3s/agent/kubelet.kubeconfig",
)
TIME_SERVICES = ("chronyd", "chrony", "systemd-timesyncd", "ntpd", "ntpsec", "ntp", "openntpd")


def _read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return default


def parse_os_release(text):
    values = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip('"').strip("'")
    return {"id": values.get("ID", ""), "version_id": values.get("VERSION_ID", ""), "pretty_name": values.get("PRETTY_NAME", "")}


def parse_meminfo_mb(text):
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def parse_swaps(text):
    devices = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            devices.append({"device": fields[0], "size_mb": int(fields[2]) // 1024})
    return devices


def module_state(name, root="/", release=None):
    """How a kernel module is available: loaded, builtin, loadable or missing."""
    release = release or platform.release()
    variants = {name, name.replace("-", "_")}
    loaded = {line.split()[0] for line in _read(os.path.join(root, "proc/modules")).splitlines() if line.strip()}
    if variants & loaded:
        return "loaded"
    moddir = os.path.join(root, "lib/modules", release)
    builtin = {os.path.basename(line.strip()).split(".ko")[0].replace("-", "_") for line in _read(os.path.join(moddir, "modules.builtin")).splitlines()}
    if {v.replace("-", "_") for v in variants} & builtin:
        return "builtin"
    if any(os.path.isdir(os.path.join(root, "sys/module", v)) for v in variants):
        return "builtin"
    probe = FEATURE_PROBES.get(name)
    if probe and probe(root):
        return "builtin"
    for line in _read(os.path.join(moddir, "modules.dep")).splitlines():
        module_path = line.split(":", 1)[0]
        if os.path.basename(module_path).split(".ko")[0].replace("-", "_") in {v.replace("-", "_") for v in variants}:
            return "loadable"
    return "missing"


def parse_listeners(tables, ports):
    """Socket inodes listening on the given ports: {port: [inode, ...]} from /proc/net/tcp{,6} text."""
    wanted = set(ports)
    found = {}
    for text in tables:
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in wanted:
                found.setdefault(port, []).append(fields[9])
    return found


def socket_owners(root="/"):
    """Map socket inode -> process name, from /proc/<pid>/fd links."""
    owners = {}
    for fd_dir in glob.glob(os.path.join(root, "proc/[0-9]*/fd")):
        pid_dir = os.path.dirname(fd_dir)
        try:
            links = os.listdir(fd_dir)
        except OSError:
            continue
        comm = _read(os.path.join(pid_dir, "comm")).strip() or "?"
        for fd in links:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[target[8:-1]] = comm
    return owners


def nvidia_devices(root="/"):
    devices = []
    for dev in sorted(glob.glob(os.path.join(root, "sys/bus/pci/devices/*"))):
        vendor = _read(os.path.join(dev, "vendor")).strip()
        pci_class = _read(os.path.join(dev, "class")).strip()[:6]
        if vendor == NVIDIA_VENDOR and pci_class in GPU_CLASSES:
            devices.append(os.path.basename(dev))
    return devices


def clock_synchronised():
    """True unless the kernel's NTP state is TIME_ERROR (clock not disciplined)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buffer = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes = 0 reads only
        return libc.adjtimex(buffer) != TIME_ERROR
    except (OSError, AttributeError):
        return False


def active_services(names):
    systemctl = shutil.which("systemctl")
    if not systemctl:
        return []
    active = []
    for name in names:
        result = subprocess.run([systemctl, "is-active", "--quiet", name], check=False, capture_output=True)
        if result.returncode == 0:
            active.append(name)
    return active


def secure_boot_enabled(root="/"):
    matches = glob.glob(os.path.join(root, "sys/firmware/efi/efivars/SecureBoot-*"))
    if not matches:
        return None
    try:
        with open(matches[0], "rb") as handle:
            data = handle.read()
        return len(data) >= 5 and data[4] == 1
    except OSError:
        return None


def hostname_facts():
    name = socket.gethostname()
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(name, None)})
    except OSError:
        addresses = []
    return {"name": name, "resolves": bool(addresses), "addresses": addresses}


def ufw_active(root="/"):
    """ufw is installed and enabled (its own switch in /etc/ufw/ufw.conf)."""
    if not os.path.exists(os.path.join(root, "usr/sbin/ufw")):
        return False
    return any(line.strip() == "ENABLED=yes" for line in _read(os.path.join(root, "etc/ufw/ufw.conf")).splitlines())


def nvidia_driver_version(root="/"):
    """The loaded driver's version, from the first line of /proc/driver/nvidia/version."""
    text = _read(os.path.join(root, "proc/driver/nvidia/version"))
    match = re.search(r"Kernel Module(?: for [^ ]+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def parse_nvidia_smi(text):
    """nvidia-smi --query-gpu=name,driver_version,mig.mode.current,mig.mode.pending --format=csv,noheader."""
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 4 and fields[0]:
            gpus.append(dict(zip(("name", "driver_version", "mig_current", "mig_pending"), fields)))
    return gpus


def nvidia_smi():
    binary = shutil.which("nvidia-smi")
    if not binary:
        return None
    try:
        result = subprocess.run(
            [binary, "--query-gpu=name,driver_version,mig.mode.current,mig.mode.pending", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return [{"error": str(error)}]
    if result.returncode != 0:
        return [{"error": (result.stdout + result.stderr).strip()[:300]}]
    return parse_nvidia_smi(result.stdout)


def gpu_facts(root="/"):
    release = platform.release()
    return {
        "nvidia_driver": nvidia_driver_version(root),
        "kernel_headers": os.path.isdir(os.path.join(root, "lib/modules", release, "build")),
        "nvidia_smi": nvidia_smi(),
    }


def collect(kernel_modules, ports, root="/"):
    ports = [int(p) for p in ports]
    owners = socket_owners(root)
    listeners = {}
    tables = [_read(os.path.join(root, "proc/net/tcp")), _read(os.path.join(root, "proc/net/tcp6"))]
    for port, inodes in parse_listeners(tables, ports).items():
        listeners[str(port)] = sorted({owners.get(inode, "?") for inode in inodes})
    nouveau = os.path.isdir(os.path.join(root, "sys/module/nouveau")) or any(
        line.startswith("nouveau ") for line in _read(os.path.join(root, "proc/modules")).splitlines()
    )
    return {
        "os": parse_os_release(_read(os.path.join(root, "etc/os-release"))),
        "kernel": platform.release(),
        "architecture": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0),
        "memory_mb": parse_meminfo_mb(_read(os.path.join(root, "proc/meminfo"))),
        "swap": parse_swaps(_read(os.path.join(root, "proc/swaps"))),
        "kernel_modules": {name: module_state(name, root) for name in kernel_modules},
        "clock_synchronised": clock_synchronised(),
        "time_services": active_services(TIME_SERVICES),
        "listeners": listeners,
        "hostname": hostname_facts(),
        "nvidia_pci_devices": nvidia_devices(root),
        "nouveau_loaded": nouveau,
        "secure_boot": secure_boot_enabled(root),
        "kubernetes_node_configured": any(os.path.exists(os.path.join(root, marker)) for marker in NODE_MARKERS),
        "ufw_active": ufw_active(root),
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "kernel_modules": {"type": "list", "elements": "str", "default": []},
            "ports": {"type": "list", "elements": "int", "default": []},
            "gpu": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    facts = collect(module.params["kernel_modules"], module.params["ports"])
    if module.params["gpu"]:
        facts.update(gpu_facts())
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
