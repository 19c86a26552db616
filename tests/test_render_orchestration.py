"""Layer 7 (orchestration), the GitOps tree as a whole, and the promotion path, as the
gitops mode renders them: Argo Workflows and its pipeline wired to the object store
and MLflow, Argo CD with the installer's login, a tree Argo CD can apply from
root.yaml alone, and promoted InferenceServices that land in the tree."""

from __future__ import annotations

import re

import yaml

from conftest import BOM, ROOT, documents, run, tool
from k8s_schemas import load_tree, validate
from test_render_serving_tracking import first, skipped_secrets

LAYER_ORDER = ["network", "storage", "observability", "gpu", "serving", "tracking", "orchestration", "tenancy", "backup"]


def apps_of(tree_docs):
    return {doc["metadata"]["name"]: doc for _, doc in documents(tree_docs) if doc["kind"] == "Application"}


def test_the_tree_has_one_application_per_release_in_layer_order(rendered):
    inventory, _, tree_docs = rendered
    apps = {name: app for name, app in apps_of(tree_docs).items() if name != "ml-platform"}
    releases = [app["spec"]["source"] for app in apps.values() if "chart" in app["spec"]["source"]]
    # Every pinned chart, but OpenEBS (Longhorn is the block storage here) and, with no gpu
    # hosts, the GPU Operator.
    unused = {"openebs"} | ({"gpu-operator"} if inventory == "lab" else set())
    assert sorted(source["chart"] for source in releases) == sorted(c["chart"] for c in BOM["bom_charts"].values() if c["chart"] not in unused)
    waves = {name: int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for name, app in apps.items()}
    by_layer = {layer: [w for name, w in waves.items() if name.startswith(f"{layer}-")] for layer in LAYER_ORDER}
    present = [layer for layer in LAYER_ORDER if by_layer[layer]]
    assert present == [layer for layer in LAYER_ORDER if layer != "gpu" or inventory != "lab"]
    for earlier, later in zip(present, present[1:]):
        assert max(by_layer[earlier]) < min(by_layer[later]), (earlier, later)


def test_root_yaml_is_all_argo_cd_needs_to_take_over(rendered):
    _, tree, tree_docs = rendered
    project, root = yaml.safe_load_all((tree / "root.yaml").read_text().split("\n", 2)[2])
    assert project["kind"] == "AppProject" and root["kind"] == "Application" and root["spec"]["project"] == project["metadata"]["name"] == "ml-platform"
    assert root["spec"]["source"]["path"] == "apps" and root["spec"]["source"]["directory"] == {"recurse": False}
    # Argo CD refuses an Application whose source its project does not allow: every source is listed.
    allowed = set(project["spec"]["sourceRepos"])
    for name, app in apps_of(tree_docs).items():
        assert app["spec"]["project"] == "ml-platform", name
        assert app["spec"]["source"]["repoURL"] in allowed, (name, app["spec"]["source"]["repoURL"])
    assert validate(project, BOM["bom_kubernetes"]["kubeadm"]) == []


def test_argo_cd_applies_the_tree_with_the_installers_login_and_no_secret_in_git(rendered):
    _, tree, tree_docs = rendered
    values = apps_of(tree_docs)["orchestration-argo-cd"]["spec"]["source"]["helm"]["valuesObject"]
    assert values["fullnameOverride"] == "argocd" and values["configs"]["secret"] == {"createSecret": False}
    assert values["configs"]["params"] == {"server.insecure": True}
    health = values["configs"]["cm"]["resource.customizations.health.argoproj.io_Application"]
    assert "obj.status.health.status" in health and values["configs"]["cm"]["users.anonymous.enabled"] is False
    assert all(values[part]["metrics"]["serviceMonitor"] == {"enabled": True} for part in ("controller", "server", "repoServer"))
    secret = skipped_secrets(tree)[("argocd", "argocd-secret")]
    assert secret == {"admin.password", "admin.passwordMtime", "server.secretkey"}
    route = first(tree_docs, "HTTPRoute", "argocd")["spec"]
    assert route["hostnames"] == ["argocd.ml-platform.internal"] and route["rules"][0]["backendRefs"] == [{"name": "argocd-server", "port": 80}]


