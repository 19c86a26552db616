"""Write a layer's part of the GitOps tree on the controller, in one task.

The gitops delivery mode renders files on the controller; doing that with one
template task per file costs a module process per file. This action writes them
all in-process, reports which files changed, and removes the files the layer
owns that its declaration no longer has. Check mode reports without writing.
"""

from __future__ import annotations

import os

import yaml
from ansible.parsing.yaml.dumper import AnsibleDumper
from ansible.plugins.action import ActionBase

HEADER = (
    "# Written by the ml-platform installer from the layer's declaration; edit the\n"
    "# inventory or the role, not this file (a re-run rewrites it).\n"
)


def render(documents):
    """The bytes of one file: a header, then each document as sorted, block-style YAML."""
    parts = [HEADER]
    for document in documents:
        parts.append("---\n")
        parts.append(yaml.dump(document, Dumper=AnsibleDumper, indent=2, default_flow_style=False, sort_keys=True, width=1000, allow_unicode=True))
    return "".join(parts).encode("utf-8")


def plan(dest, files, owned_prefixes):
    """What to write and what to remove: ({path: bytes}, [stale paths])."""
    writes = {}
    for relative, documents in sorted(files.items()):
        if os.path.isabs(relative) or ".." in relative.split("/"):
            raise ValueError(f"refusing to write outside the tree: {relative}")
        content = render(documents)
        path = os.path.join(dest, relative)
        try:
            with open(path, "rb") as handle:
                if handle.read() == content:
                    continue
        except FileNotFoundError:
            pass
        writes[path] = content
    wanted = {os.path.join(dest, relative) for relative in files}
    stale = []
    for root, _dirs, names in os.walk(dest):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, dest)
            if name.endswith(".yaml") and path not in wanted and any(relative.startswith(p) for p in owned_prefixes):
                stale.append(path)
    return writes, sorted(stale)


def apply(writes, stale):
    for path, content in writes.items():
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    for path in stale:
        os.remove(path)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dest", "files", "owned_prefixes"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        dest = os.path.expanduser(str(args["dest"]))
        files = args.get("files") or {}
        owned = [str(p) for p in args.get("owned_prefixes") or []]
        writes, stale = plan(dest, files, owned)
        if not self._task.check_mode:
            apply(writes, stale)
        result.update(
            changed=bool(writes or stale),
            written=sorted(os.path.relpath(p, dest) for p in writes),
            removed=sorted(os.path.relpath(p, dest) for p in stale),
        )
        return result
