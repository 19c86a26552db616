"""playbooks/rotate.yml, the README's command as written, in gitops mode with the Secrets applied
to a real kube-apiserver (tests/apiserver.py; platform_gitops_secrets apply, the default), in a
copy of the project whose lab state directory holds the server's kubeconfig, as layer 1 would
leave it. Three runs on one server:

1. `rotate.yml -e rotate=object-store/mlflow` on a fresh state: the layers it concerns (storage,
   which keeps object-store.yml, and tracking, whose MLflow pods read the key) are delivered: the
   tree written, the Secrets in the API server.
2. The same command again: the credentials file holds a new secret key for mlflow; the API
   server's object-store-mlflow Secret (what MLflow reads) and minio-service-users (what the
   MinIO setup job sets the user's key from) hold it; in the tree the MLflow Deployment's pod
   template has a new digest (Argo CD rolls it) and the setup Job a new name (Argo CD runs it,
   and it sets the user's new key, so the old one stops working: tests/test_minio_setup.py runs
   that script). Every run of the command rotates again.
3. A normal run of those layers (site.yml with their tags) changes nothing: no task reports a
   change, the tree and the Secret stay as they are.

And an unknown name fails before anything changes, listing the valid names. The plan of every
name is unit-tested (tests/unit/test_rotate_plan.py); a login's rotation on the real MLflow
server is in tests/test_mlflow_server.py.
"""

from __future__ import annotations

import base64
import shutil

import pytest
import yaml

from apiserver import api_get
from conftest import digest, project_copy, readme_command, run, state_dir, tool
from k8s_schemas import load_tree
from test_render_serving_tracking import by_kind

pytestmark = pytest.mark.xdist_group("apiserver")

GITOPS = ["-e", "platform_delivery=gitops", "-e", "platform_gitops_repo_url=https://git.example.internal/platform/tree.git"]


def _secret(server, namespace, name):
    data = api_get(server, f"/api/v1/namespaces/{namespace}/secrets/{name}")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _mlflow_key(project):
    return yaml.safe_load((state_dir(project, "lab") / "credentials" / "object-store.yml").read_text())["mlflow"]["secret_key"]


def _readers(tree):
    """(the MLflow pods' digest, the MinIO setup Job's name) in the tree."""
    docs = by_kind(load_tree(tree))
    deployment = docs[("Deployment", "ml-tracking", "mlflow")]
    job = next(name for (kind, namespace, name) in docs if kind == "Job" and name.startswith("minio-setup-"))
    return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/credentials"], job


@pytest.fixture(scope="module")
def rotation(tmp_path_factory, apiserver):
    """The project copy, its tree, and the outcome of each step (see the module's docstring)."""
    base = tmp_path_factory.mktemp("rotate")
    project, tree = project_copy(base / "project"), base / "tree"
    state = state_dir(project, "lab")
    state.mkdir(parents=True)
    shutil.copy(apiserver.kubeconfig, state / "admin.conf")
    layers = ["site.yml", "-i", "inventories/lab", "--tags", "preflight_inventory,storage,tracking", "--skip-tags", "storage_hosts", *GITOPS,
              "-e", f"platform_gitops_dir={tree}"]
    rotate = [*readme_command("playbooks/rotate.yml"), *GITOPS, "-e", f"platform_gitops_dir={tree}"]
    rotate = [a.replace("{inventory}", "inventories/lab") for a in rotate]
    assert "rotate=object-store/mlflow" in rotate, rotate

    def playbook(args):
        result = run([tool("ansible-playbook"), *args], cwd=project, timeout=600)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        return result

    steps = {}
    for step in ("first", "rotated"):
        out = playbook(rotate)
        steps[step] = (_mlflow_key(project), _readers(tree), _secret(apiserver, "ml-tracking", "object-store-mlflow"),
                       _secret(apiserver, "minio", "minio-service-users"), out.stdout)
    files = digest(tree)
    version = api_get(apiserver, "/api/v1/namespaces/ml-tracking/secrets/object-store-mlflow")["metadata"]["resourceVersion"]
    rerun = playbook(layers)
    steps["rerun"] = (files, digest(tree), version,
                      api_get(apiserver, "/api/v1/namespaces/ml-tracking/secrets/object-store-mlflow")["metadata"]["resourceVersion"],
                      rerun.stdout)
    return project, tree, steps


def test_a_rotation_writes_the_new_key_to_the_file_the_secrets_and_the_tree(rotation):
    _, _, steps = rotation
    key, (digest_before, job_before), secret, users, _ = steps["first"]
    assert secret["AWS_SECRET_ACCESS_KEY"] == users["mlflow"] == key and secret["AWS_ACCESS_KEY_ID"] == "mlflow"
    new_key, (new_digest, new_job), new_secret, new_users, output = steps["rotated"]
    assert new_key != key and len(new_key) == 40
    # What MLflow reads, and what the setup job sets the user's key from.
    assert new_secret["AWS_SECRET_ACCESS_KEY"] == new_key and new_users["mlflow"] == new_key
    # MLflow's pods roll, and the setup job runs again (a new name for Argo CD to create).
    assert new_digest != digest_before and new_job != job_before
    # The other users keep their keys.
    assert {u: k for u, k in new_users.items() if u != "mlflow"} == {u: k for u, k in users.items() if u != "mlflow"}
    # Only the layers that keep or read the key ran, and no credential was printed.
    assert "layer storage generates it again, then storage, tracking" in " ".join(output.split())
    assert "TASK [storage : " in output and "TASK [tracking : " in output
    assert not [layer for layer in ("observability", "serving", "orchestration", "tenancy", "backup") if f"TASK [{layer} : " in output]
    assert key not in output and new_key not in output


def test_a_normal_run_after_a_rotation_changes_nothing(rotation):
    _, _, steps = rotation
    files_before, files_after, version_before, version_after, output = steps["rerun"]
    assert files_after == files_before, "the tree changed on a normal run"
    assert version_after == version_before, "the Secret was written again"
    assert "changed=0" in output.split("PLAY RECAP")[-1], output[-3000:]


def test_an_unknown_name_fails_before_anything_changes_and_lists_the_names(rotation):
    project, tree, _ = rotation
    files, credentials = digest(tree), digest(state_dir(project, "lab") / "credentials")
    result = run([tool("ansible-playbook"), "playbooks/rotate.yml", "-i", "inventories/lab", "-e", "rotate=object-store/nobody",
                  *GITOPS, "-e", f"platform_gitops_dir={tree}"], cwd=project)
    said = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "rotate is 'object-store/nobody', which is not a credential of this inventory" in said, said[-3000:]
    for name in ("object-store/mlflow", "object-store/root", "tracking/admin", "observability/grafana", "serving/default",
                 "orchestration/argocd"):
        assert name in said, name
    assert digest(tree) == files and digest(state_dir(project, "lab") / "credentials") == credentials
