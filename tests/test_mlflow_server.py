"""The MLflow server the tracking layer runs, started for real: the start script and
the environment the rendered Deployment gives it (MLflow 3.17.2, the release
bom_images.mlflow pins, from the test virtualenv), and the users job's script from
the rendered ConfigMap. Only what needs a cluster is swapped: a SQLite file for the
PostgreSQL database, a local port, the credentials the Secrets would hold, moto's S3
server for the object store, and this test's directory for /tmp. On it run the
train-iris pipeline step and the smoke check's probes, as layer 7 renders them.

One render, one object store and one started server serve the whole module, whose
tests run on one pytest-xdist worker, so the suite starts MLflow once. The users job's
first run starts as soon as the server answers, as the Job runs beside the Deployment,
while the tests that need no users run; the tests that sign in as training share it.

The users job, the training step and the smoke probes run many times, and importing
MLflow (and scikit-learn) costs each run more than its work: they run in processes
forked from one that has made those imports (tests/preloaded.py), with the same argv,
environment and script. Some runs of each are the commands themselves: the training
test's step and its first buckets and mlflow probes, and a users job's re-run, which
also runs forked and must give the same code and output."""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import importlib.util
import json
import os
import signal
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import preloaded
from conftest import BIN, ROOT, free_port, moto_s3, run, session_render, state_dir, tool
from k8s_schemas import load_tree

DOMAIN = "ml-platform.internal"
ADMIN = ("admin", "admin-password-for-the-test-0123")
TRAINING = ("training", "training-password-for-the-test-01")

pytestmark = pytest.mark.xdist_group("mlflow-server")

# What the forked runs' imports read that their environment sets differently, for nothing the
# programs use (tests/preloaded.py compares every other variable they read):
IGNORED = (
    # HOME (the test moves it): MLflow's import makes default paths under it for model
    # virtualenvs (MLFLOW_ENV_ROOT), the Databricks CLI's and the assistant's configuration
    # and telemetry's installation id (telemetry is off under pytest, PYTEST_CURRENT_TEST);
    # botocore's for the assume-role and SSO credential caches and ~/.aws/models. A boto3
    # client reads ~/.aws/config and credentials when it is made, in the run.
    "HOME",
    # wsgiref.handlers keeps a copy of the environment for the CGI servers it runs: none here.
    "wsgiref.handlers",
)
# The users job's one import, mlflow.server.auth.sqlalchemy_store (MLflow's server with it).
USERS_JOB = preloaded.Preload(imports=("mlflow.server.auth.sqlalchemy_store",), ignored=IGNORED)
# The train-iris step's imports; the smoke probes import boto3 and MLflow's client.
PIPELINE_STEP = preloaded.Preload(
    imports=("boto3", "joblib", "mlflow", "mlflow.exceptions", "sklearn.datasets", "sklearn.linear_model", "sklearn.model_selection"),
    ignored=IGNORED,
)


@pytest.fixture(scope="module")
def object_store():
    """moto's S3 server with the platform's buckets; any keys are accepted."""
    yield from moto_s3(("mlflow-artifacts", "kserve-models", "training-datasets", "workflow-artifacts"))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    # Whether MLflow is installed, without importing it here (seconds of CPU): only the
    # server and the scripts it runs import it.
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow is not installed")
    work = tmp_path_factory.mktemp("mlflow")
    # What the tracking and orchestration layers write in the lab's tree, from the README's
    # gitops render shared by the session (conftest.py).
    _, _, tree_docs = session_render("lab", tmp_path_factory)
    docs = {(d["kind"], d["metadata"]["name"]): d for path, docs in tree_docs.items()
            if path.startswith(("manifests/tracking/", "manifests/orchestration/")) for d in docs}
    return work, docs


def container_env(container, secrets, tmp):
    """The container's environment with its Secret references filled in and /tmp moved."""
    env = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"].replace("/tmp", str(tmp))
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
    return env


@dataclass
class Server:
    port: int
    docs: dict
    work: Path
    database: str
    object_store: tuple
    process: subprocess.Popen  # the start script's, which execs mlflow: the leader of the server's process group
    first_users_run: preloaded.Run


