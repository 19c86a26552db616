"""Shared helpers: paths, and running the project's own ansible commands."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
sys.path.insert(0, str(ROOT / "plugins" / "action"))
# The collection as Ansible imports it (ansible_collections.mlplatform.baremetal...), for the
# modules that import its module_utils.
sys.path.insert(0, str(ROOT / "collections"))

BOM = yaml.safe_load((ROOT / "group_vars" / "all" / "bom.yml").read_text())
KUBERNETES = BOM["bom_kubernetes"]["kubeadm"]
INVENTORIES = ["lab", "production", "airgap"]


def tool(name: str) -> str:
    """A command from the virtualenv running the tests (the one `make test` builds)."""
    candidate = BIN / name
    return str(candidate) if candidate.exists() else name


def run(args, cwd=ROOT, timeout=600, env=None, preloaded=False):
    """args run in cwd, their output captured. preloaded: args is an ansible-playbook command of
    the project's virtualenv, run in a process forked from one that has imported Ansible
    (tests/preloaded.py), for a test that runs the same command on many inputs."""
    full_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", PY_COLORS="0")
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env or {})
    if preloaded:
        import preloaded as forked

        return forked.run(args, full_env, Path(cwd), timeout, forked.ANSIBLE_PLAYBOOK)
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env, check=False)


# What a copy of the project leaves out: the virtualenv, Git, caches (ansible-lint's .ansible/,
# which holds an installed copy of the project as a collection) and every inventory's state
# (.state/), so a copy starts as a fresh clone does.
_NOT_COPIED = shutil.ignore_patterns(".venv", ".git", ".ansible", ".cache", ".state", "__pycache__", ".pytest_cache", "*.egg-info")


def project_copy(dest: Path) -> Path:
    """A copy of the project at dest, as an operator's checkout: the README's commands run in it
    as written (-i inventories/<name>) and keep their state in its .state/, isolated from every
    other test. Links (the airgap inventory's) stay links."""
    shutil.copytree(ROOT, dest, symlinks=True, ignore=_NOT_COPIED)
    return dest


def state_dir(project: Path, inventory: str) -> Path:
    """Where the installer keeps an inventory's state in a project (platform_state_dir's default)."""
    return project / ".state" / inventory


def readme_commands():
    """Every ansible-playbook command in the README's sh blocks, as argv lists (continuation
    lines joined), in the order the README gives them."""
    import re
    import shlex

    commands = []
    for block in re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(".venv/bin/ansible-playbook "):
                commands.append(shlex.split(line))
    return commands


def readme_command(playbook, *, tags=None):
    """The README's command that runs playbook (with exactly these --tags, when given), with the
    inventory it names replaced by {inventory} and the tree's directory by {tree}."""
    for argv in readme_commands():
        if argv[1] != playbook:
            continue
        given = argv[argv.index("--tags") + 1] if "--tags" in argv else None
        if tags is not None and given != tags and not (tags == "*" and given):
            continue
        argv = [{"/path/to/checkout": "{tree}"}.get(a, "{inventory}" if a.startswith("inventories/") else a) for a in argv]
        argv = [a.replace("platform_gitops_dir=/path/to/checkout", "platform_gitops_dir={tree}") for a in argv]
        return argv[1:]
    raise AssertionError(f"README.md has no `.venv/bin/ansible-playbook {playbook}` command{f' with --tags {tags}' if tags else ''}")


def gitops_render_command():
    """The README's gitops render (site.yml with platform_delivery=gitops), as a template."""
    for argv in readme_commands():
        if argv[1] == "site.yml" and "platform_delivery=gitops" in argv:
            return readme_command("site.yml", tags=argv[argv.index("--tags") + 1])
    raise AssertionError("README.md has no gitops render command (site.yml -e platform_delivery=gitops)")


def operator_run(project, template, inventory, tree=None, *extra):
    """One README command, as written, in project: ansible-playbook from the project's
    virtualenv, the sample inventory named, nothing else overridden."""
    argv = [a.format(inventory=f"inventories/{inventory}", tree=tree) for a in template]
    return run([tool("ansible-playbook"), *argv, *extra], cwd=project)


def render_gitops(inventory, tree, tags, *extra, project=None):
    """Render layers of an inventory in gitops mode into tree, touching no host and no cluster,
    with the README's command in a copy of the project (tree's name + "-project" beside it unless
    given), so its generated credentials are in that copy's state directory."""
    project = project or _project_of(tree)
    return run(
        [
            tool("ansible-playbook"), "site.yml", "-i", f"inventories/{inventory}", "--tags", tags,
            "-e", "platform_delivery=gitops", "-e", f"platform_gitops_dir={tree}",
            "-e", "platform_gitops_repo_url=https://git.example.internal/platform/tree.git", "-e", "platform_gitops_secrets=skip",
            *extra,
        ],
        cwd=project,
    )


def _project_of(tree):
    """The project copy render_gitops renders tree in: made on the first render, kept for the next."""
    project = tree.parent / f"{tree.name}-project"
    return project if project.is_dir() else project_copy(project)


def rendered_credentials(tree, inventory):
    """The credentials directory of the project copy tree is (or will be) rendered in: a test may
    put credentials an operator supplies there before rendering."""
    return state_dir(_project_of(tree), inventory) / "credentials"


def render(inventory, tree, *extra, project=None):
    """The README's gitops render of every layer, as written, touching no host (the storage and
    GPU host plays are skipped), in a copy of the project beside tree (see render_gitops)."""
    return operator_run(project or _project_of(tree), gitops_render_command(), inventory, tree, *extra)


def digest(tree):
    return {str(p.relative_to(tree)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tree.rglob("*")) if p.is_file()}


def documents(tree_docs):
    return [(path, doc) for path, docs in tree_docs.items() for doc in docs]


# A manifest an earlier render wrote and the platform no longer declares.
STALE_FILE = "manifests/network/resources/old-pool.yaml"


# Each worker's parsed trees of the session renders, by inventory, and a lock per inventory for
# its threads (renders_ahead renders in one of them).
_SESSION_TREES: dict = {}
_SESSION_LOCKS = {inventory: threading.Lock() for inventory in INVENTORIES}


def session_render(inventory, tmp_path_factory):
    """(inventory, tree, {path: [documents]}) of a sample inventory rendered once for the whole
    run with the README's command in a copy of the project (<tree>-project beside it); the
    playbook's output is kept beside the tree as <tree>.out. The tree starts as a checkout
    holding a file the platform no longer declares (STALE_FILE), which the render must remove.
    The `rendered` fixture gives it for every sample inventory; a module fixture that needs one
    inventory's tree calls this. Read it, never change it: every test reads the same tree."""
    from k8s_schemas import CRD_DIR, load_tree

    if not CRD_DIR.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{CRD_DIR} is missing: CI runs with ../shared beside the clone")
        pytest.skip(f"{CRD_DIR} is missing")
    from filelock import FileLock

    # With pytest-xdist the workers share one render of each inventory: the first to need it
    # renders under a lock in the run's common temporary directory, the others read it.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    tree = shared / f"tree-{inventory}"
    with _SESSION_LOCKS[inventory]:
        if inventory not in _SESSION_TREES:
            with FileLock(str(shared / f"tree-{inventory}.lock")):
                output = tree.parent / f"{tree.name}.out"
                if not output.exists():
                    stale = tree / STALE_FILE
                    stale.parent.mkdir(parents=True, exist_ok=True)
                    stale.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\n")
                    result = render(inventory, tree)
                    assert result.returncode == 0, result.stdout + result.stderr
                    output.write_text(result.stdout)
            _SESSION_TREES[inventory] = load_tree(tree)
    return inventory, tree, _SESSION_TREES[inventory]


def pytest_collection_modifyitems(items):
    """The tests marked long first (the molecule scenarios, the longest, before the others), the
    rest in their order. pytest-xdist hands out the groups of tests (xdist_group) first, largest
    first, then single tests in this order: a long one left to the end would keep one worker busy
    while the other sits idle."""
    items.sort(key=lambda item: (item.get_closest_marker("long") is None, item.get_closest_marker("molecule") is None))


@pytest.fixture(scope="session", autouse=True)
def renders_ahead(request, tmp_path_factory):
    """The session renders the run's tests take through `rendered`, begun as the run starts, in a
    thread of each worker, each worker with a different inventory first. A render keeps about one
    core busy: made only when a test first asked for it, the other worker sat waiting on it, three
    times over at the start of a run (about 40 s of a core idle). A render that fails here fails
    again, with its output, in the first test that asks for it."""
    wanted = list(dict.fromkeys(
        item.callspec.params["rendered"] for item in request.session.items
        if "rendered" in getattr(getattr(item, "callspec", None), "params", {})
    ))
    if not wanted:
        yield
        return
    first = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]) % len(wanted)
    tmp_path_factory.getbasetemp()  # made here: two threads making it at once would collide

    def render_each():
        for inventory in wanted[first:] + wanted[:first]:
            try:
                session_render(inventory, tmp_path_factory)
            except (Exception, pytest.skip.Exception, pytest.fail.Exception):
                pass  # met again by the test that asks for it

    thread = threading.Thread(target=render_each, name="renders-ahead", daemon=True)
    thread.start()
    yield
    thread.join()


