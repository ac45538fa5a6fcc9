"""``rollbackctl watch``, ``rollbackctl alerts serve`` and ``rollbackctl approve``: the
automatic triggers acting, from our own evaluation of Prometheus or from Alertmanager."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from ansible_collections.sre.rollback.plugins.plugin_utils import run_identity
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    InputError,
    parse_duration,
)
from rollbackctl.alerts import DEFAULT_LISTEN, Receiver, serve
from rollbackctl.commands.options import BadInputError, _apply, project_of
from rollbackctl.exits import exit_codes_help
from rollbackctl.progress import output_console
from rollbackctl.project import artifacts_dir
from rollbackctl.rollback import BadInput, RunOptions, load_run_policy, parse_extra_vars
from rollbackctl.trigger_action import (
    DEFAULT_COOLDOWN,
    DEFAULT_MAX_LEVEL,
    ActionSettings,
    StateError,
    StateFile,
    TriggerActions,
    approve,
    default_state_path,
    pending_requests,
)
from rollbackctl.watch import Watcher

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "stopped (Ctrl-C / SIGTERM); the state file keeps the windows",
        2: "bad input (option, inventory, policy, state file in use); nothing ran",
    }
)


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_duration(value)
    except InputError as error:
        raise click.BadParameter(str(error)) from None


def acting_options(function: F) -> F:
    """What watch and alerts serve act with."""
    return _apply(
        function,
        [
            click.option(
                "-i",
                "--inventory",
                required=True,
                metavar="INVENTORY",
                help="Inventory the levels run on; its policy.yml holds the triggers.",
            ),
            click.option(
                "--policy",
                "policy_file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Policy file instead of the inventory's policy.yml.",
            ),
            click.option(
                "--dry-run", is_flag=True, help="Decide and print; run nothing, send nothing."
            ),
            click.option(
                "--max-level",
                type=click.IntRange(1, 5),
                default=DEFAULT_MAX_LEVEL,
                show_default=True,
                help="Highest level run without a person; above it: page and wait for "
                "`rollbackctl approve`.",
            ),
            click.option(
                "--cooldown",
                default=f"{DEFAULT_COOLDOWN}s",
                show_default=True,
                callback=_duration,
                help="After a rule acted for a service, it does not act again for this long.",
            ),
            click.option(
                "--state",
                "state_file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="State file (windows, seen alerts, cooldowns, pending approvals); "
                "default <artifacts>/triggers/state.json.",
            ),
            click.option(
                "-l", "--limit", metavar="PATTERN", help="Limit the levels to these hosts."
            ),
            click.option(
                "--hosts", metavar="PATTERN", help="Hosts the levels run on (rollback_hosts)."
            ),
            click.option(
                "-e",
                "--extra-vars",
                "extra_vars",
                multiple=True,
                metavar="VARS",
                help="Extra vars for the levels: KEY=VALUE, YAML/JSON, or @FILE.",
            ),
            click.option("--lead", default="", help="Person managing the rollback (messages)."),
            click.option("--notify/--no-notify", default=True, help="Send the runbook's messages."),
            click.option(
                "--project-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="The project checkout (default: found from the working directory).",
            ),
            click.option(
                "--artifacts",
                type=click.Path(file_okay=False, path_type=Path),
                help="Run records and the default state file go here.",
            ),
        ],
    )


@contextmanager
def _actions(params: dict[str, Any]) -> Iterator[TriggerActions]:
    project = project_of(params["project_dir"])
    artifacts = artifacts_dir(project, params["artifacts"])
    try:
        extra = parse_extra_vars(params["extra_vars"])
        policy, _ = load_run_policy(params["inventory"], params["policy_file"])
    except BadInput as error:
        raise BadInputError(str(error)) from None
    base = RunOptions(
        level=0,
        inventory=params["inventory"],
        project=project,
        artifacts=artifacts,
        limit=params["limit"],
        hosts=params["hosts"],
        extra_vars=extra,
        policy_file=params["policy_file"],
        lead=params["lead"],
        notify=params["notify"] and not params["dry_run"],
    )
    settings = ActionSettings(base, params["max_level"], params["cooldown"], params["dry_run"])
    try:
        state = StateFile.read(params["state_file"] or default_state_path(artifacts))
        state.hold()
    except StateError as error:
        raise BadInputError(str(error)) from None
    try:
        yield TriggerActions(settings, policy, state, output_console(), sys.stdout)
    finally:
        state.release()


@contextmanager
def _stopped_by_sigterm(stop: threading.Event | None = None) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        if stop is not None:
            stop.set()
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command(name="watch", epilog=EXIT_CODES_HELP)
@click.option("--prometheus", required=True, metavar="URL", help="Prometheus server to query.")
@click.option("--iterations", type=int, hidden=True, help="Stop after N evaluations (tests).")
@acting_options
def watch_command(prometheus: str, iterations: int | None, **params: Any) -> None:
    """Evaluate the policy's triggers against Prometheus (instant queries every evaluation
    interval), show each rule's value, window and state (a live table on a terminal, one
    line per rule and group otherwise), and when a rule fires: decide the level from the
    policy, send the runbook's messages and run it as `emergency` does, up to --max-level;
    above it, page and wait for `rollbackctl approve`."""
    with _actions(params) as actions:
        watcher = Watcher(actions.policy, prometheus, actions, actions.console)
        actions.console.print(
            f"watching {prometheus} every {watcher.interval}s for {len(watcher.evaluators)} "
            f"rule(s) of {actions.policy.source}; runs up to level {params['max_level']}"
            + (" (dry run: nothing runs)" if params["dry_run"] else "")
            + f"; state {actions.state.path}",
            highlight=False,
            soft_wrap=True,
        )
        try:
            with _stopped_by_sigterm():
                watcher.run(iterations)
        except KeyboardInterrupt:
            actions.console.print(f"stopped; windows kept in {actions.state.path}")


@click.group(name="alerts")
def alerts_group() -> None:
    """Alertmanager's side of the automatic triggers."""


