"""monitoring-ui, the login in front of Prometheus and Alertmanager, run for real:
the nginx configuration the observability role renders, with the htpasswd built
from the generated credentials, served by nginx (extracted from Debian's package
by scripts/setup-test-host.sh) in front of a stand-in upstream. Only the
upstream addresses, the port and the htpasswd path are swapped for local ones."""

from __future__ import annotations

import base64
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

from conftest import render_gitops
from k8s_schemas import load_tree

NGINX = shutil.which("nginx") or "/usr/local/bin/nginx"
DOMAIN = "ml-platform.internal"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Upstream(http.server.BaseHTTPRequestHandler):
    """Answers with what it received, so the test sees what nginx forwarded."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = yaml.safe_dump({"path": self.path, "authorization": self.headers.get("Authorization"), "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def login(tmp_path_factory):
    if not os.access(NGINX, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"{NGINX} is missing: scripts/setup-test-host.sh extracts it")
        pytest.skip(f"{NGINX} is missing (run scripts/setup-test-host.sh)")
    work = tmp_path_factory.mktemp("login")
    tree = work / "tree"
    result = render_gitops("lab", tree, "observability")
    assert result.returncode == 0, result.stdout[-3000:]
    docs = [d for docs in load_tree(tree).values() for d in docs]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "monitoring-ui")["data"]["default.conf"]
    credentials = yaml.safe_load((work / "tree-credentials" / "observability.yml").read_text())["monitoring-ui"]

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    # The htpasswd line exactly as the role puts it in the Secret monitoring-ui-htpasswd.
    (work / "htpasswd").write_text(f"{credentials['user']}:{credentials['password_bcrypt']}\n")
    # What the pod gets: the Secret's file readable by nginx's group only (mode 0440, fsGroup).
    os.chown(work / "htpasswd", 0, grp.getgrnam("nogroup").gr_gid)
    os.chmod(work / "htpasswd", 0o440)
    for parent in (work, *work.parents):
        os.chmod(parent, os.stat(parent).st_mode | 0o005)
    local = config.replace("/etc/nginx/auth/htpasswd", str(work / "htpasswd")).replace("listen 8080", f"listen 127.0.0.1:{port}")
    for service, service_port in (("prometheus", 9090), ("alertmanager", 9093)):
        local = local.replace(f"http://kube-prometheus-stack-{service}.monitoring.svc.cluster.local:{service_port}", f"http://127.0.0.1:{upstream.server_port}")
    assert "svc.cluster.local" not in local
    (work / "default.conf").write_text(local)
    temp = " ".join(f"{kind}_temp_path {work / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # Run as root here, nginx's workers switch to this user, as they run as uid 101 in the pod.
    (work / "nginx.conf").write_text(
        f"user nobody nogroup;\npid {work / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{ access_log off; {temp} include {work / 'default.conf'}; }}\n"
    )
    check = subprocess.run([NGINX, "-e", "stderr", "-p", str(work), "-c", str(work / "nginx.conf"), "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    server = subprocess.Popen([NGINX, "-e", "stderr", "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, credentials
    server.terminate()
    server.wait(timeout=10)
    print(server.stderr.read())
    upstream.shutdown()


def get(port, host, path="/", user=None, password=None):
    headers = {"Host": host}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, response.read().decode()


@pytest.mark.parametrize("ui", ["prometheus", "alertmanager"])
def test_the_ui_asks_for_the_login_and_refuses_a_wrong_one(login, ui):
    port, credentials = login
    assert get(port, f"{ui}.{DOMAIN}")[0] == 401
    assert get(port, f"{ui}.{DOMAIN}", user=credentials["user"], password="not-the-password")[0] == 401
    assert get(port, f"{ui}.{DOMAIN}", user="someone", password=credentials["password"])[0] == 401


@pytest.mark.parametrize("ui", ["prometheus", "alertmanager"])
def test_the_right_login_reaches_the_ui_and_stops_at_the_proxy(login, ui):
    port, credentials = login
    status, body = get(port, f"{ui}.{DOMAIN}", "/api/v1/targets", credentials["user"], credentials["password"])
    assert status == 200, body
    seen = yaml.safe_load(body)
    assert seen["path"] == "/api/v1/targets" and seen["host"] == f"{ui}.{DOMAIN}"
    # The password is not passed on to Prometheus or Alertmanager.
    assert seen["authorization"] is None


def test_other_hosts_get_nothing_and_the_probe_needs_no_login(login):
    port, credentials = login
    assert get(port, f"grafana.{DOMAIN}", user=credentials["user"], password=credentials["password"])[0] == 404
    assert get(port, "10.0.0.7:8080", "/healthz") == (200, "ok\n")
