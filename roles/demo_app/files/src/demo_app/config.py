"""Read and check the configuration directory: app.ini and the files it names.

Every problem is reported with the file, the section and key, and what to change, so that
an operator (or a configuration rollback) can tell a bad revision from a good one before
the app is restarted with it.
"""

from __future__ import annotations

import configparser
import difflib
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demo_app.flags import validate_flags_document

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

DEFAULT_CONFIG_DIR = Path(os.environ.get("DEMO_APP_CONFIG_DIR", "/etc/demo-app"))
CONFIG_FILE = "app.ini"
SQLITE_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite"})
POSTGRES_DRIVERS = frozenset({"postgresql", "postgresql+psycopg2"})


class ConfigError(Exception):
    """The configuration cannot be used; each entry of `problems` says what to fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}")
        return value

    return parse


def _number(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be a number from {low:g} to {high:g}") from None
        if not low <= value <= high:
            raise ValueError(f"must be from {low:g} to {high:g}")
        return value

    return parse


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"true", "yes", "on", "1"}:
        return True
    if lowered in {"false", "no", "off", "0"}:
        return False
    raise ValueError("must be true or false")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.upper() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw.upper()

    return parse


def _name(raw: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,31}", raw):
        raise ValueError("must be a short lower-case name such as production or staging")
    return raw


def _ip_address(raw: str) -> str:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        raise ValueError("must be an IP address such as 0.0.0.0 or 127.0.0.1") from None
    return raw


def _absolute_path(raw: str) -> Path:
    if not raw.startswith("/"):
        raise ValueError("must be an absolute path")
    return Path(raw)


def _relative_file(raw: str) -> str:
    return raw


def make_url(raw: str) -> URL:
    """SQLAlchemy's URL of raw. SQLAlchemy is imported here, not with this module, so the
    commands that never touch the database (status, stop) start without loading it."""
    from sqlalchemy.engine import make_url as parse

    return parse(raw)


def _database_url(raw: str) -> str:
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "is not a database URL; use sqlite:////absolute/path.db "
            "or postgresql://user@host:5432/dbname"
        ) from None
    if url.drivername in SQLITE_DRIVERS:
        if not url.database or not url.database.startswith("/"):
            raise ValueError("must name an absolute file path, like sqlite:////var/lib/x.db")
    elif url.drivername in POSTGRES_DRIVERS:
        if not url.host or not url.database:
            raise ValueError("must name a host and a database: postgresql://user@host/dbname")
    else:
        raise ValueError("must start with sqlite:// or postgresql://")
    return raw


@dataclass(frozen=True)
class Option:
    """One key of app.ini: its default, how it is parsed, and what it means."""

    section: str
    key: str
    default: str
    parse: Callable[[str], Any]
    meaning: str

    @property
    def attribute(self) -> str:
        return f"{self.section}_{self.key}"


OPTIONS: tuple[Option, ...] = (
    Option("app", "environment", "development", _name, "the environment this instance serves"),
    Option("server", "bind", "0.0.0.0", _ip_address, "the address to listen on"),  # noqa: S104
    Option("server", "port", "8080", _whole_number(1, 65535), "the TCP port to listen on"),
    Option(
        "database",
        "url",
        "sqlite:////var/lib/demo-app/app.db",
        _database_url,
        "the database: sqlite:////path/app.db or postgresql://user@host:port/db",
    ),
    Option(
        "database",
        "password_file",
        "",
        _relative_file,
        "a file (relative to the config dir) holding the database password",
    ),
    Option(
        "database",
        "pool_size",
        "5",
        _whole_number(1, 100),
        "the number of database connections the app keeps open",
    ),
    Option(
        "database",
        "pool_timeout",
        "2",
        _number(0.05, 60),
        "seconds a request waits for a free database connection",
    ),
    Option(
        "database",
        "hold_connections",
        "0",
        _whole_number(0, 100),
        "connections the background report job keeps checked out (>= pool_size starves requests)",
    ),
    Option(
        "database",
        "connect_timeout",
        "3",
        _whole_number(1, 60),
        "seconds to wait for the database server when connecting",
    ),
    Option(
        "database",
        "auto_migrate",
        "false",
        _boolean,
        "true to migrate the database to this release's head at start",
    ),
    Option(
        "database",
        "heartbeat_seconds",
        "1",
        _number(0, 3600),
        "how often the app writes a heartbeat row (0: never); a restore's data loss is read "
        "from the newest one",
    ),
    Option(
        "checkout",
        "slow_seconds",
        "6",
        _number(0, 300),
        "how long one call of the rate service of the 1.3.0 checkout takes",
    ),
    Option(
        "checkout",
        "error_rate",
        "0.25",
        _number(0, 1),
        "the fraction of 1.3.0 new-checkout requests whose rate lookup fails",
    ),
    Option("flags", "file", "flags.json", _relative_file, "the flags file, relative to the dir"),
    Option(
        "storage",
        "uploads_dir",
        "/opt/demo-app/shared/uploads",
        _absolute_path,
        "where user uploads are stored (shared by all releases)",
    ),
    Option(
        "storage",
        "max_upload_bytes",
        "10485760",
        _whole_number(1, 1 << 30),
        "the largest upload accepted, in bytes",
    ),
    Option("cache", "ttl_seconds", "5", _number(0, 3600), "how long the item list is cached"),
    Option(
        "logging",
        "level",
        "INFO",
        _choice("DEBUG", "INFO", "WARNING", "ERROR"),
        "the log level",
    ),
)

OPTIONS_BY_SECTION: dict[str, dict[str, Option]] = {}
for _option in OPTIONS:
    OPTIONS_BY_SECTION.setdefault(_option.section, {})[_option.key] = _option


@dataclass(frozen=True)
class Settings:
    """The checked configuration; attribute names are `<section>_<key>`."""

    config_dir: Path
    config_sha256: str
    app_environment: str
    server_bind: str
    server_port: int
    database_url: str
    database_password_file: str
    database_pool_size: int
    database_pool_timeout: float
    database_hold_connections: int
    database_connect_timeout: int
    database_auto_migrate: bool
    database_heartbeat_seconds: float
    checkout_slow_seconds: float
    checkout_error_rate: float
    flags_file: str
    storage_uploads_dir: Path
    storage_max_upload_bytes: int
    cache_ttl_seconds: float
    logging_level: str
    database_password: str | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()

    @property
    def config_path(self) -> Path:
        return self.config_dir / CONFIG_FILE

    @property
    def flags_path(self) -> Path:
        return self.config_dir / self.flags_file

    @property
    def database_backend(self) -> str:
        return (
            "sqlite" if make_url(self.database_url).drivername in SQLITE_DRIVERS else "postgresql"
        )

    def masked_database_url(self) -> str:
        return str(make_url(self.database_url).render_as_string(hide_password=True))

    def public(self) -> dict[str, Any]:
        """The settings without secrets, for GET /config and check-config --json."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        shown["database_url"] = self.masked_database_url()
        return {
            key: str(value) if isinstance(value, Path) else value for key, value in shown.items()
        }