def test_workflows_run_in_the_training_namespace_with_least_rbac_and_the_platforms_buckets(rendered):
    _, tree, tree_docs = rendered
    values = apps_of(tree_docs)["orchestration-argo-workflows"]["spec"]["source"]["helm"]["valuesObject"]
    assert values["controller"]["workflowNamespaces"] == ["ml-training"]
    assert values["workflow"] == {"serviceAccount": {"create": True, "name": "argo-workflow"}, "rbac": {"create": True}}
    assert values["controller"]["metricsConfig"] == {"enabled": True} and values["controller"]["serviceMonitor"] == {"enabled": True}
    assert values["crds"] == {"install": True, "full": False, "keep": True}
    s3 = values["artifactRepository"]["s3"]
    assert s3["bucket"] == "workflow-artifacts" and s3["endpoint"] == "minio.minio.svc.cluster.local" and s3["insecure"] is True
    # Argo reads the artifact repository's keys in the workflows' namespace: the argo user's Secret is there.
    keys = skipped_secrets(tree)[("ml-training", s3["accessKeySecret"]["name"])]
    assert {s3["accessKeySecret"]["key"], s3["secretKeySecret"]["key"]} <= keys
    assert values["server"]["authModes"] == ["server"]
    policy = first(tree_docs, "NetworkPolicy", "argo-server-from-login")["spec"]
    assert policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "workflows-ui"}}}], "ports": [{"protocol": "TCP", "port": 2746}]}]
    ui = first(tree_docs, "ConfigMap", "workflows-ui")["data"]["default.conf"]
    assert "server_name workflows.ml-platform.internal;" in ui and "auth_basic_user_file /etc/nginx/auth/htpasswd;" in ui
    assert "proxy_pass http://argo-workflows-server.argo.svc.cluster.local:2746;" in ui


def test_the_training_pipeline_uses_no_gpu_and_logs_to_mlflow(rendered):
    _, _, tree_docs = rendered
    template = first(tree_docs, "WorkflowTemplate", "train-iris")
    assert template["metadata"]["namespace"] == "ml-training" and template["spec"]["serviceAccountName"] == "argo-workflow"
    steps = [t for t in template["spec"]["templates"] if "container" in t]
    for step in steps:
        resources = step["container"]["resources"]
        assert "nvidia.com/gpu" not in {**resources.get("requests", {}), **resources.get("limits", {})}
        assert "affinity" not in step and "nodeSelector" not in step
    container = steps[0]["container"]
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow-client"}}]
    assert container["image"] == f"{BOM['bom_images']['mlflow']['repository']}:{BOM['bom_images']['mlflow']['tag']}"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODEL_BUCKET"] == "kserve-models" and env["MODEL_PREFIX"] == "{{inputs.parameters.model-name}}/{{inputs.parameters.run-name}}"
    outputs = steps[0]["outputs"]
    assert outputs["parameters"][0]["globalName"] == "result" and outputs["artifacts"][0]["name"] == "model"
    # fit is what retraining calls by templateRef: its inputs, and its own volumes (a
    # templateRef does not bring the WorkflowTemplate's spec.volumes).
    fit = next(t for t in template["spec"]["templates"] if t["name"] == "fit")
    assert [p["name"] for p in fit["inputs"]["parameters"]] == ["model-name", "experiment", "C", "data-uri", "serving-uri", "run-name"]
    assert {v["name"] for v in fit["volumes"]} == {"scripts", "tmp"} and "volumes" not in template["spec"]
    passed = template["spec"]["templates"][0]["steps"][0][0]["arguments"]["parameters"]
    assert {p["name"]: p["value"] for p in passed}["run-name"] == "{{workflow.name}}"


def promote(project, tree, *extra):
    """The README's promote.yml command, in gitops mode, on tree, in project (the promote_project
    fixture), forked from the worker's preloaded Ansible process (tests/preloaded.py)."""
    return run([tool("ansible-playbook"), "playbooks/promote.yml", "-i", "inventories/production",
                "-e", "platform_delivery=gitops", "-e", f"platform_gitops_dir={tree}",
                "-e", "platform_gitops_repo_url=https://git.example.internal/platform/tree.git", "-e", "platform_gitops_secrets=skip",
                *extra], cwd=project, preloaded=True)


