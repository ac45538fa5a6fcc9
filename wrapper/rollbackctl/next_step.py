"""How every ``rollbackctl`` command ends: the state in words and the next step an operator
would take, on success and on failure. The one place these lines are built; the commands
print them last (``State: ...`` / ``Next: ...``) and ``--json`` carries them as the fields
``state`` and ``next_step``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.levels import LEVELS
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import (
    level_label,
    message_line,
)
from rollbackctl.report import host_releases

# Level 4's input that names the backup to restore (the level registry's).
RESTORE_BACKUP = LEVELS[4].targets[1].var

OK, FAILED, BAD_INPUT, CANCELED = 0, 1, 2, 3  # rollbackctl's exit codes (rollback.py)
MAX_LEVEL = 5
NEXT_IN_MESSAGE = re.compile(r"Next: (.+?)(?:$| / )")


@dataclass(frozen=True)
class Closing:
    state: str
    next_step: str

    def lines(self) -> list[str]:
        return [f"State: {self.state}", f"Next: {self.next_step}"]

    def fields(self) -> dict[str, str]:
        return {"state": self.state, "next_step": self.next_step}


def quote(value: str) -> str:
    return shlex.quote(str(value))


def _hosts(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "no host"


def _on(by_release: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{_hosts(hosts)} on {release}" for release, hosts in by_release.items())


def _releases_now(record: Mapping[str, Any]) -> dict[str, list[str]]:
    """What each host runs after the run (release -> hosts), where the record knows it."""
    found: dict[str, list[str]] = {}
    for host, data in sorted((record.get("hosts") or {}).items()):
        _before, after = host_releases(data)
        if after != "-":
            found.setdefault(after, []).append(host)
    return found


# --------------------------------------------------------------------------------------------
# run, emergency


def for_run(record: Mapping[str, Any], exit_code: int, inventory: str) -> Closing:
    """After ``rollbackctl run`` (and each level of ``emergency``)."""
    level = record.get("level")
    label = level_label(level)
    inv = quote(inventory)
    run_id = str(record.get("run_id") or "")
    hosts = record.get("hosts") or {}
    now = _releases_now(record)
    if exit_code == OK and record.get("check_mode"):
        return Closing(
            f"{label} planned in check mode, nothing changed ({len(hosts)} host(s) ok).",
            f"run it for real: the same command without --check (rollbackctl run --level "
            f"{level} -i {inv} ...).",
        )
    if exit_code == OK:
        where = f": {_on(now)}" if now else f": {len(hosts)} host(s) ok"
        return Closing(
            f"{label} rollback done{where}.",
            f"verify the whole system with `rollbackctl validate -i {inv}`, then write the "
            f"incident report with `rollbackctl report {run_id}`.",
        )
    if exit_code == CANCELED or record.get("status") in ("canceled", "killed"):
        ends = {
            host: str((data.get("end") or {}).get("outcome") or data.get("status"))
            for host, data in sorted(hosts.items())
        }
        said = "; ".join(f"{host} {outcome}" for host, outcome in ends.items())
        where = f" Hosts now: {_on(now)}." if now else ""
        return Closing(
            f"{label} rollback {record.get('status') or 'canceled'} ({said or 'no host reached'})."
            + where,
            f"see what every host runs with `rollbackctl status -i {inv}`, then run the same "
            f"level again when ready (`rollbackctl run --level {level} -i {inv}`).",
        )
    if exit_code == BAD_INPUT:
        return Closing(
            f"{label} refused before it started: nothing was changed.",
            "fix the input the message above names, then run the same command again.",
        )
    return _failed_run(record, label, level, inv, now)


def _failed_run(
    record: Mapping[str, Any],
    label: str,
    level: Any,
    inv: str,
    now: Mapping[str, list[str]],
) -> Closing:
    hosts = record.get("hosts") or {}
    bad = {h: d for h, d in sorted(hosts.items()) if d.get("status") != "ok"}
    said = "; ".join(
        f"{host} {data.get('status')}"
        + (f" in {data['failed_phase']}" if data.get("failed_phase") else "")
        for host, data in bad.items()
    )
    state = f"{label} rollback FAILED ({said or record.get('status')})."
    if now:
        state += f" Hosts now: {_on(now)}."
    unreachable = [h for h, d in bad.items() if d.get("status") == "unreachable"]
    if unreachable:
        names = ",".join(unreachable)
        return Closing(
            state,
            f"check that {_hosts(unreachable)} is up and reachable over ssh, then `rollbackctl "
            f"status -i {inv}` and run the level again for it (`rollbackctl run --level {level} "
            f"-i {inv} --limit {names}`).",
        )
    for host, data in bad.items():
        found = NEXT_IN_MESSAGE.search(message_line(data.get("msg")))
        if found:
            advice = found.group(1).rstrip(". ")
            return Closing(
                state,
                f"{host} says: {advice}. Marks per host: `rollbackctl releases -i {inv}`; a "
                f"wrong bad mark is cleared with `rollbackctl releases mark --good RELEASE "
                f"--reason WHY -i {inv} --hosts {host}`.",
            )
    higher = (
        f"; or escalate: `rollbackctl run --level {level + 1} -i {inv}`"
        if isinstance(level, int) and level < MAX_LEVEL
        else ""
    )
    return Closing(
        state,
        f"read the message of {_hosts(bad)} above, fix the cause, and run `rollbackctl run "
        f"--level {level} -i {inv}` again{higher}.",
    )


def for_emergency(
    steps: Sequence[Mapping[str, Any]], exit_code: int, decision: str, inventory: str
) -> Closing:
    """After ``rollbackctl emergency``: which level was verified, or where it stopped."""
    inv = quote(inventory)
    ran = [s for s in steps if s.get("outcome") != "skipped"]
    verified = [s for s in ran if s.get("outcome") == "verified"]
    if exit_code == OK and not ran:
        return Closing(
            f"decision: {decision}; no rollback ran.",
            "fix forward; watch the error ratio and run `rollbackctl emergency` again if it "
            "gets worse.",
        )
    if verified:
        level = verified[-1].get("level")
        run_id = verified[-1].get("run_id")
        return Closing(
            f"rolled back and verified at level {level} (run {run_id}).",
            f"watch the service (`rollbackctl status -i {inv}`), send the report printed above "
            "to the incident channel, and schedule the retrospective.",
        )
    if exit_code == CANCELED:
        return Closing(
            "emergency rollback canceled: no further level ran.",
            f"see what every host runs with `rollbackctl status -i {inv}`, then run the level "
            f"you need (`rollbackctl run --level N -i {inv}`).",
        )
    tried = ", ".join(f"level {s.get('level')} {s.get('outcome')}" for s in steps)
    return Closing(
        f"no level of the range was verified ({tried or 'none ran'}).",
        f"read the report above; `rollbackctl validate -i {inv}` names what is still wrong; "
        "run the level that fixes it by hand, or go beyond the decided range.",
    )


# --------------------------------------------------------------------------------------------
# status, releases, validate


def for_status(rows: list[Any], exit_code: int, problems: list[str], inventory: str) -> Closing:
    inv = quote(inventory)
    if exit_code == BAD_INPUT:
        return Closing(
            "no host matched: nothing was looked at.",
            "check the inventory and --limit/--hosts (`ansible-inventory -i INVENTORY --graph`).",
        )
    unreachable = [row.host for row in rows if not row.reachable]
    down = [row.host for row in rows if row.data.get("health") == "down"]
    if exit_code == OK:
        return Closing(
            f"every host answered ({len(rows)}), every application checked is healthy.",
            "nothing to do; before a rollback, `rollbackctl releases -i "
            f"{inv}` shows the marks that decide level 3's target.",
        )
    if down:
        return Closing(
            f"the application is down on {_hosts(down)}"
            + (f"; {_hosts(unreachable)} unreachable" if unreachable else "")
            + ".",
            f"look at the service on {_hosts(down)} (its log), or roll back: `rollbackctl "
            f"emergency -s SEVERITY --impact PCT -t DURATION -i {inv}`.",
        )
    if unreachable:
        return Closing(
            f"{_hosts(unreachable)} did not answer.",
            f"check that {_hosts(unreachable)} is up and reachable over ssh, then run "
            f"`rollbackctl status -i {inv}` again.",
        )
    return Closing(
        f"a probe failed ({'; '.join(problems) or 'see above'}).",
        f"fix what the line above says, then run `rollbackctl status -i {inv}` again.",
    )


def for_releases(rows: list[Any], exit_code: int, inventory: str) -> Closing:
    inv = quote(inventory)
    if exit_code != OK:
        return Closing(
            "not every host answered: the list is incomplete.",
            f"check the hosts named above, then `rollbackctl releases -i {inv}` again.",
        )
    bad: dict[str, list[str]] = {}
    for row in rows:
        if row.state == "bad":
            bad.setdefault(row.tag or row.release, []).append(row.host)
    if not bad:
        return Closing(
            "no release is marked bad on any host.",
            f"level 3 may pick any stable release; see its target with `rollbackctl run "
            f"--level 3 -i {inv} --check`.",
        )
    first, hosts = next(iter(bad.items()))
    return Closing(
        "marked bad (never a default target of level 3): "
        + "; ".join(f"{release} on {_hosts(h)}" for release, h in bad.items())
        + ".",
        f"clear a wrong mark with `rollbackctl releases mark --good {quote(first)} --reason "
        f"WHY -i {inv} --hosts {','.join(sorted(hosts))}`, or name a target: `rollbackctl "
        f"run --level 3 -i {inv} --target TAG`.",
    )


def for_mark(
    release: str, mark: str, hosts: Iterable[str], exit_code: int, inventory: str
) -> Closing:
    inv = quote(inventory)
    names = sorted(hosts)
    if exit_code != OK:
        return Closing(
            f"{release} was not marked {mark} on every host (marked on: {_hosts(names)}).",
            "fix what the lines above say, then run the same `rollbackctl releases mark` "
            "again (a host already marked says so and changes nothing).",
        )
    if mark == "bad":
        return Closing(
            f"{release} is now marked bad on {_hosts(names)}.",
            f"clear it with `rollbackctl releases mark --good {quote(release)} --reason WHY "
            f"-i {inv} --hosts {','.join(names)}`, or name a target: `rollbackctl run "
            f"--level 3 -i {inv} --target TAG`.",
        )
    return Closing(
        f"{release} is now marked good on {_hosts(names)}: level 3 may pick it again.",
        f"see level 3's target with `rollbackctl run --level 3 -i {inv} --check`.",
    )


def for_validate(outcome: Any, inventory: str) -> Closing:
    inv = quote(inventory)
    if outcome.exit_code == BAD_INPUT:
        return Closing(
            "no host matched: nothing was validated.",
            "check the inventory and --limit/--hosts (`ansible-inventory -i INVENTORY --graph`).",
        )
    if outcome.exit_code == OK:
        return Closing(
            f"valid: every host on {outcome.release}, healthy, configuration and database valid.",
            "nothing to roll back; after a rollback, write the report with `rollbackctl report`.",
        )
    rows = outcome.hosts
    unreachable = [row.host for row in rows if not row.reachable]
    differ = [row.host for row in rows if row.release_ok is False]
    unhealthy = [row.host for row in rows if row.reachable and row.health != "ok"]
    database = outcome.database or {}
    if unreachable:
        step = f"check that {_hosts(unreachable)} is up and reachable over ssh"
    elif database.get("status") == "failed":
        step = (
            "the database failed its checks (values above): restore a backup with level 4, "
            f"`rollbackctl run --level 4 -i {inv} -e {RESTORE_BACKUP}=NAME`"
        )
    elif differ:
        step = (
            f"bring {_hosts(differ)} to {outcome.release} with level 3: `rollbackctl run "
            f"--level 3 -i {inv} --target {quote(outcome.release or 'TAG')} --limit "
            f"{','.join(differ)}`"
        )
    elif unhealthy:
        step = (
            f"look at the application on {_hosts(unhealthy)}, or roll it back: `rollbackctl "
            f"run --level 3 -i {inv}`"
        )
    else:
        step = "fix what the lines above name"
    return Closing(
        "INVALID: " + "; ".join(_invalid(outcome)) + ".",
        f"{step}; then `rollbackctl validate -i {inv}` again.",
    )


def _invalid(outcome: Any) -> list[str]:
    """What failed, in words: one part per kind of failure."""
    rows = outcome.hosts
    database = outcome.database or {}
    found = []
    for what, hosts in (
        ("unreachable", [r.host for r in rows if not r.reachable]),
        (f"not on {outcome.release}", [r.host for r in rows if r.release_ok is False]),
        ("unhealthy", [r.host for r in rows if r.reachable and r.health != "ok"]),
        ("configuration check failed", [r.host for r in rows if r.config == "failed"]),
    ):
        if hosts:
            found.append(f"{_hosts(hosts)} {what}")
    checks = database.get("failed_checks") or {}
    if database.get("status") == "failed":
        for host in database.get("hosts") or sorted(checks):
            names = ", ".join(str(c.get("name")) for c in checks.get(host) or []) or "its checks"
            found.append(f"the database on {host} failed {names}")
    return found or [f"{_hosts(r.host for r in rows if not r.valid)} failed"]


# --------------------------------------------------------------------------------------------
# decide, report, triggers


def for_decide(decision: Any, given: str, inventory: str | None) -> Closing:
    """``given`` is the incident as decided (``-s critical --impact all -t 2h``)."""
    where = quote(inventory) if inventory else "INVENTORY"
    if decision.start_level is None:
        return Closing(
            f"decision: {decision.summary}.",
            "fix forward; decide again if the impact or the time to fix grows.",
        )
    return Closing(
        f"decision: {decision.summary}; nothing was run.",
        f"roll back: `rollbackctl emergency {given} -i {where}` (or one level: "
        f"`rollbackctl run --level {decision.start_level} -i {where}`).",
    )


def for_report(record: Mapping[str, Any]) -> Closing:
    run_id = record.get("run_id")
    status = record.get("status")
    state = f"report of run {run_id} ({level_label(record.get('level'))}, {status})."
    if status == "ok":
        return Closing(
            state,
            "fill in Root Cause and Prevention, send the report to the incident channel, and "
            "schedule the retrospective.",
        )
    return Closing(
        state,
        "the run did not succeed: its Hosts and Notes sections say where; `rollbackctl status "
        "-i INVENTORY` shows what the hosts run now.",
    )


def for_render(written: list[str]) -> Closing:
    where = " ".join(written) or "stdout"
    return Closing(
        f"rules and Alertmanager route rendered ({where}); nothing deployed.",
        "check them (`promtool check rules FILE`, `amtool check-config FILE`), then load them "
        "into Prometheus and Alertmanager.",
    )


def for_replay(fired: int) -> Closing:
    if not fired:
        return Closing(
            "no rule fired in the window.",
            "nothing would have rolled back; widen the window or check the series if an "
            "incident happened in it.",
        )
    return Closing(
        f"{fired} firing event(s) in the window; each line says the level the matrix picks.",
        "decide on a real incident with `rollbackctl decide -s SEVERITY --impact PCT -t "
        "DURATION -i INVENTORY`.",
    )


def echo(closing: Closing, err: bool = False) -> None:
    """Print the closing lines, last in a command's output (stderr for `report`, whose
    stdout is the document)."""
    import click

    for line in closing.lines():
        click.echo(line, err=err)
