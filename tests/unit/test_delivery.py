"""Unit tests of the delivery path's data (plugins/filter/platform_delivery.py) and
the MetalLB generation (plugins/filter/network_metallb.py)."""

from __future__ import annotations

import pytest

import network_metallb
import platform_delivery as pd

CHARTS = {
    "cilium": {"repository": "https://helm.cilium.io", "chart": "cilium", "version": "1.19.4"},
    "kserve": {"repository": "oci://ghcr.io/kserve/charts", "chart": "kserve", "version": "v0.20.0"},
}
MANIFESTS = {
    "gateway_api": {
        "version": "v1.4.1", "url": "https://github.com/kubernetes-sigs/gateway-api/releases/download", "dir": "{version}", "file": "standard-install.yaml",
        "sha256": "a" * 64, "git": "https://github.com/kubernetes-sigs/gateway-api.git", "path": "config/crd/standard",
    },
    "unhashed": {"version": "v1", "url": "https://example.org", "dir": "{version}", "file": "x.yaml", "sha256": "", "git": "https://example.org/x.git", "path": "."},
}
SETTINGS = {"argocd_namespace": "argocd", "argocd_project": "platform", "repo_url": "https://git.example/tree.git", "revision": "main", "repo_path": ""}
LAYER = {
    "name": "network",
    "wave": 20,
    "namespaces": [{"name": "metallb-system", "pod_security": "privileged"}],
    "releases": [{"name": "cilium", "chart": "cilium", "namespace": "kube-system", "values": {"a": 1}}],
    "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "kube-system", "labels": {"platform.ml/layer": "network"}}}],
    "secrets": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"platform.ml/layer": "network"}}, "stringData": {"k": "v"}}],
    "ready": [{"kind": "Deployment", "namespace": "kube-system", "name": "cilium-operator"}, {"kind": "CustomResourceDefinition", "name": "x.io"}],
}


def test_a_sound_declaration_has_no_problems():
    assert pd.declaration_problems(LAYER, CHARTS) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"releases": [{"name": "x", "chart": "nope", "namespace": "n"}]}, "which bom_charts does not pin"),
        ({"manifests": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}]}, "belongs in secrets"),
        ({"namespaces": [{"name": "n", "pod_security": "open"}]}, "needs pod_security"),
        ({"ready": [{"kind": "Pod", "name": "p"}]}, "cannot wait for kind Pod"),
        ({"bundles": [{"name": "crds", "manifest": "nope"}]}, "which bom_manifests does not pin"),
        ({"releases": [{"name": f"r{i}", "chart": "cilium", "namespace": "n"} for i in range(9)]}, "more than 8 releases"),
        ({"bundles": [{"name": "crds", "manifest": "unhashed"}]}, "bom_manifests.unhashed has no sha256"),
        ({"extra": 1}, "unknown key 'extra'"),
        ({"may_hold": [{"kind": "HTTPRoute"}]}, "may_hold entry {'kind': 'HTTPRoute'} needs apiVersion and kind"),
        # Direct mode prunes by the layer's label: an object without it, or with another layer's.
        ({"manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}]},
         "ConfigMap n/c has label platform.ml/layer=None, not 'network'"),
        ({"secrets": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "t", "labels": {"platform.ml/layer": "storage"}}}]},
         "Secret t/s has label platform.ml/layer='storage', not 'network'"),
    ],
)
def test_declaration_mistakes_are_caught(change, expected):
    """Each kind of mistake, alone, is named."""
    problems = pd.declaration_problems(dict(LAYER, **change), CHARTS, MANIFESTS)
    assert any(expected in p for p in problems), problems


def test_namespaces_enforce_their_level_and_warn_at_restricted():
    (ns,) = pd.namespace_documents(LAYER)
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize(
    "chart, mirror, expected",
    [
        ("cilium", "", {"repo_url": "https://helm.cilium.io", "chart_ref": "cilium", "oci": False}),
        ("kserve", "", {"repo_url": "", "chart_ref": "oci://ghcr.io/kserve/charts/kserve", "oci": True}),
        ("cilium", "oci://registry.internal:5000/charts", {"repo_url": "", "chart_ref": "oci://registry.internal:5000/charts/cilium", "oci": True}),
        ("cilium", "https://charts.internal/", {"repo_url": "https://charts.internal", "chart_ref": "cilium", "oci": False}),
        ("cilium", "/srv/charts", {"repo_url": "", "chart_ref": "/srv/charts/cilium-1.19.4.tgz", "oci": False}),
    ],
)
def test_chart_source_upstream_and_mirrored(chart, mirror, expected):
    source = pd.chart_source(CHARTS[chart], mirror)
    assert {k: source[k] for k in expected} == expected
    assert source["version"] == CHARTS[chart]["version"]


