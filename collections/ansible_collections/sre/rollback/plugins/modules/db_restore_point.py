#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Create a named PostgreSQL restore point with the exact row counts it stands for."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_restore_point
short_description: Create a named restore point, with the row counts and revision it stands for
version_added: "0.1.0"
description:
  - In one transaction, holds writes to every table of I(database) (C(LOCK TABLE ... IN
    SHARE MODE), so readers go on and writers wait a moment, counts the rows of every table,
    reads the migration revision and the environment, and creates the restore point
    I(name) (C(pg_create_restore_point)); then switches the WAL file so the archive gets
    the restore point at once.
  - Recovering to that point (pgBackRest C(--type=name)) gives exactly the returned
    counts and revision, which is how level 5 verifies a restored set.
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.db_connection
attributes:
  check_mode:
    support: full
    description: In check mode nothing is created; the facts are read without the lock.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  name:
    description: The restore point's name (letters, digits, C(._-), up to 63 characters).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Mark the set's restore point
  sre.rollback.db_restore_point:
    engine: postgresql
    database: demo_app
    name: sre-set-20240115T120000Z-1a2b
  register: point
"""

RETURN = r"""
facts:
  description: tables (exact row counts at the restore point), sequences, revision, environment, size.
  returned: always
  type: dict
lsn:
  description: The WAL position of the restore point.
  returned: unless check mode
  type: str
created_at:
  description: The server's time of the restore point (ISO 8601, UTC).
  returned: unless check mode
  type: str
"""

import re
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils.db_engines import (
    CONNECTION_ARGS,
    EngineError,
    Postgres,
    PsqlSession,
    _session_facts,
    engine_from_params,
)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
TABLES_SQL = (
    "SELECT coalesce(string_agg(format('%I.%I', n.nspname, c.relname), ', '), '') "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'"
)


def mark(p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    if not NAME.match(p["name"]):
        raise EngineError(f"restore point name {p['name']!r}: use letters, digits, ._- (<= 63)")
    engine = engine_from_params(p)
    if not isinstance(engine, Postgres):
        raise EngineError("restore points exist for PostgreSQL only (engine=postgresql)")
    result: dict[str, Any] = {"changed": not check_mode}
    with PsqlSession(engine.conn, engine.database) as session:
        session.rows("BEGIN ISOLATION LEVEL REPEATABLE READ")
        tables = session.scalar(TABLES_SQL) or ""
        if tables and not check_mode:
            session.rows(f"LOCK TABLE {tables} IN SHARE MODE")
        result["facts"] = _session_facts(session, p["revision_query"], p["environment_query"])
        if not check_mode:
            row = session.scalar(
                "SELECT pg_create_restore_point('" + p["name"] + "')::text || ' ' || "
                "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            )
            result["lsn"], result["created_at"] = (row or " ").split(" ", 1)
        session.rows("COMMIT")
        if not check_mode:
            session.rows("SELECT pg_switch_wal()")
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={**CONNECTION_ARGS, "name": {"type": "str", "required": True}},
        supports_check_mode=True,
    )
    try:
        result = mark(dict(module.params), module.check_mode)
    except (EngineError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
