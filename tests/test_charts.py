"""Every Helm release the platform declares, rendered through its real upstream chart at the
pinned version (tests/charts.py) for lab, production and airgap: it renders, every values key
the platform sets is read by the chart, no object has two owners, every object is valid for the
pinned Kubernetes and the pinned CRDs. Then the chart mirror path: direct delivery's chart
references for the airgap inventory, resolved by the real helm against ../shared/charts served
on 127.0.0.1 as an HTTP repository, as a directory and as an OCI registry."""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import http.server
import ipaddress
import json
import os
import re
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

import binaries
import charts
from conftest import BOM, KUBERNETES, run, tool
from k8s_schemas import CHART_DIR, CRD_DIR, SHARED_BUNDLES, _chart_files, _crd_documents, _schemas, chart_crds, crd_schemas, shared_crds, validate, within_chart

# Skipped without ../shared/charts, except in CI, which has it (there every render fails instead).
pytestmark = pytest.mark.skipif(not CHART_DIR.is_dir() and not os.environ.get("CI"), reason=f"{CHART_DIR} (the pinned upstream charts) is missing")
# The tests of the rendered releases share tests/charts.py's renders, which live in one process:
# keep them on one pytest-xdist worker (production's and airgap's values are the same, so the
# second is free there).
shared_renders = pytest.mark.xdist_group("charts")


def report(request, message):
    """The time of an expensive part, in the output (in the "timings" section under pytest-xdist)."""
    from apiserver import report as timing

    timing(request.config, message)


def release_of(tree_docs, application):
    return next(r for r in charts.releases(tree_docs) if r.application == application)


# ---- every release through its chart -------------------------------------------------


@shared_renders
def test_every_release_renders_through_its_pinned_chart(rendered, request):
    inventory, _, tree_docs = rendered
    declared = charts.releases(tree_docs)
    # Every pinned chart but OpenEBS (the alternative to Longhorn); the GPU Operator with GPU hosts.
    expected = {c["chart"] for key, c in BOM["bom_charts"].items() if key != "openebs" and (key != "gpu_operator" or inventory != "lab")}
    assert {r.chart for r in declared} == expected
    renders = charts.chart_renders(inventory, tree_docs)
    for line in charts.TIMINGS:
        if line.startswith(f"charts {inventory}:"):
            report(request, f"\n{line}")
    assert {name: render.error for name, render in renders.items() if render.error} == {}
    assert all(render.documents for render in renders.values())


@shared_renders
def test_every_value_the_platform_sets_is_read_by_its_chart(rendered, request):
    inventory, _, tree_docs = rendered
    began = time.monotonic()
    declared = charts.releases(tree_docs)
    with ThreadPoolExecutor(max_workers=len(declared)) as pool:  # tests/charts.py bounds the helm processes
        unread = dict(zip((r.application for r in declared), pool.map(charts.unread_keys, declared)))
    report(request, f"\ncharts {inventory}: unread-key proof of every release in {time.monotonic() - began:.1f}s")
    assert {name: keys for name, keys in unread.items() if keys} == {}


@shared_renders
def test_the_proof_renders_each_release_as_its_chart_archive_does(rendered):
    """The unread-key proof renders each chart from its archive unpacked (charts.chart_tree) with
    --skip-crds: for every release that render is, byte for byte, the archive's render with
    --include-crds less the chart's crds/ files, which helm writes as they are ahead of the
    templates. Helm ignores --version for a chart on disk: the archive is the pinned version."""
    _, _, tree_docs = rendered
    for release in charts.releases(tree_docs):
        archive, proof = charts.template(release), charts.template(release, proof=True)
        assert (archive.error, proof.error) == ("", ""), release.application
        assert archive.text.endswith(proof.text), f"{release.application}: the proof renders {charts.chart_tree(release.archive)} otherwise"
        files = dict(_chart_files(release.archive.read_bytes()))
        crds = {  # what helm reads of each crds/ file: text, less a byte order mark
            files[path].decode().removeprefix("\ufeff").replace("\r\n", "\n") for path, inner in within_chart(files).items()
            if re.fullmatch(r"crds/.+\.(yaml|yml|json)", inner)
        }
        # "---\n# Source: <chart>/crds/<file>\n<file>\n" for each crds/ file of an enabled (sub)chart
        first, *ahead = re.split(r"(?m)^---\n# Source: (.+)\n", archive.text[: len(archive.text) - len(proof.text)])
        assert first == "", release.application
        for source, text in zip(ahead[::2], ahead[1::2]):
            assert "crds/" in source and text.removesuffix("\n") in crds, f"{release.application}: {source} is not a crds/ file"
        chart = yaml.safe_load(files[f"{release.chart}/Chart.yaml"])
        assert (chart["name"], str(chart["version"])) == (release.chart, release.version)


