"""No secret in a pod spec or in verbose output. Every credential a pod of the platform needs
reaches it from a Secret (env valueFrom.secretKeyRef, envFrom secretRef), never as a literal in
its spec: whoever may read Jobs or pods could read it there, and k8s_info prints it with -v.

Checked on the gitops tree of every sample inventory, and on what the smoke check applies. The
smoke check runs only against a live platform (direct mode), so here its real playbook runs, at
-vvv, on a copy of the project with a stand-in for kubernetes.core (tests/kube_standin.py) that
keeps what is applied and answers as the controllers would: the inference token it uses must be
in one Secret only, and in no Job and no line of output. The kind scenario (molecule/kind-platform)
runs the same role on a real cluster, where the probe must get a prediction with that token."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import shutil
import time
from types import SimpleNamespace

import pytest
import yaml

from conftest import ROOT, documents, project_copy, run, state_dir, tool
from test_no_log import all_tasks
from test_render_serving_tracking import telemetry_problems

# Env names that say the value is a credential, word by word (TOKEN, not TOKENREF); a name whose
# last word is FILE, PATH, DIR or NAME says where one is, not what it is (SECRET_NAME).
CREDENTIAL_WORDS = {"PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
CREDENTIAL_PAIRS = {("API", "KEY"), ("ACCESS", "KEY"), ("PRIVATE", "KEY")}
LOCATION_WORDS = {"FILE", "PATH", "DIR", "NAME"}


def credential_name(var):
    words = [w for w in re.split(r"[^A-Z0-9]+", var.upper()) if w]
    return bool(words) and words[-1] not in LOCATION_WORDS and (
        bool(CREDENTIAL_WORDS & set(words)) or bool(CREDENTIAL_PAIRS & set(zip(words, words[1:]))))


# A literal bearer token (not "$TOKEN"), and a password in a URL (not "$(VAR)", which the
# kubelet fills in from the container's other env vars).
LITERAL_BEARER = re.compile(r"Bearer\s+(?![$])[A-Za-z0-9._~+/=-]{8,}", re.I)
LITERAL_USERINFO = re.compile(r"://[^/\s:@]+:(?![$])[^@\s/]+@")


def containers(node, where=""):
    """(where, container) for every container a document describes, whatever its kind: anything
    with an image and an env, command or args (pods, workload templates, Argo templates, custom
    resources such as MinIO's Tenant, chart values)."""
    if isinstance(node, dict):
        if isinstance(node.get("image"), (str, dict)) and any(k in node for k in ("env", "command", "args")):
            yield where, node
        for field, value in node.items():
            yield from containers(value, f"{where}.{field}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from containers(value, f"{where}[{index}]")


def literal_credentials(doc, name=None):
    """Where a document (or a task, named name) puts a credential in a pod spec as a literal: a
    credential-named env var with a value (or from anything but a Secret), a bearer token or a
    URL's password in a value, command or args."""
    meta = doc.get("metadata") or {}
    name = name or f"{doc.get('kind')} {meta.get('namespace', '')}/{meta.get('name', '')}"
    problems = []
    for where, container in containers(doc):
        env = container.get("env") or []
        # A templated env ("{{ ... }}") is judged where it is rendered (the tree, the smoke run).
        entries = [{"name": k, "value": v} for k, v in env.items()] if isinstance(env, dict) else env if isinstance(env, list) else []
        strings = [str(part) for key in ("command", "args") for part in (container.get(key) or [])]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            var = str(entry.get("name", ""))
            if credential_name(var):
                source = entry.get("valueFrom")
                if "value" in entry or not (isinstance(source, dict) and "secretKeyRef" in source):
                    problems.append(f"{name} {where}: env {var} is not from a Secret (use valueFrom.secretKeyRef)")
            if isinstance(entry.get("value"), str):
                strings.append(entry["value"])
        for text in strings:
            if LITERAL_BEARER.search(text) or LITERAL_USERINFO.search(text):
                problems.append(f"{name} {where}: a literal bearer token or URL password in {text[:40]!r}...")
    return problems


def job(env=(), command=("/bin/sh", "-c", "true")):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "probe", "namespace": "ml-training"},
            "spec": {"template": {"spec": {"containers": [{"name": "probe", "image": "curl:8", "command": list(command), "env": list(env)}]}}}}


