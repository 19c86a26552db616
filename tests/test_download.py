"""The controller's download path against a local HTTP mirror: the pinned helm
is fetched, verified against its sha256, unpacked, and left alone on a re-run;
a wrong checksum fails before anything is installed."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import tarfile
import sys
import threading

import pytest

from conftest import run, state_dir, tool

VERSION = "3.18.4"
FAKE_HELM = f'#!/bin/sh\necho "v{VERSION}"\n'.encode()
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: platform
        tasks_from: helm
"""


def tarball(arch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(f"linux-{arch}/helm")
        info.size, info.mode = len(FAKE_HELM), 0o755
        archive.addfile(info, io.BytesIO(FAKE_HELM))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """An HTTP server laid out like get.helm.sh and like the air-gap binaries mirror."""
    root = tmp_path_factory.mktemp("mirror")
    (root / "helm").mkdir(parents=True)
    sums = {}
    for arch in ("amd64", "arm64"):
        data = tarball(arch)
        name = f"helm-v{VERSION}-linux-{arch}.tar.gz"
        (root / name).write_bytes(data)
        (root / "helm" / name).write_bytes(data)
        sums[arch] = hashlib.sha256(data).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sums
    server.shutdown()


def install(project, url, sums, *extra):
    """The helm tasks of direct delivery, run in a copy of the project on the lab inventory: helm
    goes where operators get it, in the inventory's state directory."""
    playbook = project / "helm-test.yml"
    playbook.write_text(PLAYBOOK)
    bom = {"helm": {"version": VERSION, "url": url, "dir": "", "sha256": sums}}
    return run(
        [
            tool("ansible-playbook"), "-i", "inventories/lab", str(playbook), "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", json.dumps({"bom_binaries": bom}), *extra,
        ],
        cwd=project,
    )


def installed(project):
    return state_dir(project, "lab") / "bin" / "helm"


def test_helm_is_installed_verified_and_left_alone(project, mirror):
    url, sums = mirror
    first = install(project, url, sums)
    assert first.returncode == 0, first.stdout[-3000:]
    assert installed(project).read_bytes() == FAKE_HELM
    second = install(project, url, sums)
    assert second.returncode == 0
    assert "changed=0" in second.stdout, second.stdout[-2000:]


def test_a_wrong_checksum_fails_and_installs_nothing(project, mirror):
    url, sums = mirror
    result = install(project, url, {arch: "0" * 64 for arch in sums})
    assert result.returncode != 0
    assert "checksum" in result.stdout.lower()
    assert not installed(project).exists()


def test_air_gapped_sites_fetch_from_the_binaries_mirror(project, mirror):
    """Upstream is unresolvable here, so success means the file came from <mirror>/helm/ (upstream's layout under the key)."""
    url, sums = mirror
    result = install(project, "https://get.helm.sh.invalid", sums, "-e", "platform_airgap=true", "-e", f"platform_mirror_binaries={url}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert installed(project).read_bytes() == FAKE_HELM
