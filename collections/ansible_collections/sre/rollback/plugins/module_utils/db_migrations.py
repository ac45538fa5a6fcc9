# GPL-3.0-or-later
"""Schema migrations, whatever tool an application uses: an adapter is a set of command
templates and patterns, so that Alembic, Rails, Knex, Flyway, Liquibase (or any other
tool) are driven the same way, and a team can override any part from the inventory.

Adapter keys:
  current              command that prints the database's revision
  current_json_key     read the revision from this key of the command's JSON output ...
  current_pattern      ... or from the first match of this regex (group `revision`)
  downgrade            command that migrates down; ``{target}`` is the revision to reach
                       (``base`` written as the tool's ``base``), ``{revision}`` the one being
                       undone (``downgrade_mode: per_step``), ``{current}``, ``{steps}``
  downgrade_mode       ``once`` (one command to the target) or ``per_step`` (once per migration)
  sql                  command that prints the SQL of the downgrade, if the tool has one;
                       ``sql_builtin: alembic`` renders Alembic's offline SQL in-process
  listing              how the code's migrations are found: ``alembic`` (revision and
                       down_revision of each script), ``files`` (``file_pattern`` on file
                       names, ordered by revision) or ``command`` (``list`` prints them,
                       one per line, matched by ``list_pattern``)
  migrations_dir       where the migration files are, relative to the code directory
  irreversible_pattern a migration whose file matches this regex cannot be undone
  undo_glob            a migration without a matching undo file cannot be undone (Flyway)
  base                 how the tool writes "no migration applied"

Stdlib only; the Alembic SQL preview imports alembic only when it is used.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

BASE = "base"

ADAPTERS: dict[str, dict[str, Any]] = {
    "alembic": {
        "current": "alembic current",
        "current_pattern": r"(?m)^(?P<revision>[0-9A-Za-z_]+)\b",
        "downgrade": "alembic downgrade {target}",
        "downgrade_mode": "once",
        "sql": "",
        "sql_builtin": "alembic",
        "listing": "alembic",
        "migrations_dir": "",
        "irreversible_pattern": (
            r"(?m)^\s*(?:irreversible\s*(?::\s*bool\s*)?=\s*True\b|#\s*irreversible\b)"
        ),
        "base": "base",
    },
    "rails": {
        "current": "bin/rails db:version",
        "current_pattern": r"Current version:\s*(?P<revision>\d+)",
        "downgrade": "bin/rails db:migrate VERSION={target}",
        "downgrade_mode": "once",
        "listing": "files",
        "migrations_dir": "db/migrate",
        "file_pattern": r"^(?P<revision>\d+)_(?P<description>\w+)\.rb$",
        "irreversible_pattern": r"ActiveRecord::IrreversibleMigration|#\s*irreversible\b",
        "base": "0",
    },
    "knex": {
        "current": "npx knex migrate:currentVersion",
        "current_pattern": r"Current Version:\s*(?P<revision>\w+)",
        "downgrade": "npx knex migrate:down",
        "downgrade_mode": "per_step",
        "listing": "files",
        "migrations_dir": "migrations",
        "file_pattern": r"^(?P<revision>\d+)_(?P<description>[\w.-]+?)\.(?:js|cjs|mjs|ts)$",
        "irreversible_pattern": r"//\s*irreversible\b",
        "base": "none",
    },
    "flyway": {
        "current": "flyway info -outputType=json",
        "current_json_key": "schemaVersion",
        "downgrade": "flyway undo -target={target}",
        "downgrade_mode": "once",
        "listing": "files",
        "migrations_dir": "sql",
        "file_pattern": r"^V(?P<revision>\d+(?:[._]\d+)*)__(?P<description>\w+)\.sql$",
        "undo_glob": "U{revision}__*.sql",
        "base": "0",
    },
    "liquibase": {
        # Liquibase rolls back to a tag; which tag the database is at depends on how a team
        # tags, so `current` has no default: set it in database_migration_commands.
        "current": "",
        "current_pattern": r"(?m)^(?P<revision>[\w.-]+)\s*$",
        "downgrade": "liquibase rollback --tag={target}",
        "downgrade_mode": "once",
        "sql": "liquibase rollback-sql --tag={target}",
        "listing": "files",
        "migrations_dir": "changelog",
        "file_pattern": r"^(?P<revision>[\w.-]+?)\.(?:xml|ya?ml|json|sql)$",
        "base": "base",
    },
    "command": {
        "current": "",
        "downgrade": "",
        "downgrade_mode": "once",
        "listing": "command",
        "list": "",
        "list_pattern": r"^(?P<revision>\S+)(?:\s+(?P<irreversible>irreversible))?",
        "base": "base",
    },
}

ALEMBIC_REVISION = re.compile(r"""(?m)^revision(?:\s*:\s*[^=\n]+)?\s*=\s*['"]([^'"]+)['"]""")
ALEMBIC_DOWN = re.compile(
    r"""(?m)^down_revision(?:\s*:\s*[^=\n]+)?\s*=\s*(None|['"][^'"]*['"]|\([^)]*\))"""
)
DOCSTRING = re.compile(r'^(?:#[^\n]*\n|\s)*(?:"""|\'\'\')\s*([^\n]*)')


