#!/usr/bin/python
"""Documentation of the platform_gitops_tree action (plugins/action/platform_gitops_tree.py),
which runs entirely on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: platform_gitops_tree
short_description: Write a layer's files of the GitOps tree on the controller, in one task
description:
  - Renders each file as a header and its documents as sorted block YAML, writes only the files
    whose bytes differ, and removes the C(.yaml) files under the owned prefixes that are no longer
    declared. Runs in the controller process (an action plugin); supports check mode.
options:
  dest:
    description: Root of the tree (the Git checkout).
    type: path
    required: true
  files:
    description: Relative path to the list of documents the file holds.
    type: dict
    required: true
  owned_prefixes:
    description: Relative path prefixes this layer owns; undeclared files under them are removed.
    type: list
    elements: str
    default: []
author:
  - Platform team
"""

EXAMPLES = r"""
- name: Write the network layer's files
  platform_gitops_tree:
    dest: /srv/platform-tree
    files:
      manifests/network/resources/resources.yaml: [{apiVersion: v1, kind: ConfigMap, metadata: {name: x}}]
    owned_prefixes: [apps/network-, manifests/network/]
"""

RETURN = r"""
written:
  description: Files written (relative to dest).
  returned: always
  type: list
removed:
  description: Stale files removed (relative to dest).
  returned: always
  type: list
"""
