# GPL-3.0-or-later
"""Action plugin of ``sre.rollback.role_inputs``: a role's inputs checked in one controller
task per host, its argument spec and its own checks across inputs together.

Ansible validates a role's argument spec in a task of its own (``validate_argument_spec``,
prepended to the role); the collection's roles then check what a spec cannot say (this
input is needed when that one is set, a path must be absolute, a count at least 1) in a
second task. Each controller task costs ~35-40 ms per host on the controller (a worker
fork and the host's variables), ~2 s per task on 50 hosts, before anything is done. This
task does both, with the same validator and the role's own spec file; the playbooks that
use it import the role with ``rolespec_validate: false``. With ``then`` it also runs the
role's first action on the host in the same task once the inputs are good (the release
plan's inspection: one task per host less, ~1.5 s on 50 hosts), as Ansible's own ``template``
action runs ``copy``. With ``values`` it returns what the role worked out on each host with
its inputs (how the release rolls out), for the tasks that run once for all hosts to read
from ``hostvars``: a ``set_fact`` per host would cost another task per host.
"""

from __future__ import annotations

import glob
import importlib
import os
from typing import Any

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ROLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "roles")

# Spec file -> its argument_specs. The collection's own are read when the strategy imports
# this class in the main process, before it forks the workers: a worker reading the file
# again costs ~15 ms per host (the loader's cache hands out deep copies).
_SPECS: dict[str, dict[str, Any]] = {}


def argument_specs(path: str) -> dict[str, Any]:
    if path not in _SPECS:
        with open(path, encoding="utf-8") as handle:
            _SPECS[path] = (yaml.load(handle, Loader=_LOADER) or {}).get("argument_specs") or {}  # noqa: S506
    return _SPECS[path]


for _path in glob.glob(os.path.join(ROLES, "*", "meta", "argument_specs.yml")):
    argument_specs(os.path.realpath(_path))

# The actions the collection's roles run with `then`, imported here for the same reason: the
# strategy imports only this task's own action (role_inputs) in the main process, and a worker
# importing the release action itself spends ~60 ms of CPU per host preparing its work.
THEN_ACTIONS = ("release",)
for _name in THEN_ACTIONS:
    importlib.import_module(f"ansible_collections.sre.rollback.plugins.action.{_name}")


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("entry_point", "problems", "then", "values", "what"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        role = self._task._role
        if role is None:
            result.update(
                failed=True,
                msg="sre.rollback.role_inputs checks the inputs of the role it runs in: "
                "use it in a role's tasks.",
            )
            return result
        entry = self._task.args.get("entry_point") or role._from_files.get("tasks", "main")
        problems = self._task.args.get("problems") or []
        if not isinstance(problems, list):
            result.update(failed=True, msg="problems must be a list of messages.")
            return result
        values = self._task.args.get("values") or {}
        if not isinstance(values, dict):
            result.update(failed=True, msg="values must be a mapping of names to values.")
            return result
        what = self._task.args.get("what") or role.get_name(include_role_fqcn=False)
        spec = self._entry_spec(role.get_role_path(), entry)
        if spec is None:
            result.update(
                failed=True,
                msg=f"The role {role.get_name()} has no argument spec '{entry}' in "
                "meta/argument_specs.yml: name an existing entry_point.",
            )
            return result
        # As validate_argument_spec does: the role's variables as the task sees them, then the
        # parameters given to the role itself.
        args = {name: task_vars[name] for name in spec if name in task_vars}
        args = self._templar.template(args)
        args.update(self._templar.template(dict(getattr(role, "_role_params", {}) or {})))
        checked = ArgumentSpecValidator(spec).validate(args)
        errors = [str(message) for message in checked.error_messages]
        result.update(changed=False, argument_errors=errors, problems=[str(p) for p in problems])
        if errors or problems:
            said = " ".join(
                text if text.endswith((".", "!", "?")) else f"{text}."
                for text in (*errors, *result["problems"])
            )
            result.update(failed=True, msg=f"Bad {what} inputs: {said} Nothing was changed.")
            return result
        result["msg"] = f"The {what} inputs are valid (argument spec '{entry}', own checks)."
        if values:
            result["values"] = values
        then = self._task.args.get("then")
        if then is None:
            return result
        actions = list(then.items()) if isinstance(then, dict) else []
        if len(actions) != 1 or not isinstance(actions[0][1], dict):
            result.update(
                failed=True,
                msg="then takes one action and its options, e.g. "
                "then: {sre.rollback.release: {app_root: /opt/app}}. Nothing was changed.",
            )
            return result
        ((name, options),) = actions
        done = self._then(str(name), dict(options), task_vars)
        done.setdefault("inputs", result["msg"])
        if values:
            done.setdefault("values", values)
        return done

    def _then(
        self, name: str, options: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        """Run action or module ``name`` with ``options`` as this task (same host, connection,
        check mode, environment), picking its handler as TaskExecutor does."""
        task = self._task.copy()
        task.action, task.args = name, options
        actions = self._shared_loader_obj.action_loader
        own = actions.has_plugin(name, collection_list=task.collections)
        handler = actions.get(
            name if own else "ansible.legacy.normal",
            task=task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
            collection_list=task.collections if own else None,
        )
        done: dict[str, Any] = handler.run(task_vars=task_vars)
        return done

    @staticmethod
    def _entry_spec(role_path: str, entry: str) -> dict[str, Any] | None:
        """The options of the role's argument spec for ``entry`` (None when it has none)."""
        for ext in (".yml", ".yaml"):
            path = os.path.realpath(os.path.join(role_path, "meta", "argument_specs" + ext))
            if os.path.exists(path):
                found = argument_specs(path).get(entry)
                return None if found is None else dict(found.get("options") or {})
        return None
