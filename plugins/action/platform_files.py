"""platform_files on the controller in the task's own process; on a node, the module as usual.

The module (plugins/modules/platform_files.py) converges a node's small files in one module
run. Where the task runs on the controller itself, as the controller's user (delegate_to:
localhost with the local connection, no become: render-compute.yml writes every node's files
for review this way, and helm.yml installs helm), shipping it as a module costs a Python start
and its imports per host (about a quarter of a CPU-second each, most of render-compute.yml's
time at scale). Then this action converges the same entries with the module's own function
(converge), with the same check mode, diff and result. Anywhere else (an SSH or podman
connection, become) it runs the module.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.mlplatform.baremetal.plugins.modules.platform_files import converge


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("files",))

    def _on_the_controller(self) -> bool:
        return self._connection.transport == "local" and not self._play_context.become

    def run(self, tmp=None, task_vars=None):
        if not self._on_the_controller():
            result = super().run(tmp, task_vars)
            result.update(self._execute_module(module_name="mlplatform.baremetal.platform_files", task_vars=task_vars))
            return result
        result = super().run(tmp, task_vars)
        files = self._task.args.get("files")
        if not isinstance(files, dict):
            return dict(result, failed=True, msg="files must be a dictionary of path to entry")
        try:
            result.update(converge(files, self._task.check_mode, self._task.diff))
        except (ValueError, OSError) as err:
            return dict(result, failed=True, msg=str(err))
        return result