def test_a_promoted_version_becomes_an_inferenceservice_in_the_tree(promote_project, tmp_path):
    tree = tmp_path / "tree"
    result = promote(promote_project, tree, "-e", "promote_model=iris", "-e", "promote_version=3", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-x7k2p")
    assert result.returncode == 0, result.stdout[-3000:]
    result = promote(promote_project, tree, "-e", "promote_model=fraud", "-e", "promote_version=7", "-e", "promote_storage_uri=s3://kserve-models/fraud/run-1",
                     "-e", "promote_format=xgboost")
    assert result.returncode == 0, result.stdout[-3000:]
    docs = load_tree(tree)
    isvc = docs["manifests/model-iris/resources/resources.yaml"][0]
    assert validate(isvc, BOM["bom_kubernetes"]["kubeadm"]) == []
    assert isvc["metadata"]["annotations"] == {"platform.ml/registered-model": "iris", "platform.ml/model-version": "3"}
    predictor = isvc["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == "s3://kserve-models/iris/train-iris-x7k2p" and predictor["serviceAccountName"] == "kserve-models"
    # Each promoted model is its own Application, so promoting one leaves the others.
    assert docs["manifests/model-fraud/resources/resources.yaml"][0]["spec"]["predictor"]["model"]["modelFormat"] == {"name": "xgboost"}
    app = docs["apps/model-iris-99-manifests.yaml"][0]
    assert app["spec"]["source"]["path"] == "manifests/model-iris/resources" and int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) == 109
    # The next version: only storageUri and the version change, which rolls the predictor out.
    result = promote(promote_project, tree, "-e", "promote_model=iris", "-e", "promote_version=4", "-e", "promote_storage_uri=s3://kserve-models/iris/train-iris-q9w2e")
    assert result.returncode == 0 and re.search(r"localhost\s+: ok=\d+\s+changed=1 ", result.stdout), result.stdout[-2000:]
    newer = load_tree(tree)["manifests/model-iris/resources/resources.yaml"][0]
    assert newer["metadata"]["annotations"]["platform.ml/model-version"] == "4"
    assert {k: v for k, v in newer["spec"].items()} != isvc["spec"]


def test_a_promotion_of_something_that_is_not_a_registered_version_is_refused(promote_project, tmp_path):
    result = promote(promote_project, tmp_path / "tree", "-e", "promote_model=Iris_Model", "-e", "promote_version=latest", "-e", "promote_storage_uri=s3://training-datasets/iris")
    assert result.returncode != 0
    out = re.sub(r"\s+", " ", result.stdout)
    assert "Nothing was promoted" in out and "promote_model must be the registered model name" in out
    assert "promote_version must be the registry version number" in out and "promote_storage_uri must name the version model directory in kserve-models" in out
    assert not (tmp_path / "tree").exists()


def test_the_smoke_check_is_the_last_play_and_runs_only_against_a_live_platform(project):
    plays = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())
    assert plays[-1]["ansible.builtin.import_playbook"] == "smoke.yml"
    # In gitops mode site.yml hands the cluster to Argo CD, so it does not run the smoke check.
    gitops = run([tool("ansible-playbook"), "site.yml", "-i", "inventories/lab", "--tags", "smoke", "-e", "platform_delivery=gitops"], cwd=project)
    assert gitops.returncode == 0 and "Put the probes' script" not in gitops.stdout, gitops.stdout[-2000:]
    # Run on its own, it needs the cluster and says so before anything else.
    # (A fresh checkout has no cluster: there is no kubeconfig in its state directory.)
    alone = run([tool("ansible-playbook"), "playbooks/smoke.yml", "-i", "inventories/lab"], cwd=project)
    assert alone.returncode != 0
    assert "The smoke check runs against the live platform and needs its admin kubeconfig" in re.sub(r"\s+", " ", alone.stdout)
