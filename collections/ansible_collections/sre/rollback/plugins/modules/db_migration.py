#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan and run a schema downgrade with the application's own migration tool."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: db_migration
short_description: Plan and run a schema downgrade to a revision with the app's migration tool
version_added: "0.1.0"
description:
  - Drives the application's real migration tool through an adapter of command templates
    (module_utils C(db_migrations)) - C(alembic) (default), C(rails) (C(db:migrate VERSION=)),
    C(knex) (C(migrate:down) per migration), C(flyway) (C(undo -target=)), C(liquibase)
    (C(rollback --tag=)) or C(command) (everything given). I(commands) overrides any key of
    the adapter, so a team drives its tool without changing the role.
  - Runs in I(code_dir), the code that knows the migrations - down-migrations run with the
    newer release, before the code is switched back.
  - C(state=planned) (read-only) reads the database's current revision with the tool, lists
    the migrations the code knows, the ones a downgrade to I(target) would undo (newest
    first), which of them are irreversible, and the SQL the tool would run where it can tell
    (Alembic's offline C(--sql) mode, rendered for I(dialect); a C(sql) command for others).
    C(refusals) says why the downgrade must not run - the database is ahead of the code, the
    target is unknown or above the current revision, an irreversible migration is in range
    and not allowed.
  - C(state=downgraded) plans again, fails on any refusal before running anything, refuses
    an irreversible migration unless I(allow_irreversible) and I(backup_verified) (a verified
    backup taken just before), runs the downgrade, and checks that the tool left the
    database at I(target).
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
attributes:
  check_mode:
    support: full
    description: Plans (reads the revision) and reports the downgrade; runs nothing.
  diff_mode:
    support: full
    description: The revision before and after.
options:
  state:
    description: Plan, or run the downgrade.
    type: str
    choices: [planned, downgraded]
    default: planned
  tool:
    description: Adapter preset.
    type: str
    choices: [alembic, rails, knex, flyway, liquibase, command]
    default: alembic
  commands:
    description:
      - Overrides of adapter keys (C(current), C(current_json_key), C(current_pattern),
        C(downgrade), C(downgrade_mode), C(sql), C(listing), C(list), C(list_pattern),
        C(migrations_dir), C(file_pattern), C(irreversible_pattern), C(undo_glob), C(base)).
      - Templates get C({target}), C({current}), C({revision}), C({steps}), shell-quoted.
    type: dict
    default: {}
  code_dir:
    description: Directory of the application code that knows the migrations; commands run there.
    type: path
    required: true
  target:
    description: Revision to migrate down to (C(base) for none). Empty plans nothing but the current state.
    type: str
    default: ""
  from_revision:
    description: Plan from this revision instead of reading the database (a backup's revision, before it is restored).
    type: str
    default: ""
  run_as:
    description: OS user the tool runs as (with C(runuser) when the module runs as root).
    type: str
    default: ""
  environment:
    description: Environment variables of the tool's commands (credentials; never logged).
    type: dict
    default: {}
  dialect:
    description: SQL dialect of the Alembic SQL preview (C(postgresql), C(sqlite), C(mysql)...).
    type: str
    default: postgresql
  sql_preview:
    description: Render the SQL of the downgrade when the tool can.
    type: bool
    default: true
  allow_irreversible:
    description: Let a downgrade undo irreversible migrations (only with I(backup_verified)).
    type: bool
    default: false
  backup_verified:
    description: A verified backup of the database was taken just before this downgrade.
    type: bool
    default: false
  backup_name:
    description: Name of that backup (for messages).
    type: str
    default: ""
  releases_dir:
    description: Directory of the app's releases, searched for code that knows a revision this code does not.
    type: path
    default: ""
  timeout:
    description: Seconds one command of the tool may take.
    type: int
    default: 1800
"""

EXAMPLES = r"""
- name: Plan the downgrade with the newer release's code
  sre.rollback.db_migration:
    state: planned
    code_dir: /opt/demo-app/current
    target: "20240115093000"
    run_as: demo-app
    commands:
      current: bin/demo-app migrate current --json
      current_json_key: current
      downgrade: bin/demo-app migrate downgrade {target}
  register: plan

- name: Rails
  sre.rollback.db_migration:
    state: downgraded
    tool: rails
    code_dir: /srv/shop/current
    target: "20240101120000"
    environment:
      RAILS_ENV: production
"""

RETURN = r"""
current:
  description: Revision of the database before the call (or I(from_revision)).
  returned: always
  type: str
target:
  description: Revision to reach.
  returned: always
  type: str
head:
  description: Newest migration of the code.
  returned: always
  type: str
known:
  description: Whether the code knows the current revision (false - the database is ahead of the code).
  returned: always
  type: bool
direction:
  description: C(down), C(none), C(up) or C(unknown).
  returned: always
  type: str
path:
  description: Migrations the downgrade undoes, newest first (revision, description, irreversible, file).
  returned: always
  type: list
irreversible:
  description: Revisions in the path that cannot be undone.
  returned: always
  type: list
migrations:
  description: Every migration the code knows, oldest first.
  returned: always
  type: list
sql:
  description: The SQL of each step where the tool can tell (step, sql, error).
  returned: always
  type: list
refusals:
  description: Why the downgrade must not run; empty when it may.
  returned: always
  type: list
after:
  description: Revision after the downgrade.
  returned: state=downgraded
  type: str
commands:
  description: The commands run (or that would run).
  returned: always
  type: list
"""

import glob
import os
import time
from dataclasses import asdict
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils import db_migrations as mg


def releases_knowing(adapter: dict[str, Any], releases_dir: str, revision: str) -> list[str]:
    if not releases_dir:
        return []
    return [
        path
        for path in sorted(glob.glob(os.path.join(releases_dir, "*")))
        if os.path.isdir(path) and mg.knows(adapter, path, revision)
    ]


def refusals(
    p: dict[str, Any], adapter: dict[str, Any], plan: dict[str, Any], executing: bool
) -> list[str]:
    problems: list[str] = []
    if not plan["known"]:
        others = releases_knowing(adapter, p["releases_dir"], plan["current"])
        hint = (
            f" Releases on this host that know it: {', '.join(others)}."
            if others
            else " No release on this host knows it."
        )
        problems.append(
            f"The database is at revision {plan['current']}, which the code in {p['code_dir']} "
            f"does not know (its newest migration is {plan['head']}): the database is ahead "
            "of the code. Migrate down with the code of the release that migrated it "
            f"(database_migration_code_dir).{hint}"
        )
    if p["target"] and not plan["target_known"]:
        problems.append(
            f"Target revision {p['target']} is not a migration of the code in {p['code_dir']} "
            f"(it knows: base, {', '.join(m['revision'] for m in plan['migrations'])})."
        )
    if plan["direction"] == "up":
        problems.append(
            f"Target revision {p['target']} is above the current revision {plan['current']}: "
            "level 4 only migrates down. Deploy the release that needs it to migrate up."
        )
    blocking = [m for m in plan["path"] if m["irreversible"]]
    if blocking and not p["allow_irreversible"]:
        names = ", ".join(f"{m['revision']} ({m['description']})" for m in blocking)
        problems.append(
            f"Irreversible migration {names} is in range {plan['current']} -> {p['target']}: "
            "refused. Restore a backup taken before it (database_restore_backup), or allow it "
            "(database_allow_irreversible=true), which takes and verifies a pre-rollback backup "
            "first."
        )
    elif blocking and executing and not p["backup_verified"]:
        problems.append(
            f"Irreversible migration(s) {', '.join(m['revision'] for m in blocking)} are allowed "
            "only after a verified backup of the database (backup_verified); there is none."
        )
    return problems


def make_plan(p: dict[str, Any], adapter: dict[str, Any], executing: bool) -> dict[str, Any]:
    env = {str(k): str(v) for k, v in p["environment"].items()}
    migrations = mg.list_migrations(adapter, p["code_dir"], p["run_as"], env, p["timeout"])
    current = p["from_revision"] if p["from_revision"] and not executing else ""
    if not current:
        current = mg.read_current(adapter, p["code_dir"], p["run_as"], env, p["timeout"])
    plan = mg.plan(migrations, current, p["target"] or current)
    plan["migrations"] = [asdict(m) for m in migrations]
    plan["refusals"] = refusals(p, adapter, plan, executing)
    plan["sql"] = (
        mg.sql_preview(adapter, p["code_dir"], p["dialect"], plan, p["run_as"], env, p["timeout"])
        if p["sql_preview"] and not plan["refusals"]
        else []
    )
    plan["commands"] = mg.downgrade_commands(adapter, plan) if plan["direction"] == "down" else []
    plan["tool"] = p["tool"]
    plan["code_dir"] = p["code_dir"]
    return plan


def downgrade(module: AnsibleModule, p: dict[str, Any], adapter: dict[str, Any]) -> dict[str, Any]:
    plan = make_plan(p, adapter, executing=True)
    if plan["refusals"]:
        module.fail_json(msg=" ".join(plan["refusals"]) + " Nothing was changed.", **plan)
    plan["changed"] = plan["direction"] == "down"
    plan["diff"] = {
        "before": f"revision: {plan['current']}\n",
        "after": f"revision: {plan['target']}\n",
    }
    if module.check_mode or not plan["changed"]:
        plan["after"] = plan["current"] if not plan["changed"] else plan["target"]
        return plan
    env = {str(k): str(v) for k, v in p["environment"].items()}
    started = time.monotonic()
    for command in plan["commands"]:
        proc = mg.run_command(command, p["code_dir"], p["run_as"], env, p["timeout"])
        if proc.returncode != 0:
            after = mg.read_current(adapter, p["code_dir"], p["run_as"], env, p["timeout"])
            plan["changed"] = after != plan["current"]
            output = (proc.stdout + proc.stderr).strip()[-1500:].rstrip(".")
            module.fail_json(
                msg=f"the migration tool failed: `{command}` exited {proc.returncode}: {output}. "
                f"The database is at {after} (it was at {plan['current']})",
                after=after,
                **plan,
            )
    after = mg.read_current(adapter, p["code_dir"], p["run_as"], env, p["timeout"])
    plan.update(after=after, seconds=round(time.monotonic() - started, 3))
    if after != plan["target"]:
        module.fail_json(
            msg=f"the migration tool exited 0 but the database is at {after}, not at the "
            f"target {plan['target']}",
            **plan,
        )
    return plan


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "default": "planned", "choices": ["planned", "downgraded"]},
            "tool": {"type": "str", "default": "alembic", "choices": sorted(mg.ADAPTERS)},
            "commands": {"type": "dict", "default": {}},
            "code_dir": {"type": "path", "required": True},
            "target": {"type": "str", "default": ""},
            "from_revision": {"type": "str", "default": ""},
            "run_as": {"type": "str", "default": ""},
            "environment": {"type": "dict", "default": {}, "no_log": True},
            "dialect": {"type": "str", "default": "postgresql"},
            "sql_preview": {"type": "bool", "default": True},
            "allow_irreversible": {"type": "bool", "default": False},
            "backup_verified": {"type": "bool", "default": False},
            "backup_name": {"type": "str", "default": ""},
            "releases_dir": {"type": "path", "default": ""},
            "timeout": {"type": "int", "default": 1800},
        },
        required_if=[("state", "downgraded", ["target"])],
        supports_check_mode=True,
    )
    p = dict(module.params)
    if not os.path.isdir(p["code_dir"]):
        module.fail_json(msg=f"code_dir {p['code_dir']} does not exist on this host")
    try:
        adapter = mg.adapter_for(p["tool"], p["commands"])
        if p["state"] == "planned":
            result = make_plan(p, adapter, executing=False)
            result["changed"] = False
        else:
            result = downgrade(module, p, adapter)
    except (mg.MigrationError, OSError) as error:
        module.fail_json(msg=f"{error}. Nothing was changed.")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
