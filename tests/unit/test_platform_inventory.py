"""Unit tests of the inventory contract checks (plugins/filter/platform_inventory.py)."""

from __future__ import annotations

import ipaddress

import pytest

import platform_inventory as pi

GOOD_PLATFORM = {
    "compute_distribution": "k3s",
    "compute_pod_cidr": "10.42.0.0/16",
    "compute_service_cidr": "10.43.0.0/16",
    "network_metallb_pools": [{"name": "lab", "addresses": ["192.168.1.240-192.168.1.250"], "mode": "l2"}],
}


def single_node(**overrides):
    hostvars = {"lab": dict(GOOD_PLATFORM, ansible_connection="local", ansible_host="192.168.1.10", **overrides)}
    return hostvars, {"all": ["lab"], "ungrouped": [], "control_plane": ["lab"]}


def test_single_k3s_node_is_sound():
    hostvars, groups = single_node()
    assert pi.inventory_problems(hostvars, groups) == []


def test_every_problem_is_reported_not_just_the_first():
    hostvars, groups = single_node(compute_distribution="kubeadmm", compute_pod_cidr="10.43.0.0/16")
    problems = pi.inventory_problems(hostvars, groups)
    assert any("compute_distribution" in p for p in problems)
    assert any("overlaps compute_service_cidr" in p for p in problems)


def test_existing_cluster_reads_platform_variables_from_the_controller(tmp_path):
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text("apiVersion: v1\n")
    controller = dict(GOOD_PLATFORM, compute_distribution="existing", platform_kubeconfig=str(kubeconfig))
    assert pi.inventory_problems({}, {"all": [], "ungrouped": []}, controller=controller) == []


def test_existing_cluster_does_not_need_control_plane_hosts():
    controller = dict(GOOD_PLATFORM, compute_distribution="existing", platform_kubeconfig="/x")
    problems = pi.inventory_problems({}, {"all": []}, controller=controller, controller_paths_exist=False)
    assert problems == []


@pytest.mark.parametrize("count, fine", [(1, True), (2, False), (3, True), (4, False), (5, True), (7, True), (9, False)])
def test_control_plane_count(count, fine):
    planes = [f"cp-{i}" for i in range(count)]
    platform = {"compute_control_plane_endpoint": "10.0.0.100"}
    problems = pi.check_control_plane("kubeadm", {"control_plane": planes}, platform)
    assert (problems == []) is fine


@pytest.mark.parametrize("address, metrics, fine", [("10.0.0.5", True, True), ("cp.example", True, False), (None, True, False), (None, False, True)])
def test_k3s_control_plane_metrics_need_an_address(address, metrics, fine):
    node = {} if address is None else {"ansible_host": address}
    problems = pi.check_control_plane("k3s", {"control_plane": ["cp"]}, {"platform_control_plane_metrics": metrics}, {"cp": node})
    assert (problems == []) is fine
    if not fine:
        assert "host cp: ansible_host" in problems[0] and "platform_control_plane_metrics: false" in problems[0]


def test_extra_groups_are_accepted_when_declared():
    groups = {"all": ["a"], "control_plane": ["a"], "ssh_bastion": ["a"]}
    assert pi.check_groups(groups, ["a"], []) != []
    assert pi.check_groups(groups, ["a"], ["ssh_bastion"]) == []


@pytest.mark.parametrize("name, fine", [("gpu-01", True), ("node.rack1.example", True), ("GPU01", False), ("gpu_01", False), ("-gpu", False), ("a" * 64, False)])
def test_hostnames(name, fine):
    assert (pi.check_hostnames([name]) == []) is fine


@pytest.mark.parametrize(
    "entry, first, last",
    [
        ("10.0.0.0/30", "10.0.0.0", "10.0.0.3"),
        ("10.0.0.5-10.0.0.9", "10.0.0.5", "10.0.0.9"),
        ("10.0.0.5 - 10.0.0.9", "10.0.0.5", "10.0.0.9"),
        ("fd00::/126", "fd00::", "fd00::3"),
    ],
)
def test_parse_address_range(entry, first, last):
    assert pi.parse_address_range(entry) == (ipaddress.ip_address(first), ipaddress.ip_address(last))


@pytest.mark.parametrize("entry", ["10.0.0.9-10.0.0.5", "10.0.0.1-fd00::1", "10.0.0.1/24", "nonsense"])
def test_parse_address_range_rejects(entry):
    with pytest.raises(ValueError):
        pi.parse_address_range(entry)


def test_ipv6_pool_does_not_collide_with_ipv4_nodes():
    platform = dict(GOOD_PLATFORM, network_metallb_pools=[{"name": "v6", "addresses": ["fd00:10::/120"], "mode": "l2"}])
    nodes = {"a": ipaddress.ip_address("10.0.0.1")}
    _, networks = pi.check_networks(platform, nodes, 1, "k3s")
    assert pi.check_metallb(platform, nodes, networks) == []


@pytest.mark.parametrize("prefix, nodes, fine", [(16, 200, True), (24, 1, True), (24, 2, False), (22, 4, True), (22, 5, False)])
def test_pod_cidr_capacity(prefix, nodes, fine):
    platform = dict(GOOD_PLATFORM, compute_pod_cidr=f"10.42.0.0/{prefix}")
    problems, _ = pi.check_networks(platform, {}, nodes, "k3s")
    assert (problems == []) is fine


