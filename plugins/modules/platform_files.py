#!/usr/bin/python
"""Write many small files, directories and links on a node in one module run.

A node's configuration is a dozen small files (modules-load.d, sysctl.d,
containerd's config and unit, registry hosts.toml, version stamps, links).
One task per file costs one module run each, which dominates a no-op re-run;
this module converges them all in one, writing only what differs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: platform_files
short_description: Converge many small files, directories and links on a node in one run
description:
  - Each entry of I(files) is a path and what must be there. Files are written atomically and only
    when their content or mode differs; missing parent directories are created (mode 0755);
    links are (re)pointed when they point elsewhere. Supports check mode and diff.
options:
  files:
    description:
      - "Path to C({content, mode}) for a file, C({state: directory, mode}) for a directory, or
        C({state: link, src}) for a symbolic link."
    type: dict
    required: true
author:
  - Platform team
"""

EXAMPLES = r"""
- name: Persist kernel modules and sysctls
  platform_files:
    files:
      /etc/modules-load.d/k8s.conf: {content: "overlay\nbr_netfilter\n", mode: "0644"}
      /opt/cni/bin: {state: directory, mode: "0755"}
      /usr/local/bin/ctr: {state: link, src: /opt/ml-platform/containerd/2.3.4/bin/ctr}
"""

RETURN = r"""
changed_paths:
  description: Paths written, created or re-pointed (or that would be, in check mode).
  returned: always
  type: list
"""

import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule


def _mode(value, default):
    if value is None:
        return default
    return int(str(value), 8) if isinstance(value, str) else int(value)


def plan(files):
    """[(path, action, spec)] for every entry that differs from what is on disk."""
    actions = []
    for path, spec in sorted(files.items()):
        spec = spec or {}
        state = spec.get("state", "file")
        if not os.path.isabs(path):
            raise ValueError(f"{path}: paths must be absolute")
        if state == "directory":
            if not os.path.isdir(path):
                actions.append((path, "mkdir", spec))
            elif stat.S_IMODE(os.stat(path).st_mode) != _mode(spec.get("mode"), 0o755):
                actions.append((path, "chmod", spec))
        elif state == "link":
            if not os.path.islink(path) or os.readlink(path) != spec["src"]:
                actions.append((path, "link", spec))
        elif state == "file":
            content = str(spec.get("content", "")).encode()
            mode = _mode(spec.get("mode"), 0o644)
            try:
                with open(path, "rb") as handle:
                    same = handle.read() == content
                if not same:
                    actions.append((path, "write", spec))
                elif stat.S_IMODE(os.stat(path).st_mode) != mode:
                    actions.append((path, "chmod", spec))
            except FileNotFoundError:
                actions.append((path, "write", spec))
        else:
            raise ValueError(f"{path}: unknown state {state}")
    return actions


def apply(actions):
    for path, action, spec in actions:
        default = 0o755 if spec.get("state") == "directory" else 0o644
        mode = _mode(spec.get("mode"), default)
        if action == "mkdir":
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
        elif action == "chmod":
            os.chmod(path, mode)
        elif action == "link":
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            tmp = f"{path}.tmp-{os.getpid()}"
            os.symlink(spec["src"], tmp)
            os.replace(tmp, path)
        elif action == "write":
            directory = os.path.dirname(path)
            os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".platform-files-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(str(spec.get("content", "")).encode())
            os.chmod(tmp, mode)
            os.replace(tmp, path)


def diff(actions):
    """What --diff shows, one entry per action (read before anything is applied): a file's text
    before and after; a directory's, a link's or a mode's state before and after."""
    shown = []
    for path, action, spec in actions:
        entry = {"before_header": path, "after_header": path}
        if action == "write":
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    entry["before"] = handle.read()
            except FileNotFoundError:
                entry["before"] = ""
            entry["after"] = str(spec.get("content", ""))
        elif action == "mkdir":
            entry["before"], entry["after"] = {"state": "absent"}, {"state": "directory", "mode": f"{_mode(spec.get('mode'), 0o755):04o}"}
        elif action == "chmod":
            default = 0o755 if spec.get("state") == "directory" else 0o644
            entry["before"], entry["after"] = {"mode": f"{stat.S_IMODE(os.stat(path).st_mode):04o}"}, {"mode": f"{_mode(spec.get('mode'), default):04o}"}
        else:  # link
            entry["before"], entry["after"] = {"src": os.readlink(path) if os.path.islink(path) else None}, {"src": spec["src"]}
        shown.append(entry)
    return shown


def converge(files, check_mode, show_diff):
    """The module's result for files: planned, shown (with show_diff) and applied (unless
    check_mode). Raises ValueError or OSError. The action of the same name
    (plugins/action/platform_files.py) calls it on the controller."""
    actions = plan(files)
    shown = diff(actions) if show_diff else None
    if not check_mode:
        apply(actions)
    result = {"changed": bool(actions), "changed_paths": [path for path, _, _ in actions]}
    if shown is not None:
        result["diff"] = shown
    return result


def main():
    module = AnsibleModule(argument_spec={"files": {"type": "dict", "required": True}}, supports_check_mode=True)
    try:
        result = converge(module.params["files"], module.check_mode, module._diff)
    except (ValueError, OSError) as err:
        module.fail_json(msg=str(err))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
