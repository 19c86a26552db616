"""The air-gap list (playbooks/artifacts.yml) is complete for each sample inventory: every chart
the rendered GitOps tree installs, at its version, and every image the rendered manifests run or
the chart values we set name, is in it; every registry in it is one containerd mirrors. The images
charts run with their own defaults come from bom_chart_images (recorded by rendering each chart at
its pinned version, see bom.yml); the bundle playbook is run with stand-ins for skopeo and helm."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
import yaml

from conftest import BOM, ROOT, documents, project_copy, run, session_command, session_project, state_dir, tool

MIRRORED = yaml.safe_load((ROOT / "roles" / "compute" / "defaults" / "main.yml").read_text())["compute_containerd_mirrored_registries"]


def listing(inventory, tmp_path, *extra):
    """The README's artifacts.yml command in a copy of the project; the list it writes to the
    inventory's state directory."""
    project = project_copy(tmp_path / f"{inventory}-project")
    result = run([tool("ansible-playbook"), "playbooks/artifacts.yml", "-i", f"inventories/{inventory}", *extra], cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load((state_dir(project, inventory) / "airgap-artifacts.yml").read_text())


def sample_listing(inventory, tmp_path_factory):
    """The list the README's artifacts.yml command, as written, writes for a sample inventory: its
    first run in the project of the session render (conftest.session_command, which the operator
    path runs a second time)."""
    result = session_command("air-gap list", inventory, tmp_path_factory)
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load((state_dir(session_project(inventory, tmp_path_factory), inventory) / "airgap-artifacts.yml").read_text())


def qualified(ref):
    """A reference as containerd resolves it: Docker Hub when it names no registry."""
    first = ref.split("/", 1)[0]
    if "/" not in ref or ("." not in first and ":" not in first and first != "localhost"):
        return f"docker.io/{ref if '/' in ref else 'library/' + ref}"
    return ref


def images_in(node, found):
    """Every image a document runs or a values object names: image and imageName strings,
    {registry?, repository, tag} and the GPU Operator's {repository, image, version}."""
    if isinstance(node, dict):
        if {"repository", "image", "version"} <= set(node):
            found.add(f"{node['repository']}/{node['image']}:{node['version']}")
        elif {"repository", "tag"} <= set(node) and isinstance(node["repository"], str):
            prefix = f"{node['registry']}/" if node.get("registry") else ""
            found.add(qualified(f"{prefix}{node['repository']}:{node['tag']}"))
        for key, value in node.items():
            if key in ("image", "imageName") and isinstance(value, str) and ":" in value:
                found.add(qualified(value))
            images_in(value, found)
    elif isinstance(node, list):
        for item in node:
            images_in(item, found)
    return found


def test_the_list_holds_every_chart_and_image_of_the_rendered_tree(rendered, tmp_path_factory):
    inventory, _, tree_docs = rendered
    listed = sample_listing(inventory, tmp_path_factory)
    charts = {(c["chart"], c["version"]) for c in listed["charts"]}
    images = {i["image"] for i in listed["images"]}
    apps = [doc for _, doc in documents(tree_docs) if doc["kind"] == "Application" and "chart" in (doc["spec"].get("source") or {})]
    assert apps
    installed = {(app["spec"]["source"]["chart"], app["spec"]["source"]["targetRevision"]) for app in apps}
    assert installed == charts, (installed ^ charts)
    found = set()
    for _, doc in documents(tree_docs):
        images_in(doc, found)
    assert found, "the collector finds the images the manifests name"
    assert found <= images, sorted(found - images)
    # Every chart the inventory installs has its images recorded, and every registry is mirrored.
    recorded = {ref for c in listed["charts"] for ref in BOM["bom_chart_images"][c["key"]]}
    assert recorded <= images
    assert set(listed["registries"]) <= set(MIRRORED), set(listed["registries"]) - set(MIRRORED)
    # Versions come from the bill of materials, and binaries keep their checksums.
    assert all(b["sha256"] for b in listed["binaries"] if b["key"] != "k3s")
    assert {m["path"] for m in listed["manifests"]} == {"gateway_api/v1.4.1/standard-install.yaml"}


def test_the_list_follows_the_inventory(tmp_path_factory):
    lab, production = sample_listing("lab", tmp_path_factory), sample_listing("production", tmp_path_factory)
    lab_images = {i["image"] for i in lab["images"]}
    production_images = {i["image"] for i in production["images"]}
    # GPU hosts bring the operator, its operands and the GPU runtimes; the lab has none.
    operator = "nvcr.io/nvidia/gpu-operator:v26.7.0"
    assert operator in production_images and operator not in lab_images
    assert "gpu-operator" in {c["chart"] for c in production["charts"]} - {c["chart"] for c in lab["charts"]}
    # kubeadm's control plane and kube-vip for production; k3s brings its own, listed by k3s.
    assert "registry.k8s.io/kube-apiserver:v1.35.3" in production_images and not any("kube-apiserver" in i for i in lab_images)
    assert f"{BOM['bom_images']['kube_vip']['repository']}:{BOM['bom_images']['kube_vip']['tag']}" in production_images
    assert {b["key"] for b in lab["binaries"]} == {"k3s", "helm"}
    assert "k3s-images.txt" in lab["resolved_when_bundling"][0]


def test_an_unrecorded_chart_fails_the_list_by_name(project):
    recorded = {key: images for key, images in BOM["bom_chart_images"].items() if key != "argo_cd"}
    result = run([tool("ansible-playbook"), "playbooks/artifacts.yml", "-i", "inventories/lab", "-e", json.dumps({"bom_chart_images": recorded})],
                 cwd=project)
    assert result.returncode != 0
    assert "bom_chart_images has no entry for chart argo_cd (argo-cd 10.1.1)" in result.stdout
    assert not (state_dir(project, "lab") / "airgap-artifacts.yml").exists()


def test_openebs_instead_of_longhorn_changes_the_list(tmp_path):
    listed = listing("lab", tmp_path, "-e", "storage_block=openebs")
    images = {i["image"] for i in listed["images"]}
    assert "docker.io/openebs/linux-utils:4.3.0" in images and not any("longhorn" in i for i in images)


@pytest.fixture()
def stand_ins(tmp_path):
    """skopeo and helm stand-ins that record their arguments and write what the real ones would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "skopeo").write_text(f"""#!/bin/sh
echo "skopeo $*" >> {log}
dest=$(eval echo \\${{$#}})
dir=${{dest#oci:}}; dir=${{dir%%:*}}
[ "$1" = inspect ] && {{ grep -qxF "$dest" "$dir/refs" 2>/dev/null; exit $?; }}
case "$dest" in oci:{tmp_path}/*) ;; *) echo "not a copy into the bundle: $dest" >&2; exit 2;; esac
case "$*" in *"$SKOPEO_FAILS"*) [ -n "$SKOPEO_FAILS" ] && {{ echo "manifest unknown" >&2; exit 1; }};; esac
mkdir -p "$dir"; echo "$dest" >> "$dir/refs"
""")
    (bin_dir / "helm").write_text(f"""#!/bin/sh
echo "helm $*" >> {log}
ref=$2
while [ $# -gt 0 ]; do case "$1" in -d) shift; dest=$1;; --version) shift; v=$1;; esac; shift; done
touch "$dest/${{ref##*/}}-$v.tgz"
""")
    for script in bin_dir.iterdir():
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bin_dir, log


@pytest.mark.long
def test_the_bundle_pulls_every_listed_image_and_chart(tmp_path, project, stand_ins):
    bin_dir, log = stand_ins
    bundle = tmp_path / "bundle"
    args = [tool("ansible-playbook"), "playbooks/bundle.yml", "-i", "inventories/production", "-e", f"bundle_dir={bundle}",
            "-e", f"bundle_skopeo={bin_dir / 'skopeo'}", "-e", f"bundle_helm={bin_dir / 'helm'}", "-e", '{"bundle_include": ["charts", "images"]}']
    result = run(args, cwd=project, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stdout + result.stderr
    listed = yaml.safe_load((bundle / "airgap-artifacts.yml").read_text())
    calls = log.read_text().splitlines()
    copies = [c for c in calls if c.startswith("skopeo copy")]
    # One copy per place in the mirror: an image two registries publish under one path (quay.io's
    # and docker.io's kiwigrid/k8s-sidecar) has one, as containerd's mirror serves both from it.
    places = {image["image"]: f"oci:{bundle}/images:{image['image'].split('/', 1)[1].split('@', 1)[0]}" for image in listed["images"]}
    assert len(copies) == len(set(places.values()))
    copied = {c.split()[-1] for c in copies}
    for image, place in places.items():
        assert place in copied, image
        assert any(f"docker://{image} " in c for c in copies) or len([p for p in places.values() if p == place]) > 1, image
    assert all("--all" in c and "--preserve-digests" in c for c in copies)
    pulls = [c for c in calls if c.startswith("helm pull")]
    assert len(pulls) == len(listed["charts"])
    cilium = next(c for c in pulls if " cilium " in c)
    assert "--repo https://helm.cilium.io" in cilium and "--version 1.19.4" in cilium
    kserve = next(c for c in pulls if "kserve-resources" in c)
    assert "oci://ghcr.io/kserve/charts/kserve-resources" in kserve
    # Re-running pulls only what is missing: nothing.
    log.write_text("")
    again = run(args, cwd=project, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert again.returncode == 0, again.stdout + again.stderr
    assert not [c for c in log.read_text().splitlines() if c.startswith(("skopeo copy", "helm pull"))]
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", again.stdout), "a second run changes nothing"
    # One image that cannot be copied fails the step, naming it, after the others were tried.
    (bundle / "images" / "refs").write_text("")
    failing = listed["images"][0]["image"]
    broken = run(args, cwd=project, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SKOPEO_FAILS": f"docker://{failing} "})
    assert broken.returncode != 0
    assert f"could not copy: {failing}" in broken.stdout
    assert len((bundle / "images" / "refs").read_text().splitlines()) == len(set(places.values())) - 1
