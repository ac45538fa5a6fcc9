"""A throwaway PostgreSQL cluster for the database tests and the level 4 bench: the
newest server binaries installed, run as the `postgres` OS user when root, on a Unix
socket only, stopped and removed afterwards. And the database modules' parameters."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.db_engines import (
    CONNECTION_ARGS,
    PgConn,
    newest_pg_bindir,
)
from tests.support.ports import free_port

BINDIR = newest_pg_bindir()
OS_USER = "postgres" if os.geteuid() == 0 else ""


def as_db_user(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as the database's OS user (checked, output captured as text)."""
    prefix = ["runuser", "-u", OS_USER, "--"] if OS_USER else []
    return subprocess.run([*prefix, *argv], check=True, capture_output=True, text=True, **kw)


@contextmanager
def cluster(
    parent: str, prefix: str, settings: str, stop: str, *dirs: str
) -> Iterator[tuple[PgConn, Path]]:
    """A new cluster in a folder under ``parent`` (with ``dirs`` made in it, owned by the
    OS user), started with the server ``settings`` (``-c name=value ...``), stopped with
    pg_ctl's ``stop`` mode and removed at the end. Yields the connection and the folder."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if OS_USER:
        entry = pwd.getpwnam(OS_USER)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    data, sock, port = base / "data", base / "sock", free_port()
    as_db_user(["mkdir", str(sock), *(str(base / name) for name in dirs)])
    as_db_user([f"{BINDIR}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    options = f"-k {sock} -p {port} -c listen_addresses='' {settings}"
    as_db_user(
        [
            f"{BINDIR}/pg_ctl",
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        cwd="/",
    )
    try:
        yield (
            PgConn(host=str(sock), port=port, user="postgres", os_user=OS_USER, bindir=BINDIR),
            base,
        )
    finally:
        subprocess.run(
            [
                *(["runuser", "-u", OS_USER, "--"] if OS_USER else []),
                *(f"{BINDIR}/pg_ctl", "-D", str(data), "-m", stop, "-w", "stop"),
            ],
            capture_output=True,
            cwd="/",
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def db_params(**given: Any) -> dict[str, Any]:
    """The parameters of the database modules (db_backup, db_restore...): the connection
    defaults, a manual backup kept 7 deep with nothing protected, no run, then ``given``."""
    p = {k: v.get("default") for k, v in CONNECTION_ARGS.items()}
    p.update(
        kind="manual",
        keep=7,
        protect=[],
        run_id="",
        reason="",
        stamp="",
        set_aside=None,
    )
    p.update(given)
    return p


def pg_params(conn: PgConn, backup_dir: str, **given: Any) -> dict[str, Any]:
    """``db_params`` for the ``shop`` database of a ``cluster``, backups in ``backup_dir``."""
    connection: dict[str, Any] = dict(
        engine="postgresql",
        database="shop",
        login_host=conn.host,
        login_port=conn.port,
        login_user=conn.user,
        os_user=OS_USER,
        pg_bindir=BINDIR,
        backup_dir=backup_dir,
    )
    return db_params(**{**connection, **given})
