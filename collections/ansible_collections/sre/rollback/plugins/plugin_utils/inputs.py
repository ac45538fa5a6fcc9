# GPL-3.0-or-later
"""What counts as an input given empty, on the controller: one definition for the roles
(the ``sre.rollback.blank_extra_vars`` lookup) and ``rollbackctl`` (``--target``, ``-e``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_blank(value: Any) -> bool:
    """Empty as an input: None, a blank string, or a list of blank strings (``a,`` is not)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple):
        return all(is_blank(item) for item in value)
    if isinstance(value, Mapping):
        return not value
    return False


def blank_names(names: list[str], extra_vars: Mapping[str, Any]) -> list[str]:
    """The names, of those given, that the extra vars give empty."""
    return [str(name) for name in names if name in extra_vars and is_blank(extra_vars[name])]
