"""Shared helpers: paths, and running the project's own ansible commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import hashlib

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
sys.path.insert(0, str(ROOT / "plugins" / "action"))

BOM = yaml.safe_load((ROOT / "group_vars" / "all" / "bom.yml").read_text())
KUBERNETES = BOM["bom_kubernetes"]["kubeadm"]
# Every cluster layer, rendered without contacting a host (the host plays are skipped).
LAYER_TAGS = "preflight_inventory,network,storage,observability,gpu,serving,tracking,orchestration,tenancy,backup"
INVENTORIES = ["lab", "production", "airgap"]


def tool(name: str) -> str:
    """A command from the virtualenv running the tests (the one `make test` builds)."""
    candidate = BIN / name
    return str(candidate) if candidate.exists() else name


def run(args, cwd=ROOT, timeout=600, env=None):
    full_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", PY_COLORS="0")
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env or {})
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env, check=False)


def render_gitops(inventory, tree, tags, *extra):
    """Render layers of an inventory in gitops mode into tree, touching no host and no cluster;
    generated credentials go beside the tree."""
    return run(
        [
            tool("ansible-playbook"), "site.yml", "-i", f"inventories/{inventory}", "--tags", tags,
            "-e", "platform_delivery=gitops", "-e", f"platform_gitops_dir={tree}",
            "-e", "platform_gitops_repo_url=https://git.example.internal/platform/tree.git", "-e", "platform_gitops_secrets=skip",
            "-e", f"platform_credentials_dir={tree}-credentials", *extra,
        ]
    )


def render(inventory, tree, *extra):
    """Render the layers in gitops mode, touching no host: the storage and GPU host plays are skipped."""
    return render_gitops(inventory, tree, LAYER_TAGS, "--skip-tags", "storage_hosts,gpu_hosts", *extra)


def digest(tree):
    return {str(p.relative_to(tree)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tree.rglob("*")) if p.is_file()}


def documents(tree_docs):
    return [(path, doc) for path, docs in tree_docs.items() for doc in docs]


@pytest.fixture(scope="session", params=INVENTORIES)
def rendered(request, tmp_path_factory):
    """(inventory, tree, {path: [documents]}) of every sample inventory, rendered once for the
    whole run; the playbook's output is kept beside the tree as <tree>.out."""
    from k8s_schemas import CRD_DIR, load_tree

    if not CRD_DIR.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{CRD_DIR} is missing: CI runs with ../shared beside the clone")
        pytest.skip(f"{CRD_DIR} is missing")
    tree = tmp_path_factory.mktemp(f"tree-{request.param}")
    result = render(request.param, tree)
    assert result.returncode == 0, result.stdout + result.stderr
    (tree.parent / f"{tree.name}.out").write_text(result.stdout)
    return request.param, tree, load_tree(tree)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
