"""Feature flags: a flagd-shaped JSON file, re-read when it changes, evaluated in the app.

Evaluations use the OFREP response shape (key, value, reason, variant), so what
GET /flags/<name> shows is exactly what the checkout code decides with.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("demo_app.flags")

STATES = ("ENABLED", "DISABLED")
TOP_LEVEL_KEYS = frozenset({"flags", "$schema", "$evaluators", "metadata"})
FLAG_KEYS = frozenset({"state", "variants", "defaultVariant", "targeting", "metadata"})


@dataclass(frozen=True)
class Evaluation:
    """The result of evaluating one flag, in OFREP's vocabulary."""

    key: str
    value: Any
    reason: str
    variant: str | None = None
    error_code: str | None = None
    error_details: str | None = None

    def as_ofrep(self) -> dict[str, Any]:
        if self.error_code:
            return {
                "key": self.key,
                "errorCode": self.error_code,
                "errorDetails": self.error_details,
            }
        return {
            "key": self.key,
            "value": self.value,
            "reason": self.reason,
            "variant": self.variant,
            "metadata": {},
        }


def _flag_problems(name: str, flag: Any) -> list[str]:
    if not isinstance(flag, dict):
        return [f"flag {name!r}: must be an object"]
    problems = [f"flag {name!r}: unknown key {key!r}" for key in sorted(set(flag) - FLAG_KEYS)]
    if flag.get("state") not in STATES:
        problems.append(f"flag {name!r}: state must be ENABLED or DISABLED")
    variants = flag.get("variants")
    if not isinstance(variants, dict) or not variants:
        problems.append(f"flag {name!r}: variants must be a non-empty object")
    elif flag.get("defaultVariant") not in variants:
        problems.append(
            f"flag {name!r}: defaultVariant {flag.get('defaultVariant')!r} is not one of "
            f"the variants ({', '.join(sorted(variants))})"
        )
    return problems


def validate_flags_document(document: Any) -> list[str]:
    """What is wrong with a parsed flags file; empty when it can be used."""
    if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
        return ['must be a JSON object with a "flags" object: {"flags": {"name": {...}}}']
    problems = [f"unknown top-level key {key!r}" for key in sorted(set(document) - TOP_LEVEL_KEYS)]
    for name, flag in sorted(document["flags"].items()):
        problems.extend(_flag_problems(name, flag))
    return problems


def evaluate(key: str, flags: dict[str, Any], default: Any = False) -> Evaluation | None:
    """Evaluate a flag like flagd does without targeting rules; None when it does not exist."""
    flag = flags.get(key)
    if flag is None:
        return None
    problems = _flag_problems(key, flag)
    if problems:
        return Evaluation(key, default, "ERROR", None, "PARSE_ERROR", "; ".join(problems))
    if flag["state"] == "DISABLED":
        return Evaluation(key, default, "DISABLED")
    variant = flag["defaultVariant"]
    reason = "DEFAULT" if flag.get("targeting") else "STATIC"
    return Evaluation(key, flag["variants"][variant], reason, variant)


class FlagStore:
    """The flags file as the app sees it; re-read whenever its mtime, size or inode change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reload_errors = 0
        self.loads = 0
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._flags: dict[str, Any] = {}

    def _current_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _refresh(self) -> None:
        signature = self._current_signature()
        if signature == self._signature:
            return
        self._signature = signature
        if signature is None:
            log.warning("flags file %s is gone: no flags are defined", self.path)
            self._flags = {}
            return
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            self.reload_errors += 1
            log.error("flags file %s not re-read, keeping the previous flags: %s", self.path, error)
            return
        problems = validate_flags_document(document)
        if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
            self.reload_errors += 1
            log.error("flags file %s ignored: %s", self.path, "; ".join(problems))
            return
        self._flags = dict(document["flags"])
        self.loads += 1
        log.info("flags loaded from %s: %s", self.path, ", ".join(sorted(self._flags)) or "none")

    def flags(self) -> dict[str, Any]:
        with self._lock:
            self._refresh()
            return dict(self._flags)

    def evaluate(self, key: str, default: Any = False) -> Evaluation | None:
        return evaluate(key, self.flags(), default)

    def is_on(self, key: str) -> bool:
        """True only when the flag exists, is enabled and its variant's value is true."""
        evaluation = self.evaluate(key, default=False)
        return evaluation is not None and evaluation.value is True

    def clear(self) -> None:
        """Forget the cached flags: the next evaluation re-reads the file."""
        with self._lock:
            self._signature = (-1, -1, -1)
