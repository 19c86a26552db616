"""Every task that reads, generates or applies a credential hides it (no_log: true), in every
role and playbook. A task is suspect when its arguments name credentials, passwords, tokens,
keys, Secrets or Secrets' data; the few that only name a Secret (never its content) are listed
below with why. Includes are not judged themselves: the tasks they run are. The render tests
(test_render.py) check the other half: no credential in the tree or the output, at -vvv; and
test_pod_secrets.py the smoke check's (no literal credential in a pod spec either)."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT

SUSPECT = re.compile(
    r"\.credentials\b|password|secret_key|access_key|_secrets\b|stringData|__backup_restore_db_secret|'secrets'"
    # Tokens (bearer, join, API), Authorization headers, private and certificate keys.
    r"|(?i:(?<![a-z])token|api[_-]?key|authorization|bearer|(?:private|client|certificate)[_-]key)"
    # A Secret itself: k8s and k8s_info return its data; a layer's Secrets.
    r"|\bkind: Secret\b|\bplatform_layer\.secrets\b"
)
# Modules that return no object and mask every value of a Secret they are given in all they
# return, a failure's message and their invocation included (tests/test_k8s_apply.py proves it
# against the API server): a task of theirs needs no no_log, so that its errors stay readable.
MASKING_MODULES = {"mlplatform.baremetal.platform_k8s_apply"}
INCLUDES = {"ansible.builtin.include_role", "ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "include_role", "include_tasks"}
# (file, task name): why it may show its arguments.
NAMES_ONLY = {
    ("roles/platform/tasks/deliver_gitops.yml",
     "Show the Secrets, by name and keys only, and the node labels left to you, of layer {{ platform_layer.name }}"):
        "prints platform_secret_summaries (namespace/name (keys), never values) and kubectl label commands; "
        "the layer's secrets are otherwise only tested for presence",
    ("roles/serving/tasks/main.yml", "Declare layer 5, serving"):
        "names the Secret inference-tokens and holds a sha256 digest of the tokens (it rolls the gateway), never a token",
    ("roles/platform/tasks/rotate.yml", "Say what the rotation does, of {{ rotate }}"):
        "prints the entry's name, its file's path and the layers rotate.yml runs (platform_gitops_secrets' value), never a value",
    ("roles/compute/tasks/kubeadm.yml", "Initialise the cluster on the first control plane"):
        "kubeadm init withholds its token and certificate key (--skip-*-print, test_kubeadm_init_prints_no_join_credential)",
}
# Tasks that handle a token, each found by the check once its no_log is gone.
TOKEN_TASKS = [
    ("roles/serving/tasks/main.yml", "Keep the inference clients' tokens on the controller (generated once, file 0600)"),
    ("roles/smoke/tasks/main.yml", "Give the prediction probe the first inference client's token, as a Secret"),
    ("roles/smoke/tasks/cleanup_objects.yml", "Delete the prediction probe's token Secret"),
    ("roles/compute/tasks/k3s.yml", "Write the cluster token (0600)"),
    ("roles/compute/tasks/kubeadm_join_credentials.yml", "Create a bootstrap token (valid 30 minutes) with the CA's hash"),
]


def tasks(node):
    for task in node or []:
        if isinstance(task, dict):
            if any(k in task for k in ("block", "rescue", "always")):
                for key in ("block", "rescue", "always"):
                    yield from tasks(task.get(key))
            else:
                yield task


def all_tasks():
    for path in sorted(ROOT.glob("roles/*/tasks/*.yml")):
        for task in tasks(yaml.safe_load(path.read_text())):
            yield str(path.relative_to(ROOT)), task
    for path in sorted(ROOT.glob("playbooks/*.yml")):
        for play in yaml.safe_load(path.read_text()) or []:
            for key in ("pre_tasks", "tasks", "post_tasks"):
                for task in tasks(play.get(key)):
                    yield str(path.relative_to(ROOT)), task


def exposed(tasks):
    """(file, name) of each task that may show a credential: suspect arguments and no no_log."""
    found = set()
    for path, task in tasks:
        if INCLUDES & set(task) or task.get("no_log") is True or MASKING_MODULES & set(task):
            continue
        arguments = yaml.safe_dump({k: v for k, v in task.items() if k not in ("name", "when", "tags")})
        if SUSPECT.search(arguments):
            found.add((path, task.get("name")))
    return found


def test_every_task_that_touches_a_credential_hides_it():
    found = exposed(all_tasks())
    assert found - set(NAMES_ONLY) == set(), "tasks that may print a credential; add no_log: true"
    assert set(NAMES_ONLY) <= found, "a names-only exception no longer applies; drop it from NAMES_ONLY"


def test_a_token_task_without_no_log_is_found():
    tasks = {(path, task.get("name")): task for path, task in all_tasks()}
    for key in TOKEN_TASKS:
        assert tasks[key].get("no_log") is True, key
        unhidden = {k: v for k, v in tasks[key].items() if k != "no_log"}
        assert exposed([(key[0], unhidden)]) == {key}


def test_a_layers_secrets_handed_to_a_module_that_does_not_mask_them_are_found():
    """The tasks that apply a layer's Secrets without no_log do it with a masking module; the same
    task with another module (kubernetes.core.k8s returns the object, data and all) is found."""
    appliers = [(path, task) for path, task in all_tasks() if "platform_layer.secrets" in str(task.get("mlplatform.baremetal.platform_k8s_apply", ""))]
    assert len(appliers) == 2, [task.get("name") for _, task in appliers]
    for path, task in appliers:
        assert task.get("no_log") is not True and exposed([(path, task)]) == set()
        other = {("kubernetes.core.k8s" if k == "mlplatform.baremetal.platform_k8s_apply" else k): v for k, v in task.items()}
        assert exposed([(path, other)]) == {(path, task["name"])}


def kubeadm_init_exposures(tasks):
    """kubeadm init prints its bootstrap token and, with --upload-certs, the certificate key that
    opens the uploaded control-plane certificates, unless told not to (or the task hides it)."""
    found = []
    for path, task in tasks:
        command = task.get("ansible.builtin.command", task.get("ansible.builtin.shell")) or ""
        if isinstance(command, dict):
            command = " ".join(command.get("argv", [])) or command.get("cmd", "")
        if "kubeadm init" not in command or "kubeadm init phase" in command or task.get("no_log") is True:
            continue
        missing = [flag for flag in ("--skip-token-print", "--skip-certificate-key-print" if "--upload-certs" in command else None)
                   if flag and flag not in command.split()]
        if missing:
            found.append((path, task.get("name"), missing))
    return found


def test_kubeadm_init_prints_no_join_credential():
    inits = [(path, task) for path, task in all_tasks() if "kubeadm init --" in str(task.get("ansible.builtin.command", ""))]
    assert len(inits) == 1
    assert kubeadm_init_exposures(all_tasks()) == []
    path, task = inits[0]
    bare = dict(task, **{"ansible.builtin.command": task["ansible.builtin.command"].replace(" --skip-token-print", "")})
    assert kubeadm_init_exposures([(path, bare)]) == [(path, task["name"], ["--skip-token-print"])]
    bare = dict(task, **{"ansible.builtin.command": task["ansible.builtin.command"].replace(" --skip-certificate-key-print", "")})
    assert kubeadm_init_exposures([(path, bare)]) == [(path, task["name"], ["--skip-certificate-key-print"])]


def test_every_credentials_file_is_read_with_no_log():
    # The action by any name: platform_credentials, or its FQCN mlplatform.baremetal.platform_credentials.
    def reads_credentials(task):
        return any(str(key).split(".")[-1] == "platform_credentials" for key in task)

    users = [(path, task.get("name")) for path, task in all_tasks() if reads_credentials(task)]
    assert len(users) >= 8
    for path, task in all_tasks():
        if reads_credentials(task):
            assert task.get("no_log") is True, f"{path}: {task.get('name')}"