@shared_renders
def test_no_object_is_owned_twice(rendered):
    inventory, _, tree_docs = rendered
    assert charts.owned_twice(tree_docs, charts.chart_objects(inventory, tree_docs)) == []


@shared_renders
def test_every_chart_object_is_valid_for_the_pinned_kubernetes(rendered, request):
    inventory, _, tree_docs = rendered
    began = time.monotonic()
    declared = charts.releases(tree_docs)
    with ThreadPoolExecutor(max_workers=2) as pool:
        errors = dict(zip((r.application for r in declared), pool.map(charts.invalid_objects, declared)))
    objects = sum(len(charts.template(r).documents) for r in declared)
    report(request, f"\ncharts {inventory}: {objects} chart objects validated in {time.monotonic() - began:.1f}s")
    assert {name: found for name, found in errors.items() if found} == {}


@shared_renders
def test_the_crds_validated_against_are_the_ones_the_platform_installs(rendered):
    """k8s_schemas renders each pinned chart's CRDs once, without an inventory (CRD_VALUES): they
    must be exactly the CRDs the platform's own values make each release install."""
    inventory, _, tree_docs = rendered
    pinned = {doc["metadata"]["name"]: (chart, doc) for chart, doc in chart_crds()}
    installed = 0
    for release in charts.releases(tree_docs):
        for doc in charts.template(release).documents:
            if doc["kind"] != "CustomResourceDefinition":
                continue
            installed += 1
            name = doc["metadata"]["name"]
            assert name in pinned, f"{release.application} installs {name}, which k8s_schemas does not validate against"
            chart, known = pinned[name]
            assert chart == release.chart, f"{name}: validated as {chart}'s, installed by {release.chart}"
            assert known["spec"]["versions"] == doc["spec"]["versions"], f"{name}: {release.application} installs other versions or schemas"
    assert installed >= (97 if inventory == "lab" else 105)  # the GPU Operator's 8 with GPU hosts
    # ../shared/crds serves only what no pinned chart ships: the bundles.
    assert {doc["spec"]["group"] for doc in shared_crds()} == {"gateway.networking.k8s.io"}
    assert not {doc["spec"]["group"] for doc in shared_crds()} & {doc["spec"]["group"] for _, doc in chart_crds()}


# ---- each check, fed a known-bad input ------------------------------------------------


@shared_renders
def test_a_misspelt_key_is_reported_unread(rendered):
    inventory, _, tree_docs = rendered
    velero = release_of(tree_docs, "backup-velero")
    values = velero.values
    # A declared key misspelt: the chart's default applies, with it and without it.
    values["snapshotsEnabld"] = values.pop("snapshotsEnabled")
    # Under a key the chart's defaults leave empty (schedules: {}) but read: a misspelt field
    # of the one schedule the platform declares.
    values["schedules"]["daily"]["templat"] = values["schedules"]["daily"].pop("template")
    # In an item of a list of maps (the chart's default list has one item to walk it against).
    values["configuration"]["backupStorageLocation"][0]["prefx"] = values["configuration"]["backupStorageLocation"][0].pop("prefix")
    unread = dict(charts.unread_keys(velero.with_values(values)))
    assert set(unread) == {"snapshotsEnabld", "schedules.daily.templat", "configuration.backupStorageLocation.0.prefx"}, unread
    assert charts.unread_keys(velero) == []


