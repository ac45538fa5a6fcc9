"""The runbook's rollback metrics, recovery objectives and checklists
(plugin_utils/run_metrics.py), computed from run records as the callback writes them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    InputError,
    default_policy,
    validate_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import (
    MASK,
    Redactor,
    secret_values,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import (
    CHECKLIST_ITEMS,
    finalize,
    human_duration,
    iso,
    parse_time,
    policy_snapshot,
    violations,
)

NOW = datetime(2026, 11, 29, 10, 30, 0, tzinfo=UTC)


def policy(per_minute: float = 100) -> dict[str, Any]:
    return policy_snapshot(
        validate_policy({"revenue": {"per_minute": per_minute, "currency": "USD"}}, "test")
    )


def phase(status: str = "ok", finished: str = "2026-11-29T10:20:00Z") -> dict[str, Any]:
    return {
        "status": status,
        "started": "2026-11-29T10:15:00Z",
        "finished": finished,
        "duration": 1.5,
        "tasks": 2,
    }


def record(**changes: Any) -> dict[str, Any]:
    """A level 3 run over two hosts: incident at 10:00, detected 10:03, decided 10:05,
    run 10:15 -> 10:20:30."""
    base: dict[str, Any] = {
        "run_id": "r1",
        "playbook": "rollback-l3.yml",
        "level": 3,
        "status": "ok",
        "check_mode": False,
        "started": "2026-11-29T10:15:00Z",
        "finished": "2026-11-29T10:20:30Z",
        "given": {
            "incident_started": "2026-11-29T10:00:00Z",
            "detected": "2026-11-29T10:03:00Z",
            "decided": "2026-11-29T10:05:00Z",
            "users_affected": "1200",
        },
        "decision": {
            "severity": "critical",
            "summary": "roll back, levels 3-5: start at level 3 (code)",
            "inputs": {"severity": "critical", "impact": 100.0, "time_to_fix": 7200},
        },
        "policy": policy(),
        "target": {"release_target": "v1.2.3-stable"},
        "hosts": {
            host: {
                "status": "ok",
                "phases": {name: phase() for name in ("plan", "switch", "health", "unlock")},
                "result": {"before": {"release": "v1.3.0-gabc", "tag": "v1.3.0"}},
            }
            for host in ("h2", "h3")
        },
        "tasks": [{"host": "h2", "task": "t", "at": "2026-11-29T10:20:00Z"}],
        "messages": [],
    }
    base.update(changes)
    return finalize(base)


def item(rec: dict[str, Any], stage: str, name: str) -> dict[str, Any]:
    return next(entry for entry in rec["checklist"][stage] if entry["item"] == name)


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-29T10:02:00Z", "2026-11-29T10:02:00Z"),
        ("2026-11-29T11:02:00+01:00", "2026-11-29T10:02:00Z"),
        ("2026-11-29 10:02:00", "2026-11-29T10:02:00Z"),
        (1795946520, "2026-11-29T10:02:00Z"),
        ("1795946520", "2026-11-29T10:02:00Z"),
        ("now", "2026-11-29T10:30:00Z"),
        ("15m ago", "2026-11-29T10:15:00Z"),
        ("-1h30m", "2026-11-29T09:00:00Z"),
        ("2 hours ago", "2026-11-29T08:30:00Z"),
    ],
)
def test_parse_time_takes_iso_epoch_and_relative_times(value: Any, expected: str) -> None:
    assert iso(parse_time(value, NOW)) == expected


@pytest.mark.parametrize("value", ["yesterday", "15 parsecs ago", "2026-13-45", True])
def test_parse_time_refuses_what_it_cannot_read(value: Any) -> None:
    with pytest.raises(InputError, match="is not a time"):
        parse_time(value, NOW)


def test_parse_time_of_nothing_is_none() -> None:
    assert parse_time(None) is None and parse_time("  ") is None


def test_human_duration_reads_like_a_message() -> None:
    assert human_duration(900) == "15 minutes"
    assert human_duration(3600) == "1 hour"
    assert human_duration(5400) == "1 hour 30 minutes"
    assert human_duration(45) == "45 seconds"


# --- metrics ----------------------------------------------------------------------------------


def test_the_runbooks_metrics_from_the_given_times() -> None:
    metrics = record()["metrics"]
    assert metrics["time_to_detection"]["minutes"] == 3.0
    assert metrics["time_to_decision"]["minutes"] == 2.0
    assert metrics["time_to_rollback"]["seconds"] == 330.0
    assert metrics["total_downtime"]["seconds"] == 1230.0  # 10:00 -> 10:20:30
    assert metrics["total_downtime"]["origin"] == "incident_started"
    assert metrics["total_downtime"]["ongoing"] is False
    assert metrics["users_affected"]["value"] == 1200


def test_revenue_impact_is_the_policy_figure_times_downtime() -> None:
    revenue = record()["metrics"]["revenue_impact"]
    assert revenue["amount"] == 2050.0  # 100 USD/min x 20.5 min
    assert revenue["currency"] == "USD"


def test_revenue_is_not_reported_when_the_policy_gives_no_figure() -> None:
    revenue = record(policy=policy(per_minute=0))["metrics"]["revenue_impact"]
    assert revenue["amount"] is None
    assert "per_minute is 0" in revenue["note"]


def test_downtime_falls_back_to_detection_then_to_the_rollback_start() -> None:
    from_detection = record(given={"detected": "2026-11-29T10:03:00Z"})["metrics"]
    assert from_detection["total_downtime"]["seconds"] == 1050.0
    assert from_detection["time_to_detection"]["seconds"] is None
    assert "incident start" in from_detection["time_to_detection"]["note"]
    lower_bound = record(given={})["metrics"]["total_downtime"]
    assert lower_bound["seconds"] == 330.0 and "lower bound" in lower_bound["note"]


def test_a_failed_run_has_not_ended_the_downtime() -> None:
    rec = record(status="failed")
    downtime = rec["metrics"]["total_downtime"]
    assert downtime["ongoing"] is True and "at least" in downtime["note"]
    assert rec["timeline"]["completed"] is None
    assert "not recovered" in rec["metrics"]["time_to_rollback"]["note"]


def test_decision_time_comes_from_the_decision_or_the_run_start() -> None:
    given = record()["timeline"]
    assert (given["decided"], given["decided_source"]) == ("2026-11-29T10:05:00Z", "given")
    decision = {"severity": "high", "decided_at": "2026-11-29T10:06:00Z"}
    from_decision = record(given={}, decision=decision)["timeline"]
    assert (from_decision["decided"], from_decision["decided_source"]) == (
        "2026-11-29T10:06:00Z",
        "decision",
    )
    assert record(given={}, decision=None)["timeline"]["decided_source"] == "rollback start"


def test_a_procedure_spanning_runs_starts_at_its_first_run() -> None:
    given = dict(record()["given"], procedure_started="2026-11-29T10:10:00Z")
    rec = record(given=given)
    assert rec["timeline"]["started"] == "2026-11-29T10:10:00Z"
    assert rec["metrics"]["time_to_rollback"]["seconds"] == 630.0


def test_data_loss_by_level() -> None:
    assert record()["metrics"]["data_loss"]["seconds"] == 0.0
    database = record(level=4, playbook="rollback-l4.yml")["metrics"]["data_loss"]
    assert database["seconds"] is None and "rollback_data_loss" in database["note"]
    hosts = record()["hosts"]
    hosts["h2"]["result"]["data_loss_seconds"] = 120
    assert record(level=5, hosts=hosts)["metrics"]["data_loss"]["seconds"] == 120.0
    given = dict(record()["given"], data_loss="90s")
    assert record(level=4, given=given)["metrics"]["data_loss"]["seconds"] == 90.0


def test_users_affected_that_is_not_a_number() -> None:
    users = record(given={"users_affected": "lots"})["metrics"]["users_affected"]
    assert users["value"] is None and "not a number" in users["note"]


# --- recovery objectives ----------------------------------------------------------------------


def test_rto_of_each_service_against_the_downtime() -> None:
    rows = {row["service"]: row for row in record()["recovery_objectives"]}
    assert set(rows) == set(default_policy().services)
    assert rows["core_api"]["rto_status"] == "violated"  # 5m < 20m30s
    assert rows["database"]["rto_status"] == "violated"  # 15m < 20m30s
    assert rows["file_storage"]["rto_status"] == "met"  # 30m
    assert all(row["rpo_status"] == "met" for row in rows.values())  # level 3 loses no data
    assert "Core API: RTO 5m, downtime 20m30s" in violations(record())


def test_named_services_narrow_the_table() -> None:
    given = dict(record()["given"], services=["analytics", "file_storage"])
    rows = record(given=given)["recovery_objectives"]
    assert [row["service"] for row in rows] == ["file_storage", "analytics"]
    assert violations(record(given=given)) == []


def test_an_unrecovered_run_within_its_rto_so_far_is_unknown() -> None:
    rows = record(status="failed", given={})["recovery_objectives"]
    assert {row["rto_status"] for row in rows} == {"violated", "unknown"}
    analytics = next(row for row in rows if row["service"] == "analytics")
    assert analytics["rto_status"] == "unknown"


def test_unknown_data_loss_leaves_the_rpo_unknown() -> None:
    rows = record(level=4)["recovery_objectives"]
    assert {row["rpo_status"] for row in rows} == {"unknown"}


# --- checklists -------------------------------------------------------------------------------


def test_every_runbook_item_is_there_in_order() -> None:
    checklist = record()["checklist"]
    for stage, names in CHECKLIST_ITEMS.items():
        assert [entry["item"] for entry in checklist[stage]] == list(names)
        assert all(
            entry["state"] in ("done", "failed", "skipped", "open") for entry in checklist[stage]
        )


def test_a_good_run_fills_the_checklist_from_what_happened() -> None:
    rec = record()
    severity = item(rec, "pre", "Identify issue severity")
    assert severity["state"] == "done" and "critical" in severity["note"]
    assert severity["at"] == "2026-11-29T10:05:00Z"
    level = item(rec, "pre", "Determine rollback level")
    assert level["state"] == "done" and "level 3 (code)" in level["note"]
    current = item(rec, "pre", "Document current state")
    assert current["state"] == "done" and "h2: v1.3.0" in current["note"]
    assert item(rec, "during", "Execute rollback procedure")["state"] == "done"
    verify = item(rec, "during", "Verify each step")
    assert verify["state"] == "done" and "h2, h3" in verify["note"]
    assert item(rec, "post", "Confirm system stable")["state"] == "done"
    assert item(rec, "pre", "Notify team members")["state"] == "open"
    assert item(rec, "post", "Verify functionality restored")["state"] == "open"
    assert "rollbackctl report r1" in item(rec, "post", "Begin incident review")["note"]


def test_messages_tick_the_communication_items() -> None:
    def sent(kind: str, at: str) -> dict[str, Any]:
        return {"kind": kind, "at": at, "deliveries": [{"channel": "webhook", "ok": True}]}

    failed = {"kind": "escalation", "at": "x", "deliveries": [{"channel": "file", "ok": False}]}
    rec = record(
        messages=[
            sent("internal", "2026-11-29T10:06:00Z"),
            failed,
            sent("closing", "2026-11-29T10:21:00Z"),
        ]
    )
    notify = item(rec, "pre", "Notify team members")
    assert notify["state"] == "done" and notify["at"] == "2026-11-29T10:06:00Z"
    assert "webhook" in notify["note"]
    assert item(rec, "during", "Communicate status")["note"] == "sent: internal"
    assert item(rec, "post", "Send notifications")["state"] == "done"


def test_a_failed_health_gate_fails_execution_and_verification() -> None:
    hosts = copy.deepcopy(record()["hosts"])
    hosts["h3"]["status"] = "failed"
    hosts["h3"]["msg"] = "not healthy after 60 s"
    hosts["h3"]["phases"]["health"] = phase("failed")
    rec = record(status="failed", hosts=hosts)
    execute = item(rec, "during", "Execute rollback procedure")
    assert execute["state"] == "failed" and "h3: not healthy after 60 s" in execute["note"]
    verify = item(rec, "during", "Verify each step")
    assert verify["state"] == "failed" and verify["note"] == "health gate failed on h3"
    assert item(rec, "post", "Confirm system stable")["state"] == "failed"


def test_a_failed_inspection_fails_documenting_the_current_state() -> None:
    hosts = copy.deepcopy(record()["hosts"])
    hosts["h2"]["phases"] = {"plan": phase("unreachable")}
    rec = record(status="failed", hosts=hosts)
    assert item(rec, "pre", "Document current state")["state"] == "failed"


def test_a_canceled_run() -> None:
    rec = record(status="canceled")
    execute = item(rec, "during", "Execute rollback procedure")
    assert execute["state"] == "failed" and "canceled" in execute["note"]


def test_check_mode_skips_what_did_not_happen() -> None:
    rec = record(check_mode=True)
    for stage, name in (
        ("during", "Execute rollback procedure"),
        ("during", "Verify each step"),
        ("post", "Confirm system stable"),
    ):
        assert item(rec, stage, name)["state"] == "skipped"


def test_validation_fills_functionality_restored() -> None:
    validation = {"status": "failed", "at": "2026-11-29T10:22:00Z", "note": "validate.yml failed"}
    rec = record(validation=validation)
    restored = item(rec, "post", "Verify functionality restored")
    assert restored["state"] == "failed" and restored["note"] == "validate.yml failed"


def test_finalize_can_run_again_after_the_record_changed() -> None:
    rec = record()
    rec["messages"] = [
        {"kind": "closing", "at": "t", "deliveries": [{"channel": "file", "ok": True}]}
    ]
    finalize(rec)
    assert item(rec, "post", "Send notifications")["state"] == "done"


# --- redaction --------------------------------------------------------------------------------


def test_redaction_by_name_and_by_value() -> None:
    redactor = Redactor(secret_values({"DB_PASSWORD": "hunter22", "HOME": "/root", "KEY": "ab"}))
    data = {"webhook_token": "abc", "msg": "login with hunter22 failed", "home": "/root"}
    assert redactor.data(data) == {
        "webhook_token": MASK,
        "msg": f"login with {MASK} failed",
        "home": "/root",
    }
    assert redactor.data(data, by_name=False)["webhook_token"] == "abc"  # noqa: S105
    assert not redactor.found_in("ab is short: not hunted")


def test_policy_snapshot_keeps_services_as_rows() -> None:
    snapshot = policy_snapshot(default_policy())
    assert snapshot["services"][0] == {
        "service": "core_api",
        "name": "Core API",
        "rto": 300,
        "rpo": 60,
        "priority": "critical",
    }
    assert snapshot["revenue"] == {"per_minute": 0.0, "currency": "USD"}
