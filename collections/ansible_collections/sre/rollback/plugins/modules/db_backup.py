#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Take a named, verified database backup with its manifest, or list the backups."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_backup
short_description: Take a named, verified database backup with a manifest; list backups
version_added: "0.1.0"
description:
  - C(state=present) backs a database up under a name, in one module call. PostgreSQL.
    C(pg_dump -Fc) from a snapshot exported by a transaction that, in the same snapshot,
    counts the rows of every table and reads the migration revision, the environment the
    application recorded and every sequence. SQLite - the online backup API, facts read from
    the copy. Then the manifest (JSON) is written - checksum (sha256) and size of the dump,
    server and tool versions, app release, revision, environment, per-table row counts,
    sequences, time.
  - The dump is verified before it counts as a backup (PostgreSQL C(pg_restore --list) holds
    the data of every table counted; SQLite C(PRAGMA quick_check) of the copy). A dump that
    is empty, has no tables, or whose tool exited non-zero fails the task and leaves nothing
    behind; a backup exists only once its manifest is written (last).
  - Files are mode 0600 in a 0700 directory; PostgreSQL backups are owned by I(os_user) so
    that its tools can read them. An existing backup is never overwritten.
  - Retention keeps the newest I(keep) backups of the same I(kind) (never one named in
    I(protect)), so that pre-rollback backups do not push scheduled ones out.
  - C(state=listed) lists the complete backups of the directory, oldest first.
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
  - sre.rollback.db_connection
attributes:
  check_mode:
    support: full
    description: Reports the name and path the backup would get, and what retention would prune.
  diff_mode:
    support: none
    description: No diff, a backup adds files and replaces nothing; the result names them.
options:
  state:
    description: Take a backup, or list them.
    type: str
    choices: [present, listed]
    default: present
  backup_dir:
    description: Directory of the backups (created 0700).
    type: path
    required: true
  name:
    description:
      - Name of the backup. Empty means C(<environment>-<YYYY-MM-DD>) (with the time appended
        when that name is taken).
    type: str
    default: ""
  environment:
    description: Environment name of the inventory, for the default name and the manifest.
    type: str
    default: ""
  release:
    description: Application release running against the database, recorded in the manifest.
    type: str
    default: ""
  kind:
    description: Why the backup was taken.
    type: str
    choices: [manual, scheduled, pre-rollback]
    default: manual
  keep:
    description: Backups of this I(kind) kept; older ones are deleted after a successful backup.
    type: int
    default: 7
  protect:
    description: Backup names retention never deletes (a backup a rollback is about to restore).
    type: list
    elements: str
    default: []
  run_id:
    description: Id of the run, recorded in the manifest.
    type: str
    default: ""
  reason:
    description: Why, recorded in the manifest.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Back up the app's database before a deploy
  sre.rollback.db_backup:
    engine: postgresql
    database: demo_app
    backup_dir: /var/backups/sre-rollback/demo_app
    environment: prod
    release: v1.2.3-stable-g8bbba239ff
    keep: 14
  register: backup

- name: List the backups
  sre.rollback.db_backup:
    state: listed
    engine: sqlite
    database: /var/lib/demo-app/app.db
    backup_dir: /var/backups/sre-rollback/demo-app
"""

RETURN = r"""
name:
  description: Name of the backup taken (or that would be taken in check mode).
  returned: state=present
  type: str
  sample: prod-2024-01-15
path:
  description: The data file of the backup.
  returned: state=present
  type: str
manifest:
  description: The manifest written (checksum, size, revision, tables with row counts...).
  returned: state=present and not check mode
  type: dict
verified:
  description: Whether the dump was verified (checksum of the written file, archive holds every table).
  returned: state=present
  type: bool
pruned:
  description: Backups deleted by retention.
  returned: state=present
  type: list
backups:
  description: Complete backups of the directory, oldest first (name, created_at, kind, revision, size...).
  returned: always
  type: list
timings:
  description: Seconds spent dumping, hashing and verifying.
  returned: state=present and not check mode
  type: dict
