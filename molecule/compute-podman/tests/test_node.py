"""What layer 1 leaves on a node (run by verify.yml with pytest-testinfra)."""


def test_containerd_runs_with_the_systemd_cgroup_driver(host):
    service = host.service("containerd")
    assert service.is_running and service.is_enabled
    config = host.run("/usr/local/bin/containerd config dump")
    assert config.rc == 0, config.stderr
    assert "SystemdCgroup = true" in config.stdout
    assert host.run("/usr/local/bin/ctr version").rc == 0


def test_containerd_runc_and_cni_come_from_the_mirror(host):
    assert host.file("/usr/local/bin/containerd").is_symlink
    assert host.file("/usr/local/bin/containerd").linked_to.startswith("/opt/ml-platform/containerd/")
    assert host.file("/usr/local/bin/runc").mode == 0o755
    assert host.run("/usr/local/bin/runc --version").rc == 0
    assert host.file("/opt/cni/bin/bridge").exists and host.file("/opt/cni/bin/loopback").exists


def test_pulls_go_through_the_registry_mirror(host):
    hosts_toml = host.file("/etc/containerd/certs.d/registry.k8s.io/hosts.toml")
    assert hosts_toml.exists
    assert '[host."https://registry.example.internal:5000"]' in hosts_toml.content_string
    assert 'server = "https://registry-1.docker.io"' in host.file("/etc/containerd/certs.d/docker.io/hosts.toml").content_string


def test_kernel_modules_and_sysctls_are_persisted(host):
    modules = host.file("/etc/modules-load.d/ml-platform-kubernetes.conf").content_string.split()
    assert "overlay" in modules and "br_netfilter" in modules
    sysctls = host.file("/etc/sysctl.d/90-ml-platform-kubernetes.conf").content_string
    assert "net.ipv4.ip_forward = 1" in sysctls
    assert "net.bridge.bridge-nf-call-iptables = 1" in sysctls


def test_swap_stays_off(host):
    for line in host.file("/etc/fstab").content_string.splitlines():
        fields = line.split()
        assert line.lstrip().startswith("#") or len(fields) < 3 or fields[2] != "swap", line
    assert host.run("systemctl is-enabled swap.target").stdout.strip() == "masked"


def test_time_is_kept_by_chrony(host):
    assert host.package("chrony").is_installed
    assert host.service("chrony").is_enabled
