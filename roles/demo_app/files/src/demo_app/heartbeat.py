"""The heartbeat: a row every `[database] heartbeat_seconds` from every running app host.

After a restore, the newest heartbeat the database holds says up to when the data reaches:
the time of the disaster minus that row is the data really lost (level 5's measured RPO).
The writer has its own connection, outside the request pool, so it never takes a
connection a request needs nor counts as a pool timeout; a failed write is counted and
logged, never fatal (a database without the table, an unreachable server).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, delete
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from demo_app.config import Settings
from demo_app.db import create_db_engine

log = logging.getLogger("demo_app.heartbeat")
# Rows older than this are pruned, once every PRUNE_EVERY writes.
KEEP = timedelta(days=1)
PRUNE_EVERY = 600

heartbeat = Table(
    "heartbeat",
    MetaData(),
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("host", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


class Heartbeat:
    """Writes a row every `interval` seconds in a thread of its own until `close`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.interval = settings.database_heartbeat_seconds
        self.host = socket.gethostname()[:64]
        self.written = 0
        self.failures = 0
        self.last_written = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        engine = create_db_engine(self.settings, pooled=False)
        connection: Connection | None = None
        due = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    connection = connection or engine.connect()
                    self._write(connection)
                except sa_exc.SQLAlchemyError as error:
                    self._failed(error)
                    if connection is not None:
                        with contextlib.suppress(sa_exc.SQLAlchemyError):
                            connection.close()
                    connection = None
                due = max(due + self.interval, time.monotonic())
                self._stop.wait(due - time.monotonic())
        finally:
            if connection is not None:
                connection.close()
            engine.dispose()

    def _write(self, connection: Connection) -> None:
        now = datetime.now(UTC)
        connection.execute(heartbeat.insert().values(host=self.host, at=now))
        if self.written % PRUNE_EVERY == 0:
            connection.execute(delete(heartbeat).where(heartbeat.c.at < now - KEEP))
        connection.commit()
        self.written += 1
        self.last_written = now.timestamp()

    def _failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.failures == 1 or self.failures % 60 == 0:
            original = getattr(error, "orig", None) or error
            log.warning(
                "heartbeat not written (%d failures so far): %s",
                self.failures,
                " ".join(str(original).split())[:200],
            )
