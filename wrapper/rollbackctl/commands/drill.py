"""``rollbackctl drill``: run a drill (a Molecule scenario), list the schedule, report.

``run``, ``list`` and ``report`` are for people; ``begin``, ``mark``, ``mark-rollback`` and
``record`` are what the scenarios' own steps call (create, side_effect, converge, destroy),
so that a plain ``molecule test -s drill-code`` leaves the same drill record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from rollbackctl import drills, records
from rollbackctl.commands.options import BadInputError, project_of
from rollbackctl.exits import exit_codes_help
from rollbackctl.policy import PolicyFileError, load_policy
from rollbackctl.project import Project, artifacts_dir

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "the drill passed (list/report: written)",
        1: "the drill failed: a step, a check, a target (RTO/RPO) or leftovers; the record "
        "says which",
        2: "bad input: no such drill, no Molecule, a bad instance; nothing was run",
    }
)


def _common(function: Any) -> Any:
    function = click.option(
        "--artifacts",
        type=click.Path(file_okay=False, path_type=Path),
        help="Artifacts directory (drill runs and records go to <artifacts>/drills); "
        "default $ROLLBACKCTL_ARTIFACTS or <project>/.artifacts.",
    )(function)
    return click.option(
        "--project-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="The project checkout (molecule/, playbooks/); default: found from here.",
    )(function)


def _where(project_dir: Path | None, artifacts: Path | None) -> tuple[Project, Path]:
    project = project_of(project_dir)
    return project, artifacts_dir(project, artifacts)


def _over_records(
    build: Callable[..., Any], project_dir: Path | None, artifacts: Path | None
) -> Any:
    """``build(catalogue, records, today)`` over the project's drills and drill records."""
    project, art = _where(project_dir, artifacts)
    try:
        today = datetime.now(UTC).date()
        return build(drills.catalogue(project.root), drills.load_records(art), today)
    except drills.DrillError as error:
        raise BadInputError(str(error)) from None


def _spec(project: Project, name: str) -> drills.DrillSpec:
    try:
        return drills.spec_named(project.root, name)
    except drills.DrillError as error:
        raise BadInputError(str(error)) from None


@click.group(name="drill", epilog=EXIT_CODES_HELP)
def drill_group() -> None:
    """The runbook's rollback drills: Molecule scenarios that break the rig and prove a
    level brings it back, with measured RTO/RPO against the policy (molecule/<name>/)."""


@drill_group.command(name="run")
@click.argument("name")
@click.option(
    "--instance",
    type=click.IntRange(0, 9),
    default=lambda: int(os.environ.get("TESTHOSTS_INSTANCE") or 0),
    help="The test rig instance the drill brings up (TESTHOSTS_INSTANCE; give each drill "
    "that runs at the same time its own).",
)
@_common
def run_command(name: str, instance: int, project_dir: Path | None, artifacts: Path | None) -> None:
    """Run drill NAME end to end: `molecule test -s NAME` from the project (rig up, stable
    release, backups, load, the fault, its verify, the level through rollbackctl, the
    recovered verify, rig down), then print its drill record."""
    project, art = _where(project_dir, artifacts)
    _spec(project, name)
    molecule = shutil.which("molecule") or str(Path(sys.executable).parent / "molecule")
    if not Path(molecule).exists():
        raise BadInputError("molecule is not installed: run `make venv` (the test extra)")
    env = dict(os.environ, TESTHOSTS_INSTANCE=str(instance), ROLLBACKCTL_ARTIFACTS=str(art))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    started = time.time()
    proc = subprocess.run([molecule, "test", "-s", name], cwd=project.root, env=env, check=False)
    record = next(
        (r for r in reversed(drills.load_records(art)) if r.get("scenario") == name), None
    )
    if record is None or _epoch(record.get("started")) < started - 1:
        click.echo(
            f"drill {name}: molecule exited {proc.returncode} and wrote no drill record: "
            "look at its output above",
            err=True,
        )
        sys.exit(1)
    click.echo("\n".join(drills.summary_lines(record)))
    click.echo(f"molecule test -s {name}: exit {proc.returncode}, {time.time() - started:.0f} s")
    sys.exit(0 if proc.returncode == 0 and record["result"] == "passed" else 1)


def _epoch(text: Any) -> float:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


@drill_group.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@_common
def list_command(as_json: bool, project_dir: Path | None, artifacts: Path | None) -> None:
    """The runbook's drill schedule: each drill, monthly or quarterly, its last run and
    result, when it is due next; overdue drills are flagged (exit 0 all the same)."""
    rows = _over_records(drills.schedule, project_dir, artifacts)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'drill':<22}{'schedule':<11}{'levels':<8}{'last run':<22}{'result':<11}next due")
    for row in rows:
        click.echo(
            f"{row['drill']:<22}{row['schedule']:<11}{','.join(map(str, row['levels'])):<8}"
            f"{row['last_run'] or 'never':<22}{row['last_result']:<11}{row['next_due']}"
            + ("  OVERDUE" if row["overdue"] else "")
        )
    overdue = [row["drill"] for row in rows if row["overdue"]]
    if overdue:
        click.echo(f"Next: run the overdue drills: rollbackctl drill run {overdue[0]}")


@drill_group.command(name="report")
@click.option("-f", "--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
@_common
def report_command(
    fmt: str, output: Path | None, project_dir: Path | None, artifacts: Path | None
) -> None:
    """The compliance report over every drill record: schedule, each drill's RTO/RPO
    against the policy and the runbook budget (latest, worst, met/runs, trend), the runs."""
    data = _over_records(drills.report, project_dir, artifacts)
    text = json.dumps(data, indent=2) + "\n" if fmt == "json" else drills.report_markdown(data)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"drill report written to {output}", err=True)
    else:
        click.echo(text, nl=False)


