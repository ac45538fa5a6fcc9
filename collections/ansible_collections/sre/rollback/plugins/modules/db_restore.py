#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify a named backup, restore it beside the live database, verify, swap it in."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_restore
short_description: Restore a named backup beside the live database, verify it, swap it in; keep the old one
version_added: "0.1.0"
description:
  - C(state=verified) checks a named backup without changing anything - its manifest is
    there, its data file has the recorded size and sha256, it is of this engine, and of the
    expected environment. A missing or corrupted backup fails here.
  - C(state=restored) does the same check first, then restores into a new database beside
    the live one (PostgreSQL C(pg_restore --exit-on-error --jobs N) into C(<db>_restore_<time>);
    SQLite a copy next to the file), verifies the restored copy against the manifest
    (same tables, same row counts, same revision, every sequence at or above max(id)), and
    only then swaps - the live database is renamed C(<db>_pre_rollback_<time>) and the
    restored one takes its name (PostgreSQL - both renames in one transaction, after the
    remaining sessions are ended; SQLite - a hard link and one atomic rename). A failed
    restore or verification drops the copy and leaves the live database untouched.
  - The database set aside stays until C(state=absent) removes it explicitly, so the
    rollback itself can be undone with C(state=reverted), which swaps it back in (the
    database it replaces is set aside in turn).
  - The application must be stopped around C(restored) and C(reverted).
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
  - sre.rollback.db_connection
attributes:
  check_mode:
    support: full
    description: Verifies the backup (read-only) and reports what would be restored and renamed.
  diff_mode:
    support: full
    description: Shows which database holds the live name before and after.
options:
  state:
    description: What to do.
    type: str
    choices: [verified, restored, reverted, absent]
    default: verified
  backup_dir:
    description: Directory of the backups.
    type: path
    required: true
  name:
    description: Backup to verify or restore (C(verified), C(restored)).
    type: str
  set_aside:
    description:
      - A database set aside by an earlier restore (C(<db>_pre_rollback_<time>); for SQLite its
        path), to swap back in (C(reverted)) or drop (C(absent)).
    type: str
  expected_environment:
    description: Refuse a backup whose manifest records another environment. Empty skips the check.
    type: str
    default: ""
  jobs:
    description: Parallel jobs of C(pg_restore).
    type: int
    default: 2
  stamp:
    description: Time stamp of the names (C(YYYYMMDDHHMMSS), UTC); empty means now.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Check the backup named in the runbook before anything else
  sre.rollback.db_restore:
    state: verified
    engine: postgresql
    database: demo_app
    backup_dir: /var/backups/sre-rollback/demo_app
    name: prod-2024-01-15
    expected_environment: prod

- name: Restore it (the app is stopped)
  sre.rollback.db_restore:
    state: restored
    engine: postgresql
    database: demo_app
    backup_dir: /var/backups/sre-rollback/demo_app
    name: prod-2024-01-15
    jobs: 4
  register: restore

- name: Undo the rollback later
  sre.rollback.db_restore:
    state: reverted
    engine: postgresql
    database: demo_app
    backup_dir: /var/backups/sre-rollback/demo_app
    set_aside: "{{ restore.aside }}"
"""

RETURN = r"""
manifest:
  description: The manifest of the backup (verified, restored).
  returned: when name is given
  type: dict
aside:
  description: Name (SQLite path) the live database was renamed to.
  returned: state=restored or reverted
  type: str
restored_as:
  description: The temporary database the backup was restored into before the swap.
  returned: state=restored
  type: str
verification:
  description: Comparison of the restored copy with the manifest (ok, problems, deltas).
  returned: state=restored, not check mode
  type: dict
facts:
  description: Tables, row counts, revision and sequences of the live database after the swap.
  returned: state=restored or reverted, not check mode
  type: dict
set_aside_copies:
  description: Databases set aside by earlier restores.
  returned: always
  type: list
timings:
  description: Seconds spent on checksum, restore, verify and swap.
  returned: state=restored, not check mode
  type: dict
