"""Python programs run in processes forked from one that has imported their libraries already.

Starting Python and importing a large library costs more than many runs of a program then
do: half a CPU-second for Ansible before ansible-playbook reads its first option, two to
four for MLflow (its tracking client, its auth store) and scikit-learn. A test that runs
the same kind of program many times runs each in a process forked from one that has done
that once (a preloaded process: `python -c SERVER` with a Preload's imports), which runs the
program as `python script.py args` or the console script `ansible-playbook args` would:
the script's file as __main__ (runpy.run_path, its directory first on sys.path) with the
same argv, working directory and environment (set before the script runs), stdin
/dev/null and its output to files (as subprocess.Popen(stdin=DEVNULL, stdout=PIPE,
stderr=PIPE, text=True) gives it), and its exit code as Python makes it from SystemExit or
an uncaught exception. start() gives a Popen-like Run (started now, finished later, with
poll, wait, communicate and kill); run() waits for it as subprocess.run does, and kills the
run's process group on timeout.

What a run cannot change in a forked process is what the preloaded one did before it:

- its imports ran in the environment the preloaded process was started with. The process
  records every variable they read (and any module that copied the whole environment); a
  run is served only by a preloaded process whose environment agrees with the run's on
  those, and on what the interpreter reads as it starts (PYTHON*, LANG, LC_*); a run that
  disagrees gets a preloaded process of its own. A Preload may name variables its imports
  read for nothing its programs use (a default path of a feature they never call), with
  the reason beside it.
- exit handlers its imports registered: with exit_handlers a run ends as Python ends a
  program (its non-daemon threads joined, then every exit handler, those its imports
  registered included); without, it ends at once when the program returns, leaving the
  preloaded process's handlers to it (Ansible's import makes a temporary directory and
  registers its removal: it is shared by every run).
- what its imports printed (a deprecation warning) starts each run's output, as it starts
  that of a program that makes the same imports.

tests/test_preflight_catalogue.py and tests/test_mlflow_server.py each check that a run made
here and the same run of the command give the same result.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

# The preloaded process. It imports config["imports"] with the environment's lookups recorded,
# freezes what it has out of the garbage collector (so a child does not copy the pages it
# would walk) and answers {"read", "copied"}. Then for each request on stdin ({"id", "argv",
# "cwd", "env", "stdout", "stderr"} as a JSON line) it forks a child in a session of its own
# (so a timeout kills all it started), answers {"id", "pid"} at once and {"id", "code", "cpu"}
# when the child ends. When stdin closes it kills the children still running and ends.
SERVER = r"""
import atexit, gc, importlib, json, os, runpy, select, signal, sys, threading

config = json.loads(sys.argv[1])
del sys.path[0]  # the working directory `python -c` puts there: a run puts its script's directory
Environ, read, copied = type(os.environ), set(), set()
lookup, iterate = Environ.__getitem__, Environ.__iter__

def recorded_lookup(self, key):
    caller = sys._getframe(1).f_code
    if not (caller.co_name == "__iter__" and "_collections_abc" in caller.co_filename):  # items() of a copy, below
        read.add(key.decode() if isinstance(key, bytes) else key)
    return lookup(self, key)

def recorded_iterate(self):
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in ("<frozen _collections_abc>", "<frozen os>"):
        frame = frame.f_back
    copied.add(frame.f_globals.get("__name__", "?") if frame is not None else "?")
    return iterate(self)

# What the imports print (a deprecation warning) starts each run's output, as it would a program's.
answers, errors = os.fdopen(os.dup(1), "w"), os.dup(2)
printed = [os.memfd_create("stdout"), os.memfd_create("stderr")]
os.dup2(printed[0], 1), os.dup2(printed[1], 2)

def imported():
    Environ.__getitem__, Environ.__iter__ = lookup, iterate
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1), os.dup2(errors, 2)
    contents = [os.pread(fd, os.fstat(fd).st_size, 0) for fd in printed]
    for fd in (*printed, errors):
        os.close(fd)
    return contents

Environ.__getitem__, Environ.__iter__ = recorded_lookup, recorded_iterate
try:
    for name in config["imports"]:
        importlib.import_module(name)
except BaseException:
    os.write(2, imported()[1])  # with the traceback that follows
    raise
printed = imported()
gc.collect()
gc.freeze()

def answer(message):
    answers.write(json.dumps(message) + "\n"); answers.flush()

