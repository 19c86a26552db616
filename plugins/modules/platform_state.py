#!/usr/bin/python
"""Keep the installer's state in one directory outside the inventory, and move what an earlier
release left inside it.

Ansible parses every file under an inventory directory as inventory, so generated files there
(credentials, kubeconfig, helm, rendered configuration) turn into bogus groups and hosts on the
next run. This module makes the state directory (0700) when it moves each legacy item into it,
when only the legacy copy exists; when both exist it changes nothing and fails, naming both paths,
because picking one could lose a credential that running services use."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: platform_state
short_description: Create the state directory and move state an earlier release kept in the inventory
description:
  - For each entry of I(legacy), moves C(<inventory_dir>/<legacy path>) to C(<state_dir>/<new path>)
    when it exists and the new one does not, creating I(state_dir) (mode 0700) for it. Empty legacy
    directories left behind are removed. With nothing to move it changes nothing.
  - Fails without changing anything when an item exists in both places, or when I(state_dir) is
    inside I(inventory_dir).
  - Supports check mode (reports what would move).
options:
  state_dir:
    description: The state directory (absolute).
    type: path
    required: true
  inventory_dir:
    description: The inventory directory in use (absolute).
    type: path
    required: true
  legacy:
    description: Legacy path relative to I(inventory_dir) to new path relative to I(state_dir).
    type: dict
    required: true
author:
  - Platform team
"""

EXAMPLES = r"""
- name: Keep the installer's state out of the inventory
  platform_state:
    state_dir: /srv/ml-platform/.state/production
    inventory_dir: /srv/ml-platform/inventories/production
    legacy:
      credentials: credentials
      artifacts/admin.conf: /srv/ml-platform/.state/production/admin.conf
"""

RETURN = r"""
moved:
  description: C(from -> to) for every item moved (or that would be, in check mode).
  returned: always
  type: list
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule


def _inside(path, directory):
    path, directory = os.path.realpath(path), os.path.realpath(directory)
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def plan(state_dir, inventory_dir, legacy):
    """([(source, destination)], [problem]) for the legacy items present."""
    if _inside(state_dir, inventory_dir):
        return [], [f"platform_state_dir {state_dir} is inside the inventory {inventory_dir}: Ansible would parse "
                    "its files as inventory; set platform_state_dir to a directory outside it"]
    moves, problems = [], []
    for old, new in sorted(legacy.items()):
        source, destination = os.path.join(inventory_dir, old), os.path.join(state_dir, new)
        if not os.path.lexists(source) or os.path.realpath(source) == os.path.realpath(destination):
            continue
        if os.path.lexists(destination):
            problems.append(f"{source} and {destination} both exist: keep the one your running cluster uses in "
                            f"{destination} and delete {source}")
        else:
            moves.append((source, destination))
    return moves, problems


def _prune_empty(directory, stop):
    """Remove directory and its now-empty parents up to (not including) stop."""
    while _inside(directory, stop) and os.path.realpath(directory) != os.path.realpath(stop):
        try:
            os.rmdir(directory)
        except OSError:
            return
        directory = os.path.dirname(directory)


def apply(state_dir, moves, inventory_dir):
    if not os.path.isdir(state_dir):
        os.makedirs(state_dir, mode=0o700)
        os.chmod(state_dir, 0o700)
    for source, destination in moves:
        os.makedirs(os.path.dirname(destination), mode=0o700, exist_ok=True)
        shutil.move(source, destination)
        _prune_empty(os.path.dirname(source), inventory_dir)


def main():
    module = AnsibleModule(
        argument_spec={
            "state_dir": {"type": "path", "required": True},
            "inventory_dir": {"type": "path", "required": True},
            "legacy": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    state_dir, inventory_dir = module.params["state_dir"], module.params["inventory_dir"]
    moves, problems = plan(state_dir, inventory_dir, module.params["legacy"])
    if problems:
        module.fail_json(msg="; ".join(problems), moved=[])
    if moves and not module.check_mode:
        apply(state_dir, moves, inventory_dir)
    module.exit_json(changed=bool(moves), moved=[f"{s} -> {d}" for s, d in moves])


if __name__ == "__main__":
    main()
