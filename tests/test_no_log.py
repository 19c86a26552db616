"""Every task that reads, generates or applies a credential hides it (no_log: true), in every
role and playbook. A task is suspect when its arguments name credentials, passwords, keys or
Secrets' data; the few that only name a Secret (never its content) are listed below with why.
Includes are not judged themselves: the tasks they run are. The render tests
(test_render.py) check the other half: no credential in the tree or the output, at -vvv."""

from __future__ import annotations

import re

import yaml

from conftest import ROOT

SUSPECT = re.compile(r"\.credentials\b|password|secret_key|access_key|_secrets\b|stringData|__backup_restore_db_secret|'secrets'")
INCLUDES = {"ansible.builtin.include_role", "ansible.builtin.include_tasks", "ansible.builtin.import_tasks", "include_role", "include_tasks"}
# (file, task name): why it may show its arguments.
NAMES_ONLY = {
    ("roles/platform/tasks/deliver_gitops.yml", "Show the Secrets left to you, by name and keys only, of layer {{ platform_layer.name }}"):
        "prints platform_secret_summaries: namespace/name (keys), never values",
    ("roles/platform/tasks/deliver_gitops.yml", "Show the node labels left to you, of layer {{ platform_layer.name }}"):
        "prints kubectl label commands; the layer's secrets are only tested for presence",
}


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


def test_every_task_that_touches_a_credential_hides_it():
    exposed = set()
    for path, task in all_tasks():
        if INCLUDES & set(task) or task.get("no_log") is True:
            continue
        arguments = yaml.safe_dump({k: v for k, v in task.items() if k not in ("name", "when", "tags")})
        if SUSPECT.search(arguments):
            exposed.add((path, task.get("name")))
    assert exposed - set(NAMES_ONLY) == set(), "tasks that may print a credential; add no_log: true"
    assert set(NAMES_ONLY) <= exposed, "a names-only exception no longer applies; drop it from NAMES_ONLY"


def test_every_credentials_file_is_read_with_no_log():
    users = [(path, task.get("name")) for path, task in all_tasks() if "platform_credentials" in task]
    assert len(users) >= 8
    for path, task in all_tasks():
        if "platform_credentials" in task:
            assert task.get("no_log") is True, f"{path}: {task.get('name')}"