@shared_renders
def test_a_misspelt_field_the_chart_passes_through_is_invalid(rendered):
    """A key under a map the chart renders as given (containerSecurityContext) is read; the typo
    lands in the Deployment, whose validation against the pinned Kubernetes reports it."""
    _, _, tree_docs = rendered
    velero = release_of(tree_docs, "backup-velero")
    values = velero.values
    values["containerSecurityContext"]["readOnlyRootFilesystm"] = values["containerSecurityContext"].pop("readOnlyRootFilesystem")
    broken = velero.with_values(values)
    assert ("containerSecurityContext.readOnlyRootFilesystm", "the output is the same without it and with it changed") not in charts.unread_keys(broken)
    assert any("readOnlyRootFilesystm" in error for error in charts.invalid_objects(broken))
    assert charts.invalid_objects(velero) == []


@shared_renders
def test_a_values_schema_error_is_a_render_error(rendered):
    _, _, tree_docs = rendered
    cert_manager = release_of(tree_docs, "serving-cert-manager")
    values = cert_manager.values
    values["webhook"]["replicaCountt"] = values["webhook"].get("replicaCount", 1)
    render = charts.template(cert_manager.with_values(values))
    assert "replicaCountt" in render.error and "schema" in render.error, render.error


@shared_renders
def test_an_object_owned_twice_is_reported(rendered):
    inventory, _, tree_docs = rendered
    objects = charts.chart_objects(inventory, tree_docs)
    account = next(d for d in objects["backup-velero"] if d["kind"] == "ServiceAccount")
    name, namespace = account["metadata"]["name"], account["metadata"]["namespace"]
    # The tree's own copy, in a folder whose Application applies it.
    mine = {**account, "metadata": {"name": name, "namespace": namespace}}
    doubled = {**tree_docs, "manifests/backup/resources/extra.yaml": [mine]}
    assert charts.owned_twice(doubled, objects) == [f"ServiceAccount {namespace}/{name} (core): chart backup-velero, tree manifests/backup/resources/extra.yaml"]
    # Without a namespace the tree's copy lands in its Application's ("default"): no collision.
    doubled["manifests/backup/resources/extra.yaml"] = [{**account, "metadata": {"name": name}}]
    assert charts.owned_twice(doubled, objects) == []
    # Two charts rendering the same object.
    objects["network-cilium"].append(mine)
    assert charts.owned_twice(tree_docs, objects) == [f"ServiceAccount {namespace}/{name} (core): chart backup-velero, chart network-cilium"]


def test_custom_resources_are_validated_against_the_pinned_crds():
    """Argo CD's pinned chart (app v3.4.4) has no spec.source.tagPrefix, which ../shared/crds'
    v3.5.1 CRD has: the API server of a platform install would drop it."""
    app = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "a", "namespace": "argocd"},
        "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc"},
                 "source": {"repoURL": "https://git.example.internal/x.git", "path": ".", "tagPrefix": "v"}},
    }
    newer = _schemas(_crd_documents((CRD_DIR / "argo-cd" / "application-crd.yaml").read_text()))[("argoproj.io/v1alpha1", "Application")]
    import jsonschema

    assert list(jsonschema.Draft7Validator(newer).iter_errors(app)) == []
    assert any("tagPrefix" in e for e in validate(app, KUBERNETES))
    del app["spec"]["source"]["tagPrefix"]
    assert validate(app, KUBERNETES) == []
    # Argo Workflows installs its minimal CRDs (spec open); its full ones still catch a typo.
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
                "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox:1.38.0"}}], "serviceAccountNme": "x"}}
    assert any("serviceAccountNme" in e for e in validate(workflow, KUBERNETES))