@pytest.fixture(scope="module")
def server(rendered, object_store):
    work, docs = rendered
    deployment = docs[("Deployment", "mlflow")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    port = free_port()
    tmp = work / "pod-tmp"
    tmp.mkdir()
    database = f"sqlite:///{work}/mlflow.db"
    secrets = {
        "mlflow-db-app": {"uri": database},
        "mlflow-server": {"admin-username": ADMIN[0], "admin-password": ADMIN[1], "flask-secret-key": "k" * 40},
        "object-store-mlflow": {"AWS_ACCESS_KEY_ID": "mlflow", "AWS_SECRET_ACCESS_KEY": "s" * 40, "AWS_REGION": "us-east-1",
                                "MLFLOW_S3_ENDPOINT_URL": object_store[0]},
    }
    env = dict(os.environ, **container_env(container, secrets, tmp))
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    script = container["args"][0].replace("/tmp", str(tmp)).replace("--port 5000", f"--port {port}").replace("--host 0.0.0.0", "--host 127.0.0.1")
    log = open(work / "server.log", "w")
    process = subprocess.Popen([*container["command"], script], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    first_users_run = None
    try:
        # A generous bound (a loaded machine starts it slowly) polled often: a failed
        # start ends the wait at once.
        deadline = time.time() + 300
        while time.time() < deadline:
            if process.poll() is not None or "Traceback" in (work / "server.log").read_text():
                pytest.fail(f"mlflow server failed: {(work / 'server.log').read_text()[-3000:]}")
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"mlflow server did not start: {(work / 'server.log').read_text()[-3000:]}")
        first_users_run = start_users_job(docs, work, database, [ADMIN, TRAINING])
        yield Server(port, docs, work, database, object_store, process, first_users_run)
    finally:
        # Also when it failed to start: nothing of it outlives the module.
        if first_users_run is not None and first_users_run.poll() is None:
            first_users_run.kill()
            first_users_run.communicate()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def request(port, method, path, login=None, host=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": host or f"mlflow.{DOMAIN}"}
    if login:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read().decode(errors="replace")


def auth_cache_seconds(docs):
    """How long the rendered server's workers trust a login they have checked (MLflow's
    auth_cache_ttl_seconds, from tracking_mlflow_auth_cache_seconds)."""
    container = docs[("Deployment", "mlflow")]["spec"]["template"]["spec"]["containers"][0]
    return int(next(var["value"] for var in container["env"] if var["name"] == "MLFLOW_AUTH_CACHE_SECONDS"))


def refused_in_time(port, docs, path, login):
    """The status a login that was rotated or removed gets once no worker trusts it any more,
    401, polled for the rendered auth cache's seconds and 3 more: a login still accepted after
    that returns what it got last (and the caller's assertion fails). Within the cache's time a
    worker that trusts a deleted user answers 404 (no such user) to it, never its data."""
    deadline = time.monotonic() + auth_cache_seconds(docs) + 3
    while True:
        status = request(port, "GET", path, login=login)[0]
        if status == 401 or time.monotonic() > deadline:
            return status
        time.sleep(0.25)


def finish(process, timeout=120):
    """The outcome of a process started with its output piped, once it has ended."""
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def users(server):
    """The users job's first run on the new server, declaring admin and training, and the
    training login as it stands: the rotation test rotates it and records the new one."""
    first = finish(server.first_users_run)
    assert first.returncode == 0, first.stdout + first.stderr
    return {"first run": first, "training": TRAINING}


def run_users_job(docs, work, database, users, forked=True):
    return finish(start_users_job(docs, work, database, users, forked))


def start_users_job(docs, work, database, users, forked=True):
    """The mlflow-users job as the rendered ConfigMap and Job give it, started: forked from a
    process that has imported what it imports, or (forked=False) the command itself."""
    job = next(d for (kind, _), d in docs.items() if kind == "Job" and d["metadata"]["name"].startswith("mlflow-users-"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    users_dir = work / "users"
    users_dir.mkdir(exist_ok=True)
    for stale in users_dir.iterdir():  # the Secret's keys, as mounted: exactly the declared users
        stale.unlink()
    for name, password in users:
        (users_dir / name).write_text(password)
    script = work / "mlflow-users.py"
    script.write_text(docs[("ConfigMap", "mlflow-scripts")]["data"]["mlflow-users.py"])
    env = dict(os.environ, **container_env(container, {"mlflow-db-app": {"uri": database}}, work), MLFLOW_USERS_DIR=str(users_dir))
    assert container["command"] == ["python", "/scripts/mlflow-users.py"]
    if forked:
        return preloaded.start([sys.executable, str(script)], env, preload=USERS_JOB)
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_start_script_hands_mlflow_the_database_uri_intact(rendered, tmp_path):
    """configparser would read a '%' of a URL-escaped password as interpolation; the script doubles it."""
    _, docs = rendered
    container = docs[("Deployment", "mlflow")]["spec"]["template"]["spec"]["containers"][0]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mlflow").write_text(
        f"#!{sys.executable}\nimport configparser, os\nc = configparser.ConfigParser()\nc.read(os.environ['MLFLOW_AUTH_CONFIG_PATH'])\n"
        "print(c['mlflow']['database_uri']); print(c['mlflow']['default_permission']); print(c['mlflow']['auth_cache_ttl_seconds'])\n"
    )
    (fake / "mlflow").chmod(0o755)
    uri = "postgresql://mlflow:p%40ss%2Fw0rd@mlflow-db-rw.ml-tracking:5432/mlflow"
    env = dict(os.environ, MLFLOW_BACKEND_STORE_URI=uri, MLFLOW_DEFAULT_PERMISSION="READ", MLFLOW_AUTH_CACHE_SECONDS=str(auth_cache_seconds(docs)),
               MLFLOW_AUTH_CONFIG_PATH=str(tmp_path / "auth" / "basic_auth.ini"), PATH=f"{fake}{os.pathsep}{os.environ['PATH']}")
    script = container["args"][0].replace("/tmp", str(tmp_path))
    result = subprocess.run([*container["command"], script], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [uri, "READ", "5"]
    # Only the server can read what it wrote.
    assert (tmp_path / "auth" / "basic_auth.ini").stat().st_mode & 0o077 == 0


def test_the_server_runs_its_workers_and_no_job_runner(server):
    """What runs in the pod: the server, uvicorn and the workers the start script asks for;
    no job runner and no huey consumers (MLflow's GenAI job execution is off)."""
    args = server.docs[("Deployment", "mlflow")]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    workers = int(args.split("--workers ", 1)[1].split()[0])
    commands = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getpgid(int(proc.name)) == server.process.pid:
                commands.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # a process that ended meanwhile
            continue
    assert not [c for c in commands if "huey" in c or "_job_runner" in c], commands
    assert sum("multiprocessing.spawn" in c for c in commands) == workers, commands


def test_mlflow_answers_only_behind_its_login(server):
    port = server.port
    assert request(port, "GET", "/health")[0] == 200
    assert request(port, "GET", "/api/2.0/mlflow/experiments/search?max_results=1")[0] == 401
    assert request(port, "GET", "/api/2.0/mlflow/experiments/search?max_results=1", login=(ADMIN[0], "wrong-password-000"))[0] == 401
    assert request(port, "GET", "/api/2.0/mlflow/experiments/search?max_results=1", login=ADMIN)[0] == 200


def test_mlflow_answers_the_gateway_service_and_pod_names_only(server):
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    admitted = (f"mlflow.{DOMAIN}", "mlflow.ml-tracking.svc.cluster.local:5000", "mlflow:5000", "10.42.7.9:5000")
    hosts = (*admitted, "attacker.example.com")
    # At once: each signed-in request costs the server its password hashing, on any core.
    with ThreadPoolExecutor(len(hosts)) as pool:
        statuses = dict(zip(hosts, pool.map(lambda host: request(server.port, "GET", path, login=ADMIN, host=host)[0], hosts)))
    for host in admitted:
        assert statuses[host] == 200, host
    assert statuses["attacker.example.com"] == 403


def test_the_users_job_keeps_the_declared_users_and_rotates_passwords(server, users):
    port, docs, work, database = server.port, server.docs, server.work, server.database
    result = users["first run"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "training: created" in result.stdout and "admin: unchanged" in result.stdout
    assert TRAINING[1] not in result.stdout + result.stderr
    status, body = request(port, "POST", "/api/2.0/mlflow/experiments/create", login=TRAINING, body={"name": "iris"})
    assert status == 200, body
    experiment = json.loads(body)["experiment_id"]
    status, body = request(port, "POST", "/api/2.0/mlflow/runs/create", login=TRAINING, body={"experiment_id": experiment})
    assert status == 200, body
    # Re-run: nothing changes, the same through the command and forked; a rotated password takes
    # effect, and the old one stops working once no worker trusts it any more
    # (tracking_mlflow_auth_cache_seconds).
    command = run_users_job(docs, work, database, [ADMIN, TRAINING], forked=False)
    forked = run_users_job(docs, work, database, [ADMIN, TRAINING])
    assert (forked.returncode, forked.stdout, forked.stderr) == (command.returncode, command.stdout, command.stderr)
    assert command.returncode == 0 and command.stdout == "admin: unchanged\ntraining: unchanged\n", command.stdout + command.stderr
    rotated = (TRAINING[0], "a-rotated-training-password-0001")
    rotation = run_users_job(docs, work, database, [ADMIN, rotated])
    if rotation.returncode == 0:
        users["training"] = rotated  # the later tests sign in as training with it
    assert "training: updated" in rotation.stdout
    assert refused_in_time(port, docs, "/api/2.0/mlflow/experiments/search?max_results=1", TRAINING) == 401
    assert request(port, "GET", "/api/2.0/mlflow/experiments/search?max_results=1", login=rotated)[0] == 200
    # A team's login goes with the team; a user an admin made by hand stays.
    team = ("team-vision", "a-team-vision-password-000000001")
    hand = ("alice", "a-password-alice-chose-00000001")
    added = run_users_job(docs, work, database, [ADMIN, rotated, team])
    assert "team-vision: created" in added.stdout, added.stdout + added.stderr
    status, body = request(port, "POST", "/api/2.0/mlflow/users/create", login=ADMIN, body={"username": hand[0], "password": hand[1]})
    assert status == 200, body
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert request(port, "GET", search, login=team)[0] == 200 and request(port, "GET", search, login=hand)[0] == 200
    removed = run_users_job(docs, work, database, [ADMIN, rotated])
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "team-vision: deleted (no longer declared)" in removed.stdout and "alice" not in removed.stdout, removed.stdout
    assert refused_in_time(port, docs, search, team) == 401
    assert request(port, "GET", search, login=hand)[0] == 200


def test_rotate_yml_gives_a_login_a_new_password_and_the_old_one_stops_working(server, users, tmp_path_factory):
    """The operator's one command for a login, playbooks/rotate.yml -e rotate=tracking/training, in
    a copy of the project and tree of the session's lab render (gitops, Secrets left to the
    operator; the session's own is read by other tests and never changed): the credentials file
    holds a new password, the tree a new mlflow-users Job (Argo CD runs it), and that Job, given the
    file's new password as the mlflow-users Secret would, makes the server refuse the old one."""
    port, work, database = server.port, server.work, server.database
    _, session_tree, _ = session_render("lab", tmp_path_factory)
    tree = work / "tree"
    project = tree.parent / f"{tree.name}-project"
    shutil.copytree(session_tree, tree)
    shutil.copytree(session_tree.parent / f"{session_tree.name}-project", project, symlinks=True)
    credentials = state_dir(project, "lab") / "credentials" / "tracking.yml"
    old = (TRAINING[0], yaml.safe_load(credentials.read_text())["training"]["password"])
    job = next(name for kind, name in server.docs if kind == "Job" and name.startswith("mlflow-users-"))
    # The platform as delivered: the server holds the file's password.
    assert run_users_job(server.docs, work, database, [ADMIN, old]).returncode == 0
    search = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert request(port, "GET", search, login=old)[0] == 200
    rotate = run([tool("ansible-playbook"), "playbooks/rotate.yml", "-i", "inventories/lab", "-e", "rotate=tracking/training",
                  "-e", "platform_delivery=gitops", "-e", f"platform_gitops_dir={tree}",
                  "-e", "platform_gitops_repo_url=https://git.example.internal/platform/tree.git", "-e", "platform_gitops_secrets=skip"],
                 cwd=project)
    assert rotate.returncode == 0, rotate.stdout[-4000:]
    assert old[1] not in rotate.stdout + rotate.stderr
    new = (TRAINING[0], yaml.safe_load(credentials.read_text())["training"]["password"])
    assert new[1] != old[1] and len(new[1]) == 40
    docs = {(d["kind"], d["metadata"]["name"]): d for docs in load_tree(tree).values() for d in docs}
    assert not [name for kind, name in docs if kind == "Job" and name == job], "the users job keeps its name: Argo CD would not run it"
    rotation = run_users_job(docs, work, database, [ADMIN, new])
    assert rotation.returncode == 0 and "training: updated" in rotation.stdout, rotation.stdout + rotation.stderr
    users["training"] = new  # the later tests sign in as training with it
    assert refused_in_time(port, docs, search, old) == 401
    assert request(port, "GET", search, login=new)[0] == 200


def test_prometheus_reads_the_metrics_through_the_metrics_container_only(server, users):
    """MLflow shows /metrics to admins only; the pod's metrics container reads it with the
    pod's own admin login and serves nothing else."""
    port, docs, work = server.port, server.docs, server.work
    assert request(port, "GET", "/metrics", login=users["training"])[0] == 403
    spec = docs[("Deployment", "mlflow")]["spec"]["template"]["spec"]
    sidecar = next(c for c in spec["containers"] if c["name"] == "metrics")
    metrics_port = free_port()
    sidecar_env = container_env(sidecar, {"mlflow-server": {"admin-username": ADMIN[0], "admin-password": ADMIN[1]}}, work)
    assert sidecar_env["MLFLOW_METRICS_UPSTREAM"] == "http://127.0.0.1:5000/metrics"
    sidecar_env.update(MLFLOW_METRICS_UPSTREAM=f"http://127.0.0.1:{port}/metrics", MLFLOW_METRICS_PORT=str(metrics_port))
    script = work / "mlflow-metrics.py"
    script.write_text(docs[("ConfigMap", "mlflow-scripts")]["data"]["mlflow-metrics.py"])
    assert sidecar["command"] == ["python", "/scripts/mlflow-metrics.py"]
    process = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ, **sidecar_env))
    try:
        deadline = time.time() + 30
        while True:
            try:
                status, body = request(metrics_port, "GET", "/metrics")
                break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        assert status == 200 and "mlflow_http_request" in body, body[:500]
        assert request(metrics_port, "GET", "/api/2.0/mlflow/experiments/search")[0] == 404
    finally:
        process.terminate()
        process.wait(timeout=10)
    monitor = docs[("ServiceMonitor", "mlflow")]["spec"]["endpoints"]
    assert monitor == [{"port": "metrics", "path": "/metrics"}]
    ports = {p["name"]: p["port"] for p in docs[("Service", "mlflow")]["spec"]["ports"]}
    assert ports == {"http": 5000, "metrics": 9102}


def test_the_server_keeps_no_state_in_its_pod(rendered):
    _, docs = rendered
    spec = docs[("Deployment", "mlflow")]["spec"]["template"]["spec"]
    # Only memory-backed scratch space: runs, users and models are in PostgreSQL, artifacts in the bucket.
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
                               {"name": "scripts", "configMap": {"name": "mlflow-scripts"}}]
    args = spec["containers"][0]["args"][0]
    assert "--serve-artifacts --artifacts-destination s3://mlflow-artifacts/" in args
    assert "--app-name basic-auth" in args


def s3_env(endpoint, prefix=""):
    return {f"{prefix}AWS_ACCESS_KEY_ID": "training", f"{prefix}AWS_SECRET_ACCESS_KEY": "t" * 40,
            f"{prefix}AWS_ENDPOINT_URL": endpoint, f"{prefix}AWS_REGION": "us-east-1"}


def step_env(docs, name, parameters, workflow, tmp, inputs=None):
    """(template spec, container, environment) of the one container step of a rendered
    WorkflowTemplate as Argo would run it: {{workflow.parameters.*}} from the template's
    arguments under parameters, {{workflow.name}} = workflow, {{inputs.parameters.*}} from
    the step's input defaults under what the entry step passes under inputs; /tmp is tmp."""
    template = docs[("WorkflowTemplate", name)]["spec"]
    step = next(t for t in template["templates"] if "container" in t)
    values = {"{{workflow.parameters.%s}}" % p["name"]: p.get("value") for p in template["arguments"]["parameters"]}
    values |= {"{{workflow.parameters.%s}}" % k: v for k, v in parameters.items()} | {"{{workflow.name}}": workflow}

    def fill(value):
        for marker, actual in values.items():
            value = value.replace(marker, str(actual))
        return value
    given = {p["name"]: p.get("value") for p in step.get("inputs", {}).get("parameters", [])}
    entry = next(t for t in template["templates"] if t["name"] == template["entrypoint"])
    for call in (c for group in entry.get("steps", []) for c in group if c["template"] == step["name"]):
        given |= {p["name"]: fill(p["value"]) for p in call.get("arguments", {}).get("parameters", [])}
    values |= {"{{inputs.parameters.%s}}" % k: v for k, v in (given | (inputs or {})).items()}
    env = {var["name"]: fill(var["value"]).replace("/tmp", str(tmp)) for var in step["container"]["env"]}
    assert step["container"]["envFrom"] == [{"secretRef": {"name": "mlflow-client"}}]
    return template, step["container"], env


def smoke_probe(mode, env, forked=True):
    """The smoke check's probe (roles/smoke/files/smoke_checks.py) in mode, started (forked, or
    the command itself); finish() waits for it."""
    smoke = ROOT / "roles" / "smoke" / "files" / "smoke_checks.py"
    if forked:
        return preloaded.start([sys.executable, str(smoke), mode], env, preload=PIPELINE_STEP)
    return subprocess.Popen([sys.executable, str(smoke), mode], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_training_step_logs_registers_and_serves_and_the_smoke_checks_see_it(server, users):
    """The train-iris WorkflowTemplate's one step, with the environment the template and
    the mlflow-client Secret give it, then the smoke probes on what it left. The bucket
    probes need nothing the step leaves, so they run while it trains."""
    port, docs, work, (endpoint, s3) = server.port, server.docs, server.work, server.object_store
    login = users["training"]
    template, step, env = step_env(docs, "train-iris", {}, "train-iris-x7k2p", work / "step-tmp")
    assert step["envFrom"] == [{"secretRef": {"name": "mlflow-client"}}] and "nvidia.com/gpu" not in str(step["resources"])
    client = {"MLFLOW_TRACKING_URI": f"http://localhost:{port}", "MLFLOW_TRACKING_USERNAME": login[0], "MLFLOW_TRACKING_PASSWORD": login[1]}
    script = work / "train_iris.py"
    script.write_text(docs[("ConfigMap", "train-iris")]["data"]["train_iris.py"])
    base = dict(os.environ, **client, **s3_env(endpoint), MLFLOW_S3_ENDPOINT_URL=endpoint)
    reach = dict(base, TRAINING_BUCKETS="training-datasets,mlflow-artifacts,kserve-models", ARGO_BUCKETS="workflow-artifacts", **s3_env(endpoint, "ARGO_"))
    # The step, the first buckets probe and the first mlflow probe are the commands themselves.
    probes = [smoke_probe("buckets", reach, forked=False), smoke_probe("buckets", dict(reach, ARGO_BUCKETS="no-such-bucket"))]
    result = subprocess.run([sys.executable, str(script)], env=dict(base, **env), capture_output=True, text=True, timeout=300, check=False)
    buckets, broken = (finish(probe) for probe in probes)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert login[1] not in result.stdout + result.stderr
    outcome = json.loads((work / "step-tmp" / "outputs" / "result.json").read_text())
    assert outcome["serving_uri"] == "s3://kserve-models/iris/train-iris-x7k2p" and outcome["model_version"] == "1"
    assert outcome["accuracy"] > 0.9 and (work / "step-tmp" / "outputs" / "model.joblib").is_file()
    assert s3.head_object(Bucket="kserve-models", Key="iris/train-iris-x7k2p/model.joblib")["ContentLength"] > 0

    probe = dict(reach, RUN_ID=outcome["run_id"], MODEL_NAME="iris", VERSION=outcome["model_version"], SERVING_URI=outcome["serving_uri"],
                 ARTIFACT_BUCKET="mlflow-artifacts")
    checks = finish(smoke_probe("mlflow", probe, forked=False))
    assert checks.returncode == 0 and "FAIL" not in checks.stdout, checks.stdout + checks.stderr[-2000:]
    assert checks.stdout.count("PASS") == 7
    assert buckets.returncode == 0 and buckets.stdout.count("PASS") == 4, buckets.stdout + buckets.stderr[-2000:]
    # A missing bucket is a named failure.
    assert broken.returncode == 1 and "FAIL bucket no-such-bucket answers over the S3 API" in broken.stdout
    cleanup = finish(smoke_probe("cleanup", probe))
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr[-2000:]
    assert "Contents" not in s3.list_objects_v2(Bucket="kserve-models", Prefix="iris/train-iris-x7k2p/")
    again = finish(smoke_probe("mlflow", probe))
    assert again.returncode == 1 and "Model Version (name=iris, version=1) not found" in again.stderr, again.stdout + again.stderr[-2000:]


class FakeCluster(http.server.ThreadingHTTPServer):
    """Prometheus's query API and the few Kubernetes API calls the rollout-analysis step
    makes (its model's HTTPRoute, merge patches of it, Events), on 127.0.0.1. What
    Prometheus answers is the candidate the test makes; every patch and Event is kept."""

    def __init__(self, route, measured):
        super().__init__(("127.0.0.1", 0), FakeClusterHandler)
        self.route, self.measured, self.weights, self.events, self.tokens = route, measured, [], [], set()


class FakeClusterHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/api/v1/query?"):
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
            assert 'namespace="ml-serving"' in query and "iris-rollout-canary" in query, query
            value = self.server.measured["latency_p95" if "histogram_quantile" in query else "errors" if 'status=~"5.."' in query else "requests"]
            return self.answer({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]}})
        self.server.tokens.add(self.headers["Authorization"])
        assert self.path == "/apis/gateway.networking.k8s.io/v1/namespaces/ml-serving/httproutes/iris-rollout", self.path
        return self.answer(self.server.route)

    def do_PATCH(self):
        self.server.tokens.add(self.headers["Authorization"])
        assert self.headers["Content-Type"] == "application/merge-patch+json"
        patch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.route["spec"].update(patch["spec"])
        self.server.weights.append([ref["weight"] for ref in self.server.route["spec"]["rules"][0]["backendRefs"]])
        return self.answer(self.server.route)

    def do_POST(self):
        self.server.tokens.add(self.headers["Authorization"])
        assert self.path == "/api/v1/namespaces/ml-serving/events", self.path
        event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.events.append(event)
        return self.answer(event, 201)


def test_the_rollout_analysis_step_steps_a_good_canary_up_rolls_a_bad_one_back_and_records_both(server, users, tmp_path):
    """The rollout-analysis WorkflowTemplate's step, with the environment the template and
    the mlflow-client Secret give it, against a fake Prometheus and Kubernetes API and the
    real MLflow server: a good candidate is stepped through the configured shares to 100%,
    a failing one goes back to 0%, and each decision is a tag of its version and an Event.
    Only the cluster is swapped (the API's address, the ServiceAccount token) and the wait
    of a window per share, which is zero here."""
    port, docs, login = server.port, server.docs, users["training"]
    template = docs[("WorkflowTemplate", "rollout-analysis")]["spec"]
    assert template["serviceAccountName"] == "rollout-analysis"
    step = template["templates"][0]["container"]
    assert step["envFrom"] == [{"secretRef": {"name": "mlflow-client"}}] and step["command"] == ["python", "/scripts/rollout_analysis.py"]
    parameters = {p["name"]: p.get("value") for p in template["arguments"]["parameters"]} | {"model": "iris-rollout"}
    assert parameters["steps"] == "25,50" and parameters["window"] == "10m"
    values = {"{{workflow.parameters.%s}}" % k: v for k, v in parameters.items()} | {"{{workflow.name}}": "rollout-iris-rollout-2"}
    env = {}
    for var in step["env"]:
        value = var["value"]
        for marker, actual in values.items():
            value = value.replace(marker, actual)
        env[var["name"]] = value
    # This render is gitops, where the tree holds the weights: the step only records. Direct
    # delivery renders ACT "true", the only difference, which the good candidate runs with.
    assert env["ACT"] == "false" and env["MODE"] == "raw" and env["PROMETHEUS_URL"].endswith(".monitoring.svc.cluster.local:9090")
    script = tmp_path / "rollout_analysis.py"
    for name, text in docs[("ConfigMap", "rollout-analysis")]["data"].items():  # with platform_api.py beside it, as in the pod
        (tmp_path / name).write_text(text)
    (tmp_path / "sa").mkdir()
    (tmp_path / "sa" / "token").write_text("service-account-token")
    # The model and its versions (1 serves, 2 to 4 are candidates), registered by the training user as train-iris does.
    for path, body in (("registered-models/create", {"name": "iris-rollout"}),
                       ("model-versions/create", {"name": "iris-rollout", "source": "s3://kserve-models/iris-rollout/a"}),
                       ("model-versions/create", {"name": "iris-rollout", "source": "s3://kserve-models/iris-rollout/b"}),
                       ("model-versions/create", {"name": "iris-rollout", "source": "s3://kserve-models/iris-rollout/c"}),
                       ("model-versions/create", {"name": "iris-rollout", "source": "s3://kserve-models/iris-rollout/d"})):
        status, text = request(port, "POST", f"/api/2.0/mlflow/{path}", login, body=body)
        assert status == 200, text

    def analyse(candidate, measured, act):
        route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                 "metadata": {"name": "iris-rollout", "namespace": "ml-serving", "uid": "u-1",
                              "annotations": {"platform.ml/candidate-version": candidate, "platform.ml/stable-version": "1"}},
                 "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "iris-rollout-predictor", "port": 80}],
                          "rules": [{"backendRefs": [{"name": "iris-rollout-predictor", "port": 80, "weight": 90},
                                                     {"name": "iris-rollout-canary-predictor", "port": 80, "weight": 10}]}]}}
        fake = FakeCluster(route, measured)
        thread = threading.Thread(target=fake.serve_forever, daemon=True)
        thread.start()
        try:
            address = f"http://127.0.0.1:{fake.server_address[1]}"
            run_env = dict(os.environ) | env | {
                "ACT": act, "PROMETHEUS_URL": address, "KUBE_API_URL": address, "SA_DIR": str(tmp_path / "sa"), "WAIT_SECONDS": "0",
                "RESULT_FILE": str(tmp_path / "decision.json"), "MLFLOW_TRACKING_URI": f"http://localhost:{port}",
                "MLFLOW_TRACKING_USERNAME": login[0], "MLFLOW_TRACKING_PASSWORD": login[1]}
            result = subprocess.run([sys.executable, str(script)], env=run_env, capture_output=True, text=True, timeout=120, check=False)
        finally:
            fake.shutdown()
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        assert fake.tokens == {"Bearer service-account-token"}
        status, text = request(port, "GET", f"/api/2.0/mlflow/model-versions/get?name=iris-rollout&version={candidate}", login)
        tags = {t["key"]: t["value"] for t in json.loads(text)["model_version"].get("tags", [])}
        return fake, tags, json.loads((tmp_path / "decision.json").read_text())

    good, tags, decision = analyse("2", {"requests": 800, "errors": 1, "latency_p95": 0.05}, act="true")
    assert good.weights == [[75, 25], [50, 50], [0, 100]]
    assert decision == {"decision": "promote", "reason": tags["rollout_reason"], "version": "2"}
    assert tags["rollout_decision"] == "promote" and tags["rollout_workflow"] == "rollout-iris-rollout-2"
    assert [e["reason"] for e in good.events] == ["RolloutStepped", "RolloutStepped", "RolloutPromoted"]
    assert good.events[-1]["involvedObject"] == {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "name": "iris-rollout",
                                                 "namespace": "ml-serving", "uid": "u-1"}
    assert good.events[-1]["message"].startswith("Version 2 of iris-rollout promoted to 100%") and good.events[-1]["type"] == "Normal"

    bad, tags, decision = analyse("3", {"requests": 800, "errors": 80, "latency_p95": 0.05}, act="true")
    assert bad.weights == [[100, 0]] and decision["decision"] == "rollback"
    assert tags == {"rollout_decision": "rollback", "rollout_reason": "error rate 10.00% is above the allowed 1.00%",
                    "rollout_workflow": "rollout-iris-rollout-2"}
    assert [(e["reason"], e["type"]) for e in bad.events] == [("RolloutRolledBack", "Warning")]
    # gitops, as rendered: one window judged, the decision recorded, no weight touched.
    recorded, tags, decision = analyse("4", {"requests": 800, "errors": 0, "latency_p95": 2.5}, act=env["ACT"])
    assert recorded.weights == [] and decision["decision"] == "rollback" and tags["rollout_reason"] == "latency p95 2.500s is above the allowed 0.5s"
    assert recorded.events[0]["message"].endswith("(gitops: apply it with playbooks/promote.yml; the tree holds the weights)")


