"""Run one rollback level: check the inputs, send the start messages, run the level's
playbook with live progress, complete the run record, send the closing messages.

``rollbackctl run`` is ``run_level``; ``rollbackctl emergency`` chains ``execute`` over a
level range (rollbackctl.emergency).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from rich.console import Console

from ansible_collections.sre.rollback.plugins.plugin_utils import levels, run_identity
from ansible_collections.sre.rollback.plugins.plugin_utils.inputs import blank_names
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    InputError,
    Policy,
    default_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import Redactor
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import (
    iso,
    level_label,
    parse_time,
    policy_snapshot,
    utcnow,
)
from rollbackctl import records
from rollbackctl.exits import exit_codes_help
from rollbackctl.messages import (
    MessageContext,
    Notifier,
    message_context,
    notifier_for,
    record_messages,
    send_closing,
    send_start,
)
from rollbackctl.policy import (
    PolicyFileError,
    find_policy_file,
    inventory_directory,
    load_policy,
)
from rollbackctl.progress import RunState, make_progress, phase_table
from rollbackctl.project import Project, records_dir
from rollbackctl.report import release_text
from rollbackctl.runner import (
    CancelSwitch,
    PlaybookRequest,
    PlaybookResult,
    inventory_args,
    redactor_for,
    run_playbook,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELED = 0, 1, 2, 3

EXIT_CODES_HELP = exit_codes_help(
    {
        0: "the rollback ran and every host is ok (with --check: the plan is fine)",
        1: (
            "the rollback ran and failed (a host failed or was unreachable, or a health gate did "
            "not pass); the run record says where"
        ),
        2: (
            "bad input: unknown level or missing playbook, bad option, inventory or policy, or no"
            " host matched; nothing was changed"
        ),
        3: (
            "canceled (Ctrl-C / SIGTERM): Ansible was stopped, this run's locks were released, "
            "and the record is marked canceled"
        ),
    }
)


class BadInput(Exception):
    """Input that keeps a run from starting; nothing was changed."""


# --------------------------------------------------------------------------------------------
# Options and what they become


@dataclass
class RunOptions:
    level: int
    inventory: str
    project: Project
    artifacts: Path
    reason: str = ""
    incident: str | None = None
    limit: str | None = None
    check: bool = False
    target: str | None = None
    hosts: str | None = None
    detected_at: str | None = None
    incident_started_at: str | None = None
    users_affected: int | None = None
    services: tuple[str, ...] = ()
    extra_vars: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    policy_file: Path | None = None
    lead: str = ""
    impact: str = ""
    severity: str = ""
    notify: bool = True
    decision: dict[str, Any] | None = None
    decided_at: str | None = None
    procedure_started_at: str | None = None


@dataclass
class Prepared:
    options: RunOptions
    playbook: Path
    policy: Policy
    policy_path: Path | None
    run_id: str
    times: dict[str, str | None]
    environment: str


@dataclass
class Outcome:
    exit_code: int
    status: str
    record: dict[str, Any]
    record_path: Path
    result: PlaybookResult | None
    summary: str


# The variables that name a level's target (the level registry's): given empty
# (`--target "$UNSET"`, `-e VAR=`) they are refused, since an empty target must not quietly
# become the default one.
TARGET_INPUTS = levels.target_inputs()


def new_run_id(level: int) -> str:
    return run_identity.new_run_id(f"l{level}")


def parse_extra_vars(values: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``-e`` values as Ansible takes them: KEY=VALUE, a JSON/YAML mapping, or @FILE."""
    merged: dict[str, Any] = {}
    for value in values:
        merged.update(_one_extra_var(value))
    return merged


def _one_extra_var(value: str) -> dict[str, Any]:
    text = value.strip()
    if text.startswith("@"):
        try:
            text = Path(text[1:]).expanduser().read_text(encoding="utf-8")
        except OSError as error:
            raise BadInput(f"-e {value}: cannot read the file: {error.strerror}") from None
    elif not text.startswith("{"):
        key, sep, item = text.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"-e {value!r}: write KEY=VALUE, a YAML/JSON mapping, or @FILE")
        return {key.strip(): item}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise BadInput(f"-e {value!r}: not a valid YAML/JSON mapping") from None
    if not isinstance(data, dict):
        raise BadInput(f"-e {value!r}: must be a mapping of variables")
    return data


