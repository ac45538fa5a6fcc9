"""``rollbackctl report``: a run record as Markdown, JSON or JUnit XML."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rollbackctl import next_step, records, slices
from rollbackctl.commands.options import BadInputError, project_of
from rollbackctl.exits import exit_codes_help
from rollbackctl.project import artifacts_dir, records_dir
from rollbackctl.report import FORMATS, TemplateProblem, earlier_levels, render_report

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "the report was written (whatever the run's own result)",
        2: "bad input: no such run record, or a template that does not render",
    }
)


@click.command(name="report", epilog=EXIT_CODES_HELP)
@click.argument("run_id", required=False)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="markdown",
    show_default=True,
    help="markdown: the runbook's lessons-learned entry with the incident's timeline picture "
    "(inline SVG); html: the same as a page; junit: a test case per host and phase.",
)
@click.option(
    "--records",
    "records_path",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of run records; default <artifacts>/runs.",
)
@click.option(
    "--template",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A Jinja2 template to use instead of the format's own (gets `record` and `view`).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of stdout.",
)
@click.option(
    "--picture/--no-picture",
    default=None,
    help="Markdown: draw the timeline picture (inline SVG). Default: drawn, except when the "
    "report goes to a terminal (there it says how to get it).",
)
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The project checkout, to find <project>/.artifacts/runs.",
)
def report_command(
    run_id: str | None,
    fmt: str,
    records_path: Path | None,
    template: Path | None,
    output: Path | None,
    picture: bool | None,
    project_dir: Path | None,
) -> None:
    """Render the run record RUN_ID (a unique prefix will do; default: the latest rollback
    run) with a Jinja2 template: Markdown (timeline, impact, rollback metrics, RTO/RPO per
    service, hosts, checklist), JSON, or JUnit XML. The record of a slice of a sliced AWX
    job is reported with every other slice's record in the directory: one report, every host."""
    directory = records_path or records_dir(artifacts_dir(project_of(project_dir)))
    try:
        _, record = records.find(directory, run_id)
        record = slices.merge(slices.slices_of(directory, record))  # a sliced AWX job: all
        if picture is None:
            picture = output is not None or not to_terminal()
        related = earlier_levels(directory, record)
        text = render_report(record, fmt, template, related, picture=picture)
    except (records.RecordNotFound, TemplateProblem) as error:
        raise BadInputError(str(error)) from None
    closing = next_step.for_report(record)
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"report written to {output}", err=True)
    next_step.echo(closing, err=True)


def to_terminal() -> bool:
    """Whether stdout is a terminal (where an inline SVG is a screenful of noise)."""
    return sys.stdout.isatty()
