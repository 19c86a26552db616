"""The Kubernetes and MLflow REST calls of the orchestration layer's pod scripts
(rollout_analysis.py, retrain.py), with only the Python standard library. It is shipped
beside each script in the script's ConfigMap, so `import platform_api` finds it in the
scripts' directory, as Python puts a script's own directory first on its path.

Kubernetes: the pod's ServiceAccount token and CA (SA_DIR, default the mounted one), at
KUBE_API_URL or the in-cluster address. MLflow: MLFLOW_TRACKING_URI and the login of the
mlflow-client Secret (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD)."""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def call(url, method="GET", body=None, headers=None, context=None, content_type="application/json"):
    """The JSON answer of one request (None when empty)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.loads(response.read().decode() or "null")
    except urllib.error.HTTPError as err:
        # The server's own words (a Kubernetes Status message, MLflow's error) in the error.
        try:
            detail = json.loads(err.read().decode() or "{}")
            err.msg = f"{err.msg}: {detail.get('message') or detail}"
        except ValueError:
            pass
        err.msg = f"{method} {url.split('?')[0]}: {err.msg}"
        raise


def resource_path(api_version, kind, namespace, name=None):
    """The REST path of a namespaced kind (its plural the kind in lower case with an s, a
    final y as ies, as for every kind these scripts touch)."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    plural = kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s"
    path = f"{base}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


class Kubernetes:
    def __init__(self):
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        self.url = os.environ.get("KUBE_API_URL") or f"https://{host}:{port}"
        sa_dir = os.environ.get("SA_DIR", SA_DIR)
        with open(os.path.join(sa_dir, "token")) as handle:
            self.headers = {"Authorization": "Bearer " + handle.read().strip()}
        ca = os.path.join(sa_dir, "ca.crt")
        self.context = ssl.create_default_context(cafile=ca) if self.url.startswith("https") else None

    def get(self, path, missing_ok=False):
        """The object at path; None when it does not exist and missing_ok."""
        try:
            return call(self.url + path, headers=self.headers, context=self.context)
        except urllib.error.HTTPError as err:
            if missing_ok and err.code == 404:
                return None
            raise

    def patch(self, path, body):
        return call(self.url + path, "PATCH", body, self.headers, self.context, "application/merge-patch+json")

    def apply(self, document, field_manager):
        """Server-side apply of document as field_manager, taking over conflicting fields
        (force), as the platform's delivery applies."""
        meta = document["metadata"]
        path = resource_path(document["apiVersion"], document["kind"], meta["namespace"], meta["name"])
        query = urllib.parse.urlencode({"fieldManager": field_manager, "force": "true"})
        return call(f"{self.url}{path}?{query}", "PATCH", document, self.headers, self.context, "application/apply-patch+yaml")

    def create(self, document, exists_ok=False):
        """Create document; with exists_ok, an object of the same name already there is no error (None)."""
        path = resource_path(document["apiVersion"], document["kind"], document["metadata"]["namespace"])
        try:
            return call(self.url + path, "POST", document, self.headers, self.context)
        except urllib.error.HTTPError as err:
            if exists_ok and err.code == 409:
                return None
            raise

    def event(self, namespace, involved, reason, message, warning=False, component="rollout-analysis"):
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta = involved["metadata"]
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.{component.split('-')[0]}-", "namespace": namespace},
            "involvedObject": {"apiVersion": involved["apiVersion"], "kind": involved["kind"], "name": meta["name"],
                               "namespace": namespace, "uid": meta.get("uid", "")},
            "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
            "source": {"component": component}, "reportingComponent": component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        return call(f"{self.url}/api/v1/namespaces/{namespace}/events", "POST", body, self.headers, self.context)


class MLflow:
    """MLflow's model registry over its REST API, as the mlflow-client Secret's user."""

    def __init__(self):
        self.url = os.environ["MLFLOW_TRACKING_URI"].rstrip("/") + "/api/2.0/mlflow"
        login = f"{os.environ.get('MLFLOW_TRACKING_USERNAME', '')}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
        self.headers = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}

    def model_tags(self, model):
        """The tags of a registered model, as a dict."""
        answer = call(f"{self.url}/registered-models/get?" + urllib.parse.urlencode({"name": model}), headers=self.headers)
        return {t["key"]: t["value"] for t in answer["registered_model"].get("tags", [])}

    def tag_model(self, model, tags):
        for key, value in tags.items():
            call(f"{self.url}/registered-models/set-tag", "POST", {"name": model, "key": key, "value": str(value)}, self.headers)

    def tag_version(self, model, version, tags):
        for key, value in tags.items():
            call(f"{self.url}/model-versions/set-tag", "POST", {"name": model, "version": str(version), "key": key, "value": str(value)},
                 self.headers)


def tag_version(model, version, tags):
    """Set tags on a model version in MLflow's registry."""
    MLflow().tag_version(model, version, tags)
