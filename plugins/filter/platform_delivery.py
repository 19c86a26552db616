"""The shared delivery path's data: what a layer declares, turned into Kubernetes documents.

A layer declares (see docs/delivery.md):

    name: network            # the layer, also its tag
    wave: 20                 # Argo CD sync wave base, in layer order
    namespaces: [{name, pod_security}]
    bundles:    [{name, manifest}]                   # manifest: a key of bom_manifests (upstream CRDs)
    releases:   [{name, chart, namespace, values, keep, timeout}] # chart: a key of bom_charts; keep: CRDs, never
                                                     # pruned; timeout: seconds direct mode waits for it
    manifests:  [<Kubernetes object>, ...]           # applied after the releases
    secrets:    [<Secret>, ...]                      # never written to the GitOps tree
    ready:      [{kind, name, namespace?}]           # what to wait for in direct mode

Both delivery modes read the same declaration through these functions, so what
`gitops` writes is exactly what `direct` applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
READY_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "CustomResourceDefinition", "Job", "ClusterPolicy")
LAYER_KEYS = ("name", "wave", "namespaces", "bundles", "releases", "manifests", "secrets", "node_labels", "ready", "may_hold")
# A label key: an optional DNS-subdomain prefix and a name of at most 63 characters.
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
RELEASE_KEYS = ("name", "chart", "namespace", "values", "keep", "timeout")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ARGOCD_DESTINATION = "https://kubernetes.default.svc"
# Argo CD Applications are named <layer>-<part>; both must stay within a DNS label.
MAX_APP_NAME = 63
# Layers are 10 sync waves apart: namespaces and bundles at the layer's wave,
# release n at wave + n, manifests at wave + 9.
MAX_RELEASES = 8


LAYER_LABEL = "platform.ml/layer"


def declaration_problems(layer, charts, manifests=None):
    """Problems with a layer's declaration: the installer's own bugs, caught before anything is applied."""
    problems = []
    if not isinstance(layer, Mapping):
        return ["the layer declaration must be a mapping"]
    name = layer.get("name", "?")
    for key in layer:
        if key not in LAYER_KEYS:
            problems.append(f"layer {name}: unknown key '{key}'")
    if not DNS1123_LABEL.match(str(name)):
        problems.append(f"layer {name}: name must be a DNS label")
    if not isinstance(layer.get("wave"), int):
        problems.append(f"layer {name}: wave must be an integer")
    declared_namespaces = set()
    for ns in layer.get("namespaces") or []:
        declared_namespaces.add(ns.get("name"))
        if ns.get("pod_security") not in POD_SECURITY_LEVELS:
            problems.append(f"layer {name}: namespace {ns.get('name')} needs pod_security: one of {', '.join(POD_SECURITY_LEVELS)}")
    if len(layer.get("releases") or []) > MAX_RELEASES:
        problems.append(f"layer {name}: more than {MAX_RELEASES} releases; their sync waves would run into the next layer's")
    for bundle in layer.get("bundles") or []:
        if bundle.get("manifest") not in (manifests or {}):
            problems.append(f"layer {name}: bundle {bundle.get('name')} uses manifest '{bundle.get('manifest')}', which bom_manifests does not pin")
        elif not re.match(r"^[0-9a-f]{64}$", str(manifests[bundle["manifest"]].get("sha256") or "")):
            problems.append(f"layer {name}: bom_manifests.{bundle['manifest']} has no sha256, so its download could not be verified")
    for release in layer.get("releases") or []:
        for key in release:
            if key not in RELEASE_KEYS:
                problems.append(f"layer {name}: release {release.get('name')} has unknown key '{key}'")
        if release.get("chart") not in charts:
            problems.append(f"layer {name}: release {release.get('name')} uses chart '{release.get('chart')}', which bom_charts does not pin")
        if "timeout" in release and (not isinstance(release["timeout"], int) or isinstance(release["timeout"], bool) or release["timeout"] <= 0):
            problems.append(f"layer {name}: release {release.get('name')} has timeout {release['timeout']!r}; it must be a number of seconds")
        if len(f"{name}-{release.get('name')}") > MAX_APP_NAME:
            problems.append(f"layer {name}: release name {release.get('name')} is too long for an Application name")
    for doc in layer.get("manifests") or []:
        if doc.get("kind") in ("Secret",):
            problems.append(f"layer {name}: Secret {doc.get('metadata', {}).get('name')} belongs in secrets, not manifests (manifests are written to Git)")
        if not doc.get("apiVersion") or not doc.get("kind") or not doc.get("metadata", {}).get("name"):
            problems.append(f"layer {name}: a manifest lacks apiVersion, kind or metadata.name: {doc}")
    for secret in layer.get("secrets") or []:
        if secret.get("kind") != "Secret":
            problems.append(f"layer {name}: secrets holds a {secret.get('kind')}, not a Secret")
    # Direct mode prunes by this label what the layer no longer declares (platform_k8s_apply's prune):
    # an object without it would never be removed, one with another layer's would be removed
    # by that layer.
    for doc in (layer.get("manifests") or []) + (layer.get("secrets") or []):
        meta = doc.get("metadata") or {}
        found = (meta.get("labels") or {}).get(LAYER_LABEL)
        if found != name:
            problems.append(
                f"layer {name}: {doc.get('kind')} {meta.get('namespace') or ''}/{meta.get('name')} has label {LAYER_LABEL}={found!r},"
                f" not {name!r}"
            )
    for entry in layer.get("node_labels") or []:
        for key, value in (entry.get("labels") or {}).items():
            if not LABEL_KEY.match(str(key)) or not LABEL_VALUE.match(str(value)):
                problems.append(f"layer {name}: node {entry.get('name')}: {key}={value} is not a valid label")
    for item in layer.get("ready") or []:
        if item.get("kind") not in READY_KINDS:
            problems.append(f"layer {name}: cannot wait for kind {item.get('kind')}")
    # Kinds applied for the layer by something else, which direct mode's prune searches.
    for item in layer.get("may_hold") or []:
        if not isinstance(item, Mapping) or not item.get("apiVersion") or not item.get("kind"):
            problems.append(f"layer {name}: may_hold entry {item!r} needs apiVersion and kind")
    return problems


def node_label_patches(layer):
    """Merge patches of the labels a layer sets on nodes (applied with state: patched,
    so a node that has not joined yet is never created)."""
    return [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": entry["name"], "labels": dict(entry["labels"])}}
        for entry in layer.get("node_labels") or []
        if entry.get("labels")
    ]


def node_label_commands(layer):
    """The node labels as kubectl commands, for an operator who applies them by hand."""
    return [
        f"kubectl label node {patch['metadata']['name']} --overwrite " + " ".join(f"{k}={v}" for k, v in patch["metadata"]["labels"].items())
        for patch in node_label_patches(layer)
    ]


def secret_summaries(layer):
    """Each Secret a layer creates as 'namespace/name (key, ...)': names only, never values,
    for an operator who creates them by other means (gitops mode with secrets skipped)."""
    lines = []
    for secret in layer.get("secrets") or []:
        meta = secret.get("metadata") or {}
        keys = sorted({*(secret.get("stringData") or {}), *(secret.get("data") or {})})
        lines.append(f"{meta.get('namespace', 'default')}/{meta.get('name')} ({', '.join(keys)})")
    return sorted(lines)


def namespace_documents(layer):
    """Namespaces with Pod Security Admission labels: enforce the declared level, warn and audit at restricted."""
    docs = []
    for ns in layer.get("namespaces") or []:
        labels = {
            "app.kubernetes.io/part-of": "ml-platform",
            "platform.ml/layer": layer["name"],
            "pod-security.kubernetes.io/enforce": ns["pod_security"],
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/warn-version": "latest",
            "pod-security.kubernetes.io/audit": "restricted",
            "pod-security.kubernetes.io/audit-version": "latest",
        }
        labels.update(ns.get("labels") or {})
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns["name"], "labels": labels}})
    return docs


def chart_source(chart, mirror=None):
    """Where Helm fetches a pinned chart: upstream, or the air-gapped mirror.

    Returns {repo_url, chart_ref, version, oci}. OCI charts are addressed by
    reference (oci://registry/path/chart), classic repositories by URL and name.
    """
    repository = str(chart["repository"]).rstrip("/")
    name = chart["chart"]
    if mirror:
        mirror = str(mirror).rstrip("/")
        if mirror.startswith("oci://"):
            return {"repo_url": "", "chart_ref": f"{mirror}/{name}", "version": str(chart["version"]), "oci": True}
        if mirror.startswith("/"):
            return {"repo_url": "", "chart_ref": f"{mirror}/{name}-{chart['version']}.tgz", "version": str(chart["version"]), "oci": False}
        repository = mirror
    if repository.startswith("oci://"):
        return {"repo_url": "", "chart_ref": f"{repository}/{name}", "version": str(chart["version"]), "oci": True}
    return {"repo_url": repository, "chart_ref": name, "version": str(chart["version"]), "oci": False}


def release_bases(entries, mirror=None, arch=""):
    """Where each pinned file set of the bill of materials is fetched from: {key: base URL}.

    entries: bom_binaries or bom_manifests, each {version, url, dir}; a file is at
    <url>/<dir>/<file>, dir holding {version} (URL-quoted, so k3s's "+" survives) and {arch}.
    An air-gapped mirror keeps upstream's layout under one directory per key:
    <mirror>/<key>/<dir>/<file>.
    """
    bases = {}
    for key, entry in (entries or {}).items():
        if not isinstance(entry, Mapping) or "url" not in entry:
            continue
        path = str(entry.get("dir", "")).format(version=quote(str(entry["version"]), safe=""), arch=arch)
        root = f"{str(mirror).rstrip('/')}/{key}" if mirror else str(entry["url"]).rstrip("/")
        bases[key] = f"{root}/{path}" if path else root
    return bases


def bundle_sources(layer, manifests, mirror=None):
    """Where direct mode downloads each bundle: [{name, url, file, checksum}]."""
    bases = release_bases(manifests, mirror)
    sources = []
    for bundle in layer.get("bundles") or []:
        key = bundle["manifest"]
        entry = manifests[key]
        sha256 = str(entry.get("sha256") or "")
        sources.append(
            {
                "name": bundle["name"],
                "url": f"{bases[key]}/{entry['file']}",
                "file": f"{key}-{entry['version']}-{entry['file']}",
                "checksum": f"sha256:{sha256}" if sha256 else "",
            }
        )
    return sources


def bundle_git_source(entry, git_mirror=None):
    """The Git source Argo CD reads a bundle from: upstream, or the mirror holding the same repository."""
    repo = str(entry["git"])
    if git_mirror:
        repo = f"{str(git_mirror).rstrip('/')}/{repo.rstrip('/').rsplit('/', 1)[-1]}"
    return {"repoURL": repo, "targetRevision": str(entry["version"]), "path": str(entry["path"])}


def _application(name, wave, settings, source, namespace, keep=False):
    """An Argo CD Application. keep: never prune or cascade-delete what it applied (CRDs,
    whose deletion would delete every object of their kinds)."""
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": settings["argocd_namespace"],
            "annotations": {"argocd.argoproj.io/sync-wave": str(wave)},
            "labels": {"app.kubernetes.io/part-of": "ml-platform"},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": settings["argocd_project"],
            "source": source,
            "destination": {"server": ARGOCD_DESTINATION, "namespace": namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["ServerSideApply=true", "CreateNamespace=false"],
                "retry": {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "3m"}},
            },
        },
    }
    if keep:
        del app["metadata"]["finalizers"]
        app["spec"]["syncPolicy"]["automated"]["prune"] = False
    return app


def _git_source(settings, path):
    base = str(settings.get("repo_path") or "").strip("/")
    return {
        "repoURL": settings["repo_url"],
        "targetRevision": settings["revision"],
        "path": f"{base}/{path}" if base else path,
    }


def argocd_applications(layer, charts, settings, mirror=None, manifests=None, git_mirror=None):
    """The layer as Argo CD Applications, in sync-wave order: namespaces and bundles, each release, then manifests.

    settings: {argocd_namespace, argocd_project, repo_url, revision, repo_path}.
    Returns [(file name, Application), ...].
    """
    name, wave = layer["name"], int(layer["wave"])
    apps = []
    if layer.get("namespaces"):
        apps.append(
            (
                f"{name}-00-namespaces.yaml",
                _application(f"{name}-namespaces", wave, settings, _git_source(settings, f"manifests/{name}/namespaces"), "default"),
            )
        )
    for bundle in layer.get("bundles") or []:
        source = bundle_git_source(manifests[bundle["manifest"]], git_mirror)
        apps.append((f"{name}-00-{bundle['name']}.yaml", _application(f"{name}-{bundle['name']}", wave, settings, source, "default", keep=True)))
    for index, release in enumerate(layer.get("releases") or [], start=1):
        chart = charts[release["chart"]]
        where = chart_source(chart, mirror)
        if where["oci"]:
            registry_path, chart_name = where["chart_ref"][len("oci://"):].rsplit("/", 1)
            source = {"repoURL": registry_path, "chart": chart_name, "targetRevision": where["version"]}
        else:
            source = {"repoURL": where["repo_url"], "chart": chart["chart"], "targetRevision": where["version"]}
        source["helm"] = {"releaseName": release["name"], "valuesObject": release.get("values") or {}}
        apps.append(
            (
                f"{name}-{index:02d}-{release['name']}.yaml",
                _application(f"{name}-{release['name']}", wave + index, settings, source, release["namespace"], keep=bool(release.get("keep"))),
            )
        )
    if layer.get("manifests"):
        apps.append(
            (
                f"{name}-99-manifests.yaml",
                _application(f"{name}-manifests", wave + 9, settings, _git_source(settings, f"manifests/{name}/resources"), "default"),
            )
        )
    return apps


def app_project(settings, charts, mirror=None, manifests=None, git_mirror=None, extra_repos=()):
    """The AppProject every platform Application belongs to: it may read only the tree's
    repository, the pinned charts' repositories (or the mirror) and the bundles' Git
    repositories (or the Git mirror), and deploy to this cluster."""
    repos = {settings["repo_url"], *map(str, extra_repos or ())}
    for chart in (charts or {}).values():
        where = chart_source(chart, mirror)
        repos.add(where["chart_ref"][len("oci://"):].rsplit("/", 1)[0] if where["oci"] else where["repo_url"])
    for entry in (manifests or {}).values():
        if isinstance(entry, Mapping) and entry.get("git"):
            repos.add(bundle_git_source(entry, git_mirror)["repoURL"])
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": settings["argocd_project"], "namespace": settings["argocd_namespace"], "labels": {"app.kubernetes.io/part-of": "ml-platform"}},
        "spec": {
            "description": "The ML platform's layers, as the installer writes them",
            "sourceRepos": sorted(r for r in repos if r),
            "destinations": [{"server": ARGOCD_DESTINATION, "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            "namespaceResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }


def root_application(settings):
    """The app-of-apps an operator applies once to hand the platform to Argo CD."""
    app = _application("ml-platform", 0, settings, _git_source(settings, "apps"), settings["argocd_namespace"])
    app["spec"]["source"]["directory"] = {"recurse": False}
    return app


def gitops_files(layer, charts, settings, mirror=None, manifests=None, git_mirror=None):
    """Every file the gitops mode writes for a layer: {relative path: [documents]}."""
    files = {f"apps/{file}": [app] for file, app in argocd_applications(layer, charts, settings, mirror, manifests, git_mirror)}
    if layer.get("namespaces"):
        files[f"manifests/{layer['name']}/namespaces/namespaces.yaml"] = namespace_documents(layer)
    if layer.get("manifests"):
        files[f"manifests/{layer['name']}/resources/resources.yaml"] = list(layer["manifests"])
    return files


def declared_objects(layer):
    """{apiVersion, kind, namespace, name} of every object direct mode applies for a layer (its
    namespaces, Secrets and manifests): what platform_k8s_apply's prune keeps. Names only: no Secret's
    data reaches the module."""
    docs = namespace_documents(layer) + list(layer.get("secrets") or []) + list(layer.get("manifests") or [])
    return [
        {"apiVersion": d["apiVersion"], "kind": d["kind"], "namespace": (d.get("metadata") or {}).get("namespace") or "",
         "name": d["metadata"]["name"]}
        for d in docs
    ]


def ready_checks(layer):
    """What direct mode waits on (platform_k8s_apply's ready): each readiness signal of a layer
    with what it must reach, and for a Job what ends the wait at once (Failed, with its pods'
    logs: a failed Job never completes, and waiting for the timeout hides why)."""
    # kubernetes.core knows when a Deployment, DaemonSet or StatefulSet is ready; the others
    # need their condition, or a field (the GPU Operator's ClusterPolicy has no Ready
    # condition in every release, but always status.state, "ready" once every operand is, or
    # when no GPU node has joined yet).
    kinds = {
        "CustomResourceDefinition": {"api_version": "apiextensions.k8s.io/v1", "condition": {"type": "Established", "status": "True"}},
        "Job": {"api_version": "batch/v1", "condition": {"type": "Complete", "status": "True"},
                "failure": {"type": "Failed", "status": "True"}, "logs": True},
        "ClusterPolicy": {"api_version": "nvidia.com/v1", "field": {"path": "status.state", "value": "ready"}},
    }
    checks = []
    for item in layer.get("ready") or []:
        known = kinds.get(item["kind"], {})
        checks.append(
            {
                "api_version": known.get("api_version", "apps/v1"),
                "kind": item["kind"],
                "name": item["name"],
                "namespace": item.get("namespace"),
                "condition": known.get("condition"),
                "field": known.get("field"),
                "failure": known.get("failure"),
                "logs": known.get("logs", False),
            }
        )
    return checks


def _listed_releases(releases, listed):
    """Each declared release with what one `helm list --all --all-namespaces --output json` of
    the layer printed for it (the entry of the same name and namespace), or None:
    [(declared release, listed or None)]. listed: that command's output, or its parsed list."""
    import json

    if isinstance(listed, str):
        listed = json.loads(listed or "[]")
    held = {(r.get("namespace"), r.get("name")): r for r in listed or []}
    return [(release, held.get((release.get("namespace"), release.get("name")))) for release in releases or []]


def installed_releases(releases, listed):
    """'namespace/name' of every declared release Helm already holds, in any state: a release
    that is not among them is a first install, the only one direct mode installs atomically
    (a rollback of an upgrade is a downgrade, which some charts, Longhorn's, do not support)."""
    return sorted(f"{release['namespace']}/{release['name']}" for release, held in _listed_releases(releases, listed) if held)


def pending_releases(releases, listed, helm="helm", kubeconfig=""):
    """Each declared release that an interrupted run left pending-install, pending-upgrade or
    pending-rollback, with the exact command that clears it. Helm refuses every later install
    or upgrade of such a release ("another operation is in progress"), and `helm list` without
    --all does not show it."""
    kube = f" --kubeconfig {kubeconfig}" if kubeconfig else ""
    problems = []
    for release, held in _listed_releases(releases, listed):
        status = str((held or {}).get("status") or "")
        if not status.startswith("pending-"):
            continue
        where = f"{release['name']} --namespace {release['namespace']}{kube}"
        if status == "pending-install":
            # A first install has no revision to roll back to.
            fix = f"{helm} uninstall {where}"
        else:
            fix = f"{helm} rollback {where}"
        problems.append(
            f"Helm release {release['namespace']}/{release['name']} is {status} (revision {held.get('revision')}), left by an"
            f" interrupted run; clear it with `{fix}`, then re-run this layer"
        )
    return problems


def release_filter(releases):
    """The --filter of the layer's one `helm list`: exactly its releases' names (a regular
    expression, so a release whose name only contains a declared one is not listed)."""
    names = sorted({re.escape(str(release["name"])) for release in releases or []})
    return f"^({'|'.join(names)})$"


def crd_names(bundle):
    """The names of the CustomResourceDefinitions in a bundle (its YAML text, or its documents):
    the only kind whose readiness, Established, a bundle wait can check. From Gateway API v1.5
    the standard channel also ships a ValidatingAdmissionPolicy and its binding, which have no
    such condition."""
    if isinstance(bundle, str):
        import yaml

        # libyaml's parser when PyYAML has it: a bundle is a megabyte of CRDs (Gateway API's).
        bundle = list(yaml.load_all(bundle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    return [d["metadata"]["name"] for d in bundle or [] if isinstance(d, Mapping) and d.get("kind") == "CustomResourceDefinition"]


def bundle_ready_checks(bundles):
    """What direct mode waits on after applying bundles (their YAML texts): each CRD
    Established, in the form ready_checks gives (for platform_k8s_apply's ready)."""
    names = [name for bundle in bundles or [] for name in crd_names(bundle)]
    return ready_checks({"ready": [{"kind": "CustomResourceDefinition", "name": name} for name in names]})


class FilterModule:
    def filters(self):
        return {
            "platform_declaration_problems": declaration_problems,
            "platform_namespace_documents": namespace_documents,
            "platform_node_label_patches": node_label_patches,
            "platform_node_label_commands": node_label_commands,
            "platform_secret_summaries": secret_summaries,
            "platform_chart_source": chart_source,
            "platform_bundle_sources": bundle_sources,
            "platform_release_bases": release_bases,
            "platform_gitops_files": gitops_files,
            "platform_root_application": root_application,
            "platform_app_project": app_project,
            "platform_ready_checks": ready_checks,
            "platform_declared_objects": declared_objects,
            "platform_installed_releases": installed_releases,
            "platform_pending_releases": pending_releases,
            "platform_crd_names": crd_names,
            "platform_bundle_ready_checks": bundle_ready_checks,
            "platform_release_filter": release_filter,
        }