def test_the_drift_step_compares_logged_requests_with_the_training_reference_and_reports_them(server, users, tmp_path):
    """The loop of drift monitoring on real parts: the train-iris step (rendered) trains and
    registers iris-drift with its training reference; the inference-logger (the serving
    layer's script) is sent CloudEvents as KServe's agent sends them, of requests far from
    the training data, and writes them to the inference-logs bucket (moto); the model-drift
    WorkflowTemplate's step (rendered, with the environment the template and the
    mlflow-client Secret give it) reads them back, finds the drift, logs its report to MLflow,
    tags the version and posts the scores to the inference-logger, whose /metrics shows them."""
    import numpy as np

    from test_inference_logger import metrics, post_event, start, stop

    port, docs, (endpoint, s3), login = server.port, server.docs, server.object_store, users["training"]
    client = {"MLFLOW_TRACKING_URI": f"http://localhost:{port}", "MLFLOW_TRACKING_USERNAME": login[0], "MLFLOW_TRACKING_PASSWORD": login[1]}
    base = dict(os.environ, **client, **s3_env(endpoint), MLFLOW_S3_ENDPOINT_URL=endpoint)

    _, _, train_env = step_env(docs, "train-iris", {"model-name": "iris-drift"}, "train-iris-d1", tmp_path)
    train = tmp_path / "train_iris.py"
    train.write_text(docs[("ConfigMap", "train-iris")]["data"]["train_iris.py"])
    trained = preloaded.run([sys.executable, str(train)], dict(base, **train_env), timeout=300, preload=PIPELINE_STEP)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    version = json.loads(trained.stdout.strip().splitlines()[-1])["model_version"]

    template, container, env = step_env(docs, "model-drift", {"model": "iris-drift", "version": version}, "drift-iris-drift-1", tmp_path)
    assert template["serviceAccountName"] == "model-drift" and container["command"] == ["python", "/scripts/model_drift.py"]
    assert next(t for t in template["templates"] if t["name"] == "judge")["metadata"]["labels"] == {"app.kubernetes.io/name": "model-drift"}
    assert env["LOG_BUCKET"] == "inference-logs" and env["LOGGER_URL"] == "http://inference-logger.ml-serving.svc.cluster.local"
    assert env["WINDOW_SECONDS"] == "86400" and env["MIN_ROWS"] == "100" and env["DRIFT_SHARE"] == "0.5"
    s3.create_bucket(Bucket="inference-logs")
    logger, logger_url = start(endpoint, "inference-logs", FLUSH_SECONDS="0.2")
    try:
        # 40 requests of 5 rows each, every measurement far above iris's, answered mostly with one class.
        rng = np.random.default_rng(19)
        for i in range(40):
            rows = rng.normal([7.5, 4.2, 6.5, 2.4], [0.3, 0.2, 0.3, 0.1], size=(5, 4)).round(2).tolist()
            assert post_event(logger_url, "iris-drift", f"r{i}", "request", {"instances": rows}) == 200
            assert post_event(logger_url, "iris-drift", f"r{i}", "response", {"predictions": [2, 2, 2, 2, int(i % 3)]}) == 200
        deadline = time.time() + 20
        while "inference_logger_pending_events 0" not in metrics(logger_url) and time.time() < deadline:
            time.sleep(0.1)
        script = tmp_path / "model_drift.py"
        script.write_text(docs[("ConfigMap", "model-drift")]["data"]["model_drift.py"])
        result = subprocess.run([sys.executable, str(script)], env={**base, **env, "LOGGER_URL": logger_url}, capture_output=True, text=True,
                                timeout=300, check=False)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert login[1] not in result.stdout + result.stderr
        text = metrics(logger_url)
    finally:
        stop(logger)
    outcome = json.loads((tmp_path / "result.json").read_text())
    assert outcome["status"] == "judged" and outcome["rows"] == 200 and outcome["data_drift"] is True and outcome["drift_share"] == 1.0
    assert outcome["prediction"]["drifted"] is True
    # What the drift job's next step reads: the inputs drifted, so it starts the model's retraining.
    assert (tmp_path / "drifted").read_text() == "true"
    assert f'model_data_drift{{model="iris-drift",version="{version}"}} 1.0' in text
    assert f'model_drift_feature_drifted{{model="iris-drift",version="{version}",feature="petal length (cm)"}} 1.0' in text
    # The report is an artifact of a run in the experiment model-drift, and the version says so.
    status, body = request(port, "GET", f"/api/2.0/mlflow/model-versions/get?name=iris-drift&version={version}", login)
    tags = {t["key"]: t["value"] for t in json.loads(body)["model_version"].get("tags", [])}
    assert tags["drift_status"] == "judged" and tags["drift_detected"] == "true" and tags["drift_run"] == outcome["run_id"]
    status, body = request(port, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={outcome['run_id']}&path=drift", login)
    assert status == 200 and {f["path"] for f in json.loads(body)["files"]} == {"drift/report.json", "drift/report.html"}, body
    # The training run kept the reference the step compared with: 120 training rows and their predictions.
    status, body = request(port, "GET", f"/api/2.0/mlflow/model-versions/get?name=iris-drift&version={version}", login)
    run_id = json.loads(body)["model_version"]["run_id"]
    status, body = request(port, "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=reference", login)
    assert [f["path"] for f in json.loads(body)["files"]] == ["reference/reference.json"]
    assert outcome["reference_rows"] == 120

    # Retraining on current data (docs/lifecycle.md, "Automated retraining"): the same fit
    # step, as retrain-<model> calls it, trains on a CSV in the training-datasets bucket (the
    # iris rows moved where the requests above went) and scores the serving version's model
    # on the same held-out rows; the result carries what the retraining's decide step reads.
    import io

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    iris = load_iris()
    shifted = iris.data + np.array([2.0, 1.0, 2.5, 0.8])
    frame = "\n".join([",".join(iris.feature_names + ["target"])] + [",".join(map(str, list(r) + [t])) for r, t in zip(shifted.round(3), iris.target)])
    s3.put_object(Bucket="training-datasets", Key="iris-drift/current.csv", Body=frame.encode())
    serving = json.loads(trained.stdout.strip().splitlines()[-1])["serving_uri"]
    retrain_tmp = tmp_path / "retrain"
    _, _, retrain_env = step_env(docs, "train-iris", {}, "retrain-iris-drift-x1", retrain_tmp,
                                 inputs={"model-name": "iris-drift", "data-uri": "s3://training-datasets/iris-drift/current.csv",
                                         "serving-uri": serving, "run-name": "retrain-iris-drift-x1"})
    retrained = preloaded.run([sys.executable, str(train)], dict(base, **retrain_env), timeout=300, preload=PIPELINE_STEP)
    assert retrained.returncode == 0, retrained.stdout[-2000:] + retrained.stderr[-3000:]
    result = json.loads((retrain_tmp / "outputs" / "result.json").read_text())
    assert result["metric"] == "accuracy" and result["model_version"] == str(int(version) + 1)
    assert result["serving_uri"] == "s3://kserve-models/iris-drift/retrain-iris-drift-x1"
    # The serving model's score is its accuracy on the new model's held-out rows of the current data.
    old = joblib.load(io.BytesIO(s3.get_object(Bucket="kserve-models", Key=serving.split("/", 3)[3] + "/model.joblib")["Body"].read()))
    _, x_test, _, y_test = train_test_split(np.array(shifted.round(3)), iris.target, test_size=0.2, random_state=42, stratify=iris.target)
    assert result["serving_score"] == float(old.score(x_test, y_test)) and result["serving_score"] < 0.5 < 0.9 < result["score"]
    status, body = request(port, "GET", f"/api/2.0/mlflow/runs/get?run_id={result['run_id']}", login)
    run = json.loads(body)["run"]["data"]
    assert {m["key"]: m["value"] for m in run["metrics"]} == {"accuracy": result["score"], "serving_accuracy": result["serving_score"]}
    assert {p["key"]: p["value"] for p in run["params"]}["data_uri"] == "s3://training-datasets/iris-drift/current.csv"
    # Its training reference is the current data: what the next drift job compares requests with.
    key = f"{json.loads(body)['run']['info']['experiment_id']}/{result['run_id']}/artifacts/reference/reference.json"
    reference = json.loads(s3.get_object(Bucket="mlflow-artifacts", Key=key)["Body"].read())
    assert len(reference["rows"]) == 120 and min(row[2] for row in reference["rows"]) >= 3.5

    # The retraining's guard and decide steps (retrain-<model>, rendered in the model's layer:
    # here their script from the orchestration layer's ConfigMap) on the real registry: the
    # guard records the start on the registered model and refuses a second within the minimum
    # interval; decide judges the new version better than the serving one and tags it.
    scripts = tmp_path / "retrain-scripts"
    scripts.mkdir()
    for name, text in docs[("ConfigMap", "retrain")]["data"].items():
        (scripts / name).write_text(text)
    (tmp_path / "sa-retrain").mkdir()
    (tmp_path / "sa-retrain" / "token").write_text("retrain-token")
    kube = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoInferenceServices)
    threading.Thread(target=kube.serve_forever, daemon=True).start()
    step_base = dict(base, MODEL="iris-drift", WORKFLOW_NAME="retrain-iris-drift-x1", TRIGGER="drift", KUBE_API_URL=f"http://127.0.0.1:{kube.server_address[1]}",
                     SA_DIR=str(tmp_path / "sa-retrain"))

    def step(command, **env):
        out = tmp_path / f"out-{command}"
        done = subprocess.run([sys.executable, str(scripts / "retrain.py"), command], env=dict(step_base, OUTPUT_DIR=str(out), **env),
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert login[1] not in done.stdout + done.stderr
        return {f.name: f.read_text() for f in out.iterdir()}
    try:
        guard = dict(NAMESPACE="ml-serving", MODE="raw", MIN_INTERVAL_SECONDS="86400")
        assert step("guard", **guard)["proceed"] == "true"
        second = step("guard", **guard)
        assert second["proceed"] == "false" and "less than the minimum interval of 86400 s" in second["reason"]
    finally:
        kube.shutdown()
    status, body = request(port, "GET", "/api/2.0/mlflow/registered-models/get?name=iris-drift", login)
    model_tags = {t["key"]: t["value"] for t in json.loads(body)["registered_model"]["tags"]}
    assert model_tags["retrain_workflow"] == "retrain-iris-drift-x1" and model_tags["retrain_trigger"] == "drift"
    assert abs(int(model_tags["retrain_started_at"]) - time.time()) < 300 and model_tags["retrain_skipped_reason"] == second["reason"]
    decided = step("decide", RESULT=json.dumps(result), MIN_IMPROVEMENT="0.01", DELIVERY="direct", APPROVAL="false")
    assert decided["decision"] == "canary" and decided["version"] == result["model_version"] and decided["storage-uri"] == result["serving_uri"]
    status, body = request(port, "GET", f"/api/2.0/mlflow/model-versions/get?name=iris-drift&version={result['model_version']}", login)
    tags = {t["key"]: t["value"] for t in json.loads(body)["model_version"]["tags"]}
    assert tags["retrain_decision"] == "canary" and tags["retrain_reason"] == decided["reason"] and tags["retrain_trigger"] == "drift"
    assert tags["retrain_workflow"] == "retrain-iris-drift-x1"


class NoInferenceServices(http.server.BaseHTTPRequestHandler):
    """The Kubernetes API as the retraining's guard asks it, with no rollout in progress: no
    InferenceService <model>-canary (404), for the ServiceAccount's token only."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        assert self.headers["Authorization"] == "Bearer retrain-token"
        assert self.path == "/apis/serving.kserve.io/v1beta1/namespaces/ml-serving/inferenceservices/iris-drift-canary", self.path
        self.send_response(404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