def test_gitops_files_never_hold_secrets_and_order_waves():
    files = pd.gitops_files(LAYER, CHARTS, SETTINGS)
    assert set(files) == {
        "apps/network-00-namespaces.yaml",
        "apps/network-01-cilium.yaml",
        "apps/network-99-manifests.yaml",
        "manifests/network/namespaces/namespaces.yaml",
        "manifests/network/resources/resources.yaml",
    }
    assert all(doc["kind"] != "Secret" for docs in files.values() for doc in docs)
    waves = [int(files[f][0]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for f in sorted(files) if f.startswith("apps/")]
    assert waves == [20, 21, 29]
    app = files["apps/network-01-cilium.yaml"][0]
    assert app["spec"]["source"] == {"repoURL": "https://helm.cilium.io", "chart": "cilium", "targetRevision": "1.19.4", "helm": {"releaseName": "cilium", "valuesObject": {"a": 1}}}
    assert app["spec"]["project"] == "platform"
    assert files["apps/network-99-manifests.yaml"][0]["spec"]["source"]["path"] == "manifests/network/resources"


def test_oci_chart_application_source_has_no_scheme():
    layer = dict(LAYER, releases=[{"name": "kserve", "chart": "kserve", "namespace": "kserve"}])
    app = pd.gitops_files(layer, CHARTS, SETTINGS)["apps/network-01-kserve.yaml"][0]
    assert app["spec"]["source"]["repoURL"] == "ghcr.io/kserve/charts"
    assert app["spec"]["source"]["chart"] == "kserve"


def test_repo_path_prefixes_git_sources():
    settings = dict(SETTINGS, repo_path="clusters/prod/")
    assert pd.root_application(settings)["spec"]["source"]["path"] == "clusters/prod/apps"


def test_ready_checks_wait_on_conditions_only_for_crds_and_jobs():
    checks = pd.ready_checks(dict(LAYER, ready=LAYER["ready"] + [{"kind": "Job", "namespace": "minio", "name": "setup"}]))
    assert checks[0]["condition"] is None and checks[0]["api_version"] == "apps/v1"
    assert checks[1]["condition"] == {"type": "Established", "status": "True"}
    assert checks[1]["api_version"] == "apiextensions.k8s.io/v1"
    assert checks[2]["condition"] == {"type": "Complete", "status": "True"} and checks[2]["api_version"] == "batch/v1"
    assert checks[2]["failure"] == {"type": "Failed", "status": "True"} and checks[2]["logs"] is True
    assert checks[0]["failure"] is None and not checks[0]["logs"]


BUNDLED = dict(LAYER, bundles=[{"name": "gateway-api-crds", "manifest": "gateway_api"}])


def test_bundles_download_from_upstream_or_the_mirror_with_their_checksum():
    upstream = pd.bundle_sources(BUNDLED, MANIFESTS)
    assert upstream == [
        {
            "name": "gateway-api-crds",
            "url": "https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.4.1/standard-install.yaml",
            "file": "gateway_api-v1.4.1-standard-install.yaml",
            "checksum": "sha256:" + "a" * 64,
        }
    ]
    mirrored = pd.bundle_sources(BUNDLED, MANIFESTS, "https://mirror.example/binaries/")
    assert mirrored[0]["url"] == "https://mirror.example/binaries/gateway_api/v1.4.1/standard-install.yaml"
    assert pd.declaration_problems(BUNDLED, CHARTS, MANIFESTS) == []


def test_release_bases_follow_upstream_and_keep_its_layout_under_the_mirror():
    binaries = {
        "kubernetes": {"version": "1.35.3", "url": "https://dl.k8s.io/release/", "dir": "v{version}/bin/linux/{arch}"},
        "k3s": {"version": "v1.35.3+k3s1", "url": "https://github.com/k3s-io/k3s/releases/download", "dir": "{version}"},
        "helm": {"version": "3.18.4", "url": "https://get.helm.sh", "dir": ""},
        "notes": "not a release",
    }
    assert pd.release_bases(binaries, arch="arm64") == {
        "kubernetes": "https://dl.k8s.io/release/v1.35.3/bin/linux/arm64",
        "k3s": "https://github.com/k3s-io/k3s/releases/download/v1.35.3%2Bk3s1",
        "helm": "https://get.helm.sh",
    }
    assert pd.release_bases(binaries, "https://mirror.example/bin/", "amd64") == {
        "kubernetes": "https://mirror.example/bin/kubernetes/v1.35.3/bin/linux/amd64",
        "k3s": "https://mirror.example/bin/k3s/v1.35.3%2Bk3s1",
        "helm": "https://mirror.example/bin/helm",
    }


def test_bundles_become_kept_git_applications_in_the_layers_first_wave():
    apps = dict(pd.argocd_applications(BUNDLED, CHARTS, SETTINGS, None, MANIFESTS))
    app = apps["network-00-gateway-api-crds.yaml"]
    assert app["spec"]["source"] == {"repoURL": "https://github.com/kubernetes-sigs/gateway-api.git", "targetRevision": "v1.4.1", "path": "config/crd/standard"}
    assert app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "20"
    assert "finalizers" not in app["metadata"] and app["spec"]["syncPolicy"]["automated"]["prune"] is False
    mirrored = dict(pd.argocd_applications(BUNDLED, CHARTS, SETTINGS, None, MANIFESTS, "https://git.example/mirror/"))
    assert mirrored["network-00-gateway-api-crds.yaml"]["spec"]["source"]["repoURL"] == "https://git.example/mirror/gateway-api.git"


POOLS = [
    {"name": "platform", "addresses": ["10.0.0.200-10.0.0.210"], "mode": "l2"},
    {"name": "lab", "addresses": "10.0.0.220 - 10.0.0.230", "mode": "l2", "auto_assign": False},
    {"name": "inference", "addresses": ["10.1.0.0/27", "10.1.1.0/28"], "mode": "bgp"},
]
PEERS = [
    {"name": "tor-a", "peer_address": "10.0.0.1", "peer_asn": 64512, "my_asn": 64513},
    {"name": "tor-b", "peer_address": "10.0.0.2", "peer_asn": 64512, "my_asn": 64513, "peer_port": 1179, "hold_time": "90s", "password_secret": "tor-b-bgp"},
]


def by_kind(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_metallb_l2_only():
    docs = by_kind(network_metallb.metallb_resources(POOLS[:2]))
    assert set(docs) == {("IPAddressPool", "platform"), ("IPAddressPool", "lab"), ("L2Advertisement", "platform-l2")}
    assert docs[("IPAddressPool", "lab")]["spec"] == {"addresses": ["10.0.0.220-10.0.0.230"], "autoAssign": False}
    assert docs[("L2Advertisement", "platform-l2")]["spec"] == {"ipAddressPools": ["lab", "platform"]}


def test_metallb_bgp_with_several_peers_and_pools():
    docs = by_kind(network_metallb.metallb_resources(POOLS, PEERS, "metallb-system", ["bond0"]))
    assert docs[("IPAddressPool", "inference")]["spec"]["addresses"] == ["10.1.0.0/27", "10.1.1.0/28"]
    assert docs[("L2Advertisement", "platform-l2")]["spec"] == {"ipAddressPools": ["lab", "platform"], "interfaces": ["bond0"]}
    assert docs[("BGPAdvertisement", "platform-bgp")]["spec"] == {"ipAddressPools": ["inference"]}
    assert docs[("BGPPeer", "tor-a")]["apiVersion"] == "metallb.io/v1beta2"
    assert docs[("BGPPeer", "tor-b")]["spec"] == {
        "myASN": 64513,
        "peerASN": 64512,
        "peerAddress": "10.0.0.2",
        "peerPort": 1179,
        "holdTime": "90s",
        "passwordSecret": {"name": "tor-b-bgp", "namespace": "metallb-system"},
    }
    assert all(d["metadata"]["namespace"] == "metallb-system" for d in docs.values())


def test_metallb_peers_without_bgp_pools_are_not_rendered():
    docs = network_metallb.metallb_resources(POOLS[:1], PEERS)
    assert not [d for d in docs if d["kind"] in ("BGPPeer", "BGPAdvertisement")]


def test_metallb_nothing_without_pools():
    assert network_metallb.metallb_resources([], PEERS) == []


def test_node_labels_are_merge_patches_of_valid_labels():
    layer = {"name": "gpu", "wave": 50, "node_labels": [
        {"name": "gpu-a100-01", "labels": {"nvidia.com/mig.config": "balanced-inference", "nvidia.com/device-plugin.config": "default"}},
        {"name": "wk-01", "labels": {}},
    ]}
    assert pd.declaration_problems(layer, {}) == []
    assert pd.node_label_patches(layer) == [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-a100-01", "labels": {"nvidia.com/mig.config": "balanced-inference", "nvidia.com/device-plugin.config": "default"}}}
    ]
    bad = dict(layer, node_labels=[{"name": "gpu-01", "labels": {"nvidia.com/mig.config": "has space"}}])
    assert pd.declaration_problems(bad, {}) == ["layer gpu: node gpu-01: nvidia.com/mig.config=has space is not a valid label"]