def hostless_commands():
    """{label: template} of the README's commands that contact no host, besides the gitops render:
    the operator path runs each twice on every sample inventory, in the project of that
    inventory's session render."""
    return {
        "inventory check": readme_command("site.yml", tags="preflight_inventory"),
        "render-compute": readme_command("playbooks/render-compute.yml"),
        "air-gap list": readme_command("playbooks/artifacts.yml"),
    }


def session_command(label, inventory, tmp_path_factory):
    """The first run of one of hostless_commands() on a sample inventory, made once for the whole run
    in the project of the inventory's session render (after that render, under a lock as the
    render is): a CompletedProcess with its return code, output and seconds. The operator path
    runs each command a second time there; the tests of the air-gap list and of render-compute's
    files read this first run and what it wrote in the project's state directory
    (state_dir(session_project(...), inventory))."""
    import json

    from filelock import FileLock

    _, tree, _ = session_render(inventory, tmp_path_factory)
    kept = tree.parent / f"{tree.name}.{label.replace(' ', '-')}.json"
    with FileLock(f"{kept}.lock"):
        if not kept.exists():
            started = time.monotonic()
            result = operator_run(_project_of(tree), hostless_commands()[label], inventory)
            kept.write_text(json.dumps({"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr,
                                        "seconds": time.monotonic() - started}))
    first = json.loads(kept.read_text())
    result = subprocess.CompletedProcess(hostless_commands()[label], first["returncode"], first["stdout"], first["stderr"])
    result.seconds = first["seconds"]
    return result