@alerts_group.command(name="serve", epilog=EXIT_CODES_HELP)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Where to receive Alertmanager's webhook (POST /alerts); loopback by default.",
)
@acting_options
def serve_command(listen: str, **params: Any) -> None:
    """Receive Alertmanager's webhook (payload version 4) and act on the firing alerts of
    the rendered rules as `watch` does: idempotent on fingerprint + startsAt; a resolved
    alert never starts a rollback."""
    with _actions(params) as actions:
        try:
            receiver = Receiver(listen, actions.rules)
        except (OSError, ValueError) as error:
            raise BadInputError(f"cannot listen on {listen}: {error}") from None
        receiver.start()
        actions.console.print(
            f"receiving Alertmanager webhooks at {receiver.address}; runs up to level "
            f"{params['max_level']}" + (" (dry run: nothing runs)" if params["dry_run"] else ""),
            highlight=False,
            soft_wrap=True,
        )
        stop = threading.Event()
        try:
            with _stopped_by_sigterm(stop):
                serve(actions, receiver, actions.console, stop)
        except KeyboardInterrupt:
            pass
        finally:
            receiver.stop()
        actions.console.print("stopped")


@click.command(name="approve")
@click.argument("request_id", required=False)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The watcher's state file (default <artifacts>/triggers/state.json).",
)
@click.option("--reason", default="", help="Why (recorded with the approval).")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--artifacts", type=click.Path(file_okay=False, path_type=Path))
def approve_command(
    request_id: str | None,
    state_file: Path | None,
    reason: str,
    project_dir: Path | None,
    artifacts: Path | None,
) -> None:
    """Let a level that a trigger decided above --max-level run (the watcher or receiver
    runs it at its next evaluation); without an id, list the pending requests."""
    if state_file is None:
        state_file = default_state_path(artifacts_dir(project_of(project_dir), artifacts))
    try:
        if request_id is None:
            pending = pending_requests(state_file)
            for request in pending:
                firing = request["firing"]
                click.echo(
                    f"{request['id']}  {firing['rule']} ({firing['service']}): levels "
                    f"{request['first']}-{request['last']}, {request['decision']['summary']}"
                )
            if not pending:
                click.echo(f"no pending request in {state_file}")
            return
        request = approve(state_file, request_id, run_identity.real_user(), reason)
    except StateError as error:
        raise BadInputError(str(error)) from None
    click.echo(
        f"approved {request_id}: levels {request['first']}-{request['last']} run at the "
        "watcher's next evaluation"
    )
