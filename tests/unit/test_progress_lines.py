"""Live progress without a terminal (CI logs, AWX, ``| tee``): one complete line per host
and phase change, nothing cut to the log's width (#21). Runs are faked from ansible-runner
events shaped like level 3's (the plan's input check, the one-call rollout reporting its
phases, the batch published once), and through the CLI on test_run_cli's fake project."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from rollbackctl.progress import LineProgress, RunState, make_progress, output_console
from tests.unit import test_run_cli
from tests.unit.test_run_cli import Fake, fake_args, invoke

fake_project = test_run_cli.fake  # test_run_cli's fake project, as a fixture here

RELEASE = "sre.rollback.release"
ROLLED_OUT = [
    {"phase": "switch", "status": "changed", "seconds": 0.02},
    {"phase": "restart", "status": "changed", "seconds": 0.7},
    {"phase": "health", "status": "ok", "seconds": 1.26},
    {"phase": "unlock", "status": "ok", "seconds": 0.01},
]
GATE_MESSAGE = (
    "health gate failed on h2 (crashed: the unit restarted 2 times in the 2 s observation "
    "window, main PID 811 -> 840) while v1.3.0 is healthy again after the switch back: "
    "v1.2.3-stable is marked bad on h2 (run 20261206T025517Z-l3-ab1879d8a15e).\n"
    "Next: roll back to a release that is not bad (rollbackctl run --level 3 --target "
    "v1.2.2-stable), or clear the mark if it is wrong."
)
GATE_FAILED = [
    {"phase": "switch", "status": "changed", "seconds": 0.02},
    {"phase": "restart", "status": "changed", "seconds": 0.7},
    {"phase": "health", "status": "failed", "seconds": 2.5, "msg": GATE_MESSAGE},
    {"phase": "revert", "status": "changed", "seconds": 0.9},
    {"phase": "unlock", "status": "ok", "seconds": 0.01},
]


def task(host: str, phase: str, action: str, event: str, res: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {"host": host, "task_tags": [f"phase_{phase}"], "task_action": action}
    if res is not None:
        data["res"] = res
    return {"event": event, "event_data": data}


def plan(hosts: Iterable[str]) -> list[Any]:
    events = [task(h, "plan", "sre.rollback.role_inputs", "runner_on_start") for h in hosts]
    return events + [task(h, "plan", "sre.rollback.role_inputs", "runner_on_ok", {}) for h in hosts]


def rollout(host: str, steps: list[dict[str, Any]], failed: bool = False) -> list[Any]:
    done = "runner_on_failed" if failed else "runner_on_ok"
    res = {"changed": True, "phases": steps, "msg": "rolled out"}
    return [
        task(host, "switch", RELEASE, "runner_on_start"),
        task(host, "switch", RELEASE, done, res),
    ]


def publish(host: str, hosts: Iterable[str]) -> list[Any]:
    stats = {"ansible_stats": {"data": {"release_results": {h: {} for h in hosts}}}}
    action = "ansible.builtin.set_stats"
    return [
        task(host, "record", action, "runner_on_start"),
        task(host, "record", action, "runner_on_ok", stats),
    ]


def lines_of(events: list[Any], width: int = 60) -> list[str]:
    """What a log shows: LineProgress on a console that is not a terminal."""
    stream = io.StringIO()
    console = output_console(stream)
    console.width = width  # narrower than any line: nothing may be cut or wrapped
    state = RunState()
    progress = make_progress(console, state, "level 3 (code) rollback")
    assert isinstance(progress, LineProgress), "no terminal: lines, not the live table"
    progress.start()
    for event in [*events, {"event": "playbook_on_stats", "event_data": {}}]:
        changes = state.handle(event)
        if changes:
            progress.update(changes)
    progress.stop()
    return stream.getvalue().splitlines()


def test_a_successful_level_3_is_one_line_per_host_and_phase() -> None:
    events = [
        *plan(["h2", "h3"]),
        *rollout("h2", ROLLED_OUT),
        *publish("h2", ["h2"]),
        *rollout("h3", ROLLED_OUT),
        *publish("h3", ["h3"]),
    ]
    # A phase is over when its host starts the next one (h3's plan), or at the end.
    assert lines_of(events) == [
        "  h2               plan       ok 0.0s",
        "  h2               switch     changed 0.0s",
        "  h2               restart    changed 0.7s",
        "  h2               health     ok 1.3s",
        "  h2               unlock     ok 0.0s",
        "  h3               plan       ok 0.0s",
        "  h3               switch     changed 0.0s",
        "  h3               restart    changed 0.7s",
        "  h3               health     ok 1.3s",
        "  h3               unlock     ok 0.0s",
        "  h2               record     ok 0.0s",
        "  h3               record     ok 0.0s",
    ]


def test_a_failed_gate_is_one_complete_line_with_the_whole_message() -> None:
    stop = (
        "rollback failed on h2: the canary's health gate failed; switched back to v1.3.0; "
        "later batches were not started"
    )
    events = [
        *plan(["h2", "h3"]),
        *rollout("h2", GATE_FAILED, failed=True),
        task("h2", "revert", "ansible.builtin.fail", "runner_on_start"),
        task("h2", "revert", "ansible.builtin.fail", "runner_on_failed", {"msg": stop}),
    ]
    one_line = GATE_MESSAGE.replace("\n", " / ")
    # The module's own message, then the rollout's verdict for the phase that failed; the
    # verdict's task (tagged revert) does not show revert again.
    assert lines_of(events) == [
        "  h2               plan       ok 0.0s",
        "  h2               switch     changed 0.0s",
        "  h2               restart    changed 0.7s",
        f"  h2               health     failed 2.5s  {one_line}",
        "  h2               revert     changed 0.9s",
        "  h2               unlock     ok 0.0s",
        f"  h2               health     failed 2.5s  {stop}",
        "  h3               plan       ok 0.0s",
    ]


# --- through the CLI, not a terminal ------------------------------------------------------


PHASE_LINE = re.compile(
    r"^  (\S+) +(\S+) +(ok|changed|skipped|failed|unreachable) \d+\.\ds(  .+)?$"
)


def assert_plain_complete_lines(output: str) -> list[re.Match[str]]:
    assert "…" not in output, "nothing cut"
    assert not set("┃━│╇") & set(output), "no table in a log"
    return [m for line in output.splitlines() if (m := PHASE_LINE.match(line))]


def assert_log_closes_with_next_step(output: str) -> tuple[str, str, list[re.Match[str]]]:
    """A log as CI keeps it: complete lines (every host-and-phase line whole), and the
    state and the next step last. Returns them, and the phase lines."""
    found = assert_plain_complete_lines(output)
    lines = [line for line in output.splitlines() if line.strip()]
    assert "\r" not in output, "no line overwritten in place"
    assert lines[-2].startswith("State: ") and lines[-1].startswith("Next: "), lines[-6:]
    assert len(lines[-1]) > len("Next: ") + 20, "a next step in words"
    return lines[-2], lines[-1], found


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_run_in_a_log_is_complete_lines(fake_project: Fake, tmp_path: Path) -> None:
    result = invoke("run", "--level", "3", *fake_args(fake_project, tmp_path / "a"), "--no-notify")
    assert result.exit_code == 0, result.output
    found = assert_plain_complete_lines(result.output)
    assert [(m[1], m[2], m[3]) for m in found] == [
        ("localhost", "plan", "ok"),
        ("localhost", "switch", "changed"),
        ("localhost", "health", "ok"),
        ("localhost", "unlock", "changed"),
        ("localhost", "record", "ok"),
    ]
    title = next(line for line in result.output.splitlines() if "rollback, run" in line)
    assert title.endswith(f" on {fake_project.inventory}"), "the title is one line"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_failed_gate_in_a_log_is_complete_lines(fake_project: Fake, tmp_path: Path) -> None:
    args = fake_args(fake_project, tmp_path / "a")
    result = invoke("run", "--level", "3", *args, "--no-notify", "-e", '{"fail_levels": [3]}')
    assert result.exit_code == 1, result.output
    found = assert_plain_complete_lines(result.output)
    health = next(m for m in found if m[2] == "health")
    assert (health[3], health[4]) == ("failed", "  level 3 is not healthy")
    summary = [line for line in result.output.splitlines() if line.startswith("Rollback FAILED")]
    assert len(summary) == 1 and summary[0].endswith("localhost: health: level 3 is not healthy")