def test_endpoint_with_port_is_checked_as_an_address():
    platform = dict(GOOD_PLATFORM, compute_control_plane_endpoint="10.42.0.10:6443")
    problems, _ = pi.check_networks(platform, {}, 1, "kubeadm")
    assert any("compute_control_plane_endpoint 10.42.0.10 lies inside compute_pod_cidr" in p for p in problems)


def test_endpoint_may_be_a_dns_name():
    platform = dict(GOOD_PLATFORM, compute_control_plane_endpoint="api.cluster.example:6443")
    problems, _ = pi.check_networks(platform, {}, 1, "kubeadm")
    assert problems == []


def test_platform_variables_must_agree_across_hosts():
    hosts = {"a": {"compute_pod_cidr": "10.42.0.0/16"}, "b": {"compute_pod_cidr": "10.44.0.0/16"}}
    platform, problems = pi._platform_values(hosts, ["a", "b"], {})
    assert platform["compute_pod_cidr"] == "10.42.0.0/16"
    assert problems and "a = '10.42.0.0/16'" in problems[0] and "b = '10.44.0.0/16'" in problems[0]


@pytest.mark.parametrize(
    "profile, fine", [("1g.10gb", True), ("1g.10gb+me", True), ("7g.80gb", True), ("1c.3g.40gb", True), ("1g.18gb", True), ("8g.80gb", False), ("1g.10g", False), ("10gb", False)]
)
def test_mig_profile_names(profile, fine):
    platform = {"gpu_mig_configs": {"layout": {profile: 1}}}
    assert (pi.check_gpus({}, {"gpu": []}, platform) == []) is fine


def test_gpu_mig_count_must_be_positive():
    platform = {"gpu_mig_configs": {"layout": {"1g.10gb": 0}}}
    assert "must be a positive integer" in pi.check_gpus({}, {"gpu": []}, platform)[0]


def test_gpu_host_with_valid_settings():
    hosts = {
        "g1": {"gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_sharing": "mig", "gpu_mig_config": "x"},
        "g2": {"gpu_product": "NVIDIA-H100-80GB-HBM3", "gpu_sharing": "time-slicing", "gpu_time_slicing_replicas": 4},
        "g3": {"gpu_product": "NVIDIA-L40S", "gpu_sharing": "exclusive"},
    }
    platform = {"gpu_mig_configs": {"x": {"1g.10gb": 7}}}
    assert pi.check_gpus(hosts, {"gpu": ["g1", "g2", "g3"]}, platform) == []


def test_time_slicing_replicas_rejects_booleans_and_strings():
    for value in (True, "4"):
        hosts = {"g": {"gpu_product": "p", "gpu_sharing": "time-slicing", "gpu_time_slicing_replicas": value}}
        assert pi.check_gpus(hosts, {"gpu": ["g"]}, {}) != []


BOM = {
    "kubernetes": {"kubeadm": "1.34.2", "k3s": "v1.34.2+k3s1"},
    "supported_minors": ["1.33", "1.34"],
    "charts": {"cilium": {"chart": "cilium", "version": "1.18.4", "kubernetes": {"min": "1.30", "max": "1.34"}}},
}


def test_bom_supported():
    assert pi.check_bom("kubeadm", BOM) == []
    assert pi.check_bom("k3s", BOM) == []
    assert pi.check_bom("existing", BOM) == []


def test_bom_chart_range_is_enforced():
    bom = dict(BOM, kubernetes={"kubeadm": "1.35.0"}, supported_minors=["1.35"])
    problems = pi.check_bom("kubeadm", bom)
    assert len(problems) == 1
    assert "bom_charts.cilium: cilium 1.18.4 supports Kubernetes 1.30 to 1.34, but kubeadm installs 1.35" in problems[0]


def test_bom_distribution_specific_version_format():
    bom = dict(BOM, kubernetes={"kubeadm": "v1.34.2+k3s1", "k3s": "1.34.2"})
    assert len(pi.check_bom("kubeadm", bom)) == 1
    assert len(pi.check_bom("k3s", bom)) == 1


def test_airgap_requires_all_mirrors_in_the_right_form():
    platform = {
        "platform_airgap": True,
        "platform_mirror_binaries": "https://mirror.example/bin",
        "platform_mirror_images": "registry.example:5000/mirror",
        "platform_mirror_charts": "/srv/charts",
    }
    assert pi.check_airgap(platform) == []
    assert len(pi.check_airgap(dict(platform, platform_mirror_binaries="ftp:/x"))) == 1
    assert pi.check_airgap({"platform_airgap": False}) == []


class LazyHostvars(dict):
    """Stands in for Ansible's hostvars: a mapping of host to a mapping of variables."""


def test_filter_wrapper_reads_only_contract_variables():
    hostvars = LazyHostvars(lab=dict(GOOD_PLATFORM, ansible_host="192.168.1.10", ansible_password="s3cret", unrelated=object()))
    groups = {"all": ["lab"], "control_plane": ["lab"]}
    assert pi.platform_inventory_problems(hostvars, groups, {}, [], {}) == []


def test_bom_chart_with_only_a_minimum():
    bom = dict(BOM, kubernetes={"kubeadm": "1.34.2"}, charts={"metallb": {"chart": "metallb", "version": "0.16.1", "kubernetes": {"min": "1.35"}}})
    (problem,) = pi.check_bom("kubeadm", bom)
    assert "metallb 0.16.1 supports Kubernetes 1.35 and later, but kubeadm installs 1.34" in problem
