"""ansible-playbook run in a process forked from one that has imported Ansible already.

A run of `ansible-playbook` spends about half a CPU-second starting Python and importing
Ansible before it reads its first option; a preflight case then spends as much again on the
playbook itself. The preflight catalogue runs the same command, in the same directory and
environment, on a hundred and more inventories: each of its runs is forked from a process
that has done that start once (start(): `python -c SERVER`), and calls what the
ansible-playbook script calls, `ansible.cli.playbook.main()`, with the same argv, in the
same working directory, with the same environment (Ansible reads ansible.cfg and its
ANSIBLE_* variables when the first process imports it: a preloaded process serves only the
directory and environment it was started with). Its stdin is /dev/null and its output goes
to files, as with subprocess.run(capture_output=True); it exits with main()'s code.

tests/test_preflight_catalogue.py checks that a run made here and the same run of the
ansible-playbook command give the same code and the same output.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# The preloaded process: import what every ansible-playbook run imports, freeze those objects
# out of the garbage collector (so a child does not copy the pages it would walk), then, for
# each request on stdin ({"argv", "env", "stdout", "stderr"} as a JSON line), fork a child in a
# session of its own (so a timeout kills all it started) and answer {"pid"}, then {"code"} when it
# ends.
SERVER = r"""
import gc, json, os, sys
from ansible.cli.playbook import main
import ansible.executor.playbook_executor, ansible.executor.task_queue_manager, ansible.playbook
import ansible.plugins.callback.default, ansible.plugins.strategy.linear, ansible.vars.manager
gc.collect()
gc.freeze()
requests, answers = sys.stdin, os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
answers.write("ready\n"); answers.flush()
for line in requests:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(request["stdout"], os.O_WRONLY | os.O_TRUNC), 1)
        os.dup2(os.open(request["stderr"], os.O_WRONLY | os.O_TRUNC), 2)
        sys.argv = request["argv"]
        os.environ.clear()
        os.environ.update(request["env"])
        try:
            code = main()
        except SystemExit as exit:
            code = exit.code
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 250
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)
    answers.write(json.dumps({"pid": pid}) + "\n"); answers.flush()
    _, status = os.waitpid(pid, 0)
    answers.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n"); answers.flush()
"""


class Preloaded:
    """One preloaded process, serving runs in one directory with one environment, one at a time."""

    def __init__(self, python: str, cwd: Path, env: dict):
        self.process = subprocess.Popen(
            [python, "-c", SERVER], cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.lock = threading.Lock()
        if self._answer(120) != "ready":
            raise RuntimeError(f"the preloaded ansible-playbook process did not start (exit code {self.process.poll()})")

    def _answer(self, timeout):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the preloaded ansible-playbook process ended (exit code {self.process.wait()})")
        return line.strip()

    def run(self, argv, env, timeout) -> subprocess.CompletedProcess:
        with self.lock, tempfile.TemporaryDirectory(prefix="preloaded-") as scratch:
            out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
            out.touch(), err.touch()
            self.process.stdin.write(json.dumps({"argv": list(argv), "env": env, "stdout": str(out), "stderr": str(err)}) + "\n")
            self.process.stdin.flush()
            pid = json.loads(self._answer(30))["pid"]
            answer = self._answer(timeout)
            if answer is None:
                os.killpg(pid, signal.SIGKILL)
                self._answer(30)
                raise subprocess.TimeoutExpired(argv, timeout, out.read_text(), err.read_text())
            code = json.loads(answer)["code"]
            return subprocess.CompletedProcess(list(argv), code, out.read_text(), err.read_text())

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


_started: dict = {}
_lock = threading.Lock()


def run(argv, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout) of
    an ansible-playbook command (argv[0] the project virtualenv's script), forked from a process
    preloaded for that directory and environment (started on the first run that needs it)."""
    script = Path(argv[0])
    if not script.is_file():  # no project virtualenv: the command as it is
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    python = script.read_text().splitlines()[0].removeprefix("#!").strip()
    # pytest names the running test in the environment: that alone does not need another process.
    key = (python, str(cwd), json.dumps({k: v for k, v in env.items() if k != "PYTEST_CURRENT_TEST"}, sort_keys=True))
    with _lock:
        if key not in _started:
            _started[key] = Preloaded(python, cwd, env)
    return _started[key].run([str(script), *argv[1:]], env, timeout)


@atexit.register
def _stop_all():
    for preloaded in _started.values():
        preloaded.stop()
