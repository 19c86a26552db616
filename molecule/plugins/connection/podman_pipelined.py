# containers.podman's podman connection, with Ansible's pipelining: a module
# runs as one exec in the container with the module on stdin, where the plugin
# it extends needs five podman calls (find the home directory, make a
# temporary directory, copy the module in, run it, remove the directory) and
# one more to mount the container for every task. The container's file system
# is mounted only when a file is copied in or out.
#
# The exec itself is the container's OCI runtime's (`runc exec <id>`), which
# is what `podman exec` has conmon run: the same process spec (environment,
# capabilities, cgroup, namespaces), without podman's own start-up (reading
# its configuration, storage and database) and conmon's: about a tenth of a
# CPU-second on every module run, half of what most modules' own runs take. The runtime, its options and the container's id are read once per
# playbook run from `podman inspect` and the container's conmon command line
# (kept in Ansible's local temporary directory). `podman exec` is used when
# that does not apply: not root, another user, extra podman arguments, a
# container not running.
# Used by the podman molecule scenarios only: each names it in its molecule.yml
# (ANSIBLE_CONNECTION_PLUGINS and ansible_connection).

from __future__ import annotations

DOCUMENTATION = """
    name: podman_pipelined
    short_description: Run tasks in an existing podman container, pipelined
    description:
      - containers.podman.podman with pipelining, for the molecule scenarios.
    options:
      remote_addr:
        description: The ID of the container.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: The user tasks run as inside the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments to pass to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description: Executable for podman command.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
      pipelining:
        description: Send modules on stdin instead of copying them into the container first.
        type: boolean
        default: true
        env:
          - name: ANSIBLE_PIPELINING
        vars:
          - name: ansible_pipelining
"""

import hashlib
import json
import os
import shlex
import subprocess

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    transport = "podman_pipelined"
    has_pipelining = True

    def _connect(self):
        # No `podman mount` here: most tasks copy no file once modules are pipelined.
        ConnectionBase._connect(self)
        self._mounted = False
        self._connected = True

    def _mount(self):
        if not self._mounted:
            self._mounted = True
            PodmanConnection._connect(self)

    def _runtime_exec(self):
        """[runtime, options..., 'exec', id] for the container, or None where `podman exec` is needed."""
        if os.geteuid() != 0 or self.user or self.get_option("podman_extra_args"):
            return None
        cache = os.path.join(C.DEFAULT_LOCAL_TMP, "podman-pipelined-" + hashlib.sha256(to_bytes(self._container_id)).hexdigest()[:16])
        try:
            with open(cache) as handle:
                found = json.load(handle)
        except (OSError, ValueError):
            found = runtime_exec(lambda args: self._podman(args, use_container_id=False), self._container_id)
            tmp = f"{cache}.{os.getpid()}"
            with open(tmp, "w") as handle:
                json.dump(found, handle)
            os.replace(tmp, cache)
        return found["argv"] if still_running(found) else None

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        runtime_exec = self._runtime_exec()
        if runtime_exec:
            local_cmd = [to_bytes(a, errors="surrogate_or_strict") for a in runtime_exec + shlex.split(to_native(cmd, errors="surrogate_or_strict"))]
            self._display.vvv(f"RUN {local_cmd}", host=self._container_id)
            process = subprocess.Popen(local_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            stdout, stderr = process.communicate(input=in_data)
            return process.returncode, stdout, stderr
        args = ["exec"]
        if in_data is not None:
            args.append("--interactive")
        if self.user:
            args.extend(("--user", self.user))
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)

    def put_file(self, in_path, out_path):
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path, out_path):
        self._mount()
        super().fetch_file(in_path, out_path)


def runtime_exec(podman, container):
    """{id, conmon_pid, argv}: argv runs a command in the running container as `podman exec` has
    conmon run it ([runtime, runtime options..., 'exec', id]); None if it is not running.
    podman(args) runs podman and returns (rc, stdout, stderr). Also used by testinfra's podman
    backend in the scenarios' tests (molecule/compute-podman/tests/conftest.py)."""
    rc, out, _ = podman(["inspect", "--type", "container", "--format", "{{.Id}} {{.State.ConmonPid}} {{.State.Running}}", container])
    fields = to_native(out).split()
    if rc != 0 or len(fields) != 3 or fields[2] != "true":
        return None
    container_id, conmon_pid = fields[0], int(fields[1])
    args = _conmon_args(conmon_pid)
    if container_id not in args:
        return None
    runtime, options, i = None, [], 0
    while i < len(args):
        arg, value = args[i], args[i + 1] if i + 1 < len(args) else None
        if arg in ("-r", "--runtime") and runtime is None:
            runtime = value
        elif arg == "--runtime-arg":
            options.append(value)
        elif arg.startswith("--runtime-arg="):
            options.append(arg.split("=", 1)[1])
        # Every other option's value is skipped with it (the exit command's arguments name podman's too).
        i += 2 if arg in ("-r", "--runtime", "--runtime-arg", "--exit-command-arg") else 1
    # The runtime's log options name the container's own log file: exec errors go to stderr instead.
    kept, i = [], 0
    while i < len(options):
        if options[i] in ("--log", "--log-format"):
            i += 2
            continue
        if not options[i].startswith(("--log=", "--log-format=")):
            kept.append(options[i])
        i += 1
    if not runtime:
        return None
    return {"id": container_id, "conmon_pid": conmon_pid, "argv": [runtime, *kept, "exec", container_id]}


def still_running(found):
    """Whether the container runtime_exec found is still the one running, with the same conmon
    watching it (a container replaced or stopped since is left to podman, which reports it)."""
    return bool(found) and found["id"] in _conmon_args(found["conmon_pid"])


def _conmon_args(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []
