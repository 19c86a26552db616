"""Unit tests of the host checks: the facts module's readers and the judging filter."""

from __future__ import annotations

import pytest

import preflight_host as ph
import preflight_host_facts as facts_module

REQUIREMENTS = {
    "supported_os": {"debian": ["12", "13"], "ubuntu": ["22.04", "24.04"]},
    "minimums": {"control_plane": {"cpus": 2, "memory_mb": 3500}, "gpu": {"cpus": 4, "memory_mb": 15000}},
    "kernel_modules": ["overlay", "br_netfilter"],
    "ports": [6443, 10250],
    "fail_on_swap": True,
    "require_time_sync": True,
    "gpu": False,
}

GOOD_FACTS = {
    "os": {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"},
    "kernel": "6.1.0-40-amd64",
    "cpus": 8,
    "memory_mb": 32000,
    "swap": [],
    "kernel_modules": {"overlay": "loaded", "br_netfilter": "loadable"},
    "clock_synchronised": True,
    "time_services": ["chrony"],
    "listeners": {},
    "hostname": {"name": "cp-01", "resolves": True, "addresses": ["10.0.0.1"]},
    "nvidia_pci_devices": [],
    "nouveau_loaded": False,
    "kubernetes_node_configured": False,
}


def problems(facts=None, groups=("control_plane",), **requirements):
    return ph.host_problems("cp-01", dict(GOOD_FACTS, **(facts or {})), list(groups), dict(REQUIREMENTS, **requirements))


def test_good_host_has_no_problems():
    assert problems() == []


@pytest.mark.parametrize("os_id, version, fine", [("debian", "12", True), ("ubuntu", "24.04.1", True), ("ubuntu", "20.04", False), ("centos", "7", False), ("debian", "120", False)])
def test_supported_os(os_id, version, fine):
    found = problems({"os": {"id": os_id, "version_id": version, "pretty_name": f"{os_id} {version}"}})
    assert (found == []) is fine


def test_gpu_group_minimums_apply_to_a_host_in_several_groups():
    found = problems({"cpus": 2, "memory_mb": 8000}, groups=("workers", "gpu"))
    assert any("2 CPUs" in p and "at least 4" in p for p in found)
    assert any("8000 MiB" in p and "15000" in p for p in found)


def test_swap_is_reported_with_its_device_and_can_be_allowed():
    swap = {"swap": [{"device": "/swapfile", "size_mb": 2048}]}
    assert "swap is on (/swapfile (2048 MiB))" in problems(swap)[0]
    assert problems(swap, fail_on_swap=False) == []


def test_missing_module_names_module_and_kernel():
    found = problems({"kernel_modules": {"overlay": "loaded", "br_netfilter": "missing"}})
    assert len(found) == 1 and "kernel module br_netfilter" in found[0] and "6.1.0-40-amd64" in found[0]


def test_unsynchronised_clock_mentions_the_running_service():
    found = problems({"clock_synchronised": False, "time_services": ["chrony"]})
    assert "chrony is running but has not synchronised yet" in found[0]
    assert problems({"clock_synchronised": False}, require_time_sync=False) == []


def test_busy_port_names_the_process_unless_the_node_is_already_ours():
    busy = {"listeners": {"6443": ["nginx"]}}
    assert "port 6443/tcp is already in use by nginx" in problems(busy)[0]
    assert problems(dict(busy, kubernetes_node_configured=True)) == []
    assert "a process this user cannot see" in problems({"listeners": {"10250": ["?"]}})[0]


def test_unresolvable_hostname():
    found = problems({"hostname": {"name": "cp-01", "resolves": False, "addresses": []}})
    assert "hostname 'cp-01' does not resolve" in found[0]


def test_gpu_host_needs_an_nvidia_device_and_no_nouveau():
    found = problems({"nouveau_loaded": True}, gpu=True)
    assert any("no NVIDIA GPU is on its PCI bus" in p for p in found)
    assert any("nouveau" in p for p in found)
    assert problems({"nvidia_pci_devices": ["0000:17:00.0"], "nvidia_driver": "580.95.05"}, gpu=True) == []


A100 = {"name": "NVIDIA A100-SXM4-80GB", "driver_version": "580.95.05", "mig_current": "Enabled", "mig_pending": "Enabled"}
GPU_HOST = {"nvidia_pci_devices": ["0000:17:00.0"], "nvidia_driver": "580.95.05", "kernel_headers": True, "nvidia_smi": [A100, A100]}
MIG_SETTINGS = {"product": "NVIDIA-A100-SXM4-80GB", "sharing": "mig", "host_driver": "auto", "driver_minimum": "570.0", "airgap": False}


def gpu_problems(facts=None, **settings):
    return ph.gpu_problems("gpu-01", dict(GOOD_FACTS, **dict(GPU_HOST, **(facts or {}))), dict(MIG_SETTINGS, **settings))


def test_a_gpu_host_that_matches_its_inventory_passes():
    assert gpu_problems() == []
    # Without nvidia-smi (no host driver) nothing is read from the GPUs.
    assert gpu_problems({"nvidia_driver": None, "nvidia_smi": None, "os": {"id": "ubuntu", "version_id": "24.04"}}) == []


def test_the_product_the_hardware_reports_must_be_the_inventorys():
    found = gpu_problems(product="NVIDIA-H100-80GB-HBM3")
    assert found[0] == (
        "host gpu-01: GPU 0 is NVIDIA A100-SXM4-80GB, but gpu_product is NVIDIA-H100-80GB-HBM3. "
        "Fix: set gpu_product: NVIDIA-A100-SXM4-80GB for this host (MIG layouts and placement depend on it)."
    )


def test_an_old_host_driver_is_refused():
    found = gpu_problems({"nvidia_driver": "535.183.01"})
    assert found == [
        "host gpu-01: NVIDIA driver 535.183.01 is older than 570.0, the oldest the platform's GPU Operator and CUDA images support. "
        "Fix: upgrade the host's driver to 570.0 or newer, or uninstall it and set gpu_host_driver: auto."
    ]


def test_declared_driver_must_agree_with_the_host():
    assert "gpu_host_driver is true, but no NVIDIA driver is loaded" in gpu_problems({"nvidia_driver": None, "nvidia_smi": None}, host_driver=True)[0]
    assert "gpu_host_driver is false, but the host already runs NVIDIA driver 580.95.05" in gpu_problems(host_driver=False)[0]


def test_the_driver_container_needs_a_supported_os_no_secure_boot_and_headers_offline():
    no_driver = {"nvidia_driver": None, "nvidia_smi": None}
    found = gpu_problems(no_driver)
    assert found == [
        "host gpu-01: no NVIDIA driver is installed, and NVIDIA publishes no GPU Operator driver container for debian. "
        "Fix: install the driver on the host (Debian: nvidia-driver from non-free, or NVIDIA's CUDA repository), reboot and re-run; the operator then skips its driver here."
    ]
    ubuntu = dict(no_driver, os={"id": "ubuntu", "version_id": "24.04"}, secure_boot=True, kernel_headers=False)
    found = gpu_problems(ubuntu, airgap=True)
    assert len(found) == 2
    assert "Secure Boot is on, and the kernel modules the GPU Operator's driver container builds are unsigned" in found[0]
    assert found[1].startswith("host gpu-01: the headers of kernel 6.1.0-40-amd64 are not installed, and air-gapped the driver container cannot download them.")
    # With a host driver none of that matters.
    assert gpu_problems({"secure_boot": True, "kernel_headers": False}, airgap=True) == []


def test_mig_mode_is_read_from_the_hardware():
    no_mig = dict(A100, name="NVIDIA L40S", mig_current="[N/A]", mig_pending="[N/A]")
    found = gpu_problems({"nvidia_smi": [no_mig]}, product="NVIDIA-L40S")
    assert found == ["host gpu-01: GPU 0 (NVIDIA L40S) reports no MIG mode, but gpu_sharing is mig. Fix: use gpu_sharing: time-slicing or exclusive on this host."]
    assert gpu_problems({"nvidia_smi": [no_mig]}, product="NVIDIA-L40S", sharing="time-slicing") == []
    pending = dict(A100, mig_current="Disabled", mig_pending="Enabled")
    assert "GPU 1 has a MIG mode change pending (Disabled now, Enabled after a reset)" in gpu_problems({"nvidia_smi": [A100, pending]})[0]
    assert "nvidia-smi failed (NVIDIA-SMI has failed" in gpu_problems({"nvidia_smi": [{"error": "NVIDIA-SMI has failed because it couldn't communicate"}]})[0]


def test_nvidia_smi_and_the_driver_version_are_parsed():
    text = "NVIDIA H100 80GB HBM3, 580.95.05, Enabled, Enabled\nNVIDIA H100 80GB HBM3, 580.95.05, Disabled, Enabled\n"
    assert facts_module.parse_nvidia_smi(text)[1] == {"name": "NVIDIA H100 80GB HBM3", "driver_version": "580.95.05", "mig_current": "Disabled", "mig_pending": "Enabled"}


def test_the_loaded_driver_version_is_read_from_proc(tmp_path):
    (tmp_path / "proc" / "driver" / "nvidia").mkdir(parents=True)
    (tmp_path / "proc" / "driver" / "nvidia" / "version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.95.05  Tue Sep 23 09:51:41 UTC 2025\nGCC version:  gcc version 12.2.0\n"
    )
    assert facts_module.nvidia_driver_version(str(tmp_path)) == "580.95.05"
    assert facts_module.nvidia_driver_version(str(tmp_path / "none")) is None


def test_unreachable_host_is_reported_not_skipped():
    found = ph.preflight_host_problems({"unreachable": True, "msg": "ssh: connect timed out"}, "wk-09", ["workers"], REQUIREMENTS)
    assert found == ["host wk-09: unreachable (ssh: connect timed out). Fix: check ansible_host, SSH access and the network, then re-run."]


def test_required_ports_per_group_and_distribution():
    table = {"kubeadm": {"all": [10250], "control_plane": [6443]}, "k3s": {"all": [10250]}}
    assert ph.preflight_required_ports(["control_plane"], "kubeadm", table) == [6443, 10250]
    assert ph.preflight_required_ports(["workers"], "kubeadm", table) == [10250]
    assert ph.preflight_required_ports(["workers"], "existing", table) == []


# ---- the facts module's readers, against a fake root file system


def write(root, path, text):
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_os_release_and_meminfo_and_swaps():
    assert facts_module.parse_os_release('ID=ubuntu\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04.1 LTS"\n') == {
        "id": "ubuntu",
        "version_id": "24.04",
        "pretty_name": "Ubuntu 24.04.1 LTS",
    }
    assert facts_module.parse_meminfo_mb("MemTotal:       32768000 kB\nMemFree: 1 kB\n") == 32000
    swaps = "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 2097148 0 -2\n"
    assert facts_module.parse_swaps(swaps) == [{"device": "/swapfile", "size_mb": 2047}]
    assert facts_module.parse_swaps("Filename\tType\tSize\tUsed\tPriority\n") == []


def test_module_states(tmp_path):
    release = "6.1.0-test"
    write(tmp_path, "proc/modules", "overlay 151552 0 - Live 0x0\n")
    write(tmp_path, f"lib/modules/{release}/modules.builtin", "kernel/net/bridge/br_netfilter.ko\n")
    write(tmp_path, f"lib/modules/{release}/modules.dep", "kernel/drivers/scsi/iscsi_tcp.ko.xz: kernel/drivers/scsi/libiscsi.ko.xz\n")
    (tmp_path / "sys/module/nf_conntrack").mkdir(parents=True)
    assert facts_module.module_state("overlay", str(tmp_path), release) == "loaded"
    assert facts_module.module_state("br_netfilter", str(tmp_path), release) == "builtin"
    assert facts_module.module_state("iscsi_tcp", str(tmp_path), release) == "loadable"
    assert facts_module.module_state("nf_conntrack", str(tmp_path), release) == "builtin"
    assert facts_module.module_state("dm_thin_pool", str(tmp_path), release) == "missing"


def test_builtin_features_without_module_metadata(tmp_path):
    write(tmp_path, "proc/filesystems", "nodev\tsysfs\nnodev\toverlay\n")
    write(tmp_path, "proc/sys/net/bridge/bridge-nf-call-iptables", "1\n")
    assert facts_module.module_state("overlay", str(tmp_path), "x") == "builtin"
    assert facts_module.module_state("br_netfilter", str(tmp_path), "x") == "builtin"


def test_listeners_only_in_listen_state():
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    listen = "   0: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n"
    established = "   1: 0100007F:2802 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 100 0 0 10 0\n"
    assert facts_module.parse_listeners([header + listen + established], [6443, 10242]) == {6443: ["4242"]}


def test_nvidia_devices_are_display_or_3d_controllers(tmp_path):
    write(tmp_path, "sys/bus/pci/devices/0000:17:00.0/vendor", "0x10de\n")
    write(tmp_path, "sys/bus/pci/devices/0000:17:00.0/class", "0x030200\n")
    write(tmp_path, "sys/bus/pci/devices/0000:18:00.0/vendor", "0x10de\n")
    write(tmp_path, "sys/bus/pci/devices/0000:18:00.0/class", "0x068000\n")  # NVSwitch bridge, not a GPU
    write(tmp_path, "sys/bus/pci/devices/0000:00:02.0/vendor", "0x8086\n")
    write(tmp_path, "sys/bus/pci/devices/0000:00:02.0/class", "0x030000\n")
    assert facts_module.nvidia_devices(str(tmp_path)) == ["0000:17:00.0"]


def test_collect_on_this_machine_returns_every_fact():
    collected = facts_module.collect(["overlay"], [1])
    assert set(GOOD_FACTS) <= set(collected)
    assert collected["cpus"] >= 1 and collected["memory_mb"] > 0


def test_ufw_counts_as_active_only_when_installed_and_enabled(tmp_path):
    import preflight_host_facts as facts

    assert facts.ufw_active(str(tmp_path)) is False
    (tmp_path / "usr" / "sbin").mkdir(parents=True)
    (tmp_path / "usr" / "sbin" / "ufw").write_text("")
    (tmp_path / "etc" / "ufw").mkdir(parents=True)
    (tmp_path / "etc" / "ufw" / "ufw.conf").write_text("# comment\nENABLED=no\n")
    assert facts.ufw_active(str(tmp_path)) is False
    (tmp_path / "etc" / "ufw" / "ufw.conf").write_text("ENABLED=yes\nLOGLEVEL=low\n")
    assert facts.ufw_active(str(tmp_path)) is True
