"""testinfra's podman backend, running each check's command as `podman exec` has conmon run it:
with the container's OCI runtime (`runc exec <id>`), as molecule/plugins/connection/podman_pipelined.py
runs the scenario's modules. Same process spec (environment, capabilities, cgroup, namespaces), without
podman's and conmon's start-up on each of the checks' commands. `podman exec` where that does not
apply (not root, a user given in the host spec, a container not running)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import testinfra.backend
from testinfra.backend.podman import PodmanBackend

_spec = importlib.util.spec_from_file_location(
    "podman_pipelined", Path(__file__).resolve().parents[2] / "plugins" / "connection" / "podman_pipelined.py"
)
podman_pipelined = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(podman_pipelined)


def _podman(args):
    result = subprocess.run(["podman", *args], capture_output=True, check=False)
    return result.returncode, result.stdout, result.stderr


class RuntimeExecBackend(PodmanBackend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._runtime_exec = podman_pipelined.runtime_exec(_podman, self.name) if os.geteuid() == 0 and self.user is None else None

    def run(self, command, *args, **kwargs):
        if not podman_pipelined.still_running(self._runtime_exec):
            return super().run(command, *args, **kwargs)
        cmd = self.get_command(command, *args)
        out = self.run_local(" ".join(["%s"] * (len(self._runtime_exec["argv"]) + 3)), *self._runtime_exec["argv"], "/bin/sh", "-c", cmd)
        out.command = self.encode(cmd)
        return out


testinfra.backend.BACKENDS["podman"] = f"{__name__}.RuntimeExecBackend"
