"""Everything an inventory downloads, for an air-gapped site's mirrors: the Helm charts (with
versions), the container images (fully qualified, with tags), the host binaries and the
upstream manifests, all from the bill of materials (group_vars/all/bom.yml).

``artifacts(bom, settings)`` decides what the inventory needs by the same settings the layers
decide by (distribution, block storage, object store, GPU hosts, backups); the render tests
check it against the charts and images of the rendered GitOps tree, so the two cannot drift.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

# The charts of each layer, and when a layer installs one.
LAYER_CHARTS = (
    ("network", "cilium", None),
    ("network", "metallb", None),
    ("storage", "longhorn", ("storage_block", "longhorn")),
    ("storage", "openebs", ("storage_block", "openebs")),
    ("storage", "minio_operator", ("object_store", "minio")),
    ("observability", "kube_prometheus_stack", None),
    ("observability", "loki", None),
    ("observability", "alloy", None),
    ("observability", "tempo", None),
    ("gpu", "gpu_operator", ("gpu", True)),
    ("serving", "cert_manager", None),
    ("serving", "kserve_crd", None),
    ("serving", "kserve", None),
    ("tracking", "cloudnative_pg", None),
    ("orchestration", "argo_workflows", None),
    ("orchestration", "argo_cd", None),
    ("backup", "velero", ("backup", True)),
)
# The installer's own images (bom_images), and when a layer runs one.
OWN_IMAGES = (
    ("compute", "kube_vip", ("kube_vip", True)),
    ("storage", "minio", ("object_store", "minio")),
    ("storage", "mc", ("object_store", "minio")),
    ("observability", "nginx", None),
    ("smoke", "curl", None),
    ("tracking", "mlflow", None),
    ("tracking", "postgresql", None),
    ("serving", "kserve_sklearnserver", None),
    ("serving", "kserve_xgbserver", None),
    ("serving", "kserve_huggingfaceserver", ("gpu", True)),
    ("serving", "tritonserver", ("gpu", True)),
)
# The stand-in mirror the bundle's paths are taken from (a mirror keeps upstream's layout under
# <mirror>/<key>/).
MIRROR = "mirror:"
KUBEADM_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The files of each binary as upstream publishes them (and the compute role and the platform
# role's helm tasks fetch them), {version} and {arch} filled in.
BINARY_FILES = {
    "kubernetes": ["kubeadm", "kubelet", "kubectl"],
    "containerd": ["containerd-{version}-linux-{arch}.tar.gz"],
    "runc": ["runc.{arch}"],
    "cni_plugins": ["cni-plugins-linux-{arch}-v{version}.tgz"],
    "crictl": ["crictl-v{version}-linux-{arch}.tar.gz"],
    "k3s": ["{k3s_binary}", "sha256sum-{arch}.txt", "k3s-images.txt"],
    "helm": ["helm-v{version}-linux-{arch}.tar.gz"],
}


def _wanted(condition, settings):
    return condition is None or settings.get(condition[0]) == condition[1]


def _image(entry):
    return f"{entry['repository']}:{entry['tag']}"


def _unique(values):
    return list(dict.fromkeys(values))


def _where(bases, kind, key, name):
    """A file's upstream URL and its path in the bundle (the mirror's layout, <key>/<dir>/<file>),
    both from the delivery path's own release bases (platform_release_bases)."""
    mirrored = bases[kind]["mirror"][key]
    return {"url": f"{bases[kind]['upstream'][key]}/{name}", "path": unquote(mirrored.removeprefix(MIRROR + "/")) + "/" + name}


