"""What layer 4 (GPUs) declares, computed from the inventory's gpu group.

Plain functions over plain data, unit-tested; the filters at the bottom are
what the gpu role uses:

- ``gpu_host_settings``: each gpu host's product, sharing, layout, replicas
  and whether it brings its own driver;
- ``gpu_node_labels``: the labels that select, per node, the MIG manager's
  layout, the device plugin's sharing configuration and the driver container;
- ``gpu_mig_parted_config`` and ``gpu_sharing_configs``: the MIG manager's and
  the device plugin's ConfigMap contents;
- ``gpu_node_affinity``: the node affinity that pins a workload to a GPU class,
  for the layers that run GPU workloads;
- ``gpu_quota_documents``: ResourceQuotas that cap each namespace's GPUs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import yaml

# Extended resources can only be limited by their requests in a ResourceQuota.
GPU_RESOURCE = re.compile(r"^nvidia\.com/(gpu|mig-[1-7]g\.[0-9]+gb(\+me)?)$")


def _bool(value):
    return str(value).strip().lower() in ("true", "yes", "1", "on")


def host_settings(hosts, default_host_driver="auto"):
    """hosts: {host: hostvars}. Returns {host: {product, sharing, mig_config, replicas, host_driver}}.

    host_driver: gpu_host_driver when declared true/false, else whether the
    gpu_hosts play found a loaded driver (__gpu_host_facts.nvidia_driver).
    """
    settings = {}
    for host, hv in sorted(hosts.items()):
        declared = str(hv.get("gpu_host_driver", default_host_driver)).strip().lower()
        if declared == "auto":
            facts = hv.get("__gpu_host_facts") or {}
            host_driver = bool(facts.get("nvidia_driver")) if isinstance(facts, Mapping) else False
        else:
            host_driver = _bool(declared)
        settings[host] = {
            "product": str(hv.get("gpu_product", "")),
            "sharing": str(hv.get("gpu_sharing", "exclusive")),
            "mig_config": str(hv.get("gpu_mig_config", "")),
            "replicas": int(hv.get("gpu_time_slicing_replicas") or 0),
            "host_driver": host_driver,
        }
    return settings


def sharing_key(host):
    return f"time-slicing-{host['replicas']}" if host["sharing"] == "time-slicing" else "default"


def node_labels(settings):
    """Per node: the MIG layout (all-disabled unless it uses MIG), the device plugin
    configuration, and whether the operator's driver container runs there."""
    return [
        {
            "name": host,
            "labels": {
                "nvidia.com/mig.config": s["mig_config"] if s["sharing"] == "mig" else "all-disabled",
                "nvidia.com/device-plugin.config": sharing_key(s),
                "nvidia.com/gpu.deploy.driver": "false" if s["host_driver"] else "true",
            },
        }
        for host, s in sorted(settings.items())
    ]


def mig_parted_config(layouts):
    """The MIG manager's config.yaml: all-disabled plus every named layout, applied to all GPUs of a node."""
    configs = {"all-disabled": [{"devices": "all", "mig-enabled": False}]}
    for name, layout in sorted((layouts or {}).items()):
        configs[name] = [{"devices": "all", "mig-enabled": True, "mig-devices": {str(p): int(c) for p, c in layout.items()}}]
    return yaml.safe_dump({"version": "v1", "mig-configs": configs}, sort_keys=False, default_flow_style=False)


def sharing_configs(replica_counts, fail_requests_greater_than_one=True):
    """The device plugin's configurations: default (whole GPUs or MIG devices) and one per time-slicing replica count."""
    configs = {"default": yaml.safe_dump({"version": "v1"}, sort_keys=False)}
    for replicas in sorted({int(r) for r in replica_counts}):
        configs[f"time-slicing-{replicas}"] = yaml.safe_dump(
            {
                "version": "v1",
                "sharing": {
                    "timeSlicing": {
                        "renameByDefault": False,
                        "failRequestsGreaterThanOne": bool(fail_requests_greater_than_one),
                        "resources": [{"name": "nvidia.com/gpu", "replicas": replicas}],
                    }
                },
            },
            sort_keys=False,
        )
    return configs


