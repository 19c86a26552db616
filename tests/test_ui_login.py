"""monitoring-ui, the login in front of Prometheus and Alertmanager, run for real:
the nginx configuration the observability role renders, with the htpasswd built
from the generated credentials, served by nginx (extracted from Debian's package
by scripts/setup-test-host.sh) in front of a stand-in upstream. Only the
upstream addresses, the port and the htpasswd path are swapped for local ones."""

from __future__ import annotations

import base64

import pytest
import yaml

from conftest import rendered_credentials, session_render
from nginx_proxy import call, nginx, pod_file, require_nginx, upstream_server

DOMAIN = "ml-platform.internal"


@pytest.fixture(scope="module")
def login(tmp_path_factory):
    require_nginx()
    work = tmp_path_factory.mktemp("login")
    # What the observability layer writes in the lab's tree, from the README's gitops render
    # shared by the session (conftest.py), and the credentials that render generated in its
    # project's state directory.
    _, tree, tree_docs = session_render("lab", tmp_path_factory)
    docs = [d for path, docs in tree_docs.items() if path.startswith("manifests/observability/") for d in docs]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "monitoring-ui")["data"]["default.conf"]
    credentials = yaml.safe_load((rendered_credentials(tree, "lab") / "observability.yml").read_text())["monitoring-ui"]
    # The htpasswd line exactly as the role puts it in the Secret monitoring-ui-htpasswd.
    # (one line, no newline: a '\n' in the folded YAML that builds it would be a literal backslash
    # and n, part of the hash, and no login would ever match)
    pod_file(work / "htpasswd", f"{credentials['user']}:{credentials['password_bcrypt']}")
    with upstream_server() as upstream:
        local = config.replace("/etc/nginx/auth/htpasswd", str(work / "htpasswd"))
        for service, service_port in (("prometheus", 9090), ("alertmanager", 9093)):
            local = local.replace(f"http://kube-prometheus-stack-{service}.monitoring.svc.cluster.local:{service_port}", f"http://127.0.0.1:{upstream}")
        assert "svc.cluster.local" not in local
        with nginx(work, local) as port:
            yield port, credentials


def get(port, host, path="/", user=None, password=None):
    headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()} if user is not None else {}
    status, body, _ = call(port, host, path, headers)
    return status, body


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
