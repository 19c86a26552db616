"""inference-gateway, the token check in front of every InferenceService, run for real:
the nginx configuration the serving role renders and the token map built from the
generated tokens, in nginx in front of a stand-in predictor. Only the predictor's
address (a cluster DNS name), the resolver, the port and the token file's path are
swapped for local ones; the Host header nginx sends shows which predictor it chose."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import render_gitops, rendered_credentials
from k8s_schemas import load_tree
from nginx_proxy import call, nginx, pod_file, require_nginx, upstream_server
from serving_layer import token_map

DOMAIN = "ml-platform.internal"
PREDICTOR = "proxy_pass http://$isvc-predictor.$ns.svc.cluster.local;"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    require_nginx()
    work = tmp_path_factory.mktemp("inference")
    tree = work / "tree"
    result = render_gitops("lab", tree, "serving", "-e", '{"serving_inference_clients": ["default", "batch-scoring"]}')
    assert result.returncode == 0, result.stdout[-3000:]
    docs = {(d["kind"], d["metadata"]["name"]): d for docs in load_tree(tree).values() for d in docs}
    config = docs[("ConfigMap", "inference-gateway")]["data"]["default.conf"]
    tokens = yaml.safe_load((rendered_credentials(tree, "lab") / "serving.yml").read_text())
    # The token map exactly as the role puts it in the Secret inference-tokens.
    pod_file(work / "tokens.map", token_map(tokens))
    assert PREDICTOR in config and "resolver kube-dns.kube-system.svc.cluster.local" in config
    with upstream_server() as upstream:
        local = config.replace("/etc/nginx/auth/tokens.map", str(work / "tokens.map")).replace(PREDICTOR, f"proxy_pass http://127.0.0.1:{upstream};")
        local = re.sub(r"resolver [^;]+;", "resolver 127.0.0.1;", local)
        with nginx(work, local) as port:
            yield port, {client: fields["token"] for client, fields in tokens.items()}, docs


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_a_prediction_needs_a_token(gateway):
    port, tokens, _ = gateway
    host = f"iris-ml-serving.{DOMAIN}"
    status, _, headers = call(port, host, "/v1/models/iris:predict", method="POST", body="{}")
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="ml-platform inference"'
    assert call(port, host, "/v1/models/iris:predict", bearer("x" * 48), "POST", "{}")[0] == 401
    # A token is the whole header: a prefix of a good one, or the wrong scheme, is refused.
    assert call(port, host, "/v1/models/iris", bearer(tokens["default"][:-1]))[0] == 401
    assert call(port, host, "/v1/models/iris", {"Authorization": f"Basic {tokens['default']}"})[0] == 401


def test_a_token_reaches_the_predictor_the_host_names_and_stops_there(gateway):
    port, tokens, _ = gateway
    status, body, _ = call(port, f"fraud-detector-v2-ml-serving.{DOMAIN}", "/v1/models/fraud-detector-v2:predict?verbose=1",
                           bearer(tokens["batch-scoring"]), "POST", '{"instances": [[1, 2]]}')
    assert status == 200, body
    seen = yaml.safe_load(body)
    assert seen["host"] == "fraud-detector-v2-predictor.ml-serving.svc.cluster.local"
    assert seen["path"] == "/v1/models/fraud-detector-v2:predict?verbose=1" and seen["method"] == "POST"
    assert seen["body"] == '{"instances": [[1, 2]]}'
    # The token is not passed on; the predictor learns which client called.
    assert seen["authorization"] is None and seen["client"] == "batch-scoring"


def test_hosts_outside_the_serving_namespaces_get_nothing(gateway):
    port, tokens, _ = gateway
    for host in (f"iris-kube-system.{DOMAIN}", f"grafana.{DOMAIN}", "iris-ml-serving.example.com", f"-ml-serving.{DOMAIN}"):
        assert call(port, host, "/v1/models/iris", bearer(tokens["default"]))[0] == 404, host
    assert call(port, "10.0.0.7:8080", "/healthz")[:2] == (200, "ok\n")


def test_kserve_reports_the_url_the_gateway_serves(gateway):
    """KServe's status URL for an InferenceService is <name>-<namespace>.<domain> over https:
    exactly the host the gateway routes, through the platform's HTTPS listener."""
    _, _, docs = gateway
    values = docs[("Application", "serving-kserve")]["spec"]["source"]["helm"]["valuesObject"]["kserve"]["controller"]["gateway"]
    assert values["domain"] == DOMAIN and values["urlScheme"] == "https" and values["disableIngressCreation"] is True
    assert "domainTemplate" not in values  # the chart's default: {{ .Name }}-{{ .Namespace }}.{{ .IngressDomain }}
    route = docs[("HTTPRoute", "inference")]["spec"]
    assert route["hostnames"] == [f"*.{DOMAIN}"] and route["parentRefs"][0]["sectionName"] == "https"
    assert route["rules"] == [{"backendRefs": [{"name": "inference-gateway", "port": 80}]}]


def test_a_model_under_a_canary_is_reached_only_with_a_token_at_the_service_its_route_splits(gateway):
    """During a canary (tests/test_render_lifecycle.py) the model's HTTPRoute is bound to
    <model>-predictor: the gateway still checks the token, then proxies to exactly that
    Service, where Cilium splits the requests by weight. The candidate's own host is
    token-checked too and reaches the candidate alone."""
    port, tokens, _ = gateway
    for isvc in ("iris", "iris-canary"):
        host = f"{isvc}-ml-serving.{DOMAIN}"
        assert call(port, host, "/v1/models/iris:predict", method="POST", body="{}")[0] == 401
        status, body, _ = call(port, host, "/v1/models/iris:predict", bearer(tokens["default"]), "POST", "{}")
        assert status == 200 and yaml.safe_load(body)["host"] == f"{isvc}-predictor.ml-serving.svc.cluster.local"
