#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a database's state (read-only) and compare it with a backup manifest."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_inspect
short_description: Read a database's revision, environment, row counts and sequences; compare with a backup
version_added: "0.1.0"
description:
  - Read-only. Reports whether the database exists, its migration revision, the environment
    the application recorded in it, exact row counts of every table (in one transaction),
    every sequence against max() of the column it feeds, its size, the copies set aside by
    earlier restores, and the backups of I(backup_dir).
  - With I(compare_to), compares the database with a backup's manifest (C(latest) or a
    name) - with I(exact) (right after a restore) tables, row counts and revision must be
    equal; otherwise row-count changes are reported as deltas and only lost tables (at the
    same revision) and sequences below max(id) are problems.
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
  - sre.rollback.db_connection
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Read-only, so there is nothing to diff.
options:
  backup_dir:
    description: Directory of the backups (listed, and searched for I(compare_to)).
    type: path
    default: ""
  compare_to:
    description: C(latest) (newest backup of this database), a backup name, or empty for no comparison.
    type: str
    default: ""
  exact:
    description: Compare exactly (tables, row counts, revision) instead of reporting deltas.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Compare the database with its latest backup
  sre.rollback.db_inspect:
    engine: postgresql
    database: demo_app
    backup_dir: /var/backups/sre-rollback/demo_app
    compare_to: latest
  register: db
"""

RETURN = r"""
exists:
  description: Whether the database exists.
  returned: always
  type: bool
facts:
  description: tables (row counts), sequences, revision, environment, size, server_version.
  returned: when the database exists
  type: dict
comparison:
  description: ok, problems, deltas (row count changes per table), against the manifest named in C(compared_to).
  returned: when compare_to is set and a backup was found
  type: dict
compared_to:
  description: Name of the backup compared with.
  returned: when compare_to is set
  type: str
backups:
  description: Complete backups of this database, oldest first.
  returned: always
  type: list
latest_backup:
  description: Summary of the newest backup of this database.
  returned: always
  type: dict
set_aside_copies:
  description: Databases set aside by earlier restores (C(<db>_pre_rollback_<time>)).
  returned: always
  type: list
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils import db_backups as bk
from ansible_collections.sre.rollback.plugins.module_utils.db_engines import (
    CONNECTION_ARGS,
    EngineError,
    engine_from_params,
)


def inspect(p: dict[str, Any]) -> dict[str, Any]:
    engine = engine_from_params(p)
    backups = [
        b
        for b in (bk.list_backups(p["backup_dir"]) if p["backup_dir"] else [])
        if b["database"] == engine.database and b["engine"] == engine.engine
    ]
    result: dict[str, Any] = {
        "changed": False,
        "exists": engine.exists(),
        "backups": backups,
        "latest_backup": backups[-1] if backups else None,
        "set_aside_copies": engine.set_aside(),
    }
    if not result["exists"]:
        return result
    facts = engine.facts(None, p["revision_query"], p["environment_query"])
    result["facts"] = facts
    result["sequences_behind"] = bk.sequences_behind(facts["sequences"])
    if p["compare_to"]:
        name = p["compare_to"]
        if name == "latest":
            if not backups:
                result["compared_to"] = None
                return result
            name = backups[-1]["name"]
        manifest = bk.read_manifest(p["backup_dir"], name)
        result["compared_to"] = name
        result["comparison"] = bk.compare(facts, manifest, exact=p["exact"])
        result["comparison"]["manifest_revision"] = manifest.get("revision")
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **CONNECTION_ARGS,
            "backup_dir": {"type": "path", "default": ""},
            "compare_to": {"type": "str", "default": ""},
            "exact": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        result = inspect(dict(module.params))
    except (bk.BackupError, EngineError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