def load_run_policy(inventory: str, policy_file: Path | None) -> tuple[Policy, Path | None]:
    """The policy and its file: ``--policy``, the inventory's policy.yml, else the
    runbook's defaults (also for a host list such as ``10.0.0.5,``)."""
    try:
        if policy_file is not None:
            return load_policy(None, policy_file), policy_file.resolve()
        if not Path(inventory).exists():
            return default_policy(), None
        found = find_policy_file(inventory_directory(inventory))
        return load_policy(inventory, None), found.resolve() if found else None
    except PolicyFileError as error:
        raise BadInput(str(error)) from None


def environment_name(inventory: str) -> str:
    path = Path(inventory)
    if not path.exists():
        return inventory.rstrip(",")
    directory = path if path.is_dir() else path.parent
    group_vars = directory / "group_vars"
    if group_vars.is_symlink():
        return group_vars.resolve().parent.name
    return directory.resolve().name


def _check_inventory(inventory: str) -> None:
    if "," in inventory or Path(inventory).expanduser().exists():
        return
    raise BadInput(
        f"inventory {inventory!r} not found: give a file or directory (inventories/prod), or "
        "a host list ending with a comma (10.0.0.5,)"
    )


def project_playbook(project: Project, name: str, inventory: str) -> Path:
    """``playbooks/<name>`` of the project, with the inventory checked; BadInput when
    either is missing."""
    playbook = project.playbook(name)
    if playbook is None:
        raise BadInput(f"{project.root}/playbooks/{name} does not exist")
    _check_inventory(inventory)
    return playbook


def run_check(
    project: Project, name: str, inventory: str, limit: str | None, hosts: str | None
) -> PlaybookResult:
    """Run a read-only playbook (status.yml, validate.yml) quietly: no run record kept (a
    check is not a run), no artifacts."""
    playbook = project_playbook(project, name, inventory)
    with tempfile.TemporaryDirectory(prefix=f"rollbackctl-{Path(name).stem}-") as scratch:
        request = PlaybookRequest(
            project=project,
            playbook=playbook,
            inventory=inventory,
            run_id=Path(name).stem,
            record_dir=Path(scratch) / "records",
            artifacts_dir=None,
            extravars={"rollback_hosts": hosts} if hosts else {},
            limit=limit,
        )
        return run_playbook(request)


def check_targets(options: RunOptions) -> None:
    """Refuse a target given empty: ``--target ""`` or ``-e VAR=`` of a level's target (an unset
    shell variable) must not roll back to the default target."""
    if options.target is not None and not options.target.strip():
        level = options.level if options.decision is None and options.level else 3
        target = levels.LEVELS.get(level, levels.LEVELS[3]).targets[0]
        raise BadInput(
            f"--target is empty (an unset shell variable?): give {target.what}, or "
            f"{target.left_out} (without --target). Nothing was changed."
        )
    blank = blank_names(list(TARGET_INPUTS), options.extra_vars)
    if blank:
        raise BadInput(
            " ".join(
                f"-e {name} is empty (an unset shell variable?): give {TARGET_INPUTS[name].what}, "
                f"or {TARGET_INPUTS[name].left_out}."
                for name in blank
            )
            + " Nothing was changed."
        )


def check_limit(options: RunOptions) -> None:
    """Refuse a ``--limit`` that matches no host of the inventory (ansible-playbook would stop
    with no reason the wrapper could show, after the start messages went out)."""
    if options.limit and not limit_hosts(options.project, options.inventory, options.limit):
        raise BadInput(
            f"--limit {options.limit!r} matches no host of the inventory {options.inventory}: "
            "check the host or group names (ansible-inventory -i INVENTORY --graph). "
            "Nothing was changed."
        )