def node_affinity(products):
    """Required node affinity on GPU Feature Discovery's product label. A time-sliced
    GPU's label carries -SHARED, so both spellings are admitted."""
    values = sorted({v for p in products for v in (str(p), f"{p}-SHARED")})
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": values}]}]
            }
        }
    }


def class_affinity(gpu_class, classes):
    """Affinity for a class of gpu_classes; without classes, the name is a gpu_product."""
    if not classes:
        return node_affinity([gpu_class])
    if gpu_class not in classes:
        raise ValueError(f"GPU class {gpu_class!r} is not defined; classes: {', '.join(sorted(classes))}")
    return node_affinity(classes[gpu_class])


def quota_problems(quotas):
    problems = []
    for namespace, resources in sorted((quotas or {}).items()):
        if not isinstance(resources, Mapping):
            problems.append(f"gpu_quotas.{namespace}: must map GPU resources to counts, such as {{nvidia.com/gpu: 8}}.")
            continue
        for resource, count in resources.items():
            if not GPU_RESOURCE.match(str(resource)):
                problems.append(
                    f"gpu_quotas.{namespace}: {resource} is not a GPU resource. Fix: use nvidia.com/gpu or nvidia.com/mig-<profile> (with gpu_mig_strategy: mixed)."
                )
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                problems.append(f"gpu_quotas.{namespace}: {resource}: {count!r} must be a whole number of devices.")
    return problems


def quota_documents(quotas, labels=None):
    return [
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "gpu", "namespace": namespace, "labels": dict(labels or {})},
            "spec": {"hard": {f"requests.{resource}": str(count) for resource, count in sorted(resources.items())}},
        }
        for namespace, resources in sorted((quotas or {}).items())
    ]


def _data(value):
    """Ansible's lazy, tagged values as plain data (what yaml.safe_dump and comparisons need)."""
    return json.loads(json.dumps(value))


KEYS = ("gpu_product", "gpu_sharing", "gpu_mig_config", "gpu_time_slicing_replicas", "gpu_host_driver", "__gpu_host_facts")


def gpu_host_settings(hostvars, names, default_host_driver="auto"):
    """Filter: ``hostvars | mlplatform.baremetal.gpu_host_settings(groups['gpu'], gpu_host_driver)``."""
    return host_settings({h: {k: _data(hostvars[h][k]) for k in KEYS if k in hostvars[h]} for h in names}, str(default_host_driver))


def gpu_node_affinity(gpu_class, classes):
    """Filter: ``'training' | mlplatform.baremetal.gpu_node_affinity(gpu_classes)``: a pod's affinity for that GPU class
    (or, with no classes defined, for that gpu_product); a list names the gpu_products themselves."""
    if isinstance(gpu_class, (list, tuple)):
        if not gpu_class:
            raise ValueError("no GPU product to pin to: the list of gpu_product values is empty")
        return node_affinity([str(p) for p in gpu_class])
    return class_affinity(str(gpu_class), _data(classes))


class FilterModule:
    def filters(self):
        return {
            "gpu_host_settings": gpu_host_settings,
            "gpu_node_labels": lambda settings: node_labels(_data(settings)),
            "gpu_mig_parted_config": lambda layouts: mig_parted_config(_data(layouts)),
            "gpu_sharing_configs": lambda replicas, fail=True: sharing_configs(_data(replicas), fail),
            "gpu_node_affinity": gpu_node_affinity,
            "gpu_quota_problems": lambda quotas: quota_problems(_data(quotas)),
            "gpu_quota_documents": lambda quotas, labels=None: quota_documents(_data(quotas), _data(labels or {})),
        }