def child(request, running):
    code = 1
    try:
        os.setsid()
        for fd in (answers.fileno(), *running):
            os.close(fd)
        for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_TRUNC),
                                (2, request["stderr"], os.O_WRONLY | os.O_TRUNC)):
            os.dup2(os.open(path, flags), fd)
        os.write(1, printed[0]), os.write(2, printed[1])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        sys.path.insert(0, os.path.dirname(os.path.realpath(sys.argv[0])))
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
            code = 0
        except SystemExit as ended:
            code = ended.code
        except BaseException as error:
            trace = error.__traceback__  # from the script's frame on, as python shows it
            while trace.tb_next and trace.tb_frame.f_code.co_filename != sys.argv[0]:
                trace = trace.tb_next
            sys.excepthook(type(error), error.with_traceback(trace), trace)
            code = 1
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        if config["exit_handlers"]:
            threading._shutdown()
            atexit._run_exitfuncs()
        sys.stdout.flush(); sys.stderr.flush()
    except BaseException:  # in setting the run up: shown as its output
        import traceback
        traceback.print_exc()
    finally:
        os._exit(code & 0xFF if isinstance(code, int) else 1)

answer({"read": sorted(read), "copied": sorted(copied)})
running, pending = {}, b""
while True:
    ready, _, _ = select.select([0, *running], [], [])
    for fd in ready:
        if fd != 0:
            request_id, pid = running.pop(fd)
            os.close(fd)
            _, status, usage = os.wait4(pid, 0)
            answer({"id": request_id, "code": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime})
            continue
        data = os.read(0, 1 << 16)
        if not data:
            for request_id, pid in running.values():
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(pid, 0)
            sys.exit(0)
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                child(request, running)
            running[os.pidfd_open(pid)] = (request["id"], pid)
            answer({"id": request["id"], "pid": pid})