def artifacts(bom, settings, bases):
    """{charts, images, binaries, manifests, resolved_when_bundling, problems} for an inventory.

    bases: {binaries|manifests: {upstream|mirror: platform_release_bases of bom_binaries or
    bom_manifests, upstream and with the mirror MIRROR, for settings.architecture}}.

    settings: distribution (kubeadm, k3s or existing), storage_block, object_store, gpu (bool),
    backup (bool), kube_vip (bool), kube_proxy (bool), sandbox_image, crictl (bool), architecture."""
    bom, settings, bases = json.loads(json.dumps([bom, settings, bases]))
    problems, charts, images = [], [], []
    recorded = bom.get("bom_chart_images") or {}
    for layer, key, condition in LAYER_CHARTS:
        if not _wanted(condition, settings):
            continue
        chart = bom["bom_charts"][key]
        source = chart["repository"] if chart["repository"].startswith("oci://") else f"{chart['repository']} {chart['chart']}"
        charts.append({"key": key, "layer": layer, "chart": chart["chart"], "version": chart["version"], "repository": chart["repository"], "source": source})
        if key not in recorded:
            problems.append(f"bom_chart_images has no entry for chart {key} ({chart['chart']} {chart['version']}): its images are unknown. Fix: render the chart at that version with the inventory's values and record every image it runs.")
        for ref in recorded.get(key) or []:
            images.append({"image": ref, "for": f"chart {key}"})
    for layer, key, condition in OWN_IMAGES:
        if _wanted(condition, settings):
            images.append({"image": _image(bom["bom_images"][key]), "for": f"{layer} (bom_images.{key})"})
    if settings.get("gpu"):
        for key, op in sorted(bom["bom_gpu_operands"].items()):
            images.append({"image": f"{op['repository']}/{op['image']}:{op['version']}", "for": f"gpu (bom_gpu_operands.{key})"})
    binaries, resolved = [], []
    distribution = settings.get("distribution")
    if distribution == "kubeadm":
        version = bom["bom_kubernetes"]["kubeadm"]
        names = list(KUBEADM_IMAGES) + (["kube-proxy"] if settings.get("kube_proxy") else [])
        images += [{"image": f"registry.k8s.io/{name}:v{version}", "for": "compute (kubeadm control plane)"} for name in names]
        images.append({"image": settings["sandbox_image"], "for": "compute (containerd sandbox)"})
        keys = ["kubernetes", "containerd", "runc", "cni_plugins"] + (["crictl"] if settings.get("crictl") else [])
        resolved.append(f"etcd and CoreDNS at the versions kubeadm v{version} pins: `kubeadm config images list --kubernetes-version v{version}`")
    elif distribution == "k3s":
        keys = ["k3s"]
        resolved.append(f"k3s {bom['bom_kubernetes']['k3s']}'s own images (CoreDNS, pause, local-path, metrics-server): k3s-images.txt of that release")
    else:
        keys = []
    keys.append("helm")
    arch = settings.get("architecture") or "amd64"
    for key in keys:
        entry = bom["bom_binaries"][key]
        sums = entry.get("sha256") or {}
        for pattern in BINARY_FILES[key]:
            name = pattern.format(version=entry["version"], arch=arch, k3s_binary="k3s" if arch == "amd64" else f"k3s-{arch}")
            digest = (sums.get(name) or {}).get(arch) if key == "kubernetes" else (sums.get(arch) if key != "k3s" else None)
            binaries.append({"key": key, "version": entry["version"], "arch": arch, **_where(bases, "binaries", key, name), "sha256": digest or ""})
    manifests = [{"key": key, "version": m["version"], **_where(bases, "manifests", key, m["file"]), "sha256": m.get("sha256", "")}
                 for key, m in sorted((bom.get("bom_manifests") or {}).items())]
    seen, unique = set(), []
    for entry in images:
        if entry["image"] not in seen:
            seen.add(entry["image"])
            unique.append(entry)
    return {
        "charts": charts,
        "images": sorted(unique, key=lambda e: e["image"]),
        "binaries": binaries,
        "manifests": manifests,
        "resolved_when_bundling": resolved,
        "registries": sorted({_registry(e["image"]) for e in unique}),
        "problems": problems,
    }


def _registry(ref):
    return ref.split("/", 1)[0]


def mirror_path(ref):
    """Where an image lives on the air-gapped registry: its upstream path without the
    registry host (containerd's mirror rewrites quay.io/cilium/cilium to <mirror>/cilium/cilium),
    without a digest, which a copy to a tag cannot keep."""
    name = ref.split("/", 1)[1]
    return name.split("@", 1)[0]


class FilterModule:
    def filters(self):
        return {"platform_artifacts": artifacts, "platform_mirror_path": mirror_path, "platform_artifacts_mirror": lambda _: MIRROR}
