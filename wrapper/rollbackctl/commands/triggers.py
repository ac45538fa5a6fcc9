"""``rollbackctl triggers render`` and ``rollbackctl replay``: the policy's automatic
rollback triggers as Prometheus rules, and a replay of them over a past window."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import Policy
from rollbackctl import next_step
from rollbackctl.exits import exit_codes_help
from rollbackctl.policy import PolicyFileError, load_policy
from rollbackctl.triggers import (
    DEFAULT_WEBHOOK,
    TriggerInputError,
    parse_time,
    rendered_files,
    run_replay,
    timeline_lines,
    write_rendered,
)

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "done",
        2: (
            "bad input: an option, the policy, the series file, or a Prometheus that does not "
            "answer; nothing was run"
        ),
    }
)


F = TypeVar("F", bound=Callable[..., Any])


class BadInput(click.ClickException):
    exit_code = 2


def policy_options(command: F) -> F:
    command = click.option(
        "--policy",
        "policy_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A policy file to use instead of an inventory's.",
    )(command)
    return click.option(
        "-i",
        "--inventory",
        metavar="INVENTORY",
        help="Inventory directory, a file in it, or an environment name: its policy.yml.",
    )(command)


def _policy(inventory: str | None, policy_file: Path | None) -> Policy:
    if inventory is not None and policy_file is not None:
        raise click.UsageError("give -i/--inventory or --policy, not both")
    try:
        return load_policy(inventory, policy_file)
    except PolicyFileError as error:
        raise BadInput(str(error)) from None


@click.group(name="triggers")
def triggers_group() -> None:
    """The runbook's automatic rollback triggers (the policy's `triggers` section)."""


@triggers_group.command(name="render", epilog=EXIT_CODES_HELP)
@policy_options
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the rule file and the Alertmanager snippet here (default: print both).",
)
@click.option(
    "--webhook-url",
    default=DEFAULT_WEBHOOK,
    show_default=True,
    help="Where the Alertmanager receiver posts the triggers' alerts.",
)
def render_command(
    inventory: str | None, policy_file: Path | None, out: Path | None, webhook_url: str
) -> None:
    """Render Prometheus alerting rules (for:, keep_firing_for, labels with the rule, the
    service and the level the policy's matrix picks) and an Alertmanager route/receiver.
    Check them with `promtool check rules` and `amtool check-config`."""
    files = rendered_files(_policy(inventory, policy_file), webhook_url)
    if out is None:
        for name, text in files.items():
            click.echo(f"# --- {name}\n{text}", nl=False)
        next_step.echo(next_step.for_render([]), err=True)
        return
    written = [str(path) for path in write_rendered(files, out)]
    for path in written:
        click.echo(f"wrote {path}")
    next_step.echo(next_step.for_render(written))


@click.command(name="replay", epilog=EXIT_CODES_HELP)
@policy_options
@click.option("--from", "start", required=True, metavar="TIME", help="Unix seconds or ISO 8601.")
@click.option("--to", "end", required=True, metavar="TIME", help="Unix seconds or ISO 8601.")
@click.option("--prometheus", metavar="URL", help="Range-query this Prometheus server.")
@click.option(
    "--series",
    type=click.Path(dir_okay=False, path_type=Path),
    help="OpenMetrics text with timestamps (what promtool tsdb create-blocks-from reads).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
def replay_command(
    inventory: str | None,
    policy_file: Path | None,
    start: str,
    end: str,
    prometheus: str | None,
    series: Path | None,
    as_json: bool,
) -> None:
    """Replay the policy's triggers over a past window: when each rule's window started,
    was reset (also by missing data), fired and resolved, and which level the decision
    matrix would have picked. Runs nothing."""
    if (prometheus is None) == (series is None):
        raise click.UsageError("give --prometheus URL or --series FILE (one of them)")
    policy = _policy(inventory, policy_file)
    try:
        source, where = ("series", str(series)) if series else ("prometheus", str(prometheus))
        result = run_replay(policy, parse_time(start), parse_time(end), source, where)
    except TriggerInputError as error:
        raise BadInput(str(error)) from None
    fired = sum(len(entries) for entries in result["fired"].values())
    closing = next_step.for_replay(fired)
    if as_json:
        click.echo(json.dumps({**result, **closing.fields()}, indent=2))
        return
    for line in timeline_lines(result):
        click.echo(line)
    next_step.echo(closing)