class MigrationError(Exception):
    """The migration cannot be planned or run; the message says why and what to do."""


@dataclass
class Migration:
    revision: str
    down_revision: str | None
    description: str
    irreversible: bool
    file: str


def adapter_for(tool: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    if tool not in ADAPTERS:
        raise MigrationError(f"unknown migration tool {tool!r}; known: {', '.join(ADAPTERS)}")
    adapter = dict(ADAPTERS[tool])
    for key, value in (overrides or {}).items():
        if value is not None:
            adapter[key] = value
    return adapter


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def shell_argv(command: str, run_as: str) -> list[str]:
    argv = ["/bin/sh", "-c", command]
    if run_as and os.geteuid() == 0 and run_as != "root":
        return ["runuser", "-u", run_as, "--", *argv]
    return argv


def render(template: str, **values: str) -> str:
    """Fill a command template; every value is shell-quoted."""
    try:
        return template.format(**{k: shlex.quote(str(v)) for k, v in values.items()})
    except (KeyError, IndexError) as error:
        raise MigrationError(
            f"command template {template!r} uses an unknown field {error}"
        ) from None


def run_command(
    command: str, cwd: str, run_as: str, env: dict[str, str], timeout: int
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            shell_argv(command, run_as),
            cwd=cwd,
            env=dict(os.environ, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MigrationError(f"`{command}` took longer than {timeout} s") from None


def parse_current(adapter: dict[str, Any], out: str) -> str | None:
    """The revision a `current` command printed; None when it printed none."""
    key = adapter.get("current_json_key")
    if key:
        try:
            value = json.loads(out).get(key)
        except (ValueError, AttributeError):
            return None
        return BASE if value in (None, "", adapter.get("base")) else str(value)
    match = re.search(adapter.get("current_pattern") or r"(?P<revision>\S+)", out)
    if not match:
        return None
    value = match.group("revision")
    return BASE if value == adapter.get("base") else value


def read_current(
    adapter: dict[str, Any], cwd: str, run_as: str, env: dict[str, str], timeout: int
) -> str:
    if not adapter.get("current"):
        raise MigrationError(
            "the migration adapter has no `current` command: set it in the commands "
            "(database_migration_commands.current)"
        )
    proc = run_command(adapter["current"], cwd, run_as, env, timeout)
    found = parse_current(adapter, proc.stdout)
    if found is not None:
        return found
    if proc.returncode == 0 and not proc.stdout.strip():
        return BASE
    raise MigrationError(
        f"cannot read the database's revision: `{adapter['current']}` in {cwd} exited "
        f"{proc.returncode}: {(proc.stdout + proc.stderr).strip()[-1000:]}"
    )


# --------------------------------------------------------------------------------------------
# The code's migrations
# --------------------------------------------------------------------------------------------


def alembic_script_location(code_dir: str) -> str:
    ini = os.path.join(code_dir, "alembic.ini")
    if os.path.isfile(ini):
        with open(ini, encoding="utf-8") as handle:
            match = re.search(r"(?m)^script_location\s*=\s*(\S+)", handle.read())
        if match:
            location = match.group(1).replace("%(here)s", code_dir)
            return os.path.join(code_dir, location)
    for candidate in ("migrations", "alembic"):
        if os.path.isfile(os.path.join(code_dir, candidate, "env.py")):
            return os.path.join(code_dir, candidate)
    return os.path.join(code_dir, "migrations")


def migrations_dir(adapter: dict[str, Any], code_dir: str) -> str:
    if adapter.get("migrations_dir"):
        return os.path.join(code_dir, adapter["migrations_dir"])
    return os.path.join(alembic_script_location(code_dir), "versions")


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def _irreversible(adapter: dict[str, Any], folder: str, revision: str, text: str) -> bool:
    pattern = adapter.get("irreversible_pattern")
    if pattern and re.search(pattern, text):
        return True
    undo = adapter.get("undo_glob")
    if undo:
        wanted = re.compile(
            re.escape(undo.replace("{revision}", revision)).replace(r"\*", ".*") + "$"
        )
        return not any(wanted.match(name) for name in os.listdir(folder))
    return False


def _alembic_migrations(adapter: dict[str, Any], folder: str) -> list[Migration]:
    scripts: dict[str, Migration] = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py") or name.startswith("__"):
            continue
        text = _read(os.path.join(folder, name))
        revision = ALEMBIC_REVISION.search(text)
        if not revision:
            continue
        down = ALEMBIC_DOWN.search(text)
        raw = down.group(1) if down else "None"
        if raw.startswith("("):
            raise MigrationError(
                f"{name} merges branches ({raw}): branched Alembic histories are not supported; "
                "migrate down with alembic by hand"
            )
        doc = DOCSTRING.match(text)
        scripts[revision.group(1)] = Migration(
            revision=revision.group(1),
            down_revision=None if raw == "None" else raw.strip("'\"") or None,
            description=doc.group(1).strip() if doc else "",
            irreversible=_irreversible(adapter, folder, revision.group(1), text),
            file=name,
        )
    return _chain(scripts)


def _chain(scripts: dict[str, Migration]) -> list[Migration]:
    """Oldest first, following down_revision from the root."""
    children: dict[str | None, list[Migration]] = {}
    for script in scripts.values():
        children.setdefault(script.down_revision, []).append(script)
    ordered: list[Migration] = []
    parent: str | None = None
    while children.get(parent):
        following = children[parent]
        if len(following) > 1:
            names = ", ".join(m.revision for m in following)
            raise MigrationError(f"the history branches after {parent or BASE}: {names}")
        ordered.append(following[0])
        parent = following[0].revision
    if len(ordered) != len(scripts):
        lost = sorted(set(scripts) - {m.revision for m in ordered})
        raise MigrationError(f"migrations not connected to the history: {', '.join(lost)}")
    return ordered


def _revision_key(revision: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[._]", revision))


def _file_migrations(adapter: dict[str, Any], folder: str) -> list[Migration]:
    pattern = re.compile(adapter["file_pattern"])
    found = []
    for name in os.listdir(folder):
        match = pattern.match(name)
        if not match:
            continue
        revision = match.group("revision")
        groups = match.groupdict()
        found.append(
            Migration(
                revision=revision,
                down_revision=None,
                description=(groups.get("description") or "").replace("_", " "),
                irreversible=_irreversible(
                    adapter, folder, revision, _read(os.path.join(folder, name))
                ),
                file=name,
            )
        )
    found.sort(key=lambda m: _revision_key(m.revision))
    for older, newer in itertools.pairwise(found):
        newer.down_revision = older.revision
    return found


def _command_migrations(
    adapter: dict[str, Any], cwd: str, run_as: str, env: dict[str, str], timeout: int
) -> list[Migration]:
    if not adapter.get("list"):
        raise MigrationError("listing=command needs a `list` command in the adapter")
    proc = run_command(adapter["list"], cwd, run_as, env, timeout)
    if proc.returncode != 0:
        raise MigrationError(f"`{adapter['list']}` failed: {proc.stderr.strip()[-1000:]}")
    pattern = re.compile(adapter["list_pattern"])
    found: list[Migration] = []
    for line in proc.stdout.splitlines():
        match = pattern.match(line.strip())
        if match:
            found.append(
                Migration(
                    revision=match.group("revision"),
                    down_revision=found[-1].revision if found else None,
                    description=(match.groupdict().get("description") or ""),
                    irreversible=bool(match.groupdict().get("irreversible")),
                    file="",
                )
            )
    return found


def list_migrations(
    adapter: dict[str, Any],
    code_dir: str,
    run_as: str = "",
    env: dict[str, str] | None = None,
    timeout: int = 300,
) -> list[Migration]:
    """The migrations the code in code_dir knows, oldest first."""
    if adapter["listing"] == "command":
        return _command_migrations(adapter, code_dir, run_as, env or {}, timeout)
    folder = migrations_dir(adapter, code_dir)
    if not os.path.isdir(folder):
        raise MigrationError(f"no migrations directory {folder}: is {code_dir} the app's code?")
    if adapter["listing"] == "alembic":
        return _alembic_migrations(adapter, folder)
    return _file_migrations(adapter, folder)


def knows(adapter: dict[str, Any], code_dir: str, revision: str) -> bool:
    try:
        return revision == BASE or any(
            m.revision == revision for m in list_migrations(adapter, code_dir)
        )
    except (MigrationError, OSError):
        return False


# --------------------------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------------------------


def plan(migrations: list[Migration], current: str, target: str) -> dict[str, Any]:
    """What a downgrade from current to target undoes, newest first, and why it may not."""
    order = [m.revision for m in migrations]
    by_id = {m.revision: m for m in migrations}
    result: dict[str, Any] = {
        "current": current,
        "target": target,
        "head": order[-1] if order else BASE,
        "known": current == BASE or current in by_id,
        "target_known": target == BASE or target in by_id,
        "direction": "none",
        "path": [],
        "irreversible": [],
    }
    if not result["known"] or not result["target_known"]:
        result["direction"] = "unknown"
        return result
    position = {BASE: -1, **{rev: i for i, rev in enumerate(order)}}
    if position[target] > position[current]:
        result["direction"] = "up"
    elif position[target] < position[current]:
        result["direction"] = "down"
        undone = list(reversed(order[position[target] + 1 : position[current] + 1]))
        result["path"] = [asdict(by_id[rev]) for rev in undone]
        result["irreversible"] = [rev for rev in undone if by_id[rev].irreversible]
    return result


# --------------------------------------------------------------------------------------------
# SQL preview
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _on_path(folder: str) -> Iterator[None]:
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


def alembic_offline_sql(
    code_dir: str, dialect: str, steps: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """`alembic downgrade FROM:TO --sql` for each step, rendered in this process for the given
    dialect (no database connection). An env.py that expects a connection in
    ``config.attributes['connection']`` gets a mock one of that dialect."""
    try:
        from alembic import command  # optional: only the preview needs it
        from alembic.config import Config
        from sqlalchemy import create_mock_engine
    except ImportError as error:
        return [
            {"step": f"{a}:{b}", "sql": None, "error": f"alembic not importable: {error}"}
            for a, b in steps
        ]
    rendered = []
    with _on_path(code_dir):
        for newer, older in steps:
            buffer = io.StringIO()
            config = Config(output_buffer=buffer)
            config.set_main_option("script_location", alembic_script_location(code_dir))
            config.set_main_option("sqlalchemy.url", f"{dialect}://")
            config.attributes["connection"] = create_mock_engine(
                f"{dialect}://", lambda *_a, **_k: None
            )
            entry: dict[str, Any] = {"step": f"{newer} -> {older}", "sql": None, "error": None}
            try:
                command.downgrade(config, f"{newer}:{older}", sql=True)
                entry["sql"] = buffer.getvalue().strip()
            except Exception as error:  # a migration's own exception, reported
                entry["error"] = f"{type(error).__name__}: {error}"
            rendered.append(entry)
    return rendered


def sql_preview(
    adapter: dict[str, Any],
    code_dir: str,
    dialect: str,
    the_plan: dict[str, Any],
    run_as: str,
    env: dict[str, str],
    timeout: int,
) -> list[dict[str, Any]]:
    """The SQL a downgrade would run, step by step, where the tool can tell; [] otherwise."""
    if the_plan["direction"] != "down":
        return []
    steps = [(m["revision"], m["down_revision"] or BASE) for m in the_plan["path"]]
    if adapter.get("sql"):
        target = adapter.get("base", BASE) if the_plan["target"] == BASE else the_plan["target"]
        command = render(adapter["sql"], target=target, current=the_plan["current"])
        proc = run_command(command, code_dir, run_as, env, timeout)
        return [
            {
                "step": f"{the_plan['current']} -> {the_plan['target']}",
                "sql": proc.stdout.strip()[-20000:] if proc.returncode == 0 else None,
                "error": None if proc.returncode == 0 else proc.stderr.strip()[-1000:],
            }
        ]
    if adapter.get("sql_builtin") == "alembic":
        return alembic_offline_sql(code_dir, dialect, steps)
    return []


def downgrade_commands(adapter: dict[str, Any], the_plan: dict[str, Any]) -> list[str]:
    """The commands that carry out a planned downgrade, in order."""
    if not adapter.get("downgrade"):
        raise MigrationError("the migration adapter has no `downgrade` command")
    target = adapter.get("base", BASE) if the_plan["target"] == BASE else the_plan["target"]
    values = {"target": target, "current": the_plan["current"], "steps": str(len(the_plan["path"]))}
    if adapter.get("downgrade_mode") == "per_step":
        return [
            render(adapter["downgrade"], revision=m["revision"], **values) for m in the_plan["path"]
        ]
    return [render(adapter["downgrade"], revision=the_plan["current"], **values)]