def test_the_check_finds_each_way_a_credential_can_sit_in_a_pod_spec():
    token = "q" * 48
    bad = [
        job([{"name": "TOKEN", "value": token}]),
        job([{"name": "AWS_SECRET_ACCESS_KEY", "value": "x" * 40}]),
        job([{"name": "GF_PASSWORD", "valueFrom": {"configMapKeyRef": {"name": "grafana", "key": "password"}}}]),
        job([{"name": "MINIO_ROOT_PASSWORD"}]),
        job(command=["/bin/sh", "-c", f"curl -H 'Authorization: Bearer {token}' https://x"]),
        job([{"name": "MC_HOST_platform", "value": "http://admin:hunter2hunter2@minio.minio.svc"}]),
        {"kind": "Tenant", "metadata": {"name": "platform"}, "spec": {"image": "minio", "env": [{"name": "MINIO_API_TOKEN", "value": token}]}},
        {"kind": "Application", "metadata": {"name": "x"}, "spec": {"source": {"helm": {"valuesObject": {"image": {"repository": "x"}, "env": {"API_KEY": token}}}}}},
    ]
    for doc in bad:
        assert literal_credentials(doc), doc
    good = job([
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "smoke-inference-token", "key": "token"}}},
        {"name": "MC_HOST_platform", "value": "http://$(MINIO_ROOT_USER):$(MINIO_ROOT_PASSWORD)@minio.minio.svc"},
        {"name": "MLFLOW_AUTH_CONFIG_PATH", "value": "/etc/mlflow/auth.ini"},
        {"name": "METALLB_ML_SECRET_NAME", "value": "memberlist"},
        {"name": "ARGOCD_APPLICATIONSET_CONTROLLER_TOKENREF_STRICT_MODE", "value": "false"},
        {"name": "HOME", "value": "/tmp"},
    ], command=["/bin/sh", "-c", 'curl -H "Authorization: Bearer $TOKEN" https://x'])
    assert literal_credentials(good) == []


def test_no_task_writes_a_literal_credential_into_a_pod_spec():
    """The pod specs written in tasks (the smoke probes' and the restore's Jobs, in include vars or
    definitions), where the smoke token once was a literal env value."""
    tasks = list(all_tasks())
    assert sum(1 for _, task in tasks for _ in containers(task)) >= 6
    assert [problem for path, task in tasks for problem in literal_credentials(task, f"{path}: {task.get('name')}")] == []
    path, predict = next((path, task) for path, task in tasks if task.get("name") == "Ask it for predictions through the gateway, without and with a token")
    literal = copy.deepcopy(predict)
    literal["vars"]["__smoke_probe"]["env"] = [e if e["name"] != "TOKEN" else {"name": "TOKEN", "value": "{{ __smoke_token }}"}
                                               for e in literal["vars"]["__smoke_probe"]["env"]]
    assert literal_credentials(literal, path) == [f"{path} .vars.__smoke_probe: env TOKEN is not from a Secret (use valueFrom.secretKeyRef)"]


def test_no_pod_spec_in_the_tree_holds_a_literal_credential(rendered):
    _, _, tree_docs = rendered
    docs = [doc for _, doc in documents(tree_docs)]
    # The check sees the tree's pods: the MinIO setup Job, MLflow, the gateways, train-iris...
    assert sum(1 for doc in docs for _ in containers(doc)) >= 10
    assert [problem for doc in docs for problem in literal_credentials(doc)] == []


def test_no_pod_spec_a_chart_renders_holds_a_literal_credential(rendered):
    """What direct mode installs with Helm and waits on (k8s_info of its Deployments, Jobs...):
    every release rendered through its pinned chart with the tree's values."""
    inventory, _, tree_docs = rendered
    try:
        from charts import chart_objects
    except ImportError as error:
        pytest.fail(f"tests/charts.py (chart_objects(inventory, tree_docs)) is not there: {error}")
    docs = [doc for docs in chart_objects(inventory, tree_docs).values() for doc in docs if doc]
    assert sum(1 for doc in docs for _ in containers(doc)) >= 50
    assert [problem for doc in docs for problem in literal_credentials(doc)] == []


