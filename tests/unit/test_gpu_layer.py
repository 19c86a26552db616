"""Unit tests of what layer 4 declares (plugins/filter/gpu_layer.py)."""

from __future__ import annotations

import pytest
import yaml

import gpu_layer as gl

HOSTS = {
    "gpu-a100-01": {"gpu_product": "NVIDIA-A100-SXM4-80GB", "gpu_sharing": "mig", "gpu_mig_config": "balanced", "__gpu_host_facts": {"nvidia_driver": "580.95.05"}},
    "gpu-h100-01": {"gpu_product": "NVIDIA-H100-80GB-HBM3", "gpu_sharing": "exclusive", "__gpu_host_facts": {"nvidia_driver": None}},
    "gpu-h100-02": {"gpu_product": "NVIDIA-H100-80GB-HBM3", "gpu_sharing": "time-slicing", "gpu_time_slicing_replicas": 4, "gpu_host_driver": True},
}


def test_the_host_driver_is_declared_or_read_from_the_host():
    settings = gl.host_settings(HOSTS)
    assert {h: s["host_driver"] for h, s in settings.items()} == {"gpu-a100-01": True, "gpu-h100-01": False, "gpu-h100-02": True}
    # Declared for all: the hosts' facts no longer decide; a host's own declaration still does.
    assert {h: s["host_driver"] for h, s in gl.host_settings(HOSTS, "false").items()} == {"gpu-a100-01": False, "gpu-h100-01": False, "gpu-h100-02": True}
    # Facts not read (the gpu_hosts play skipped): the operator's driver container is assumed.
    assert gl.host_settings({"gpu-x": {"gpu_product": "NVIDIA L4"}})["gpu-x"]["host_driver"] is False


def test_node_labels_select_layout_sharing_and_driver():
    assert gl.node_labels(gl.host_settings(HOSTS)) == [
        {"name": "gpu-a100-01", "labels": {"nvidia.com/mig.config": "balanced", "nvidia.com/device-plugin.config": "default", "nvidia.com/gpu.deploy.driver": "false"}},
        {"name": "gpu-h100-01", "labels": {"nvidia.com/mig.config": "all-disabled", "nvidia.com/device-plugin.config": "default", "nvidia.com/gpu.deploy.driver": "true"}},
        {"name": "gpu-h100-02", "labels": {"nvidia.com/mig.config": "all-disabled", "nvidia.com/device-plugin.config": "time-slicing-4", "nvidia.com/gpu.deploy.driver": "false"}},
    ]


def test_the_mig_manager_gets_every_layout_and_all_disabled():
    config = yaml.safe_load(gl.mig_parted_config({"balanced": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}}))
    assert config == {
        "version": "v1",
        "mig-configs": {
            "all-disabled": [{"devices": "all", "mig-enabled": False}],
            "balanced": [{"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}}],
        },
    }


def test_the_device_plugin_gets_default_and_one_configuration_per_replica_count():
    configs = gl.sharing_configs([4, 2, 4], fail_requests_greater_than_one=True)
    assert sorted(configs) == ["default", "time-slicing-2", "time-slicing-4"]
    assert yaml.safe_load(configs["default"]) == {"version": "v1"}
    assert yaml.safe_load(configs["time-slicing-2"])["sharing"]["timeSlicing"] == {
        "renameByDefault": False, "failRequestsGreaterThanOne": True, "resources": [{"name": "nvidia.com/gpu", "replicas": 2}],
    }


def test_affinity_admits_the_shared_spelling_of_each_product():
    classes = {"training": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"]}
    terms = gl.class_affinity("training", classes)["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": [
        "NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB-SHARED", "NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-80GB-HBM3-SHARED"]}]}]
    with pytest.raises(ValueError, match="GPU class 'inference' is not defined; classes: training"):
        gl.class_affinity("inference", classes)
    # Without classes, the workload names the product.
    assert gl.class_affinity("NVIDIA-L40S", {}) == gl.node_affinity(["NVIDIA-L40S"])


def test_quotas_cap_gpu_requests_and_refuse_other_resources():
    assert gl.quota_problems({"ml-training": {"nvidia.com/gpu": 16, "nvidia.com/mig-1g.10gb": 7}}) == []
    problems = gl.quota_problems({"ml-serving": {"nvidia.com/gpus": 2, "nvidia.com/gpu": -1}, "ml-x": 3})
    assert problems == [
        "gpu_quotas.ml-serving: nvidia.com/gpus is not a GPU resource. Fix: use nvidia.com/gpu or nvidia.com/mig-<profile> (with gpu_mig_strategy: mixed).",
        "gpu_quotas.ml-serving: nvidia.com/gpu: -1 must be a whole number of devices.",
        "gpu_quotas.ml-x: must map GPU resources to counts, such as {nvidia.com/gpu: 8}.",
    ]
    assert gl.quota_documents({"ml-training": {"nvidia.com/gpu": 16}}, {"platform.ml/layer": "gpu"}) == [{
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "gpu", "namespace": "ml-training", "labels": {"platform.ml/layer": "gpu"}},
        "spec": {"hard": {"requests.nvidia.com/gpu": "16"}},
    }]


def test_the_filter_pins_to_a_list_of_products_and_refuses_none():
    assert gl.gpu_node_affinity(["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"], {"training": ["x"]}) == gl.node_affinity(
        ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"]
    )
    with pytest.raises(ValueError, match="empty"):
        gl.gpu_node_affinity([], {})