"""

# What the interpreter reads of the environment as it starts, before any import.
_STARTUP = ("PYTHON", "LANG", "LC_")


@dataclass(frozen=True)
class Preload:
    """What a preloaded process imports, and how its runs end (see the module's docstring).
    ignored: variables its imports read for nothing its programs use, and modules that copy
    the environment for nothing its programs use, each with the reason where it is defined."""

    imports: tuple[str, ...]
    exit_handlers: bool = True
    ignored: tuple[str, ...] = ()


# ansible-playbook: what every run imports; a run ends as ansible-playbook's main() returns.
ANSIBLE_PLAYBOOK = Preload(
    imports=("ansible.cli.playbook", "ansible.executor.playbook_executor", "ansible.executor.task_queue_manager",
             "ansible.playbook", "ansible.plugins.callback.default", "ansible.plugins.strategy.linear", "ansible.vars.manager"),
    exit_handlers=False,
)


class Run:
    """A program's run in a forked process, as subprocess.Popen gives it: args, pid,
    returncode, poll(), wait(), communicate() (its output, as text) and kill() (its process
    group). cpu: the CPU-seconds it used, once it has ended."""

    def __init__(self, args, stdout: Path, stderr: Path):
        self.args, self._stdout, self._stderr = list(args), stdout, stderr
        self.returncode = self.cpu = self._pid = self._failure = None
        self._started, self._ended = threading.Event(), threading.Event()

    @property
    def pid(self):
        self._started.wait(120)
        if self._pid is None:
            raise RuntimeError(f"the preloaded process did not start {self.args}: {self._failure}")
        return self._pid

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        if self._failure:
            raise RuntimeError(f"{self.args}: {self._failure}")
        return self.returncode

    def communicate(self, timeout=None):
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired as expired:
            expired.output, expired.stderr = self._stdout.read_text(), self._stderr.read_text()
            raise
        return self._stdout.read_text(), self._stderr.read_text()

    def kill(self):
        if not self._ended.is_set():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _end(self, code=None, cpu=None, failure=None):
        self.returncode, self.cpu, self._failure = code, cpu, failure
        self._started.set()
        self._ended.set()


class Preloaded:
    """One preloaded process: started with a Preload, an interpreter, a directory and an
    environment; it serves runs in that directory whose environment agrees with its own on
    what its imports read (serves()), several at once."""

    def __init__(self, preload: Preload, python: str, cwd: Path, env: dict):
        self.preload, self.python, self.cwd, self.env = preload, python, cwd, dict(env)
        self.scratch = tempfile.TemporaryDirectory(prefix="preloaded-")
        self.process = subprocess.Popen(
            [python, "-c", SERVER, json.dumps({"imports": list(preload.imports), "exit_handlers": preload.exit_handlers})],
            cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.runs: dict[int, Run] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.read = self.copied = None
        threading.Thread(target=self._answers, daemon=True).start()

    def _answers(self):
        ready, _, _ = select.select([self.process.stdout], [], [], 120)
        first = self.process.stdout.readline() if ready else ""
        if first:
            imported = json.loads(first)
            self.read, self.copied = set(imported["read"]), set(imported["copied"])
            self.ready.set()
            for line in self.process.stdout:
                message = json.loads(line)
                run = self.runs[message["id"]]
                if "pid" in message:
                    run._pid = message["pid"]
                    run._started.set()
                else:
                    run._end(message["code"], message["cpu"])
        self.ready.set()
        failure = f"the preloaded process for {self.preload.imports} ended (exit code {self.process.poll()})"
        for run in self.runs.values():
            if run.returncode is None:
                run._end(failure=failure)

    def serves(self, env: dict) -> bool:
        """Whether a run with env gets, from this process, what it would get from its own."""
        if not self.ready.wait(120) or self.read is None:
            return False
        names = env.keys() | self.env.keys()
        variables = {name for name in names if name.startswith(_STARTUP)} | self.read
        if self.copied - set(self.preload.ignored):  # a module kept a copy of all of it
            variables = set(names)
        # pytest names the running test in the environment: only whether it is set can matter.
        variables -= {*self.preload.ignored, "PYTEST_CURRENT_TEST"}
        return (all(env.get(name) == self.env.get(name) for name in variables)
                and ("PYTEST_CURRENT_TEST" in env) == ("PYTEST_CURRENT_TEST" in self.env))

    def start(self, argv, cwd: Path, env: dict) -> Run:
        with self.lock:
            request_id = len(self.runs)
            out, err = Path(self.scratch.name, f"{request_id}.out"), Path(self.scratch.name, f"{request_id}.err")
            out.touch(), err.touch()
            run = self.runs[request_id] = Run(argv, out, err)
            request = {"id": request_id, "argv": [str(arg) for arg in argv], "cwd": str(cwd), "env": dict(env),
                       "stdout": str(out), "stderr": str(err)}
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
            except OSError as error:
                run._end(failure=f"the preloaded process for {self.preload.imports} is gone: {error}")
        return run

    def stop(self):
        try:
            self.process.stdin.close()
        except OSError:
            pass
        self.process.wait(timeout=60)
        self.scratch.cleanup()


_started: dict = {}
_lock = threading.Lock()


def start(argv, env: dict, cwd: Path | None = None, preload: Preload = ANSIBLE_PLAYBOOK):
    """subprocess.Popen(argv, cwd=cwd, env=env, stdin=DEVNULL, stdout=PIPE, stderr=PIPE,
    text=True) of a Python program, forked from a process preloaded with preload's imports
    (started by the first run that needs it). argv is `python script.py args` or a console
    script's `ansible-playbook args` (its #! line names the interpreter). Without the program
    (no project virtualenv, no script), the command itself, as it is."""
    cwd = Path(cwd or os.getcwd())
    first = Path(argv[0])
    line = b""
    if first.is_file():
        with first.open("rb") as program:
            line = program.readline()
    if line.startswith(b"#!"):  # a console script: the interpreter its #! line names runs it
        python, program_argv = line[2:].decode().strip(), [str(arg) for arg in argv]
    else:  # the interpreter, then the script
        python, program_argv = str(first), [str(arg) for arg in argv[1:]]
    if " " in python or not program_argv or program_argv[0].startswith("-"):
        raise ValueError(f"only `python script.py args` and a console script run forked, not {argv}")
    if not (first.is_file() and (cwd / program_argv[0]).is_file()):
        return subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    with _lock:
        processes = _started.setdefault((preload, python, str(cwd)), [])
        serving = next((process for process in processes if process.serves(env)), None)
        if serving is None:
            serving = Preloaded(preload, python, cwd, env)
            processes.append(serving)
    run = serving.start(program_argv, cwd, env)
    run.args = list(argv)
    return run


def run(argv, env: dict, cwd: Path | None = None, timeout: float | None = None,
        preload: Preload = ANSIBLE_PLAYBOOK) -> subprocess.CompletedProcess:
    """subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    of start()'s run: on timeout its process group is killed and TimeoutExpired raised."""
    process = start(argv, env, cwd, preload)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@atexit.register
def _stop_all():
    for processes in _started.values():
        for preloaded in processes:
            preloaded.stop()