"""

import os
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils import db_backups as bk
from ansible_collections.sre.rollback.plugins.module_utils.db_engines import (
    ASIDE_INFIX,
    CONNECTION_ARGS,
    STAMP_FORMAT,
    Engine,
    EngineError,
    engine_from_params,
)


def verified_manifest(p: dict[str, Any], engine: Engine) -> dict[str, Any]:
    if not p["name"]:
        raise bk.BackupError(f"state={p['state']} needs the name of a backup")
    manifest = bk.verify_backup(p["backup_dir"], p["name"])
    if manifest.get("engine") != engine.engine:
        raise bk.BackupError(
            f"backup {p['name']!r} is a {manifest.get('engine')} backup, not {engine.engine}"
        )
    recorded = manifest.get("environment")
    if p["expected_environment"] and recorded != p["expected_environment"]:
        raise bk.BackupError(
            f"backup {p['name']!r} was taken from the {recorded!r} environment, not "
            f"{p['expected_environment']!r}: refusing to restore it here"
        )
    return manifest


def swap_diff(engine: Engine, incoming: str, aside: str) -> dict[str, str]:
    return {
        "before": f"{engine.database}: live\n",
        "after": f"{engine.database}: from {incoming}\n{aside}: the previous live database\n",
    }


def restore(p: dict[str, Any], engine: Engine, check_mode: bool) -> dict[str, Any]:
    started = time.monotonic()
    manifest = verified_manifest(p, engine)
    timings = {"checksum": round(time.monotonic() - started, 3)}
    stamp = p["stamp"] or time.strftime(STAMP_FORMAT, time.gmtime())
    temp, aside = engine.restored_name(stamp), engine.aside_path(stamp)
    live_exists = engine.exists()
    result: dict[str, Any] = {
        "changed": True,
        "manifest": manifest,
        "restored_as": temp,
        "aside": aside if live_exists else None,
        "diff": swap_diff(engine, f"backup {p['name']}", aside),
    }
    if check_mode:
        return result
    if engine.exists(temp):
        raise EngineError(f"{temp} exists already: a restore with the same stamp ran before")
    try:
        mark = time.monotonic()
        engine.restore_into(
            os.path.join(p["backup_dir"], manifest["file"]),
            temp,
            p["jobs"],
            str(manifest.get("owner") or ""),
        )
        timings["restore"] = round(time.monotonic() - mark, 3)
        mark = time.monotonic()
        facts = engine.facts(temp, p["revision_query"], p["environment_query"])
        verification = bk.compare(facts, manifest, exact=True)
        timings["verify"] = round(time.monotonic() - mark, 3)
        if not verification["ok"]:
            raise bk.BackupError(
                f"the restored copy of {p['name']!r} does not match its manifest: "
                + "; ".join(verification["problems"])
            )
        mark = time.monotonic()
        engine.swap(temp, aside)
        timings["swap"] = round(time.monotonic() - mark, 3)
    except BaseException:
        if engine.exists(temp):
            engine.drop(temp)
        raise
    result.update(
        verification=verification,
        facts=facts,
        timings={**timings, "total": round(time.monotonic() - started, 3)},
    )
    return result


def own_set_aside(engine: Engine, name: str) -> str:
    """`name` when it is a copy set aside from this database; BackupError otherwise."""
    if not name or name not in engine.set_aside():
        raise bk.BackupError(
            f"{name!r} is not a database set aside from {engine.database} "
            f"(no {ASIDE_INFIX}<time> copy by that name); set aside: "
            f"{', '.join(engine.set_aside()) or 'none'}"
        )
    return name


def revert(p: dict[str, Any], engine: Engine, check_mode: bool) -> dict[str, Any]:
    source = own_set_aside(engine, p["set_aside"])
    stamp = p["stamp"] or time.strftime(STAMP_FORMAT, time.gmtime())
    aside = engine.aside_path(stamp)
    result: dict[str, Any] = {
        "changed": True,
        "aside": aside,
        "diff": swap_diff(engine, source, aside),
    }
    if not check_mode:
        engine.swap(source, aside)
        result["facts"] = engine.facts(None, p["revision_query"], p["environment_query"])
    return result


def drop(p: dict[str, Any], engine: Engine, check_mode: bool) -> dict[str, Any]:
    """Drop a copy set aside by a restore: only such a copy, never the live database."""
    name = p["set_aside"] or ""
    if ASIDE_INFIX not in os.path.basename(name) or name == engine.database:
        raise bk.BackupError(
            f"{name!r} is not a database set aside from {engine.database} "
            f"(<db>{ASIDE_INFIX}<time>): only those are dropped here"
        )
    if name not in engine.set_aside():
        return {"changed": False, "dropped": None}
    if not check_mode:
        engine.drop(name)
    return {"changed": True, "dropped": name}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **CONNECTION_ARGS,
            "state": {
                "type": "str",
                "default": "verified",
                "choices": ["verified", "restored", "reverted", "absent"],
            },
            "backup_dir": {"type": "path", "required": True},
            "name": {"type": "str"},
            "set_aside": {"type": "str"},
            "expected_environment": {"type": "str", "default": ""},
            "jobs": {"type": "int", "default": 2},
            "stamp": {"type": "str", "default": ""},
        },
        required_if=[
            ("state", "verified", ["name"]),
            ("state", "restored", ["name"]),
            ("state", "reverted", ["set_aside"]),
            ("state", "absent", ["set_aside"]),
        ],
        supports_check_mode=True,
    )
    p = dict(module.params)
    try:
        engine = engine_from_params(p)
        if p["state"] == "verified":
            result: dict[str, Any] = {
                "changed": False,
                "manifest": verified_manifest(p, engine),
            }
        elif p["state"] == "restored":
            result = restore(p, engine, module.check_mode)
        elif p["state"] == "reverted":
            result = revert(p, engine, module.check_mode)
        else:
            result = drop(p, engine, module.check_mode)
        result["set_aside_copies"] = engine.set_aside()
    except (bk.BackupError, EngineError, OSError) as error:
        module.fail_json(msg=f"{error}. The live database was not changed.")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
