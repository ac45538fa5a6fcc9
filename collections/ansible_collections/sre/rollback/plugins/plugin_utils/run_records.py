# GPL-3.0-or-later
"""The one writer of run records, and their published schema.

A run record (``<record dir>/<run id>.json``) has one owner: this module. Its shape is the
versioned JSON Schema next to it (``run_record.schema.json``, version ``SCHEMA_VERSION``),
which ships with the collection. Writers:

* the ``sre.rollback.run_record`` callback builds the record from what Ansible saw
  (``new_record`` for its first lines) and writes it with ``write``;
* ``rollbackctl`` adds what only it knows (settled hosts after a cancel, its notes and
  final status, validation, escalation, messages sent, trigger timings) with ``add``, and
  only with ``add``; a new kind of section is declared in the schema first (``add``
  refuses a section the schema does not know).

API: ``write(path, record, redactor=None)``, ``add(path, record, redactor=None, *,
notes=(), **sections)``, ``new_record(...)``, ``problems(record)`` (the schema's
complaints, [] when valid), ``schema()``, ``SCHEMA_FILE``, ``SCHEMA_VERSION``.

When ``$SRE_ROLLBACK_RECORD_CHECK`` names a file (the test suite sets it), every write is
validated and logged there (its path, and ``INVALID`` lines), and the suite fails at its
end on any invalid record (tests/conftest.py).

Controller only. ``problems`` needs ``jsonschema`` (a dependency of rollbackctl); writing
does not, so an AWX execution environment without it still writes records.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.levels import LEVEL_NAMES
from ansible_collections.sre.rollback.plugins.plugin_utils.run_identity import real_user
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import SCHEMA, finalize

SCHEMA_VERSION = SCHEMA
SCHEMA_FILE = Path(__file__).with_name("run_record.schema.json")
CHECK_ENV = "SRE_ROLLBACK_RECORD_CHECK"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_record(playbook: str, level: int | None, run_id: str | None = None) -> dict[str, Any]:
    """The first lines of every record: the run's playbook and level, who ran it, where,
    when, ``running`` with no host and no task yet."""
    record: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "playbook": playbook,
        "level": level,
        "level_name": LEVEL_NAMES.get(level) if level else None,
        "who": real_user(),
        "controller": socket.gethostname(),
        "started": now(),
        "status": "running",
        "hosts": {},
        "tasks": [],
        "notes": [],
    }
    if run_id:
        record["run_id"] = run_id
    return record


def write(
    path: str | os.PathLike[str],
    record: dict[str, Any],
    redactor: Any = None,
    masked: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Derive the computed sections (run_metrics.finalize), mask secrets (``masked``, else
    the redactor by value), write atomically: 0600 in a 0700 directory."""
    finalize(record)
    if masked is not None:
        data = masked(record)
    else:
        data = redactor.data(record, by_name=False) if redactor is not None else record
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.parent.chmod(0o700)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True, default=str)
    os.replace(tmp, target)
    _log_for_check(target, data)


def add(
    path: str | os.PathLike[str],
    record: dict[str, Any],
    redactor: Any = None,
    *,
    notes: Iterable[str] = (),
    **sections: Any,
) -> dict[str, Any]:
    """THE way to add to a record what the callback cannot know, and write it: each
    section (a top-level key the schema declares: ``status``, ``hosts``, ``policy``,
    ``validation``, ``escalation``, ``messages``, ``trigger``...) replaces the record's
    value of that name; the notes are appended. Returns the record."""
    known = schema()["properties"]
    unknown = sorted(set(sections) - set(known))
    if unknown:
        raise ValueError(
            f"run record section(s) {', '.join(unknown)} not in {SCHEMA_FILE.name}: declare "
            "them in the schema first"
        )
    record.update(sections)
    record.setdefault("notes", []).extend(notes)
    write(path, record, redactor)
    return record


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def problems(record: Mapping[str, Any]) -> list[str]:
    """What the schema finds wrong with a record, one line each ([]: valid)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(
            validator.iter_errors(record), key=lambda e: [str(p) for p in e.absolute_path]
        )
    ]


def _log_for_check(path: Path, data: Mapping[str, Any]) -> None:
    """Under the test suite: the record's path, and what the schema finds wrong with what
    was just written (a record rewritten later may be gone by the suite's end)."""
    log = os.environ.get(CHECK_ENV)
    if not log:
        return
    lines = [f"{path.resolve()}\n"]
    lines += [f"INVALID\t{path.resolve()}\t{problem}\n" for problem in problems(data)]
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("".join(lines))