"""

import os
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils import db_backups as bk
from ansible_collections.sre.rollback.plugins.module_utils.db_engines import (
    CONNECTION_ARGS,
    Engine,
    EngineError,
    Postgres,
    engine_from_params,
    file_owner,
)
from ansible_collections.sre.rollback.plugins.module_utils.hostio import sha256_file


def ensure_dir(path: str, owner: tuple[int, int] | None) -> bool:
    """The backup directory, 0700 and owned by whoever writes the dumps; True if changed."""
    changed = False
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700)
        changed = True
    if os.stat(path).st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)
        changed = True
    if owner is not None and (os.stat(path).st_uid, os.stat(path).st_gid) != owner:
        os.chown(path, *owner)
        changed = True
    return changed


def pick_name(p: dict[str, Any]) -> str:
    taken = {b["name"] for b in bk.list_backups(p["backup_dir"])}
    if p["name"]:
        name = bk.check_name(p["name"])
        if name in taken or os.path.exists(bk.manifest_path(p["backup_dir"], name)):
            raise bk.BackupError(
                f"a backup named {name!r} exists in {p['backup_dir']}: backups are never "
                "overwritten; choose another name"
            )
        return name
    return bk.default_name(p["environment"], taken)


def verify_dump(engine: Engine, path: str, facts: dict[str, Any]) -> None:
    """The dump holds what the facts say it holds; BackupError otherwise."""
    if os.path.getsize(path) == 0:
        raise bk.BackupError(f"the dump {path} is empty")
    if not facts["tables"]:
        raise bk.BackupError(
            f"the database {engine.database} has no tables: an empty database is not a "
            "backup worth keeping (wrong database name?)"
        )
    if isinstance(engine, Postgres):
        missing = set(facts["tables"]) - engine.archive_tables(path)
        if missing:
            raise bk.BackupError(
                f"the dump lacks the data of {', '.join(sorted(missing))} (pg_restore --list)"
            )


def build_manifest(
    p: dict[str, Any], engine: Engine, name: str, path: str, facts: dict[str, Any], started: float
) -> dict[str, Any]:
    return {
        "schema": bk.SCHEMA,
        "name": name,
        "engine": engine.engine,
        "database": engine.database,
        "file": os.path.basename(path),
        "sha256": facts.pop("sha256"),
        "size": os.path.getsize(path),
        "server_version": facts.get("server_version"),
        "tool": facts.get("tool"),
        "owner": facts.get("owner"),
        "release": p["release"] or None,
        "revision": facts.get("revision"),
        "environment": facts.get("environment") or p["environment"] or None,
        "inventory_environment": p["environment"] or None,
        "tables": facts["tables"],
        "rows": sum(facts["tables"].values()),
        "sequences": facts.get("sequences", {}),
        "kind": p["kind"],
        "run_id": p["run_id"] or None,
        "reason": p["reason"] or None,
        "host": os.uname().nodename,
        "epoch": round(started, 3),
        "created_at": bk.utc_stamp(started),
        "duration": round(time.time() - started, 3),
    }


def take(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    engine = engine_from_params(p)
    if not engine.exists():
        raise EngineError(f"no database {engine.database} to back up on this host")
    owner = file_owner(engine)
    name = pick_name(p)
    path = bk.data_path(p["backup_dir"], name, engine.engine)
    result: dict[str, Any] = {"changed": True, "name": name, "path": path, "verified": False}
    if check_mode:
        current = len(bk.list_backups(p["backup_dir"]))
        result.update(pruned=[], would_prune=max(0, current + 1 - p["keep"]))
        return result
    ensure_dir(p["backup_dir"], owner)
    partial = f"{path}.partial"
    if os.path.exists(partial):
        os.unlink(partial)
    started = time.time()
    timings: dict[str, float] = {}
    try:
        facts = engine.dump(partial, p["revision_query"], p["environment_query"])
        timings["dump"] = round(time.time() - started, 3)
        mark = time.time()
        verify_dump(engine, partial, facts)
        facts["sha256"] = sha256_file(partial)
        timings["verify"] = round(time.time() - mark, 3)
        os.chmod(partial, 0o600)
        if owner is not None:
            os.chown(partial, *owner)
        os.rename(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    manifest = build_manifest(p, engine, name, path, facts, started)
    bk.write_private_json(bk.manifest_path(p["backup_dir"], name), manifest, owner)
    pruned = bk.prune(p["backup_dir"], p["keep"], {name, *p["protect"]}, p["kind"])
    result.update(manifest=manifest, verified=True, pruned=pruned, timings=timings)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **CONNECTION_ARGS,
            "state": {"type": "str", "default": "present", "choices": ["present", "listed"]},
            "backup_dir": {"type": "path", "required": True},
            "name": {"type": "str", "default": ""},
            "environment": {"type": "str", "default": ""},
            "release": {"type": "str", "default": ""},
            "kind": {
                "type": "str",
                "default": "manual",
                "choices": ["manual", "scheduled", "pre-rollback"],
            },
            "keep": {"type": "int", "default": 7},
            "protect": {"type": "list", "elements": "str", "default": []},
            "run_id": {"type": "str", "default": ""},
            "reason": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = dict(module.params)
    if p["keep"] < 1:
        module.fail_json(msg="keep must be at least 1: the backup just taken is always kept")
    try:
        result: dict[str, Any] = (
            take(p, module.check_mode) if p["state"] == "present" else {"changed": False}
        )
        result["backups"] = bk.list_backups(p["backup_dir"])
    except (bk.BackupError, EngineError, OSError) as error:
        module.fail_json(msg=f"backup failed, nothing was recorded: {error}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
