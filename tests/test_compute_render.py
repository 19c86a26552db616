"""Layer 1's configuration files as the compute role renders them for the sample
inventories (playbooks/render-compute.yml, which contacts no node): kubeadm's
API version, endpoint and networks, k3s's disabled components, containerd's
cgroup driver and mirrors."""

from __future__ import annotations

import pytest
import yaml

from conftest import ROOT, project_copy, run, session_command, session_project, state_dir, tool

BOM = yaml.safe_load((ROOT / "group_vars" / "all" / "bom.yml").read_text())


def render(tmp_path, inventory, *extra):
    """The README's render-compute.yml command in a copy of the project: the files land in the
    inventory's state directory, where operators find them."""
    project = project_copy(tmp_path / "project")
    result = run([tool("ansible-playbook"), "playbooks/render-compute.yml", "-i", f"inventories/{inventory}", *extra], cwd=project)
    assert result.returncode == 0, result.stdout[-3000:]
    return state_dir(project, inventory) / "rendered"


def sample(inventory, tmp_path_factory):
    """What the README's render-compute.yml command, as written, writes for a sample inventory: its
    first run in the project of the session render (conftest.session_command, which the operator
    path runs a second time). Read, never changed, by the tests."""
    result = session_command("render-compute", inventory, tmp_path_factory)
    assert result.returncode == 0, result.stdout[-3000:]
    return state_dir(session_project(inventory, tmp_path_factory), inventory) / "rendered"


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    return sample("production", tmp_path_factory)


def docs(path):
    return {d["kind"]: d for d in yaml.safe_load_all(path.read_text())}


def test_production_kubeadm_is_ha_behind_kube_vip_without_kube_proxy(production):
    out = production
    assert sorted(p.name for p in out.iterdir()) == ["cp-01", "cp-02", "cp-03", "gpu-a100-01", "gpu-h100-01", "gpu-h100-02", "wk-01", "wk-02"]
    config = docs(out / "cp-01" / "kubeadm-config.yaml")
    init, cluster, kubelet = config["InitConfiguration"], config["ClusterConfiguration"], config["KubeletConfiguration"]
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.20.0.11", "bindPort": 6443}
    assert init["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.20.0.11"}]
    assert init["skipPhases"] == ["addon/kube-proxy"] and cluster["proxy"] == {"disabled": True}
    assert cluster["kubernetesVersion"] == "v" + BOM["bom_binaries"]["kubernetes"]["version"]
    assert cluster["controlPlaneEndpoint"] == "10.20.0.10:6443"
    assert cluster["networking"] == {"podSubnet": "10.128.0.0/16", "serviceSubnet": "10.96.0.0/16", "dnsDomain": "cluster.local"}
    assert {"10.20.0.10", "10.20.0.11", "10.20.0.12", "10.20.0.13"} <= set(cluster["apiServer"]["certSANs"])
    assert kubelet["apiVersion"] == "kubelet.config.k8s.io/v1beta1" and kubelet["cgroupDriver"] == "systemd"
    # Prometheus (layer 3b) reaches the control plane's metrics from the pod network.
    assert cluster["controllerManager"]["extraArgs"] == cluster["scheduler"]["extraArgs"] == [{"name": "bind-address", "value": "0.0.0.0"}]
    assert cluster["etcd"]["local"]["extraArgs"] == [{"name": "listen-metrics-urls", "value": "http://0.0.0.0:2381"}]
    vip = yaml.safe_load((out / "cp-02" / "kube-vip.yaml").read_text())
    env = {e["name"]: e["value"] for e in vip["spec"]["containers"][0]["env"]}
    assert env["address"] == "10.20.0.10" and env["cp_enable"] == "true"
    assert vip["spec"]["containers"][0]["image"] == f"{BOM['bom_images']['kube_vip']['repository']}:{BOM['bom_images']['kube_vip']['tag']}"
    # Workers get no kubeadm init configuration (they join) and no kube-vip.
    assert sorted(p.name for p in (out / "wk-01").iterdir()) == ["containerd-config.toml"]


def test_containerd_uses_the_systemd_cgroup_driver_and_the_air_gap_mirror(production):
    toml = (production / "wk-01" / "containerd-config.toml").read_text()
    assert toml.splitlines()[1] == "version = 3"
    assert "SystemdCgroup = true" in toml
    assert 'sandbox = "registry.k8s.io/pause:' in toml
    assert 'config_path = "/etc/containerd/certs.d"' in toml


def test_lab_k3s_leaves_networking_to_layer_2(tmp_path_factory):
    out = sample("lab", tmp_path_factory)
    config = yaml.safe_load((out / "lab" / "k3s-config.yaml").read_text())
    assert config["flannel-backend"] == "none"
    assert config["disable-network-policy"] is True and config["disable-kube-proxy"] is True
    assert config["disable"] == ["traefik", "servicelb", "local-storage"]
    assert (config["cluster-cidr"], config["service-cidr"]) == ("10.42.0.0/16", "10.43.0.0/16")
    assert config["token-file"] == "/etc/rancher/k3s/cluster-token" and "token" not in config
    # The lab is the machine the playbook runs on: its API answers on loopback.
    assert config["tls-san"] == ["127.0.0.1"]
    # One server: no embedded etcd, nothing to join, no virtual IP.
    assert "cluster-init" not in config and "server" not in config
    assert not (out / "lab" / "kube-vip.yaml").exists()
    # The lab inventory turns the control plane's metrics off (no address to scrape).
    assert "kube-controller-manager-arg" not in config and "etcd-expose-metrics" not in config


def test_production_as_k3s_has_embedded_etcd_and_agents(tmp_path):
    out = render(tmp_path, "production", "-e", "compute_distribution=k3s")
    first = yaml.safe_load((out / "cp-01" / "k3s-config.yaml").read_text())
    second = yaml.safe_load((out / "cp-02" / "k3s-config.yaml").read_text())
    agent = yaml.safe_load((out / "wk-01" / "k3s-config.yaml").read_text())
    assert first["cluster-init"] is True and "server" not in first
    assert second["server"] == "https://10.20.0.11:6443" and "cluster-init" not in second
    assert first["tls-san"] == ["10.20.0.10"]
    assert first["kube-controller-manager-arg"] == first["kube-scheduler-arg"] == ["bind-address=0.0.0.0"]
    assert first["etcd-expose-metrics"] is True
    assert set(agent) == {"kubelet-arg", "node-ip", "node-name", "server", "token-file"}
    assert (out / "cp-01" / "kube-vip.yaml").exists() and not (out / "wk-01" / "kube-vip.yaml").exists()


def test_kube_proxy_stays_when_cilium_does_not_replace_it(tmp_path):
    out = render(tmp_path, "production", "-e", "network_cilium_kube_proxy_replacement=false")
    config = docs(out / "cp-01" / "kubeadm-config.yaml")
    assert "skipPhases" not in config["InitConfiguration"] and "proxy" not in config["ClusterConfiguration"]