@functools.lru_cache(maxsize=8)
def limit_hosts(project: Project, inventory: str, limit: str) -> tuple[str, ...]:
    """The inventory's hosts that ``limit`` selects (``ansible all --list-hosts``); every
    host when the inventory cannot be read here (the run then says why)."""
    binary = Path(sys.executable).parent / "ansible"
    command = [str(binary) if binary.exists() else "ansible", "all", "--list-hosts"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(project.ansible_cfg))
    try:
        proc = subprocess.run(
            [*command, *inventory_args(inventory), "--limit", limit],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ("?",)
    if proc.returncode != 0 and "no hosts" not in proc.stderr + proc.stdout:
        return ("?",)
    lines = [line.strip() for line in proc.stdout.splitlines()]
    return tuple(line for line in lines if line and not line.startswith("hosts ("))


def _times(options: RunOptions) -> dict[str, str | None]:
    now = utcnow()
    given = {
        "rollback_detected_at": ("--detected-at", options.detected_at),
        "rollback_incident_started_at": ("--incident-started", options.incident_started_at),
        "rollback_decided_at": ("decision time", options.decided_at),
        "rollback_started_at": ("start time", options.procedure_started_at),
    }
    times: dict[str, str | None] = {}
    for variable, (option, value) in given.items():
        try:
            moment = parse_time(value, now)
        except InputError as error:
            raise BadInput(f"{option}: {error}") from None
        if moment is not None and moment > now:
            raise BadInput(f"{option}: {iso(moment)} is in the future")
        times[variable] = iso(moment)
    return times


def prepare(options: RunOptions) -> Prepared:
    """Every check that can fail before anything runs; raises BadInput."""
    if options.level not in levels.LEVELS:
        raise BadInput(f"level {options.level} does not exist: levels are 1 to 5")
    playbook = options.project.level_playbook(options.level)
    if playbook is None:
        raise BadInput(options.project.missing_level_message(options.level))
    _check_inventory(options.inventory)
    check_targets(options)
    check_limit(options)
    if options.users_affected is not None and options.users_affected < 0:
        raise BadInput("--users-affected must be 0 or more")
    times = _times(options)
    policy, policy_path = load_run_policy(options.inventory, options.policy_file)
    return Prepared(
        options=options,
        playbook=playbook,
        policy=policy,
        policy_path=policy_path,
        run_id=options.run_id or new_run_id(options.level),
        times=times,
        environment=environment_name(options.inventory),
    )


def extravars(prepared: Prepared) -> dict[str, Any]:
    """The wrapper's own extra vars: identity and facts of the run, never a secret."""
    options = prepared.options
    values: dict[str, Any] = {
        "rollback_run_id": prepared.run_id,
        "rollback_level": options.level,
        "rollback_reason": options.reason or None,
        "rollback_incident": options.incident,
        "rollback_policy_file": str(prepared.policy_path) if prepared.policy_path else None,
        "rollback_users_affected": options.users_affected,
        "rollback_services": list(options.services) or None,
        "rollback_decision": options.decision,
        "rollback_user": run_identity.real_user(),
        "rollback_target": options.target,
        "rollback_hosts": options.hosts,
        **prepared.times,
    }
    # `run` names one level, so the target is that level's; `emergency` climbs several
    # levels, and its --target names the release of level 3 only.
    level = options.level if options.decision is None else 3
    if options.target and options.level == level and level in levels.LEVELS:
        values[levels.LEVELS[level].target] = options.target
    return {key: value for key, value in values.items() if value is not None}


# --------------------------------------------------------------------------------------------
# Running a level


def execute(
    prepared: Prepared,
    console: Console,
    cancel: CancelSwitch,
    redactor: Redactor,
) -> Outcome:
    """Run the level's playbook and complete its record (no messages)."""
    options = prepared.options
    request = PlaybookRequest(
        project=options.project,
        playbook=prepared.playbook,
        inventory=options.inventory,
        run_id=prepared.run_id,
        record_dir=records_dir(options.artifacts),
        artifacts_dir=options.artifacts / "rollbackctl",
        extravars=extravars(prepared),
        user_extravars=options.extra_vars,
        limit=options.limit,
        check=options.check,
    )
    title = f"{level_label(options.level)} rollback, run {prepared.run_id}"
    console.print(f"[bold]{title}[/] on {options.inventory}", highlight=False)
    state = RunState()
    progress = make_progress(console, state, title)
    result = run_playbook(request, progress, cancel, redactor, state)
    return _outcome(prepared, result, redactor)


def _outcome(prepared: Prepared, result: PlaybookResult, redactor: Redactor) -> Outcome:
    record = _record_of(prepared, result)
    status = str(record.get("status"))
    notes: list[str] = []
    added: dict[str, Any] = {}
    if result.canceled or result.killed:
        # What each host really did, as the hosts say it (runner.settle).
        ends = {host: end.data() for host, end in result.ends.items()}
        added["hosts"] = records.settled(record, ends, result.in_flight, killed=result.killed)
    if result.canceled:
        status = "canceled"
        notes += [f"after the cancel: {line}" for line in result.cleanup]
    elif result.killed:
        status = "killed"
        notes.append(
            f"ansible-playbook ended without finishing its record (rc {result.rc}): the "
            "results of hosts in flight are the hosts' own (journal) or unknown"
        )
        notes += [f"after the kill: {line}" for line in result.cleanup]
    elif status == "running":  # the callback never saw the end
        status = "failed"
        notes.append(f"ansible-playbook ended without finishing (rc {result.rc})")
    elif status == "ok" and result.rc != 0:
        status = "failed"
        notes.append(f"ansible-playbook exited with rc {result.rc}: see its stdout")
    if result.error:
        notes.append(result.error)
    policy = record["policy"] if "policy" in record else policy_snapshot(prepared.policy)
    records.add(
        result.record_path, record, redactor, notes=notes, status=status, policy=policy, **added
    )
    code = exit_code(status, result, record)
    return Outcome(code, status, record, result.record_path, result, _summary(record, result, code))


def _record_of(prepared: Prepared, result: PlaybookResult) -> dict[str, Any]:
    """The callback's record of the run; when it wrote none, the record's first lines
    with the hosts the live view saw, and why."""
    if result.record_path.is_file():
        try:
            return records.load(result.record_path)
        except records.RecordNotFound:
            pass
    return records.fallback(
        prepared.run_id,
        prepared.playbook,
        prepared.options.level,
        result.state,
        status="canceled" if result.canceled else "failed",
        note=f"the run-record callback wrote nothing (ansible-playbook rc {result.rc})",
    )


def exit_code(
    status: str, result: PlaybookResult | None, record: dict[str, Any] | None = None
) -> int:
    if status == "canceled" or (result is not None and result.canceled):
        return EXIT_CANCELED
    if status == "ok":
        return EXIT_OK
    if status == "empty" or (result is not None and (result.no_hosts or result.bad_options)):
        return EXIT_BAD_INPUT
    if status == "failed" and record is not None and refused_inputs(record):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def refused_inputs(record: dict[str, Any]) -> bool:
    """The level refused its inputs before it changed anything: every host that failed, failed
    in its preflight (the role's input checks, level 3's named target that the repository
    does not have, level 4's missing confirmation), and no task changed anything."""
    hosts = (record.get("hosts") or {}).values()
    failed = [host for host in hosts if host.get("status") == "failed"]
    if not failed or any(host.get("failed_phase") != "preflight" for host in failed):
        return False
    return not any(task.get("changed") for task in record.get("tasks") or [])


def _summary(record: dict[str, Any], result: PlaybookResult, code: int) -> str:
    hosts = record.get("hosts") or {}
    bad = sorted(h for h, v in hosts.items() if v.get("status") != "ok")
    duration = (record.get("metrics") or {}).get("time_to_rollback", {}).get("text", "?")
    if code == EXIT_OK:
        what = "planned (check mode, nothing changed)" if record.get("check_mode") else "ok"
        planned = planned_target(record) if record.get("check_mode") else ""
        return f"Rollback {what} in {duration}: {len(hosts)} host(s) ok." + planned
    if code == EXIT_CANCELED:
        return f"Rollback canceled after {duration}. " + "; ".join(result.cleanup)
    if result.killed:
        return f"Rollback KILLED after {duration} (ansible-playbook died). " + "; ".join(
            result.cleanup
        )
    if code == EXIT_BAD_INPUT:
        if result.no_hosts:
            return (
                "No host of the inventory matched the level's hosts (the `app` group, or "
                "--hosts PATTERN): nothing was changed."
            )
        refusals = sorted({str(hosts[h].get("msg") or "") for h in bad} - {""})
        if refusals:
            return "Refused (bad input, nothing was changed): " + " ".join(refusals)
        return f"ansible-playbook refused the options (rc {result.rc}): nothing was changed."
    detail = "; ".join(
        f"{h}: {hosts[h].get('failed_phase', '?')}: {hosts[h].get('msg', hosts[h].get('status'))}"
        for h in bad
    )
    return f"Rollback FAILED after {duration}: {detail or 'see the run record'}"


def planned_target(record: dict[str, Any]) -> str:
    """The target the level chose (published per host as ``result.target``; in check mode
    ``after`` stays the current release), with what each host runs now; "" when the level
    publishes none."""
    by_target: dict[str, dict[str, list[str]]] = {}
    for host, data in sorted((record.get("hosts") or {}).items()):
        result = data.get("result") or {}
        if result.get("target"):
            now = release_text(result.get("before"))
            by_target.setdefault(release_text(result["target"]), {}).setdefault(now, []).append(
                host
            )
    return "".join(
        f" Target: {target} ("
        + "; ".join(f"{', '.join(hosts)} now on {now}" for now, hosts in currents.items())
        + ")."
        for target, currents in by_target.items()
    )


# --------------------------------------------------------------------------------------------
# `rollbackctl run`


def context_for(prepared: Prepared) -> MessageContext:
    options = prepared.options
    return message_context(
        prepared.policy,
        level=options.level,
        reason=options.reason,
        impact=options.impact or _impact_text(options.users_affected),
        severity=options.severity,
        environment=prepared.environment,
        lead=options.lead or prepared.policy.communication.lead or run_identity.real_user(),
    )


def _impact_text(users: int | None) -> str:
    return f"{users:,} users affected" if users is not None else ""


def make_notifier(prepared: Prepared, stream: TextIO, redactor: Redactor) -> Notifier:
    options = prepared.options
    return notifier_for(
        prepared.policy,
        stream=stream,
        dry_run=not options.notify or options.check,
        redactor=redactor,
    )


def warn_failed_deliveries(notifier: Notifier, console: Console) -> None:
    for problem in notifier.unreported_failures():
        console.print(f"[yellow]warning:[/] {problem}", highlight=False, soft_wrap=True)


def run_level(options: RunOptions, console: Console, stream: TextIO) -> Outcome:
    """``rollbackctl run``: start messages, the level, the record, closing messages."""
    prepared = prepare(options)
    redactor = redactor_for(options.extra_vars)
    notifier = make_notifier(prepared, stream, redactor)
    context = context_for(prepared)
    send_start(notifier, prepared.policy, context)
    warn_failed_deliveries(notifier, console)
    if notifier.dry_run:
        console.print("Messages: not sent (--check or --no-notify).", highlight=False)
    with CancelSwitch().forwarding() as cancel:
        outcome = execute(prepared, console, cancel, redactor)
    send_closing(notifier, prepared.policy, context, outcome.record)
    warn_failed_deliveries(notifier, console)
    record_messages(outcome.record, notifier.sent, notifier.notes())
    records.add(outcome.record_path, outcome.record, redactor)
    return outcome


def show_outcome(outcome: Outcome, console: Console) -> None:
    state = outcome.result.state if outcome.result else None
    if state is not None and state.hosts and console.is_terminal:
        # Without a terminal the lines said it all, each complete; a table would be cut.
        console.print(phase_table(state, "Per host and phase"))
    style = {EXIT_OK: "bold green", EXIT_CANCELED: "bold magenta"}.get(
        outcome.exit_code, "bold red"
    )
    console.print(f"[{style}]{outcome.summary}[/]", highlight=False)
    console.print(f"Run record: {outcome.record_path}", highlight=False, soft_wrap=True)
    console.print(f"Report: rollbackctl report {outcome.record.get('run_id')}", highlight=False)


def outcome_json(outcome: Outcome) -> str:
    return json.dumps(outcome.record, indent=2, sort_keys=True, default=str)
