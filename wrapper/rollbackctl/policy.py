"""Find and load an environment's rollback policy (``inventories/<env>/policy.yml``).

Only the file handling lives here: the schema, defaults and validation are the
collection's (``sre.rollback`` plugin_utils.policy), shared with the playbooks and AWX.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    Policy,
    PolicyError,
    default_policy,
    validate_policy,
)

POLICY_FILE = "policy.yml"
INVENTORIES = Path("inventories")


class PolicyFileError(Exception):
    """The policy cannot be found, read or validated; the message says what to fix."""


def load_policy(inventory: str | None = None, policy_file: Path | None = None) -> Policy:
    """The policy from ``policy_file``, else the inventory's ``policy.yml``, else the
    runbook's defaults."""
    if policy_file is not None:
        return load_policy_file(policy_file)
    if inventory is None:
        return default_policy()
    directory = inventory_directory(inventory)
    found = find_policy_file(directory)
    if found is None:
        return dataclasses.replace(
            default_policy(),
            source=f"built-in defaults (the runbook): {directory} has no {POLICY_FILE}",
        )
    return load_policy_file(found)


def inventory_directory(inventory: str) -> Path:
    """The directory of an inventory given as a directory, a file in one, or an environment
    name under ``./inventories``."""
    path = Path(inventory)
    if not path.exists() and (INVENTORIES / inventory).is_dir():
        path = INVENTORIES / inventory
    if not path.exists():
        raise PolicyFileError(
            f"inventory {inventory!r} not found: give its directory (inventories/prod), a "
            f"file in it, or the name of a directory under {INVENTORIES}/"
        )
    return path if path.is_dir() else path.parent


def find_policy_file(directory: Path) -> Path | None:
    """``policy.yml`` in the inventory directory; for a generated inventory whose
    ``group_vars`` is a symlink (the test rig's ``.testhosts``), the one next to the
    symlink's target."""
    candidates = [directory / POLICY_FILE]
    group_vars = directory / "group_vars"
    if group_vars.is_symlink():
        candidates.append(group_vars.resolve().parent / POLICY_FILE)
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def load_policy_file(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyFileError(f"{path}: cannot read the policy file: {error.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyFileError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
    try:
        return validate_policy(document, str(path))
    except PolicyError as error:
        raise PolicyFileError(str(error)) from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    hint = ""
    if "block scalar" in str(getattr(error, "context", "")):
        hint = "; quote conditions that start with '>' (impact: \">= 50%\")"
    return f"{where}{problem}{hint}"