def _where(path: Path, section: str, key: str | None = None) -> str:
    return f"{path}: [{section}]" + (f" {key}" if key else "")


def _unknown_name(name: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {what} '{name}'.{hint} Known {what}s: {', '.join(known)}."


def _read_ini(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, default_section="__no_defaults__")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                f"{path}: file not found. Create it (see app.ini in the role's templates) "
                "or pass --config-dir with the directory that holds it."
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path}: cannot read the file: {error}"]) from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as error:
        message = " ".join(str(error).split())
        raise ConfigError([f"{path}: not a valid INI file: {message}"]) from None
    return parser


def _parse_values(
    path: Path, parser: configparser.RawConfigParser
) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for section in parser.sections():
        known = OPTIONS_BY_SECTION.get(section)
        if known is None:
            problems.append(
                f"{path}: {_unknown_name(section, sorted(OPTIONS_BY_SECTION), 'section')}"
            )
            continue
        for key in parser.options(section):
            if key not in known:
                problems.append(
                    f"{_where(path, section)} {_unknown_name(key, sorted(known), 'key')}"
                )
    for option in OPTIONS:
        raw = parser.get(option.section, option.key, fallback=option.default).strip()
        try:
            values[option.attribute] = option.parse(raw)
        except ValueError as error:
            problems.append(
                f"{_where(path, option.section, option.key)} = {raw!r} is invalid: {error} "
                f"({option.meaning}). Fix the value, or remove the line to use the default "
                f"({option.default or 'empty'})."
            )
    return values, problems


