"""Options shared by the commands that run playbooks (run, emergency, status)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    SEVERITIES,
    InputError,
    parse_duration,
    parse_impact,
)
from rollbackctl.project import Project, ProjectError, artifacts_dir, find_project
from rollbackctl.rollback import BadInput, RunOptions, parse_extra_vars

F = TypeVar("F", bound=Callable[..., Any])


class BadInputError(click.ClickException):
    """Exit 2: nothing was changed."""

    exit_code = 2


def _apply(function: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def target_options(function: F) -> F:
    """Where to run: inventory, limit, hosts, project."""
    return _target_options(function, required=True)


def optional_target_options(function: F) -> F:
    """The same, the inventory optional (a group whose subcommands take their own)."""
    return _target_options(function, required=False)


def _target_options(function: F, required: bool) -> F:
    return _apply(
        function,
        [
            click.option(
                "-i",
                "--inventory",
                required=required,
                metavar="INVENTORY",
                help="Inventory: a directory (inventories/prod), a file, or a host list "
                "ending with a comma.",
            ),
            click.option("-l", "--limit", metavar="PATTERN", help="Limit to these hosts."),
            click.option(
                "--hosts",
                metavar="PATTERN",
                help="Hosts the level runs on (rollback_hosts; the playbooks default to `app`).",
            ),
            click.option(
                "--project-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="The project checkout (ansible.cfg, playbooks/); default: found from the "
                "working directory, or $ROLLBACKCTL_PROJECT_DIR.",
            ),
        ],
    )


def impact_option(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_impact(value)
    except InputError as error:
        raise click.BadParameter(str(error), ctx, param) from None


def duration_option(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_duration(value)
    except InputError as error:
        raise click.BadParameter(str(error), ctx, param) from None


def incident_options(function: F) -> F:
    """What the decision matrix reads: severity, impact (``impact``: a share of users,
    0 to 1) and time to fix (``time_to_fix``: seconds); ``decide`` and ``emergency``."""
    return _apply(
        function,
        [
            click.option(
                "-s",
                "--severity",
                required=True,
                type=click.Choice(SEVERITIES, case_sensitive=False),
                help="Severity of the incident.",
            ),
            click.option(
                "--impact",
                required=True,
                metavar="PERCENT|all",
                callback=impact_option,
                help="Share of users affected: 0 to 100 (60, 60%), or 'all'.",
            ),
            click.option(
                "-t",
                "--time-to-fix",
                required=True,
                metavar="DURATION",
                callback=duration_option,
                help="Estimated time to fix forward: 90s, 5m, 5 min, 1h, 2 hours, 1h30m, or "
                "seconds.",
            ),
        ],
    )


def run_options(function: F) -> F:
    """What a rollback run takes besides where it runs."""
    return _apply(
        function,
        [
            click.option("--check", is_flag=True, help="Plan only: Ansible check mode."),
            click.option(
                "--target",
                metavar="TARGET",
                help="Named target of `run`: level 1 the flag(s) (a,b), level 2 a config "
                "revision, level 3 a release tag or id, level 4 a database revision. For "
                "`emergency`: the release of level 3.",
            ),
            click.option("--reason", default="", help="Why: recorded and put in messages."),
            click.option("--incident", metavar="ID", help="Incident id, e.g. INC-1234."),
            click.option(
                "--detected-at",
                metavar="TIME",
                help="When the problem was detected: ISO 8601, epoch, or '15m ago'.",
            ),
            click.option(
                "--incident-started",
                metavar="TIME",
                help="When the problem began (for time to detection and downtime).",
            ),
            click.option(
                "--users-affected", type=int, metavar="N", help="Users affected (metrics)."
            ),
            click.option(
                "--service",
                "services",
                multiple=True,
                metavar="KEY",
                help="Policy service the incident hit (core_api...); repeat; default: all.",
            ),
            click.option(
                "-e",
                "--extra-vars",
                "extra_vars",
                multiple=True,
                metavar="VARS",
                help="Extra vars: KEY=VALUE, YAML/JSON, or @FILE; repeat. Kept out of "
                "artifacts (passed through a private file).",
            ),
            click.option(
                "--policy",
                "policy_file",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Policy file instead of the inventory's policy.yml.",
            ),
            click.option("--lead", default="", help="Person managing the rollback (messages)."),
            click.option(
                "--notify/--no-notify",
                default=True,
                help="Send the start and closing messages (default on; off with --check).",
            ),
            click.option(
                "--artifacts",
                type=click.Path(file_okay=False, path_type=Path),
                help="Directory for run records (runs/) and ansible-runner artifacts "
                "(rollbackctl/); default $ROLLBACKCTL_ARTIFACTS or <project>/.artifacts.",
            ),
        ],
    )


def project_of(project_dir: Path | None) -> Project:
    try:
        return find_project(project_dir)
    except ProjectError as error:
        raise BadInputError(str(error)) from None


def build_run_options(level: int, params: dict[str, Any]) -> RunOptions:
    """RunOptions from the click parameters of run/emergency."""
    project = project_of(params["project_dir"])
    try:
        extra = parse_extra_vars(params["extra_vars"])
    except BadInput as error:
        raise BadInputError(str(error)) from None
    return RunOptions(
        level=level,
        inventory=params["inventory"],
        project=project,
        artifacts=artifacts_dir(project, params["artifacts"]),
        reason=params["reason"],
        incident=params["incident"],
        limit=params["limit"],
        check=params["check"],
        target=params["target"],
        hosts=params["hosts"],
        detected_at=params["detected_at"],
        incident_started_at=params["incident_started"],
        users_affected=params["users_affected"],
        services=tuple(params["services"]),
        extra_vars=extra,
        policy_file=params["policy_file"],
        lead=params["lead"],
        notify=params["notify"],
    )
