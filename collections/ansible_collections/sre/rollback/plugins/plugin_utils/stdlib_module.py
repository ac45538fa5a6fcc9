# GPL-3.0-or-later
"""Run a module's work on the host without AnsibleModule: the hot path of a rollback.

Every module call pays for Ansible's module wrapper on the host: the AnsiballZ payload
imports ``ansible.module_utils.basic``, ~0.2 s of CPU before the module does anything
(measured on the test hosts: ``ping`` 0.22 s, a bare ``python3`` 0.02 s). A level-3
rollback makes two calls per host (inspect, roll out), on hosts that also restart the
application: on 2 cores and 10 hosts that is ~2 s of the whole run.

The collection's modules whose work lives in a stdlib-only ``module_utils`` file with an
``execute(params, check_mode) -> (failed, result)`` function (``release_ops`` for the
``release`` module) get an action plugin built on :class:`StdlibModuleAction`. It

1. validates the task's arguments on the controller against the module's own argument spec
   (the same ``ArgumentSpecValidator`` AnsibleModule uses), so bad input fails before the
   host is contacted, with AnsibleModule's message (on both paths below);
2. sends one small Python program through the connection's pipelining channel (stdin of
   the host's interpreter, no temporary files): the ``module_utils`` files the work needs,
   an importer that serves them from memory, and the validated arguments;
3. reads back the JSON result, exactly what the module would have returned.

Whenever that is not possible or not known to be safe, it runs the module the usual way
(``_execute_module``): pipelining off or not supported by the become method, async,
``delegate_to``, a non-POSIX shell, no known Python interpreter yet (the first usual call
discovers it), options marked no_log, ``ANSIBLE_KEEP_REMOTE_FILES``. ``-vvv`` says which.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import os
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import Redactor

display = Display()

PREFIX = "ansible_collections.sre.rollback.plugins.module_utils"
PACKAGES = (
    "ansible_collections",
    "ansible_collections.sre",
    "ansible_collections.sre.rollback",
    "ansible_collections.sre.rollback.plugins",
    PREFIX,
)
PLUGINS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_UTILS = os.path.join(PLUGINS, "module_utils")

# Runs on the host (any Python 3 that runs the collection's modules): serve the shipped
# sources from memory, expand path options as AnsibleModule does there, run execute(),
# print the result as JSON. A crash is a failed result with the traceback, never silence.
BOOTSTRAP = r"""
import importlib
import importlib.machinery
import json
import os
import sys


def _main(blob):
    data = json.loads(blob)
    sources = data["sources"]
    packages = set(data["packages"])

    # A finder and loader by protocol, not by subclassing importlib.abc: importing
    # importlib.abc (and importlib.util) costs ~15 ms of the host's CPU on every call.
    class _Shipped:
        def find_spec(self, fullname, path=None, target=None):
            if fullname in packages or fullname in sources:
                return importlib.machinery.ModuleSpec(
                    fullname, self, is_package=fullname in packages
                )
            return None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            name = module.__name__
            if name in sources:
                code = compile(sources[name], name.replace(".", "/") + ".py", "exec")
                exec(code, module.__dict__)

    sys.meta_path.insert(0, _Shipped())
    params = data["params"]
    for key in data["paths"]:
        if isinstance(params.get(key), str):
            params[key] = os.path.expanduser(os.path.expandvars(params[key]))
    try:
        ops = importlib.import_module(data["entry"])
        failed, result = ops.execute(params, data["check_mode"])
    except Exception:
        import traceback

        failed, result = True, {
            "msg": "the step failed unexpectedly on this host (a bug; please report it with "
            "this message): " + traceback.format_exc()[-3000:]
        }
    result = dict(result)
    result["failed"] = bool(failed)
    result.setdefault("changed", False)
    sys.stdout.write(json.dumps(result, default=str))
    sys.stdout.flush()
"""


class NotShippable(Exception):
    """A module_utils file the work needs imports something the host may not have."""


def _imports(source: str) -> list[str]:
    """The collection module_utils a source imports (anything else from ansible raises)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PREFIX:
                found.extend(f"{PREFIX}.{alias.name}" for alias in node.names)
                continue
            names = [node.module]
        else:
            continue
        for name in names:
            if name.startswith(PREFIX + "."):
                found.append(name)
            elif name.split(".")[0] in ("ansible", "ansible_collections"):
                raise NotShippable(f"it imports {name}")
    return found


def shipped_sources(entry: str, directory: str = MODULE_UTILS) -> dict[str, str]:
    """Full module name -> source of ``entry`` (a module_utils file name) and every
    collection module_utils file it imports, directly or not."""
    sources: dict[str, str] = {}
    todo = [f"{PREFIX}.{entry}"]
    while todo:
        name = todo.pop()
        if name in sources:
            continue
        path = os.path.join(directory, name[len(PREFIX) + 1 :].replace(".", os.sep) + ".py")
        with open(path, encoding="utf-8") as handle:
            sources[name] = handle.read()
        try:
            todo.extend(_imports(sources[name]))
        except NotShippable as exc:
            raise NotShippable(f"{name}: {exc}") from exc
    return sources


