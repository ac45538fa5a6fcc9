"""bin/demo-app: serve the app, and the commands operators and rollbacks run next to it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demo_app import APP_ROOT, buildinfo, daemon
from demo_app.config import DEFAULT_CONFIG_DIR, ConfigError, Settings, load_settings
from demo_app.flags import FlagStore

# The server, migrations and integrity checks (SQLAlchemy, Alembic) are imported by the
# commands that use them: `status` and `stop`, which a service manager runs on every
# restart, start in a few milliseconds instead of loading the database stack.
if TYPE_CHECKING:
    from demo_app import server

EX_CONFIG = 78  # sysexits.h; the systemd unit does not restart on it (RestartPreventExitStatus)
log = logging.getLogger("demo_app")


class CommandFailed(Exception):
    """A command could not do its job; the message is printed as is."""


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True))


def _settings(arguments: argparse.Namespace) -> Settings:
    return load_settings(Path(arguments.config_dir))


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


# --- serve, stop, status -----------------------------------------------------------------


def _install_signals(http: server.DemoHTTPServer, app: server.DemoApp) -> None:
    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        threading.Thread(target=http.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: app.clear_caches())


def _run(http: server.DemoHTTPServer, settings: Settings, pidfile: Path | None) -> int:
    from demo_app import server

    if settings.database_auto_migrate:
        from sqlalchemy import exc as sa_exc

        from demo_app import migrate

        try:
            migrate.auto_migrate(settings)
        except (migrate.MigrationError, sa_exc.SQLAlchemyError) as error:
            log.error("auto_migrate failed, not starting: %s", error)
            return 1
    app = server.DemoApp(settings)
    server.attach(http, app)
    app.db.start_report_job(settings.database_hold_connections)
    app.heartbeat.start()
    _install_signals(http, app)
    log.info(
        "demo-app %s (release %s, commit %s) listening on %s:%d, database %s",
        app.build.version,
        app.build.release,
        app.build.commit,
        settings.server_bind,
        settings.server_port,
        settings.masked_database_url(),
    )
    try:
        http.serve_forever(poll_interval=0.2)
    finally:
        app.close()
        http.server_close()
        if pidfile:
            daemon.remove_pidfile(pidfile, os.getpid())
    log.info("demo-app stopped")
    return 0


def cmd_serve(arguments: argparse.Namespace) -> int:
    from demo_app import server

    try:
        settings = load_settings(Path(arguments.config_dir), flags_are_errors=False)
    except ConfigError as error:
        print(
            f"demo-app: refusing to start, the configuration in {arguments.config_dir} is invalid:",
            file=sys.stderr,
        )
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EX_CONFIG
    _setup_logging(settings.logging_level)
    for warning in settings.warnings:
        log.warning("%s", warning)
    pidfile = Path(arguments.pidfile) if arguments.pidfile else None
    if arguments.daemon:
        if pidfile is None:
            raise CommandFailed("--daemon needs --pidfile")
        code, message = daemon.status(pidfile)
        if code == daemon.RUNNING:
            print(message)
            return 0
    try:
        http = server.bind(settings)
    except OSError as error:
        raise CommandFailed(
            f"cannot listen on {settings.server_bind}:{settings.server_port}: {error.strerror}"
        ) from None
    if arguments.daemon and pidfile and not daemon.daemonize(pidfile, Path(arguments.log_file)):
        http.server_close()
        print(f"demo-app started (pid {daemon.read_pid(pidfile)}), log {arguments.log_file}")
        return 0
    return _run(http, settings, pidfile)


def cmd_stop(arguments: argparse.Namespace) -> int:
    code, message = daemon.stop(Path(arguments.pidfile), arguments.timeout)
    print(message)
    return code


def cmd_status(arguments: argparse.Namespace) -> int:
    code, message = daemon.status(Path(arguments.pidfile))
    print(message)
    return code


# --- configuration, build, flags ------------------------------------------------------------


def cmd_check_config(arguments: argparse.Namespace) -> int:
    try:
        settings = _settings(arguments)
    except ConfigError as error:
        print(f"configuration INVALID in {Path(arguments.config_dir).resolve()}:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        if arguments.json:
            _print_json({"ok": False, "problems": error.problems})
        return 1
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if arguments.json:
        _print_json(
            {"ok": True, "warnings": list(settings.warnings), "settings": settings.public()}
        )
    else:
        print(
            f"configuration OK: {settings.config_path} (sha256 {settings.config_sha256[:12]}, "
            f"database {settings.masked_database_url()}, pool_size {settings.database_pool_size})"
        )
    return 0


def cmd_verify_build(arguments: argparse.Namespace) -> int:
    root = Path(arguments.root).resolve()
    problems = buildinfo.verify_build(root)
    if problems:
        print(f"build verification FAILED for {root}:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    manifest = buildinfo.read_manifest(root) or {}
    print(
        f"build verified: {len(manifest['files'])} files match {buildinfo.MANIFEST} "
        f"(version {manifest.get('version')}, commit {manifest.get('commit')})"
    )
    return 0


def cmd_version(_arguments: argparse.Namespace) -> int:
    from demo_app import server

    _print_json(server.BuildInfo.of_this_release().__dict__)
    return 0


def cmd_flags(arguments: argparse.Namespace) -> int:
    store = FlagStore(_settings(arguments).flags_path)
    if arguments.flags_command == "list":
        evaluations = [store.evaluate(name) for name in sorted(store.flags())]
        _print_json({"flags": [item.as_ofrep() for item in evaluations if item]})
        return 0
    evaluation = store.evaluate(arguments.name)
    if evaluation is None:
        _print_json({"key": arguments.name, "errorCode": "FLAG_NOT_FOUND"})
        return 1
    _print_json(evaluation.as_ofrep())
    return 1 if evaluation.error_code else 0


# --- database ---------------------------------------------------------------------------------


def cmd_migrate(arguments: argparse.Namespace) -> int:
    from demo_app import migrate

    action = arguments.migrate_command
    if action == "history":
        table = migrate.history_table()
        if arguments.json:
            _print_json(table)
        for row in [] if arguments.json else table:
            marker = "  [irreversible]" if row["irreversible"] else ""
            print(f"{row['revision']}  {row['description']}{marker}")
        return 0
    settings = _settings(arguments)
    if action == "current":
        state = migrate.status(settings)
        if arguments.json:
            _print_json(state)
        else:
            print(state["current"])
        return 0 if state["known"] else 1
    run: Callable[[Settings, str], dict[str, str]] = (
        migrate.upgrade if action == "upgrade" else migrate.downgrade
    )
    result = run(settings, arguments.revision)
    if arguments.json:
        _print_json({**result, "changed": result["before"] != result["after"]})
    else:
        print(f"{action}: {result['before']} -> {result['after']}")
    return 0


def cmd_db(arguments: argparse.Namespace) -> int:
    from demo_app import integrity

    settings = _settings(arguments)
    if arguments.db_command == "info":
        _print_json(integrity.info(settings))
        return 0
    report = integrity.validate(settings)
    _print_json(report)
    return 0 if report["ok"] else 1


# --- parser -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo-app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config-dir",
        default=str(DEFAULT_CONFIG_DIR),
        help=f"the configuration directory (default {DEFAULT_CONFIG_DIR})",
    )
    json_output = argparse.ArgumentParser(add_help=False)
    json_output.add_argument("--json", action="store_true", help="print JSON")

    serve = commands.add_parser("serve", parents=[config], help="run the HTTP service")
    serve.add_argument("--daemon", action="store_true", help="fork into the background")
    serve.add_argument("--pidfile", help="write the daemon's pid here (needed with --daemon)")
    serve.add_argument(
        "--log-file",
        default="/var/log/demo-app/demo-app.log",
        help="the daemon's log (default /var/log/demo-app/demo-app.log)",
    )
    serve.set_defaults(handler=cmd_serve)
    for name, handler in (("stop", cmd_stop), ("status", cmd_status)):
        sub = commands.add_parser(name, help=f"{name} the daemon started with serve --daemon")
        sub.add_argument("--pidfile", required=True)
        sub.set_defaults(handler=handler)
        if name == "stop":
            sub.add_argument("--timeout", type=float, default=15.0, help="seconds before SIGKILL")

    check = commands.add_parser(
        "check-config",
        parents=[config, json_output],
        help="validate the configuration without starting",
    )
    check.set_defaults(handler=cmd_check_config)
    verify = commands.add_parser(
        "verify-build", help="compare the release with BUILD_MANIFEST.json"
    )
    verify.add_argument("--root", default=str(APP_ROOT), help="the release directory")
    verify.set_defaults(handler=cmd_verify_build)
    commands.add_parser("version", help="print the release's build info").set_defaults(
        handler=cmd_version
    )

    flags = commands.add_parser("flags", help="evaluate flags as the app does")
    flag_commands = flags.add_subparsers(dest="flags_command", required=True)
    flag_commands.add_parser("list", parents=[config])
    flag_commands.add_parser("get", parents=[config]).add_argument("name")
    flags.set_defaults(handler=cmd_flags)

    migration = commands.add_parser("migrate", help="schema migrations (Alembic)")
    steps = migration.add_subparsers(dest="migrate_command", required=True)
    steps.add_parser("current", parents=[config, json_output], help="the database's revision")
    steps.add_parser("history", parents=[json_output], help="this release's migrations")
    steps.add_parser("upgrade", parents=[config, json_output]).add_argument(
        "revision", nargs="?", default="head"
    )
    steps.add_parser("downgrade", parents=[config, json_output]).add_argument("revision")
    migration.set_defaults(handler=cmd_migrate)

    database = commands.add_parser("db", help="database information and integrity checks")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("info", parents=[config], help="revision, environment, row counts")
    db_commands.add_parser(
        "validate", parents=[config], help="integrity checks (exit 1 if any fail)"
    )
    database.set_defaults(handler=cmd_db)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        code: int = arguments.handler(arguments)
    except ConfigError as error:
        print("demo-app: invalid configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except CommandFailed as error:
        print(f"demo-app: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        message = _database_failure(error)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1
    return code


def _database_failure(error: Exception) -> str | None:
    """The message for a migration or database error, None for any other error. The
    classes are looked up where they were loaded: a command that never imported the
    database stack cannot have raised its errors."""
    migrate = sys.modules.get("demo_app.migrate")
    if migrate is not None and isinstance(error, migrate.MigrationError):
        return f"demo-app: {error}"
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(error, sa_exc.SQLAlchemyError):
        detail = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
        return f"demo-app: database error: {detail}"
    return None
