"""Shared helpers: paths, and running the project's own ansible commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
sys.path.insert(0, str(ROOT / "plugins" / "action"))


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


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