def test_the_gateway_api_is_validated_against_the_shared_crds(request):
    """No chart ships the Gateway API (a bundle, bom_manifests.gateway_api): its CRDs come from
    ../shared/crds, which holds v1.6.1 where the platform pins v1.4.1."""
    versions = {doc["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] for doc in shared_crds()}
    pinned = BOM["bom_manifests"]["gateway_api"]["version"]
    report(request, f"\nGateway API custom resources validated against {', '.join(sorted(versions))} ({CRD_DIR / SHARED_BUNDLES['gateway_api']}); pinned {pinned}")
    assert versions == {"v1.6.1"} and pinned == "v1.4.1"
    assert ("gateway.networking.k8s.io/v1", "HTTPRoute") in crd_schemas()


# ---- the chart mirror path -------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(handler, context=None):
    """An HTTP(S) server on 127.0.0.1 in a thread; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Registry(http.server.BaseHTTPRequestHandler):
    """The part of the OCI distribution API that `helm push` and `helm pull` use, in memory: a
    stand-in for the site's registry (distribution, Harbor, Zot ...)."""

    protocol_version = "HTTP/1.1"
    store: dict = {}

    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.rstrip("/") == "/v2":
            return self._send(200, b"{}", [("Content-Type", "application/json")])
        match = re.fullmatch(r"/v2/(.+)/(blobs|manifests)/([^/]+)", path)
        if match and (match[1], match[3]) in self.store:
            body, kind = self.store[(match[1], match[3])]
            return self._send(200, body, [("Content-Type", kind), ("Docker-Content-Digest", f"sha256:{hashlib.sha256(body).hexdigest()}")])
        self._send(404, b'{"errors":[{"code":"NOT_FOUND","message":"not found"}]}', [("Content-Type", "application/json")])

    do_HEAD = do_GET

    def do_POST(self):
        self._body()
        name = re.fullmatch(r"/v2/(.+)/blobs/uploads/", self.path.split("?")[0])[1]
        self.store[("upload", upload := uuid.uuid4().hex)] = (b"", "")
        self._send(202, headers=[("Location", f"/v2/{name}/blobs/uploads/{upload}"), ("Range", "0-0")])

    def do_PATCH(self):
        name, upload = re.fullmatch(r"/v2/(.+)/blobs/uploads/(\w+)", self.path.split("?")[0]).groups()
        data = self.store[("upload", upload)][0] + self._body()
        self.store[("upload", upload)] = (data, "")
        self._send(202, headers=[("Location", f"/v2/{name}/blobs/uploads/{upload}"), ("Range", f"0-{len(data) - 1}")])

    def do_PUT(self):
        path, _, query = self.path.partition("?")
        blob = re.fullmatch(r"/v2/(.+)/blobs/uploads/(\w+)", path)
        if blob:
            data = self.store.pop(("upload", blob[2]))[0] + self._body()
            digest = re.search(r"digest=sha256(?::|%3A)([0-9a-f]{64})", query)[1]
            if hashlib.sha256(data).hexdigest() != digest:
                return self._send(400)
            self.store[(blob[1], f"sha256:{digest}")] = (data, "application/octet-stream")
            return self._send(201, headers=[("Location", f"/v2/{blob[1]}/blobs/sha256:{digest}"), ("Docker-Content-Digest", f"sha256:{digest}")])
        name, reference = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", path).groups()
        body = self._body()
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        self.store[(name, reference)] = self.store[(name, digest)] = (body, self.headers["Content-Type"])
        self._send(201, headers=[("Location", f"/v2/{name}/manifests/{digest}"), ("Docker-Content-Digest", digest)])


def self_signed(directory: Path):
    """A certificate for 127.0.0.1 and its key; helm (Go) trusts it through SSL_CERT_FILE."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chart mirror test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "mirror.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "mirror.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return directory / "mirror.crt", directory / "mirror.key"


@functools.lru_cache(maxsize=1)
def pinned_keys():
    """The bill of materials' charts that ../shared/charts holds, by bom_charts key."""
    return tuple(key for key, c in BOM["bom_charts"].items() if (CHART_DIR / f"{c['chart']}-{c['version']}.tgz").is_file())


def test_the_mirror_holds_every_chart_the_sample_inventories_install():
    # OpenEBS, the alternative to Longhorn behind storage_block, is the one pinned chart no sample
    # inventory installs; every other one is in ../shared/charts.
    assert set(BOM["bom_charts"]) - set(pinned_keys()) == {"openebs"}


def direct_chart_sources(project: Path, inventory="airgap"):
    """{bom_charts key: (chart_ref, chart_repo_url or None, chart_version)}: what direct delivery's
    "Install or upgrade the Helm releases" task hands kubernetes.core.helm for each pinned chart,
    its own expressions (read from roles/platform/tasks/deliver_direct.yml) evaluated by Ansible
    with the inventory, the platform role's variables and the bill of materials."""
    tasks = yaml.safe_load((project / "roles" / "platform" / "tasks" / "deliver_direct.yml").read_text())
    task = next(t for t in tasks if "kubernetes.core.helm" in t)
    arguments = task["kubernetes.core.helm"]
    play = [{
        "name": "Resolve each pinned chart as direct delivery does", "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "Read the platform role's variables", "ansible.builtin.include_vars": "roles/platform/vars/main.yml"},
            {"name": "Resolve the chart", "vars": task["vars"], "loop": [{"chart": key} for key in pinned_keys()],
             "ansible.builtin.debug": {"msg": {k: arguments[k] for k in ("chart_ref", "chart_repo_url", "chart_version")}}},
        ],
    }]
    (project / "chart-sources.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    result = run([tool("ansible-playbook"), "chart-sources.yml", "-i", f"inventories/{inventory}"], cwd=project, env={"ANSIBLE_STDOUT_CALLBACK": "json"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(result.stdout)["plays"][0]["tasks"][1]["hosts"]["localhost"]["results"]
    # An omitted argument (default(omit)) is left out of the message, as out of the module's arguments.
    return {r["item"]["chart"]: (r["msg"]["chart_ref"], r["msg"].get("chart_repo_url"), str(r["msg"]["chart_version"])) for r in results}


def point_mirror_at(project: Path, url):
    """Set platform_mirror_charts in the copy's airgap inventory, as its operator would."""
    path = project / "inventories" / "airgap" / "group_vars" / "all" / "airgap.yml"
    text, count = re.subn(r"(?m)^platform_mirror_charts: .*$", f"platform_mirror_charts: {url}", path.read_text())
    assert count == 1
    path.write_text(text)


def helm_env(tmp_path, **extra):
    homes = {f"HELM_{kind}_HOME": str(tmp_path / "helm" / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}
    return {**homes, **extra}


def resolve_and_pull(sources, tmp_path, env):
    """For each source, kubernetes.core.helm's first step (helm show chart <ref> --version= [--repo=])
    and helm pull of the same reference; [(key, problem)] where the chart is not the pinned archive."""
    problems = []

    def one(key):
        ref, repo, version = sources[key]
        entry = BOM["bom_charts"][key]
        flags = [f"--version={version}", *([f"--repo={repo}"] if repo else [])]
        shown = run([binaries.helm(), "show", "chart", ref, *flags], env=env)
        if shown.returncode:
            return [(key, f"helm show chart {ref} {' '.join(flags)}: {shown.stderr.strip()}")]
        chart = yaml.safe_load(shown.stdout)
        found = []
        if (chart["name"], str(chart["version"])) != (entry["chart"], str(entry["version"])):
            found.append((key, f"{ref} resolves to {chart['name']} {chart['version']}"))
        if ref.startswith("/"):
            pulled = Path(ref)
        else:
            target = tmp_path / "pulled" / key
            target.mkdir(parents=True)
            result = run([binaries.helm(), "pull", ref, *flags, "--destination", str(target)], env=env)
            if result.returncode:
                return found + [(key, f"helm pull {ref}: {result.stderr.strip()}")]
            pulled = next(target.glob("*.tgz"))
        archive = CHART_DIR / f"{entry['chart']}-{entry['version']}.tgz"
        if hashlib.sha256(pulled.read_bytes()).digest() != hashlib.sha256(archive.read_bytes()).digest():
            found.append((key, f"{ref} is not {archive.name}"))
        return found

    with ThreadPoolExecutor(max_workers=4) as pool:
        for found in pool.map(one, sorted(sources)):
            problems += found
    return problems


def test_the_airgap_inventory_sends_direct_delivery_to_its_oci_mirror(project):
    sources = direct_chart_sources(project)
    assert sources == {
        key: (f"oci://registry.example.internal:5000/charts/{BOM['bom_charts'][key]['chart']}", None, str(BOM["bom_charts"][key]["version"]))
        for key in pinned_keys()
    }


def test_direct_delivery_resolves_every_chart_from_an_http_mirror(project, tmp_path, request):
    began = time.monotonic()
    with serving(functools.partial(_Quiet, directory=str(CHART_DIR))) as port:
        url = f"http://127.0.0.1:{port}"
        point_mirror_at(project, url)
        sources = direct_chart_sources(project)
        assert sources == {key: (BOM["bom_charts"][key]["chart"], url, str(BOM["bom_charts"][key]["version"])) for key in pinned_keys()}
        assert resolve_and_pull(sources, tmp_path, helm_env(tmp_path)) == []
    report(request, f"\nchart mirror (HTTP repository): {len(sources)} charts resolved and pulled in {time.monotonic() - began:.1f}s")


def test_direct_delivery_resolves_every_chart_from_a_directory_mirror(project, tmp_path):
    point_mirror_at(project, str(CHART_DIR))
    sources = direct_chart_sources(project)
    assert sources == {
        key: (f"{CHART_DIR}/{c['chart']}-{c['version']}.tgz", None, str(c["version"])) for key, c in BOM["bom_charts"].items() if key in pinned_keys()
    }
    assert resolve_and_pull(sources, tmp_path, helm_env(tmp_path)) == []


def test_direct_delivery_resolves_every_chart_from_an_oci_mirror(project, tmp_path, request):
    """The charts pushed to an OCI registry the way docs/airgap.md says (helm push <archive>
    oci://<registry>/charts), then each reference direct delivery makes of the mirror pulled back.
    The registry serves TLS: direct delivery passes no plain_http, so helm speaks HTTPS only."""
    began = time.monotonic()
    certificate, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    Registry.store = {}
    env = helm_env(tmp_path, SSL_CERT_FILE=str(certificate))
    with serving(Registry, context) as port:
        mirror = f"oci://127.0.0.1:{port}/charts"
        for chart_key in pinned_keys():
            entry = BOM["bom_charts"][chart_key]
            pushed = run([binaries.helm(), "push", str(CHART_DIR / f"{entry['chart']}-{entry['version']}.tgz"), mirror], env=env)
            assert pushed.returncode == 0, pushed.stderr
        point_mirror_at(project, mirror)
        sources = direct_chart_sources(project)
        assert sources == {k: (f"{mirror}/{BOM['bom_charts'][k]['chart']}", None, str(BOM["bom_charts"][k]["version"])) for k in pinned_keys()}
        assert resolve_and_pull(sources, tmp_path, env) == []
        # Without the mirror's CA the controller's helm refuses it: the site must trust it.
        untrusted = run([binaries.helm(), "show", "chart", sources["kserve"][0], f"--version={sources['kserve'][2]}"], env=helm_env(tmp_path / "other"))
        assert untrusted.returncode != 0 and "certificate" in untrusted.stderr, untrusted.stderr
    report(request, f"\nchart mirror (OCI registry): {len(sources)} charts pushed, resolved and pulled in {time.monotonic() - began:.1f}s")
