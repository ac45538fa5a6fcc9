"""The database: one engine with a bounded connection pool, its health and its metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import NullPool, QueuePool

from demo_app.config import SQLITE_DRIVERS, Settings

log = logging.getLogger("demo_app.db")


class DatabaseUnavailable(Exception):
    """The database server cannot be reached, or dropped the connection."""


class PoolExhausted(Exception):
    """No pooled connection came free within pool_timeout."""


@dataclass(frozen=True)
class DatabaseHealth:
    ok: bool
    status: str
    revision: str | None = None


def engine_url(settings: Settings) -> URL:
    """The database URL with the password from the password file, if there is one."""
    url = make_url(settings.database_url)
    if settings.database_password is not None:
        url = url.set(password=settings.database_password)
    return url


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_db_engine(settings: Settings, *, pooled: bool = True) -> Engine:
    """An engine for the configured database; pooled like the server, or one-shot for the CLI.

    SQLite enforces foreign keys for the app; migrations (one-shot engines) leave them off,
    as SQLite schema changes that copy tables need.
    """
    url = engine_url(settings)
    sqlite = url.drivername in SQLITE_DRIVERS
    connect_args: dict[str, Any] = (
        {"check_same_thread": False, "timeout": 15}
        if sqlite
        else {"connect_timeout": settings.database_connect_timeout, "application_name": "demo-app"}
    )
    options: dict[str, Any] = {"future": True, "connect_args": connect_args}
    if pooled:
        options.update(
            poolclass=QueuePool,
            pool_size=settings.database_pool_size,
            max_overflow=0,
            pool_timeout=settings.database_pool_timeout,
            pool_pre_ping=True,
        )
    else:
        options["poolclass"] = NullPool
    engine = create_engine(url, **options)
    if sqlite and pooled:
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def _short(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return " ".join(str(original).split())[:200]


class Database:
    """The app's database access: pooled connections and what the metrics show about them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_db_engine(settings)
        self.pool_size = settings.database_pool_size
        self.pool_timeouts = 0
        self._lock = threading.Lock()
        self._held: list[Connection] = []
        self._stop = threading.Event()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A pooled connection; PoolExhausted or DatabaseUnavailable when there is none."""
        try:
            connection = self.engine.connect()
        except sa_exc.TimeoutError:
            with self._lock:
                self.pool_timeouts += 1
            raise PoolExhausted(
                f"pool exhausted: all {self.pool_size} connections in use"
            ) from None
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
            raise DatabaseUnavailable(_short(error)) from None
        try:
            with connection:
                yield connection
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as error:
            raise DatabaseUnavailable(_short(error)) from None

    def in_use(self) -> int:
        checkedout = getattr(self.engine.pool, "checkedout", None)
        return int(checkedout()) if checkedout else 0

    def health(self) -> DatabaseHealth:
        try:
            with self.connect() as connection:
                connection.execute(text("SELECT 1"))
                if not inspect(connection).has_table("alembic_version"):
                    return DatabaseHealth(
                        False, "schema missing: run bin/demo-app migrate upgrade head"
                    )
                revision = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
        except PoolExhausted as error:
            return DatabaseHealth(False, str(error))
        except DatabaseUnavailable as error:
            return DatabaseHealth(False, f"unreachable: {error}")
        return DatabaseHealth(True, "ok", revision)

    def start_report_job(self, connections: int) -> None:
        """Start the background job that keeps `connections` connections checked out."""
        if connections > 0:
            threading.Thread(
                target=self._hold, args=(connections,), name="report-job", daemon=True
            ).start()

    def _hold(self, connections: int) -> None:
        log.warning(
            "report job keeps %d of %d database connections checked out",
            connections,
            self.pool_size,
        )
        while len(self._held) < connections and not self._stop.is_set():
            try:
                self._held.append(self.engine.connect())
            except sa_exc.SQLAlchemyError as error:
                log.warning("report job is waiting for a connection: %s", _short(error))
                self._stop.wait(1)
        self._stop.wait()

    def close(self) -> None:
        self._stop.set()
        for connection in self._held:
            connection.close()
        self.engine.dispose()
