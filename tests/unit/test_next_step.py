"""The state and the next step every rollbackctl command ends with (rollbackctl.next_step):
from run records shaped as the callback writes them, and the outcomes of status, releases
and validate."""

from __future__ import annotations

from typing import Any

from rollbackctl import next_step
from rollbackctl.releases import ReleaseRow
from rollbackctl.status import HostStatus
from rollbackctl.validate import HostValidation, ValidateOutcome

STABLE = {"release": "v1.2.3-stable-g2", "tag": "v1.2.3-stable"}
BAD = {"release": "v1.3.0-g1", "tag": "v1.3.0"}


def record(status: str, **hosts: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": "r-l3-1", "level": 3, "status": status, "hosts": hosts}


def test_a_good_run_says_where_the_hosts_are_and_to_validate() -> None:
    done = record(
        "ok",
        h2={"status": "ok", "result": {"before": BAD, "after": STABLE}},
        h3={"status": "ok", "result": {"before": BAD, "after": STABLE}},
    )
    closing = next_step.for_run(done, 0, "inv/prod")
    assert closing.state == "level 3 (code) rollback done: h2, h3 on v1.2.3-stable."
    assert "`rollbackctl validate -i inv/prod`" in closing.next_step
    assert "`rollbackctl report r-l3-1`" in closing.next_step
    assert closing.lines()[0].startswith("State: ") and closing.lines()[1].startswith("Next: ")
    assert closing.fields() == {"state": closing.state, "next_step": closing.next_step}


def test_a_failed_gate_passes_on_the_hosts_own_next_step() -> None:
    msg = (
        "health gate failed: crashed (NRestarts 1)\nv1.3.0 is marked bad on this host. Next: "
        "roll back to a release that is not bad (level 3 skips bad ones), or fix this one."
    )
    failed = record(
        "failed",
        h2={"status": "failed", "failed_phase": "health", "msg": msg, "result": {"after": BAD}},
    )
    closing = next_step.for_run(failed, 1, "inv")
    assert (
        closing.state
        == "level 3 (code) rollback FAILED (h2 failed in health). Hosts now: h2 on v1.3.0."
    )
    assert closing.next_step.startswith("h2 says: roll back to a release that is not bad")
    assert "rollbackctl releases mark --good RELEASE --reason WHY -i inv --hosts h2" in (
        closing.next_step
    )


def test_an_unreachable_host_is_to_be_checked_then_run_again_for_it() -> None:
    failed = record(
        "failed",
        h2={"status": "ok", "result": {"after": STABLE}},
        h3={"status": "unreachable", "failed_phase": "plan", "msg": "unreachable over ssh: ..."},
    )
    closing = next_step.for_run(failed, 1, "inv")
    assert "h3 unreachable in plan" in closing.state
    assert closing.next_step.startswith("check that h3 is up and reachable over ssh")
    assert "--limit h3" in closing.next_step


def test_a_cancel_says_how_each_host_ended_and_what_it_runs() -> None:
    canceled = record(
        "canceled",
        h2={"status": "failed", "end": {"outcome": "switched back", "current": "v1.3.0-g1"}},
        h3={"status": "ok", "end": {"outcome": "not started", "current": "v1.3.0-g1"}},
    )
    closing = next_step.for_run(canceled, 3, "inv")
    assert closing.state == (
        "level 3 (code) rollback canceled (h2 switched back; h3 not started). "
        "Hosts now: h2, h3 on v1.3.0-g1."
    )
    assert closing.next_step.startswith("see what every host runs with `rollbackctl status")


def test_status_and_releases_and_mark() -> None:
    down = HostStatus("h3", True, {"health": "down"})
    closing = next_step.for_status([HostStatus("h2", True, {"health": "ok"}), down], 1, [], "i")
    assert closing.state == "the application is down on h3."
    rows = [ReleaseRow("h4", "v1.2.3-stable-g2", "v1.2.3-stable", "bad", False)]
    closing = next_step.for_releases(rows, 0, "i")
    assert "v1.2.3-stable on h4" in closing.state
    assert "`rollbackctl releases mark --good v1.2.3-stable --reason WHY -i i --hosts h4`" in (
        closing.next_step
    )
    closing = next_step.for_mark("v1.2.3-stable", "bad", ["h4"], 0, "i")
    assert closing.state == "v1.2.3-stable is now marked bad on h4."
    assert closing.next_step.startswith("clear it with `rollbackctl releases mark --good")
    assert "or name a target: `rollbackctl run --level 3 -i i --target TAG`" in closing.next_step


def test_validate_points_at_the_level_that_fixes_what_failed() -> None:
    odd = HostValidation("h3", True, "v1.2.2-stable", False, "ok", "ok", "ok")
    fine = HostValidation("h2", True, "v1.2.3-stable", True, "ok", "ok", "ok")
    outcome = ValidateOutcome(1, [fine, odd], "v1.2.3-stable", {"status": "ok"})
    closing = next_step.for_validate(outcome, "i")
    assert closing.state == "INVALID: h3 not on v1.2.3-stable."
    assert "--target v1.2.3-stable --limit h3" in closing.next_step
    fine.database = "failed"  # as validate_outcome sets it on every row
    checks = {"h1": [{"name": "app_data_check", "expected": "exit 0", "found": "exit 1"}]}
    database = {"status": "failed", "hosts": ["h1"], "failed_checks": checks}
    closing = next_step.for_validate(ValidateOutcome(1, [fine], "v1.2.3-stable", database), "i")
    assert closing.state == "INVALID: the database on h1 failed app_data_check."
    assert "-e database_restore_backup=NAME" in closing.next_step
