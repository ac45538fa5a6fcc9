"""The exit-codes block every command's help ends with, written one way: each command
says what each of its codes means (rollback.py holds the codes themselves)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping


def exit_codes_help(meanings: Mapping[int, str]) -> str:
    """A click epilog: "Exit codes:" and one line (wrapped) per code, kept as written
    (``\\b``)."""
    lines = ["", "\b", "Exit codes:"]
    for code, text in sorted(meanings.items()):
        lines += textwrap.wrap(
            text, width=80, initial_indent=f"  {code}  ", subsequent_indent="     "
        )
    return "\n".join(lines) + "\n"
