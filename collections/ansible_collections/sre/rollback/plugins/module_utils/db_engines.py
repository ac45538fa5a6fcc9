# GPL-3.0-or-later
"""The two database engines the database level drives: PostgreSQL and SQLite.

PostgreSQL is driven through its own client tools (psql, pg_dump, pg_restore), run as the
database's OS user (``runuser``) when the module runs as root, so no Python driver is
needed on the database host. SQLite uses the standard library (online backup API).

Both give the same *facts* of a database: tables with exact row counts, sequences with
their last value and the max of the column they feed, the migration revision and the
environment the application recorded (each read with a configurable query), size and
server version. A PostgreSQL backup takes these facts in the snapshot ``pg_dump`` dumps
(``pg_export_snapshot``), a SQLite backup from the copy it made.

Stdlib only; no Ansible imports.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any, cast

DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
ASIDE_INFIX = "_pre_rollback_"
STAMP_FORMAT = "%Y%m%d%H%M%S"

FACTS_SQL = r"""
SELECT json_build_object(
  'tables', coalesce((
    SELECT json_object_agg(n.nspname || '.' || c.relname,
      (xpath('/row/c/text()', query_to_xml(
         format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname),
         false, true, '')))[1]::text::bigint)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'), '{}'::json),
  'sequences', coalesce((
    SELECT json_object_agg(sn.nspname || '.' || s.relname, json_build_object(
      'table', tn.nspname || '.' || t.relname,
      'column', a.attname,
      'last_value', ps.last_value,
      'max', (xpath('/row/m/text()', query_to_xml(
         format('SELECT max(%I) AS m FROM %I.%I', a.attname, tn.nspname, t.relname),
         false, true, '')))[1]::text))
    FROM pg_depend d
    JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    JOIN pg_namespace sn ON sn.oid = s.relnamespace
    JOIN pg_class t ON t.oid = d.refobjid
    JOIN pg_namespace tn ON tn.oid = t.relnamespace
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
    JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i')), '{}'::json),
  'size', pg_database_size(current_database()),
  'server_version', current_setting('server_version'),
  'owner', (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())
)
"""


SWAP_SQL = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname IN (:'live', :'restored') AND pid <> pg_backend_pid();
BEGIN;
ALTER DATABASE :"live" RENAME TO :"aside";
ALTER DATABASE :"restored" RENAME TO :"live";
ALTER DATABASE :"aside" WITH ALLOW_CONNECTIONS true;
COMMIT;
"""


# What libpq says when the server cannot be reached (down, wrong host or port, no socket).
UNREACHABLE = re.compile(
    r"could not connect to server|Connection refused|"
    r"could not translate host name|No route to host|timeout expired|Is the server running|"
    r"the database system is (starting up|shutting down|in recovery mode)|"
    r"server closed the connection unexpectedly",
    re.IGNORECASE,
)


class EngineError(Exception):
    """A database operation failed; the message says which and why."""


def check_db_name(name: str) -> str:
    if not DB_NAME_RE.match(name or ""):
        raise EngineError(
            f"database name {name!r} is not valid: letters, digits, '_', '$' or '-', "
            "starting with a letter or '_', up to 63 characters"
        )
    return name


def aside_name(database: str, stamp: str) -> str:
    """`<db>_pre_rollback_<time>`, cut to PostgreSQL's 63 characters."""
    suffix = f"{ASIDE_INFIX}{stamp}"
    return database[: 63 - len(suffix)] + suffix


def _int_or_none(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


def normalise_facts(facts: dict[str, Any]) -> dict[str, Any]:
    facts["tables"] = {str(k): int(v) for k, v in (facts.get("tables") or {}).items()}
    sequences = facts.get("sequences") or {}
    for seq in sequences.values():
        seq["last_value"] = _int_or_none(seq.get("last_value"))
        seq["max"] = _int_or_none(seq.get("max"))
    facts["sequences"] = sequences
    return facts


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def newest_pg_bindir() -> str:
    """Debian's newest /usr/lib/postgresql/<v>/bin with pg_dump (the client must be at least
    the server's version), else '' (tools from PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_dump"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p)],
    )
    return os.path.dirname(found[-1]) if found else ""


@dataclass
class PgConn:
    """How to reach a PostgreSQL server: a socket directory or host, port, login role,
    password (never on a command line: PGPASSWORD), and the OS user the tools run as."""

    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = field(default="", repr=False)
    os_user: str = ""
    bindir: str = ""
    maintenance_db: str = "postgres"
    timeout: int = 3600

    def tool(self, name: str) -> str:
        bindir = self.bindir or newest_pg_bindir()
        return os.path.join(bindir, name) if bindir else name

    def prefix(self) -> list[str]:
        if not self.os_user or pwd.getpwuid(os.geteuid()).pw_name == self.os_user:
            return []
        if os.geteuid() != 0:
            raise EngineError(
                f"the PostgreSQL tools must run as {self.os_user}: run the module as root "
                "(become) or as that user"
            )
        return ["runuser", "-u", self.os_user, "--"]

    def conn_args(self) -> list[str]:
        args = ["-p", str(self.port)]
        if self.host:
            args[:0] = ["-h", self.host]
        if self.user:
            args += ["-U", self.user]
        return args

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PGCONNECT_TIMEOUT="10", PGAPPNAME="sre.rollback")
        env.pop("PGPASSWORD", None)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def where(self) -> str:
        return f"{self.host or 'the local socket'}:{self.port}"

    def failure(self, what: str, stderr: str) -> EngineError:
        """The error for a failed tool: a server that cannot be reached is said plainly,
        with what to check, instead of the tool's raw connection error."""
        if not UNREACHABLE.search(stderr):
            return EngineError(f"{what}: {stderr}")
        first = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
        reason = first.rsplit("failed: ", 1)[-1].removeprefix("psql: error: ")
        return EngineError(
            f"The PostgreSQL database at {self.where()} is not reachable ({reason[:300]}). "
            "Check that the server runs on the database host (systemctl status postgresql), "
            f"that it listens on port {self.port}, and that database_login_host and "
            "database_login_port point at it."
        )

    def owner_ids(self) -> tuple[int, int] | None:
        """uid and gid files must have for the tools to read them (None: current user)."""
        if not self.prefix():
            return None
        entry = pwd.getpwnam(self.os_user)
        return entry.pw_uid, entry.pw_gid

    def run(self, tool: str, *args: str, stdin: str | None = None, timeout: int = 0) -> str:
        argv = [*self.prefix(), self.tool(tool), *args]
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=self.env(),
                cwd="/",
                timeout=timeout or self.timeout,
                check=False,
                umask=0o077,
            )
        except subprocess.TimeoutExpired:
            raise EngineError(f"{tool} took longer than {timeout or self.timeout} s") from None
        except FileNotFoundError:
            raise EngineError(f"{argv[0]} is not installed on this host") from None
        if proc.returncode != 0:
            raise self.failure(
                f"{tool} {' '.join(a for a in args if not a.startswith('--snapshot'))[:300]} "
                f"failed (exit {proc.returncode})",
                proc.stderr.strip()[-1500:],
            )
        return proc.stdout

    def psql(self, database: str, sql: str, **variables: str) -> str:
        """Run SQL (one script, stops at the first error) and return its unaligned output.
        Values are psql variables, interpolated quoted by psql itself: :'name' as a literal,
        :"name" as an identifier."""
        settings = [arg for key, value in variables.items() for arg in ("-v", f"{key}={value}")]
        return self.run(
            "psql",
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            *settings,
            *self.conn_args(),
            "-d",
            check_db_name(database),
            stdin=sql,
        )


class PsqlSession:
    """One psql process kept open, so that several statements (and a pg_dump in parallel)
    share a transaction and its snapshot. Each statement is followed by markers; an error
    is told by psql's :ERROR variable (psql >= 11)."""

    END = "__sre_rollback_end__"
    ERROR = "__sre_rollback_error__"

    def __init__(self, conn: PgConn, database: str) -> None:
        self._conn = conn
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        argv = [
            *conn.prefix(),
            conn.tool("psql"),
            "-XAtq",
            *conn.conn_args(),
            "-d",
            check_db_name(database),
        ]
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                env=conn.env(),
                cwd="/",
            )
        except FileNotFoundError:
            raise EngineError(f"{argv[0]} is not installed on this host") from None
        # Both exist: Popen was given PIPE for them.
        self._stdin = cast(IO[str], self._proc.stdin)
        self._stdout = cast(IO[str], self._proc.stdout)

    def __enter__(self) -> PsqlSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _errors(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace").strip()[-1500:]

    def send(self, line: str) -> None:
        try:
            self._stdin.write(line + "\n")
            self._stdin.flush()
        except BrokenPipeError:
            raise self._conn.failure("psql ended", self._errors()) from None

    def rows(self, sql: str) -> list[str]:
        """Lines printed by one statement; EngineError when it failed."""
        self.send(sql.strip().rstrip(";") + ";")
        self.send(f"\\if :ERROR\n\\echo {self.ERROR}\n\\endif\n\\echo {self.END}")
        lines: list[str] = []
        while True:
            line = self._stdout.readline()
            if not line:
                raise self._conn.failure("psql ended", self._errors())
            line = line.rstrip("\n")
            if line == self.END:
                break
            lines.append(line)
        if self.ERROR in lines:
            raise EngineError(f"query failed: {self._errors()}")
        return lines

    def scalar(self, sql: str) -> str | None:
        lines = self.rows(sql)
        return lines[0] if lines else None

    def optional(self, sql: str) -> str | None:
        """A configured query (revision, environment) that may not apply to this database
        (no such table yet): None instead of an error, the transaction goes on."""
        if not sql:
            return None
        try:
            return self.scalar(sql)
        except EngineError:
            return None

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                self._stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stderr.close()


def _session_facts(
    session: PsqlSession, revision_query: str, environment_query: str
) -> dict[str, Any]:
    raw = session.scalar(FACTS_SQL)
    facts: dict[str, Any] = json.loads(raw or "{}")
    facts["revision"] = session.optional(revision_query)
    facts["environment"] = session.optional(environment_query)
    return normalise_facts(facts)


class Postgres:
    """A PostgreSQL database on this host: facts, dump, restore into a new database, swap."""

    engine = "postgresql"

    def __init__(self, conn: PgConn, database: str) -> None:
        self.conn = conn
        self.database = check_db_name(database)

    def exists(self, name: str | None = None) -> bool:
        out = self.conn.psql(
            self.conn.maintenance_db,
            "SELECT count(*) FROM pg_database WHERE datname = :'name'",
            name=name or self.database,
        )
        return out.strip() == "1"

    def facts(
        self, name: str | None = None, revision_query: str = "", environment_query: str = ""
    ) -> dict[str, Any]:
        with PsqlSession(self.conn, name or self.database) as session:
            session.send("\\set ON_ERROR_ROLLBACK on")
            session.rows("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            facts = _session_facts(session, revision_query, environment_query)
            session.rows("COMMIT")
        return facts

    def dump(self, path: str, revision_query: str, environment_query: str) -> dict[str, Any]:
        """pg_dump -Fc into path, and the facts of the very snapshot it dumps."""
        with PsqlSession(self.conn, self.database) as session:
            session.rows("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = session.scalar("SELECT pg_export_snapshot()") or ""
            session.send("\\set ON_ERROR_ROLLBACK on")
            argv = [
                *self.conn.prefix(),
                self.conn.tool("pg_dump"),
                "-Fc",
                f"--snapshot={snapshot}",
                *self.conn.conn_args(),
                "-f",
                path,
                self.database,
            ]
            with tempfile.TemporaryFile() as errors:
                dumper = subprocess.Popen(
                    argv, stderr=errors, env=self.conn.env(), cwd="/", umask=0o077
                )
                try:
                    facts = _session_facts(session, revision_query, environment_query)
                    code = dumper.wait(timeout=self.conn.timeout)
                finally:
                    if dumper.poll() is None:
                        dumper.kill()
                        dumper.wait()
                errors.seek(0)
                message = errors.read().decode("utf-8", "replace").strip()[-1500:]
            session.rows("COMMIT")
        if code != 0:
            raise EngineError(f"pg_dump of {self.database} failed (exit {code}): {message}")
        facts["tool"] = f"pg_dump -Fc ({self.version('pg_dump')})"
        return facts

    def version(self, tool: str) -> str:
        return self.conn.run(tool, "--version").strip()

    def archive_tables(self, path: str) -> set[str]:
        """Tables whose rows the archive holds (its TOC, read without restoring)."""
        listing = self.conn.run("pg_restore", "--list", path)
        tables = set()
        for line in listing.splitlines():
            match = re.match(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ", line)
            if match:
                tables.add(f"{match.group(1)}.{match.group(2)}")
        return tables

    def database_props(self) -> dict[str, str] | None:
        out = self.conn.psql(
            self.conn.maintenance_db,
            "SELECT json_build_object('owner', pg_get_userbyid(datdba), 'encoding', "
            "pg_encoding_to_char(encoding), 'collate', datcollate, 'ctype', datctype) "
            "FROM pg_database WHERE datname = :'name'",
            name=self.database,
        ).strip()
        return json.loads(out) if out else None

    def restore_into(self, path: str, target: str, jobs: int, owner: str) -> None:
        """Create `target` like the live database and pg_restore the archive into it,
        stopping at the first error."""
        props = self.database_props() or {}
        variables = {"target": check_db_name(target), "owner": owner or props.get("owner") or ""}
        sql = 'CREATE DATABASE :"target" TEMPLATE template0'
        if variables["owner"]:
            sql += ' OWNER :"owner"'
        if props:
            sql += " ENCODING :'encoding' LC_COLLATE :'collate' LC_CTYPE :'ctype'"
            variables.update(
                encoding=props["encoding"], collate=props["collate"], ctype=props["ctype"]
            )
        self.conn.psql(self.conn.maintenance_db, sql, **variables)
        self.conn.run(
            "pg_restore",
            "--exit-on-error",
            f"--jobs={max(1, jobs)}",
            *self.conn.conn_args(),
            "-d",
            target,
            path,
        )

    def drop(self, name: str) -> None:
        if name == self.database:
            raise EngineError(f"refusing to drop the live database {name}")
        self.conn.psql(
            self.conn.maintenance_db,
            'DROP DATABASE IF EXISTS :"name" WITH (FORCE)',
            name=check_db_name(name),
        )

    def swap(self, restored: str, aside: str, attempts: int = 3) -> None:
        """Rename the live database to `aside` and `restored` into its place, in one
        transaction: at no moment is there no database under the live name."""
        names = {
            "live": self.database,
            "restored": check_db_name(restored),
            "aside": check_db_name(aside),
        }
        reopen = 'ALTER DATABASE :"live" WITH ALLOW_CONNECTIONS true'
        self.conn.psql(
            self.conn.maintenance_db, 'ALTER DATABASE :"live" WITH ALLOW_CONNECTIONS false', **names
        )
        for attempt in range(attempts):
            try:
                self.conn.psql(self.conn.maintenance_db, SWAP_SQL, **names)
                return
            except EngineError as error:
                if "being accessed by other users" not in str(error) or attempt == attempts - 1:
                    self.conn.psql(self.conn.maintenance_db, reopen, **names)
                    raise
                time.sleep(1)

    def restored_name(self, stamp: str) -> str:
        suffix = f"_restore_{stamp}"
        return self.database[: 63 - len(suffix)] + suffix

    def aside_path(self, stamp: str) -> str:
        return aside_name(self.database, stamp)

    def set_aside(self) -> list[str]:
        pattern = self.database.replace("_", "\\_") + ASIDE_INFIX.replace("_", "\\_") + "%"
        out = self.conn.psql(
            self.conn.maintenance_db,
            "SELECT datname FROM pg_database WHERE datname LIKE :'pattern' ORDER BY datname",
            pattern=pattern,
        )
        return [line for line in out.splitlines() if line]


# --------------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------------


def _sqlite_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_optional(con: sqlite3.Connection, sql: str) -> str | None:
    if not sql:
        return None
    try:
        row = con.execute(sql).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None or row[0] is None else str(row[0])


def _sqlite_sequences(con: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """AUTOINCREMENT counters (sqlite_sequence) against max(rowid) of their tables."""
    exists = con.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'"
    ).fetchone()[0]
    if not exists:
        return {}
    sequences = {}
    for name, seq in con.execute("SELECT name, seq FROM sqlite_sequence").fetchall():
        top = con.execute(f"SELECT max(rowid) FROM {_sqlite_ident(name)}").fetchone()[0]  # noqa: S608 - identifier quoted
        sequences[name] = {"table": name, "column": "rowid", "last_value": seq, "max": top}
    return sequences


class Sqlite:
    """A SQLite database file: facts, online backup, restore by atomic rename."""

    engine = "sqlite"

    def __init__(self, path: str, busy_timeout: float = 30) -> None:
        if not os.path.isabs(path):
            raise EngineError(f"the SQLite database path must be absolute, not {path!r}")
        self.database = path
        self.busy_timeout = busy_timeout

    def exists(self, name: str | None = None) -> bool:
        return os.path.isfile(name or self.database)

    def facts(
        self, name: str | None = None, revision_query: str = "", environment_query: str = ""
    ) -> dict[str, Any]:
        path = name or self.database
        if not os.path.isfile(path):
            raise EngineError(f"no SQLite database at {path}")
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=self.busy_timeout)
        try:
            con.execute("BEGIN")  # one read transaction: every count sees the same data
            names = [
                row[0]
                for row in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
                )
            ]
            tables = {
                t: int(con.execute(f"SELECT count(*) FROM {_sqlite_ident(t)}").fetchone()[0])  # noqa: S608 - identifier quoted
                for t in names
            }
            facts = {
                "tables": tables,
                "sequences": _sqlite_sequences(con),
                "revision": _sqlite_optional(con, revision_query),
                "environment": _sqlite_optional(con, environment_query),
                "integrity": con.execute("PRAGMA quick_check").fetchone()[0],
                "size": os.path.getsize(path),
                "server_version": f"SQLite {sqlite3.sqlite_version}",
            }
            con.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            raise EngineError(f"{path} cannot be read as a SQLite database: {error}") from None
        finally:
            con.close()
        return normalise_facts(facts)

    def dump(self, path: str, revision_query: str, environment_query: str) -> dict[str, Any]:
        """Online backup (a consistent copy while the app may write) into path; the facts
        are read from the copy, so they describe exactly what was saved."""
        if not os.path.isfile(self.database):
            raise EngineError(f"no SQLite database at {self.database}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        read_only = f"file:{self.database}?mode=ro"
        source = sqlite3.connect(read_only, uri=True, timeout=self.busy_timeout)
        target = sqlite3.connect(path)
        try:
            source.backup(target)
        except sqlite3.Error as error:
            raise EngineError(f"SQLite backup of {self.database} failed: {error}") from None
        finally:
            target.close()
            source.close()
        facts = self.facts(path, revision_query, environment_query)
        if facts["integrity"] != "ok":
            raise EngineError(f"the backup copy fails SQLite's check: {facts['integrity']}")
        facts["tool"] = f"sqlite3 online backup API (SQLite {sqlite3.sqlite_version})"
        return facts

    def settle(self) -> None:
        """Roll back a hot journal and fold the WAL into the file, so that the file alone is
        the database; refuse when another process still has it open."""
        if not os.path.exists(self.database):
            return
        con = sqlite3.connect(self.database, timeout=self.busy_timeout)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
        leftovers = [
            self.database + s for s in ("-wal", "-journal") if os.path.exists(self.database + s)
        ]
        if leftovers:
            raise EngineError(
                f"{', '.join(leftovers)} still exist: another process has {self.database} "
                "open. Stop the application before the restore."
            )

    def aside_path(self, stamp: str) -> str:
        stem, suffix = os.path.splitext(self.database)
        return f"{stem}{ASIDE_INFIX}{stamp}{suffix}"

    def restore_into(self, path: str, target: str, jobs: int = 1, owner: str = "") -> None:
        """Copy the backup next to the live file (same file system, for the rename)."""
        del jobs, owner
        shutil.copyfile(path, target)
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())

    def restored_name(self, stamp: str) -> str:
        folder, base = os.path.split(self.database)
        return os.path.join(folder, f".{base}.restore-{stamp}")

    def drop(self, name: str) -> None:
        if os.path.abspath(name) == os.path.abspath(self.database):
            raise EngineError(f"refusing to delete the live database {name}")
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.exists(name + suffix):
                os.unlink(name + suffix)

    def swap(self, restored: str, aside: str, attempts: int = 1) -> None:
        """Keep the live file as `aside` (a hard link) and rename the restored file over
        the live name: one rename(2), the live name always holds a whole database."""
        del attempts
        self.settle()
        if os.path.exists(self.database):
            stat = os.stat(self.database)
            os.chown(restored, stat.st_uid, stat.st_gid)
            os.chmod(restored, stat.st_mode & 0o7777)
            os.link(self.database, aside)
        os.rename(restored, self.database)
        folder = os.open(os.path.dirname(self.database), os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def set_aside(self) -> list[str]:
        stem, suffix = os.path.splitext(self.database)
        return sorted(glob.glob(f"{glob.escape(stem)}{ASIDE_INFIX}*{glob.escape(suffix)}"))


Engine = Postgres | Sqlite


def open_engine(engine: str, database: str, conn: PgConn | None = None) -> Engine:
    if engine == "postgresql":
        return Postgres(conn or PgConn(), database)
    if engine == "sqlite":
        return Sqlite(database, min(30, (conn or PgConn()).timeout))
    raise EngineError(f"engine must be postgresql or sqlite, not {engine!r}")


# --------------------------------------------------------------------------------------------
# Module arguments shared by db_backup, db_restore and db_inspect (doc fragment
# sre.rollback.db_connection documents them)
# --------------------------------------------------------------------------------------------

DEFAULT_REVISION_QUERY = "SELECT version_num FROM alembic_version"
DEFAULT_ENVIRONMENT_QUERY = "SELECT value FROM app_meta WHERE key = 'environment'"

CONNECTION_ARGS: dict[str, dict[str, Any]] = {
    "engine": {"type": "str", "required": True, "choices": ["postgresql", "sqlite"]},
    "database": {"type": "str", "required": True},
    "login_host": {"type": "str", "default": ""},
    "login_port": {"type": "int", "default": 5432},
    "login_user": {"type": "str", "default": ""},
    "login_password": {"type": "str", "default": "", "no_log": True},
    "os_user": {"type": "str", "default": "postgres"},
    "pg_bindir": {"type": "str", "default": ""},
    "revision_query": {"type": "str", "default": DEFAULT_REVISION_QUERY},
    "environment_query": {"type": "str", "default": DEFAULT_ENVIRONMENT_QUERY},
    "timeout": {"type": "int", "default": 3600},
}


def engine_from_params(p: dict[str, Any]) -> Engine:
    conn = PgConn(
        host=p["login_host"] or "",
        port=int(p["login_port"]),
        user=p["login_user"] or "",
        password=p["login_password"] or "",
        os_user=p["os_user"] or "",
        bindir=p["pg_bindir"] or "",
        timeout=int(p["timeout"]),
    )
    return open_engine(p["engine"], p["database"], conn)


def file_owner(engine: Engine) -> tuple[int, int] | None:
    """Who must own backup files: PostgreSQL's tools read and write them as the OS user."""
    return engine.conn.owner_ids() if isinstance(engine, Postgres) else None
