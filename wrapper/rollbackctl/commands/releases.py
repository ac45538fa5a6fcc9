"""``rollbackctl releases``: the releases each host knows and their marks; ``releases mark``
records one good or bad."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rollbackctl import next_step
from rollbackctl.commands.options import (
    BadInputError,
    optional_target_options,
    project_of,
    target_options,
)
from rollbackctl.exits import exit_codes_help
from rollbackctl.progress import output_console
from rollbackctl.project import artifacts_dir
from rollbackctl.releases import mark_release, release_line, release_rows, releases_table
from rollbackctl.rollback import BadInput
from rollbackctl.status import problems, run_status

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "every host answered (mark: every host recorded the mark)",
        1: "a host was unreachable or a step failed",
        2: "bad input (options, inventory, no host matched); nothing was changed",
    }
)


@click.group(name="releases", invoke_without_command=True, epilog=EXIT_CODES_HELP)
@optional_target_options
@click.option("--json", "as_json", is_flag=True, help="Print the releases as JSON.")
@click.pass_context
def releases_group(
    ctx: click.Context,
    inventory: str | None,
    limit: str | None,
    hosts: str | None,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Per host: the current release and every release the release log knows, with its
    state (good, bad, suspect) and who set it, when, why and in which run (read-only,
    playbooks/status.yml)."""
    if ctx.invoked_subcommand is not None:
        return
    if not inventory:
        raise BadInputError("give the inventory: rollbackctl releases -i INVENTORY")
    try:
        outcome = run_status(project_of(project_dir), inventory, limit, hosts)
    except BadInput as error:
        raise BadInputError(str(error)) from None
    rows = release_rows(outcome)
    closing = next_step.for_releases(rows, outcome.exit_code, inventory)
    if as_json:
        listed = [row.as_dict() for row in rows]
        click.echo(json.dumps({"releases": listed, **closing.fields()}, indent=2))
    else:
        console = output_console()
        if console.is_terminal:
            console.print(releases_table(rows))
        else:
            for row in rows:
                console.print(release_line(row), highlight=False, markup=False)
        for line in [*problems(outcome), outcome.note]:
            if line:
                console.print(line)
        next_step.echo(closing)
    sys.exit(outcome.exit_code)


@releases_group.command(name="mark", epilog=EXIT_CODES_HELP)
@click.argument("release")
@click.option("--good", "mark", flag_value="good", help="Mark it good (clears a bad mark).")
@click.option("--bad", "mark", flag_value="bad", help="Mark it bad: never a default target.")
@click.option("--reason", required=True, help="Why: written to each host's release log.")
@target_options
@click.option(
    "--artifacts",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the run record (runs/); default $ROLLBACKCTL_ARTIFACTS or "
    "<project>/.artifacts.",
)
def mark_command(
    release: str,
    mark: str | None,
    reason: str,
    inventory: str,
    limit: str | None,
    hosts: str | None,
    project_dir: Path | None,
    artifacts: Path | None,
) -> None:
    """Record RELEASE (id or tag) as good or bad on the hosts (sre.rollback.release
    state=marked, playbooks/mark-release.yml): who, why and the run id go to each host's
    releases.log, and the run leaves a run record."""
    if mark is None:
        raise BadInputError("say --good or --bad")
    project = project_of(project_dir)
    try:
        outcome = mark_release(
            project,
            inventory,
            release,
            mark,
            reason,
            artifacts_dir(project, artifacts),
            limit=limit,
            hosts=hosts,
        )
    except BadInput as error:
        raise BadInputError(str(error)) from None
    console = output_console()
    for line in outcome.lines(release, mark):
        console.print(line, highlight=False)
    console.print(f"Run record: {outcome.record_path}", highlight=False)
    marked = [host for host, data in outcome.hosts.items() if data.get("after") == mark]
    next_step.echo(next_step.for_mark(release, mark, marked, outcome.exit_code, inventory))
    sys.exit(outcome.exit_code)
