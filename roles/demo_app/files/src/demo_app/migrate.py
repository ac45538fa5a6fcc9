"""Schema migrations (Alembic) run with the configured database, and the app_meta table.

Revision ids are timestamps (20240101120000). A migration whose data change cannot be
undone says so with a module attribute `irreversible = True` (and a `# irreversible`
comment line); a downgrade across it is refused before anything changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection

from demo_app import APP_ROOT
from demo_app.config import Settings
from demo_app.db import create_db_engine

MIGRATIONS_DIR = APP_ROOT / "migrations"
BASE = "base"
log = logging.getLogger("demo_app.migrate")


class MigrationError(Exception):
    """A migration command cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    description: str
    irreversible: bool


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def _as_revision(script: Script) -> Revision:
    down = script.down_revision
    return Revision(
        revision=script.revision,
        down_revision=down if isinstance(down, str) else None,
        description=(script.doc or "").strip(),
        irreversible=bool(getattr(script.module, "irreversible", False)),
    )


def history() -> list[Revision]:
    """This release's migrations, oldest first."""
    return [_as_revision(script) for script in reversed(list(_scripts().walk_revisions()))]


def head() -> str:
    return str(_scripts().get_current_head())


@contextmanager
def _transaction(settings: Settings) -> Iterator[Connection]:
    engine = create_db_engine(settings, pooled=False)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def _current(connection: Connection) -> str:
    return MigrationContext.configure(connection).get_current_revision() or BASE


def status(settings: Settings) -> dict[str, Any]:
    """Where the database stands against this release's migrations."""
    with _transaction(settings) as connection:
        current = _current(connection)
    revisions = [item.revision for item in history()]
    known = current == BASE or current in revisions
    start = revisions.index(current) + 1 if current in revisions else 0
    return {
        "current": current,
        "head": head(),
        "known": known,
        "pending": revisions[start:] if known else [],
        "irreversible": [item.revision for item in history() if item.irreversible],
    }


def _check_known(current: str) -> None:
    if current != BASE and current not in {item.revision for item in history()}:
        raise MigrationError(
            f"the database is at revision {current}, which this release does not know "
            "(a newer release migrated it). Run the migration with that release's "
            "bin/demo-app, or restore a backup."
        )


def _resolve(target: str) -> str:
    if target in {"head", "heads"}:
        return head()
    if target != BASE and target not in {item.revision for item in history()}:
        known = ", ".join(item.revision for item in history())
        raise MigrationError(f"unknown revision {target!r}; this release knows: base, {known}")
    return target


def _record_environment(connection: Connection, environment: str) -> None:
    updated = connection.execute(
        text("UPDATE app_meta SET value = :value WHERE key = 'environment'"), {"value": environment}
    )
    if updated.rowcount == 0:
        connection.execute(
            text("INSERT INTO app_meta (key, value) VALUES ('environment', :value)"),
            {"value": environment},
        )


def upgrade(settings: Settings, target: str = "head") -> dict[str, str]:
    """Migrate up to target and record the environment name in app_meta."""
    with _transaction(settings) as connection:
        before = _current(connection)
        _check_known(before)
        goal = _resolve(target)
        command.upgrade(_alembic_config(connection), goal)
        after = _current(connection)
        if after != BASE:
            _record_environment(connection, settings.app_environment)
    return {"before": before, "after": after}


def downgrade_path(current: str, target: str) -> list[Revision]:
    """The migrations a downgrade from current to target undoes, newest first."""
    by_id = {item.revision: item for item in history()}
    path: list[Revision] = []
    cursor: str | None = current
    while cursor not in {None, BASE, target}:
        revision = by_id[str(cursor)]
        path.append(revision)
        cursor = revision.down_revision
    if target != BASE and cursor != target:
        raise MigrationError(
            f"revision {target} is not below the current revision {current}; "
            "use `migrate upgrade` to move forward"
        )
    return path


def downgrade(settings: Settings, target: str) -> dict[str, str]:
    """Migrate down to target; refused up front when an irreversible migration is in the way."""
    with _transaction(settings) as connection:
        before = _current(connection)
        _check_known(before)
        goal = _resolve(target)
        blocking = [item for item in downgrade_path(before, goal) if item.irreversible]
        if blocking:
            names = ", ".join(f"{item.revision} ({item.description})" for item in blocking)
            raise MigrationError(
                f"cannot migrate down from {before} to {goal}: irreversible migration {names} "
                "is in the way. Nothing was changed. Restore a database backup taken before "
                "it instead."
            )
        try:
            command.downgrade(_alembic_config(connection), goal)
        except CommandError as error:
            raise MigrationError(str(error)) from None
        after = _current(connection)
    return {"before": before, "after": after}


def auto_migrate(settings: Settings) -> None:
    """At start, with auto_migrate on: move to head unless a newer release migrated past it."""
    current = status(settings)
    if not current["known"]:
        log.warning(
            "auto_migrate skipped: database revision %s is newer than this release",
            current["current"],
        )
        return
    if current["pending"]:
        result = upgrade(settings)
        log.info("auto_migrate: %s -> %s", result["before"], result["after"])


def history_table() -> list[dict[str, Any]]:
    return [asdict(item) for item in history()]