def path_options(spec: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The spec with top-level ``path`` options validated as strings (the host expands them,
    not the controller), and their names."""
    paths = [name for name, option in spec.items() if option.get("type") == "path"]
    return {
        name: {**option, "type": "str"} if name in paths else option
        for name, option in spec.items()
    }, paths


def validate(
    spec: dict[str, Any], required_if: list[Any], args: dict[str, Any]
) -> tuple[dict[str, Any], list[str], bool]:
    """(validated parameters, error messages, whether any value is no_log), as AnsibleModule
    would validate them on the host."""
    controller_spec, _paths = path_options(spec)
    checked = ArgumentSpecValidator(controller_spec, required_if=required_if).validate(args)
    errors = [str(error) for error in checked.error_messages]
    return checked.validated_parameters, errors, bool(checked._no_log_values)


# Entry -> its shipped sources as JSON, filled when an action plugin class is defined.
_SHIPPED: dict[str, str] = {}


def _shipped_json(entry: str) -> str:
    if entry not in _SHIPPED:
        _SHIPPED[entry] = json.dumps(shipped_sources(entry))
    return _SHIPPED[entry]


def program(entry: str, params: dict[str, Any], check_mode: bool, paths: list[str]) -> bytes:
    """The Python program the host's interpreter reads from stdin."""
    data = {
        "packages": list(PACKAGES),
        "entry": f"{PREFIX}.{entry}",
        "params": params,
        "check_mode": check_mode,
        "paths": paths,
    }
    # The sources are already JSON (encoded once per run): appended as the last member.
    blob = json.dumps(data, default=str)[:-1] + ', "sources": ' + _shipped_json(entry) + "}"
    return f"{BOOTSTRAP}\n_main({blob!r})\n".encode()


def parse_answer(rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The result the program printed, or a failure that shows what the host said."""
    text = stdout.strip()
    try:
        result = json.loads(text[text.index("{") :]) if "{" in text else None
    except ValueError:
        result = None
    if isinstance(result, dict):
        return result
    return {
        "failed": True,
        "rc": rc,
        "msg": f"the host's Python did not answer (exit {rc}): "
        f"{(stderr.strip() or text)[-2000:] or 'no output'}. Check the interpreter "
        "(ansible_python_interpreter) on this host.",
        "module_stdout": stdout[-2000:],
        "module_stderr": stderr[-2000:],
    }


class StdlibModuleAction(ActionBase):  # type: ignore[misc]
    """Base of the collection's action plugins for stdlib-only modules (see the top)."""

    OPS = ""  # the module_utils file with ARGUMENT_SPEC, REQUIRED_IF and execute()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The strategy imports the action class in the main process before it forks a
        # worker per host and task: what is done here (importing the work's module, ~20 ms
        # of CPU; its import closure, ~20 ms) every worker inherits instead of redoing.
        super().__init_subclass__(**kwargs)
        if cls.OPS:
            importlib.import_module(f"{PREFIX}.{cls.OPS}")
            with contextlib.suppress(NotShippable, OSError):  # said by run(), when used
                _shipped_json(cls.OPS)

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        # An argument can be a URL with credentials (release_repo, a health or flag service
        # URL) that a message or a result quotes: masked before Ansible prints, registers or
        # records it. URLs without credentials are left as they are.
        masked: dict[str, Any] = Redactor().data(self._run_checked(tmp, task_vars), by_name=False)
        return masked

    def _run_checked(self, tmp: Any, task_vars: dict[str, Any] | None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        # Bad input is refused here, on either path, before the host is contacted.
        ops = importlib.import_module(f"{PREFIX}.{self.OPS}")
        params, errors, secret = validate(
            ops.ARGUMENT_SPEC, getattr(ops, "REQUIRED_IF", []), dict(self._task.args)
        )
        if errors:
            result.update(failed=True, msg="; ".join(errors))
            return result
        interpreter, why_not = self._direct_interpreter(task_vars)
        if secret and not why_not:
            why_not = "an option is no_log"
        if why_not:
            display.vvv(f"{self._task.action}: the usual module path ({why_not})")
            wrap_async = bool(self._task.async_val)
            result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        try:
            code = program(
                self.OPS, params, bool(self._task.check_mode), path_options(ops.ARGUMENT_SPEC)[1]
            )
        except (NotShippable, OSError) as exc:
            result.update(failed=True, msg=f"{self._task.action} cannot be sent: {exc}")
            return result
        command = self._connection._shell.build_module_command(
            self._compute_environment_string(), f"#!{interpreter}", ""
        )
        answer = self._low_level_execute_command(command, sudoable=True, in_data=code)
        result.update(parse_answer(answer["rc"], answer["stdout"], answer["stderr"]))
        return result

    def _direct_interpreter(self, task_vars: dict[str, Any]) -> tuple[str, str]:
        """(the host's Python, "") when the direct path can be used, else ("", why not)."""
        if self._task.async_val:
            return "", "async"
        if self._task.delegate_to:
            return "", "delegate_to"
        if getattr(self._connection._shell, "SHELL_FAMILY", "") != "sh":
            return "", "not a POSIX shell"
        if not self._is_pipelining_enabled("new"):
            return "", "pipelining is off or not possible with this become method"
        configured = task_vars.get("ansible_python_interpreter")
        if configured:
            interpreter = str(self._templar.template(configured)).strip()
        else:
            facts = task_vars.get("ansible_facts") or {}
            interpreter = str(facts.get("discovered_interpreter_python") or "").strip()
        if not interpreter or interpreter.startswith("auto"):
            return "", "the host's Python is not known yet (discovered by this call)"
        return interpreter, ""