def _read_password(config_dir: Path, values: dict[str, Any]) -> tuple[str | None, list[str]]:
    name = values.get("database_password_file", "")
    if not name:
        return None, []
    where = _where(config_dir / CONFIG_FILE, "database", "password_file")
    try:
        return (config_dir / name).read_text(encoding="utf-8").strip(), []
    except OSError as error:
        return None, [
            f"{where} = {name!r}: cannot read the password file: {error.strerror}. "
            "Create it (readable by the app user) or remove the key."
        ]


def _check_files(
    settings_values: dict[str, Any], config_dir: Path, flags_are_errors: bool
) -> tuple[list[str], list[str]]:
    """Problems and warnings about the things the keys point at."""
    problems: list[str] = []
    warnings: list[str] = []
    ini = config_dir / CONFIG_FILE
    url = make_url(settings_values["database_url"])
    if url.drivername in SQLITE_DRIVERS:
        folder = Path(str(url.database)).parent
        if not folder.is_dir():
            problems.append(
                f"{_where(ini, 'database', 'url')}: the directory {folder} does not "
                "exist. Create it (owned by the app user) or fix the URL."
            )
    flags = config_dir / settings_values["flags_file"]
    if flags.exists():
        (problems if flags_are_errors else warnings).extend(check_flags_file(flags))
    else:
        warnings.append(f"{flags}: not found; every flag evaluates as not found until it exists")
    uploads = settings_values["storage_uploads_dir"]
    if not uploads.is_dir():
        warnings.append(
            f"{_where(ini, 'storage', 'uploads_dir')}: {uploads} does not exist yet; "
            "it is created at the first upload"
        )
    held, size = settings_values["database_hold_connections"], settings_values["database_pool_size"]
    if held >= size:
        warnings.append(
            f"{_where(ini, 'database', 'hold_connections')} = {held} >= pool_size "
            f"{size}: requests will find no free database connection"
        )
    return problems, warnings


def check_flags_file(path: Path) -> list[str]:
    """Problems of a flags file (flagd JSON shape), each naming the file and the flag."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return [f"{path}: cannot read the flags file: {error}"]
    except json.JSONDecodeError as error:
        return [f"{path}: not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}"]
    return [f"{path}: {problem}" for problem in validate_flags_document(document)]


def load_settings(
    config_dir: Path = DEFAULT_CONFIG_DIR, *, flags_are_errors: bool = True
) -> Settings:
    """Read and check the configuration directory; raise ConfigError listing every problem.

    A bad flags file fails the check (check-config) but need not stop a server: flags are
    runtime state, and the server evaluates a broken flag as its code default.
    """
    config_dir = config_dir.resolve()
    path = config_dir / CONFIG_FILE
    parser = _read_ini(path)
    values, problems = _parse_values(path, parser)
    if problems:
        raise ConfigError(problems)
    password, password_problems = _read_password(config_dir, values)
    file_problems, warnings = _check_files(values, config_dir, flags_are_errors)
    problems = password_problems + file_problems
    if problems:
        raise ConfigError(problems)
    return Settings(
        config_dir=config_dir,
        config_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        database_password=password,
        warnings=tuple(warnings),
        **values,
    )
