# GPL-3.0-or-later
"""The read-only probes' check mode (health_check, flag_evaluation): by default a probe is
not run in check mode, since nothing was changed to wait for. The option's documentation is
doc_fragments/probe_check_mode.py."""

from __future__ import annotations

from typing import Any

OPTION: dict[str, Any] = {"skip_in_check_mode": {"type": "bool", "default": True}}


def exit_if_skipped(module: Any, msg: str, **result: Any) -> None:
    """In check mode with ``skip_in_check_mode`` (the default), end the module call:
    unchanged, ``skipped``, ``msg`` and the probe's empty ``result``."""
    if module.check_mode and module.params["skip_in_check_mode"]:
        module.exit_json(changed=False, skipped=True, msg=msg, **result)