# --------------------------------------------------------------------------------------------
# What the scenarios' steps call


def _run_dir(art: Path, name: str) -> Path:
    run_dir = drills.current(art, name)
    if run_dir is None:
        raise BadInputError(
            f"no drill {name} in progress in {art}/drills: its create step starts one"
        )
    return run_dir


@drill_group.command(name="begin", hidden=True)
@click.argument("name")
@click.option("--instance", type=click.IntRange(0, 9), required=True)
@_common
def begin_command(
    name: str, instance: int, project_dir: Path | None, artifacts: Path | None
) -> None:
    """Start a run of drill NAME (the create step); prints its folder."""
    project, art = _where(project_dir, artifacts)
    _spec(project, name)
    click.echo(drills.begin(art, name, instance))


@drill_group.command(name="mark", hidden=True)
@click.argument("name")
@click.argument("event")
@click.option("--at", type=float, help="When (epoch seconds); default now.")
@click.option("--data", default="{}", help="More fields, a JSON object.")
@_common
def mark_command(
    name: str,
    event: str,
    at: float | None,
    data: str,
    project_dir: Path | None,
    artifacts: Path | None,
) -> None:
    """Append EVENT to the timeline of drill NAME's run in progress."""
    _, art = _where(project_dir, artifacts)
    try:
        fields = json.loads(data)
    except ValueError as error:
        raise BadInputError(f"--data: not JSON: {error}") from None
    drills.mark(_run_dir(art, name), event, at, **fields)


@drill_group.command(name="mark-rollback", hidden=True)
@click.argument("name")
@click.option("--level", type=click.IntRange(1, 5), required=True)
@click.option("--start", "start", type=float, required=True, help="epoch seconds")
@click.option("--end", "end", type=float, required=True, help="epoch seconds")
@click.option("--exit-code", type=int, required=True)
@click.option("--records", "records_path", type=click.Path(path_type=Path), required=True)
@_common
def mark_rollback_command(
    name: str,
    level: int,
    start: float,
    end: float,
    exit_code: int,
    records_path: Path,
    project_dir: Path | None,
    artifacts: Path | None,
) -> None:
    """Record the converge step's rollbackctl command (one level, or an emergency that
    escalated): start, end, exit code, the levels it ran and their phases (the longest host
    per level and phase) from the run records rollbackctl left in RECORDS."""
    _, art = _where(project_dir, artifacts)
    run_dir = _run_dir(art, name)
    found = [json.loads(p.read_text(encoding="utf-8")) for p in records.record_files(records_path)]
    # The levels' own records (a validation's record has no level).
    runs = sorted(
        (record for record in found if record.get("level") is not None),
        key=lambda record: str(record.get("started") or ""),
    )
    phases: dict[str, float] = {}
    for record in runs:
        for host in (record.get("hosts") or {}).values():
            for phase, info in (host.get("phases") or {}).items():
                key = f"l{record.get('level')} {phase}"
                phases[key] = max(phases.get(key, 0.0), float(info.get("duration") or 0))
    drills.mark(run_dir, "rollback_started", start, level=level)
    drills.mark(
        run_dir,
        "rollback_finished",
        end,
        level=level,
        exit_code=exit_code,
        levels_run=[record.get("level") for record in runs],
        run_id=", ".join(str(record.get("run_id")) for record in runs),
        record=", ".join(str(path) for path in sorted(records.record_files(records_path))),
        status=", ".join(str(record.get("status")) for record in runs),
        phases=phases,
    )


@drill_group.command(name="record", hidden=True)
@click.argument("name")
@_common
def record_command(name: str, project_dir: Path | None, artifacts: Path | None) -> None:
    """Finish drill NAME's run (the destroy step, after the rig is down): stop its load,
    check that nothing is left behind, write the drill record (JSON, JUnit), print it. Exit
    1 when something is left behind; a drill that failed otherwise has already failed its
    step (verify, converge), and the record says so. Without a run in progress (the destroy
    before create) only the leftovers of the rig are checked."""
    project, art = _where(project_dir, artifacts)
    spec = _spec(project, name)
    run_dir = drills.current(art, name)
    instance = int(os.environ.get("TESTHOSTS_INSTANCE") or 0)
    if run_dir is None:
        left = drills.leftovers(instance)
        if left:
            click.echo(f"drill {name}: left behind on rig {instance}: {'; '.join(left)}", err=True)
            sys.exit(1)
        click.echo(f"drill {name}: no run in progress; nothing of rig {instance} is left")
        return
    instance = int(drills.meta(run_dir).get("instance", instance))
    pidfile = run_dir / drills.HEARTBEAT_PID
    drills.stop_process(pidfile)
    # The run's restic password (level 5) dies with the rig's repositories: no secret stays.
    (run_dir / "restic.pass").unlink(missing_ok=True)
    left = drills.leftovers(instance, [pidfile])
    drills.mark(run_dir, "destroyed", failed="; ".join(left) or None)
    try:
        policy = load_policy(str(project.root / "inventories" / "testhosts"))
    except PolicyFileError as error:
        raise BadInputError(str(error)) from None
    record = drills.build_record(spec, run_dir, policy, left)
    path, xml = drills.write_record(art, record)
    drills.finish(art, name)
    lines = drills.summary_lines(record)
    click.echo("\n".join(lines), err=record["result"] != "passed")
    click.echo(f"drill record: {path} (JUnit: {xml})")
    if record["result"] != "passed":
        click.echo(
            f"Next: read {path} (steps, checks, objectives), fix what failed, and run the drill "
            f"again: rollbackctl drill run {name}",
            err=True,
        )
    if left:
        sys.exit(1)