STANDIN_MODULES = ("k8s", "k8s_info", "k8s_log")
TRAINED = {"run_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "model_version": "1", "serving_uri": "s3://kserve-models/smoke-iris/1"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke check's playbook, run once at -vvv in a copy of the project against the
    kubernetes.core stand-in, with a planted inference token in the lab inventory's state."""
    tmp = tmp_path_factory.mktemp("smoke")
    project = project_copy(tmp / "project")
    state = state_dir(project, "lab")
    (state / "credentials").mkdir(parents=True, mode=0o700)
    token = secrets.token_urlsafe(36)
    (state / "credentials" / "serving.yml").write_text(yaml.safe_dump({"default": {"token": token}}))
    (state / "credentials" / "serving.yml").chmod(0o600)
    (state / "admin.conf").write_text("# The kubernetes.core stand-in reads no kubeconfig.\n")
    (state / "admin.conf").chmod(0o600)
    modules = tmp / "collections" / "ansible_collections" / "kubernetes" / "core" / "plugins" / "modules"
    modules.mkdir(parents=True)
    for module in STANDIN_MODULES:
        shutil.copy(ROOT / "tests" / "kube_standin.py", modules / f"{module}.py")
    standin = tmp / "standin"
    standin.mkdir()
    (standin / "config.json").write_text(json.dumps({
        "exist": {"Gateway": {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                              "status": {"addresses": [{"type": "IPAddress", "value": "192.0.2.10"}]}}},
        "status": {
            "Job": {"succeeded": 1},
            "Workflow": {"phase": "Succeeded", "nodes": {"smoke-train": {"phase": "Succeeded", "displayName": "smoke-train"}},
                         "outputs": {"parameters": [{"name": "result", "value": json.dumps(TRAINED)}]}},
        },
    }))
    started = time.monotonic()
    result = run([tool("ansible-playbook"), "playbooks/smoke.yml", "-i", "inventories/lab", "-vvv"], cwd=project,
                 # The stand-in's kubernetes.core first, then the project itself (the collection mlplatform.baremetal).
                 env={"ANSIBLE_COLLECTIONS_PATH": f"{tmp / 'collections'}:{project / 'collections'}", "KUBE_STANDIN": str(standin)})
    print(f"smoke check at -vvv against the stand-in: {time.monotonic() - started:.1f}s")
    calls = [json.loads(line) for line in (standin / "calls.jsonl").read_text().splitlines()]
    applied = []
    for call in calls:
        if call["module"] == "k8s" and call["params"]["state"] == "present":
            definition = call["params"]["definition"]
            applied += definition if isinstance(definition, list) else [definition]
    return SimpleNamespace(result=result, token=token, calls=calls, applied=applied,
                           store=json.loads((standin / "store.json").read_text()))


def test_the_smoke_check_runs_to_its_end_on_the_stand_in(smoke):
    """What the other smoke tests look at is the whole run: every probe started and reported."""
    assert smoke.result.returncode == 0, smoke.result.stdout[-3000:] + smoke.result.stderr[-2000:]
    jobs = [doc["metadata"]["name"] for doc in smoke.applied if doc["kind"] == "Job"]
    expected = yaml.safe_load((ROOT / "roles" / "smoke" / "vars" / "main.yml").read_text())["__smoke_jobs"]
    assert jobs == expected
    for name in expected:
        assert f"PASS {name} (stand-in)" in smoke.result.stdout
    # Its probes of the MLflow image report no usage outside the site.
    assert telemetry_problems(smoke.applied) == []


def test_the_smoke_token_reaches_the_probe_only_through_its_secret(smoke):
    assert smoke.result.returncode == 0
    secrets_applied = [doc for doc in smoke.applied if doc["kind"] == "Secret"]
    assert len(secrets_applied) == 1
    secret = secrets_applied[0]
    assert secret["stringData"] == {"token": smoke.token}
    predict = next(doc for doc in smoke.applied if doc["kind"] == "Job" and doc["metadata"]["name"] == "smoke-predict")
    assert predict["metadata"]["namespace"] == secret["metadata"]["namespace"]
    env = {e["name"]: e for e in predict["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TOKEN"] == {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "token"}}}
    encoded = base64.b64encode(smoke.token.encode()).decode()
    for doc in smoke.applied:
        if doc is not secret:
            assert smoke.token not in json.dumps(doc) and encoded not in json.dumps(doc), doc["metadata"]
        assert literal_credentials(doc) == []
    # The probe that used to carry the token as a literal is what the check refuses.
    literal = json.loads(json.dumps(predict))
    literal["spec"]["template"]["spec"]["containers"][0]["env"] = [e if e["name"] != "TOKEN" else {"name": "TOKEN", "value": smoke.token}
                                                                   for e in literal["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert literal_credentials(literal) == [f"Job {predict['metadata']['namespace']}/smoke-predict .spec.template.spec.containers[0]: "
                                            "env TOKEN is not from a Secret (use valueFrom.secretKeyRef)"]


def test_the_smoke_token_is_never_printed_even_at_vvv(smoke):
    out = smoke.result.stdout + smoke.result.stderr
    encoded = base64.b64encode(smoke.token.encode()).decode()
    assert smoke.token not in out and encoded not in out
    # The tasks that hold it ran (hidden).
    assert "TASK [smoke : Give the prediction probe the first inference client's token, as a Secret]" in out
    assert "TASK [smoke : Delete the prediction probe's token Secret]" in out


def test_the_smoke_check_leaves_no_secret_behind(smoke):
    assert smoke.result.returncode == 0
    secret = next(doc for doc in smoke.applied if doc["kind"] == "Secret")["metadata"]
    deletions = [c["params"] for c in smoke.calls if c["module"] == "k8s" and c["params"]["state"] == "absent" and c["params"]["kind"] == "Secret"]
    # Before the run (what an earlier one left) and after it.
    assert [(d["namespace"], d["name"]) for d in deletions] == [(secret["namespace"], secret["name"])] * 2
    assert [k for k in smoke.store if k.startswith(("Secret/", "Job/"))] == []
