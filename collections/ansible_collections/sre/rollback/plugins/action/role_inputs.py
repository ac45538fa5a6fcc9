# GPL-3.0-or-later
"""Action plugin of ``sre.rollback.role_inputs``: a role's inputs checked in one controller
task per host, its argument spec and its own checks across inputs together.

Ansible validates a role's argument spec in a task of its own (``validate_argument_spec``,
prepended to the role); the collection's roles then check what a spec cannot say (this
input is needed when that one is set, a path must be absolute, a count at least 1) in a
second task. Each controller task costs ~35-40 ms per host on the controller (a worker
fork and the host's variables), ~2 s per task on 50 hosts, before anything is done. This
task does both, with the same validator and the role's own spec file; the playbooks that
use it import the role with ``rolespec_validate: false``.
"""

from __future__ import annotations

import glob
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


class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("entry_point", "problems", "what"))

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
        else:
            result["msg"] = f"The {what} inputs are valid (argument spec '{entry}', own checks)."
        return result

    @staticmethod
    def _entry_spec(role_path: str, entry: str) -> dict[str, Any] | None:
        """The options of the role's argument spec for ``entry`` (None when it has none)."""
        for ext in (".yml", ".yaml"):
            path = os.path.realpath(os.path.join(role_path, "meta", "argument_specs" + ext))
            if os.path.exists(path):
                found = argument_specs(path).get(entry)
                return None if found is None else dict(found.get("options") or {})
        return None
