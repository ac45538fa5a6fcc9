"""`rollbackctl report`: a run record as the runbook's lessons-learned Markdown, JSON and
JUnit XML, through Jinja2 templates a user can replace; finding records on disk."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET  # our own output, parsed back
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import validate_policy
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import (
    finalize,
    policy_snapshot,
)
from rollbackctl import records
from rollbackctl.cli import main
from rollbackctl.report import TemplateProblem, render_report


def phase(status: str = "ok", msg: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {
        "status": status,
        "started": "2026-11-29T10:15:00Z",
        "finished": "2026-11-29T10:16:00Z",
        "duration": 2.5,
        "tasks": 2,
    }
    if msg:
        entry["msg"] = msg
    return entry


def make_record(run_id: str = "20261129T101500Z-l3-abc123", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema": 2,
        "run_id": run_id,
        "playbook": "rollback-l3.yml",
        "level": 3,
        "reason": "v1.3.0 breaks checkout",
        "incident": "INC-42",
        "who": "alice",
        "inventory": ["/srv/inventories/prod"],
        "check_mode": False,
        "status": "failed",
        "started": "2026-11-29T10:15:00Z",
        "finished": "2026-11-29T10:21:00Z",
        "given": {
            "incident_started": "2026-11-29T10:00:00Z",
            "detected": "2026-11-29T10:04:00Z",
            "users_affected": 1500,
        },
        "policy": policy_snapshot(validate_policy({"revenue": {"per_minute": 50}}, "t")),
        "hosts": {
            "h2": {
                "status": "ok",
                "phases": {"plan": phase(), "switch": phase(), "health": phase()},
                "result": {
                    "before": {"release": "v1.3.0-g1", "tag": "v1.3.0"},
                    "after": {"release": "v1.2.3-stable-g2", "tag": "v1.2.3-stable"},
                    "path": "fast",
                },
            },
            "h3": {
                "status": "failed",
                "msg": 'not healthy: <503> "db down"',
                "phases": {
                    "plan": phase(),
                    "switch": phase(),
                    "health": phase("failed", 'not healthy: <503> "db down"'),
                    "revert": phase(),
                },
            },
        },
        "tasks": [
            {
                "host": "h2",
                "task": "x",
                "phase": "switch",
                "status": "ok",
                "at": "2026-11-29T10:20:00Z",
            }
        ],
        "messages": [
            {
                "kind": "internal",
                "at": "2026-11-29T10:14:00Z",
                "text": "ROLLBACK INITIATED",
                "deliveries": [{"channel": "webhook", "ok": True, "detail": "$HOOK"}],
            }
        ],
    }
    record.update(changes)
    return finalize(record)


def write(directory: Path, record: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['run_id']}.json"
    path.write_text(json.dumps(record))
    return path


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_is_the_runbooks_lessons_learned_entry() -> None:
    text = render_report(make_record())
    for heading in (
        "## Incident: 2026-11-29 - INC-42: v1.3.0 breaks checkout (level 3 (code) rollback)",
        "### Summary",
        "### Timeline",
        "### Impact",
        "### Root Cause",
        "### Prevention",
        "### Improvements",
    ):
        assert heading in text
    assert "- Detection: 2026-11-29 10:04:00 UTC" in text
    assert "- Decision: 2026-11-29 10:15:00 UTC (from the rollback start)" in text
    assert "- Started: 2026-11-29 10:15:00 UTC" in text
    assert "- Completed: not completed: the run failed at 2026-11-29 10:21:00 UTC" in text
    assert "- Users affected: 1,500" in text
    assert "- Duration: 21m (21 min)" in text
    assert "- Data loss: 0s; none: level 3 (code) restores no data" in text
    assert "- Revenue impact: 1,050.00 USD" in text


def test_markdown_completed_time_of_a_good_run() -> None:
    text = render_report(make_record(status="ok"))
    assert "- Completed: 2026-11-29 10:21:00 UTC" in text


def test_markdown_rto_rpo_table_flags_violations() -> None:
    text = render_report(make_record())
    assert "| Core API | critical | 5m | 21m | **VIOLATED** | 1m | 0s | met |" in text
    assert "| File Storage | high | 30m | 21m | unknown | 15m | 0s | met |" in text
    assert "- Core API: RTO 5m, downtime 21m" in text
    assert "Recovery objective violated: Database: RTO 15m, downtime 21m." in text


def test_markdown_no_violation_when_within_every_rto() -> None:
    record = make_record(
        status="ok", finished="2026-11-29T10:18:00Z", given={"detected": "2026-11-29T10:14:00Z"}
    )
    text = render_report(record)
    assert "No objective violated." in text and "VIOLATED" not in text


def test_markdown_hosts_checklist_and_messages() -> None:
    text = render_report(make_record())
    assert "| h2 | ok | v1.3.0 | v1.2.3-stable | fast |" in text
    assert '| h3 | failed: not healthy: <503> "db down" |' in text
    assert "#### Pre-Rollback" in text and "#### Post-Rollback" in text
    assert (
        "- [x] Notify team members at 2026-11-29 10:14:00 UTC: internal message via webhook" in text
    )
    assert "- [!] Verify each step (failed)" in text
    assert "- [ ] Update status page (open)" in text
    assert "internal: webhook ok" in text


def test_markdown_escapes_table_cells() -> None:
    record = make_record()
    record["hosts"]["h3"]["msg"] = "a | b"
    assert "failed: a \\| b |" in render_report(record)


UNREACHABLE = (
    'Task failed: Data could not be sent to remote host "172.30.95.13". Make sure this host '
    "can be reached over ssh: mux_client_request_session: read from master failed: Broken "
    "pipe\r\nssh: connect to host 172.30.95.13 port 22: Connection timed out"
)


def test_an_unreachable_hosts_message_is_whole_on_its_row_and_in_the_checklist() -> None:
    record = make_record()
    record["hosts"]["h3"].update(status="unreachable", msg=UNREACHABLE)
    text = render_report(finalize(record))
    row = next(line for line in text.splitlines() if line.startswith("| h3 |"))
    assert "\r" not in text
    assert (
        "unreachable over ssh: mux_client_request_session: read from master failed: Broken "
        "pipe / ssh: connect to host 172.30.95.13 port 22: Connection timed out |"
    ) in row
    assert "port 22: Connection timed out" in next(
        line for line in text.splitlines() if "Execute rollback procedure" in line
    )


def test_a_canceled_run_shows_what_the_hosts_run() -> None:
    record = make_record(status="canceled")
    del record["hosts"]["h2"]["result"]
    record["hosts"]["h2"]["end"] = {
        "outcome": "switched back",
        "before": "v1.3.0-g1",
        "current": "v1.3.0-g1",
        "lock": "free",
    }
    record["hosts"]["h3"]["end"] = {"outcome": "not started", "current": "v1.3.0-g1"}
    text = render_report(finalize(record))
    assert "| h2 | ok | v1.3.0-g1 | v1.3.0-g1 |" in text
    assert '| h3 | failed: not healthy: <503> "db down" | v1.3.0-g1 | v1.3.0-g1 |' in text


# --- JSON and JUnit ---------------------------------------------------------------------------


def test_json_is_the_record() -> None:
    record = make_record()
    data = json.loads(render_report(record, "json"))
    assert data["run_id"] == record["run_id"]
    assert data["metrics"]["revenue_impact"]["amount"] == 1050.0
    assert data["checklist"] == record["checklist"]


def test_junit_has_a_case_per_host_and_phase_and_failures() -> None:
    root = ET.fromstring(render_report(make_record(), "junit"))  # noqa: S314
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("rollback.l3.h2", "plan"),
        ("rollback.l3.h2", "switch"),
        ("rollback.l3.h2", "health"),
        ("rollback.l3.h3", "plan"),
        ("rollback.l3.h3", "switch"),
        ("rollback.l3.h3", "health"),
        ("rollback.l3.h3", "revert"),
    ]
    assert root.get("tests") == "7" and root.get("failures") == "1"
    failure = cases[5].find("failure")
    assert failure is not None
    assert failure.get("message") == 'not healthy: <503> "db down"'  # escaped, parsed back
    assert failure.get("type") == "failed"
    assert cases[0].get("time") == "2.500"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["run_id"] == "20261129T101500Z-l3-abc123"
    assert properties["incident"] == "INC-42"


def test_junit_marks_unreachable_and_canceled_phases_as_failures() -> None:
    record = make_record()
    record["hosts"]["h2"]["phases"]["switch"] = phase("unreachable", "ssh: connect refused")
    record["hosts"]["h3"]["phases"]["revert"] = phase("canceled", "canceled here")
    root = ET.fromstring(render_report(record, "junit"))  # noqa: S314
    types = [f.get("type") for f in root.iter("failure")]
    assert sorted(types) == ["canceled", "failed", "unreachable"]


# --- templates --------------------------------------------------------------------------------


def test_a_user_template_replaces_the_format(tmp_path: Path) -> None:
    template = tmp_path / "short.md.j2"
    template.write_text(
        "{{ record.run_id }}: {{ view.title }}\n"
        "{% for row in view.objectives if row.rto_status != 'met' %}"
        "{{ row.service }} {% endfor %}\n"
    )
    text = render_report(make_record(), "markdown", template)
    assert text.startswith("20261129T101500Z-l3-abc123: INC-42: v1.3.0 breaks checkout")
    assert "Core API User Auth Database" in text


def test_a_user_template_can_extend_the_package_one(tmp_path: Path) -> None:
    template = tmp_path / "mine.md.j2"
    template.write_text("# ACME post-mortem\n{% include 'report.md.j2' %}")
    text = render_report(make_record(), "markdown", template)
    assert text.startswith("# ACME post-mortem\n## Incident:")


def test_a_broken_template_says_where(tmp_path: Path) -> None:
    template = tmp_path / "broken.j2"
    template.write_text("line one\n{{ view.nope.deeper }}\n")
    with pytest.raises(TemplateProblem, match=r"broken\.j2"):
        render_report(make_record(), "markdown", template)


def test_unknown_format() -> None:
    with pytest.raises(TemplateProblem, match="unknown format"):
        render_report(make_record(), "pdf")


# --- records on disk and the command ----------------------------------------------------------


def test_find_latest_rollback_by_prefix_and_missing(tmp_path: Path) -> None:
    older = write(
        tmp_path, make_record("20261129T090000Z-l3-aaaaaa", started="2026-11-29T09:00:00Z")
    )
    newer = write(
        tmp_path, make_record("20261129T100000Z-l3-bbbbbb", started="2026-11-29T10:00:00Z")
    )
    status_run = make_record("20261129T110000Z-status", started="2026-11-29T11:00:00Z", level=None)
    write(tmp_path, status_run)
    assert records.find(tmp_path)[0] == newer
    assert records.find(tmp_path, "20261129T09")[0] == older
    with pytest.raises(records.RecordNotFound, match="ambiguous"):
        records.find(tmp_path, "20261129T")
    with pytest.raises(records.RecordNotFound, match="no run record 'nope'"):
        records.find(tmp_path, "nope")
    with pytest.raises(records.RecordNotFound, match="no run records"):
        records.find(tmp_path / "empty")


def test_save_writes_private_files(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r.json"
    records.save(path, make_record())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"


def test_report_command_formats_and_exit_codes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write(runs, make_record())
    runner = CliRunner()
    markdown = runner.invoke(main, ["report", "--records", str(runs)])
    assert markdown.exit_code == 0, markdown.output
    assert markdown.stdout.startswith("## Incident: 2026-11-29")
    junit_file = tmp_path / "junit.xml"
    junit = runner.invoke(
        main,
        ["report", "20261129T1015", "--records", str(runs), "-f", "junit", "-o", str(junit_file)],
    )
    assert junit.exit_code == 0, junit.output
    assert ET.parse(junit_file).getroot().tag == "testsuites"  # noqa: S314
    as_json = runner.invoke(main, ["report", "--records", str(runs), "--format", "json"])
    assert json.loads(as_json.stdout)["incident"] == "INC-42"
    missing = runner.invoke(main, ["report", "nope", "--records", str(runs)])
    assert missing.exit_code == 2 and "no run record 'nope'" in missing.output
    assert runner.invoke(main, ["report", "-f", "pdf", "--records", str(runs)]).exit_code == 2


def test_report_help_lists_formats_and_exit_codes() -> None:
    result = CliRunner().invoke(main, ["report", "--help"])
    assert result.exit_code == 0
    for text in ("markdown", "json", "junit", "--template", "--records", "Exit codes"):
        assert text in result.output


def test_a_record_being_written_is_still_found(tmp_path: Path) -> None:
    path = write(tmp_path, make_record(status="running"))
    (tmp_path / "latest.json").symlink_to(path.name)
    (tmp_path / f".{path.name}.tmp").write_text("{")
    os.utime(path, (time.time(), time.time()))
    assert records.find(tmp_path)[1]["status"] == "running"