def session_project(inventory, tmp_path_factory):
    """The project (a copy of the checkout) the session render of a sample inventory was made in."""
    _, tree, _ = session_render(inventory, tmp_path_factory)
    return _project_of(tree)


@pytest.fixture(scope="session", params=INVENTORIES)
def rendered(request, tmp_path_factory):
    """session_render of every sample inventory."""
    return session_render(request.param, tmp_path_factory)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def layer_delivery_project(tmp_path, server) -> Path:
    """A copy of the project with deliver-test-layer.yml, a play that hands the variable
    test_layer (a layer's declaration, given with -e @file) to the platform role's deliver
    entry point as the layer roles do, and the lab's state holding server's kubeconfig as the
    cluster's admin.conf: for tests of the shared delivery path against a real API server."""
    project = project_copy(tmp_path / "project")
    (project / "deliver-test-layer.yml").write_text(yaml.safe_dump([{
        "name": "Deliver a test layer as the layer roles do",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [{"name": "Deliver", "ansible.builtin.include_role": {"name": "platform", "tasks_from": "deliver"},
                   "vars": {"platform_layer": "{{ test_layer }}"}}],
    }]))
    state = state_dir(project, "lab")
    state.mkdir(parents=True)
    shutil.copy(server.kubeconfig, state / "admin.conf")
    return project


@pytest.fixture()
def project(tmp_path) -> Path:
    """A fresh copy of the project for one test (see project_copy)."""
    return project_copy(tmp_path / "project")


@pytest.fixture(scope="session")
def promote_project(tmp_path_factory) -> Path:
    """The copy of the project every gitops promotion of a worker runs in
    (test_render_orchestration.promote). In gitops mode promote.yml keeps nothing in the project:
    what it promotes is the tree it is given (-e platform_gitops_dir), and no credential is made
    (platform_gitops_secrets=skip). So the promotions share one copy, and with it one preloaded
    Ansible process (tests/preloaded.py serves one directory), rather than a copy and an Ansible
    start-up each."""
    return project_copy(tmp_path_factory.mktemp("promote") / "project")



def load_script(relative):
    """A role's script (roles/<role>/files/<name>.py, shipped to pods in a ConfigMap) imported as a
    module, for tests of its functions; the modules shipped beside it in its ConfigMap (such as
    platform_api.py) import as they do in the pod, from the script's own directory."""
    import importlib.util
    import sys

    path = ROOT / relative
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def moto_s3(buckets=()):
    """moto's S3 server on 127.0.0.1 (any keys accepted) with buckets made, as a generator for a
    fixture to yield from: (endpoint, boto3 client), the server stopped afterwards."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield endpoint, client
    finally:
        server.stop()

from apiserver import apiserver, pytest_runtest_makereport, pytest_runtest_teardown, pytest_terminal_summary  # noqa: E402,F401  (a real API server, and timings shown under pytest-xdist: tests/apiserver.py)
