"""Run a login proxy the platform renders (an nginx configuration from a ConfigMap) in a
real nginx, in front of a stand-in upstream that answers with what it received. nginx
comes from Debian's package (scripts/setup-test-host.sh extracts it). Only upstream
addresses, the port and the credential files' paths are swapped for local ones."""

from __future__ import annotations

import contextlib
import grp
import http.client
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
import yaml

NGINX = shutil.which("nginx") or "/usr/local/bin/nginx"


def require_nginx():
    if not os.access(NGINX, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{NGINX} is missing: scripts/setup-test-host.sh extracts it")
        pytest.skip(f"{NGINX} is missing (run scripts/setup-test-host.sh)")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Upstream(http.server.BaseHTTPRequestHandler):
    """Answers with what it received, so the test sees what nginx forwarded."""

    def _echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = yaml.safe_dump(
            {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "host": self.headers.get("Host"),
                "client": self.headers.get("X-Inference-Client"),
                "body": self.rfile.read(length).decode() if length else None,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _echo  # noqa: N815 (http.server's naming)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def upstream_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


def pod_file(path, text):
    """A file as the pod gets it from a Secret: readable by nginx's group only (mode 0440, fsGroup)."""
    path.write_text(text)
    os.chown(path, 0, grp.getgrnam("nogroup").gr_gid)
    os.chmod(path, 0o440)


@contextlib.contextmanager
def nginx(work, config):
    """Serve config (default.conf, already made local) on a free port; yields the port."""
    port = free_port()
    for parent in (work, *work.parents):
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    (work / "default.conf").write_text(config.replace("listen 8080", f"listen 127.0.0.1:{port}"))
    temp = " ".join(f"{kind}_temp_path {work / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # Run as root here, nginx's workers switch to this user, as they run as uid 101 in the pod.
    (work / "nginx.conf").write_text(
        f"user nobody nogroup;\npid {work / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{ access_log off; {temp} include {work / 'default.conf'}; }}\n"
    )
    args = [NGINX, "-e", "stderr", "-p", str(work), "-c", str(work / "nginx.conf")]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    server = subprocess.Popen([*args, "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)
        print(server.stderr.read())


def call(port, host, path="/", headers=None, method="GET", body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body, headers={"Host": host, **(headers or {})})
    response = connection.getresponse()
    return response.status, response.read().decode(), dict(response.getheaders())
