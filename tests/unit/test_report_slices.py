"""`rollbackctl report` of a sliced AWX job: the records its slices wrote (each its own run,
the same ``awx.sliced_job_id``) reported as one, every host; another job of the same
workflow is not a slice and is left alone. The rig test: tests/integration/test_awx_jobs.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ansible_collections.sre.rollback.plugins.plugin_utils import run_records
from ansible_collections.sre.rollback.plugins.plugin_utils.awx_job import awx_job
from rollbackctl.cli import main
from tests.support.awx_job import AwxJob

TEMPLATE = "sre.rollback level 3 (code)"


def slice_record(
    directory: Path, job_id: int, host: str, status: str, started: str, workflow: str
) -> str:
    """A slice's record as the callback writes it (through the one writer)."""
    job = AwxJob(job_id, 3, TEMPLATE, "playbooks/rollback-l3.yml", {}, workflow_job=(900, workflow))
    record = run_records.new_record(
        "rollback-l3.yml", 3, f"20261206T1900{job_id % 100:02d}Z-{job_id}"
    )
    record.update(
        started=started,
        finished="2026-12-06T19:01:30Z",
        status=status,
        reason="v1.3.0 fails checkouts",
        awx=awx_job(job.meta_vars()),
        tasks=[
            {
                "host": host,
                "task": "switch",
                "phase": "switch",
                "status": status,
                "changed": True,
                "duration": 1.0,
                "at": started,
            }
        ],
        hosts={
            host: {
                "status": status,
                "phases": {"switch": {"status": status, "duration": 1.0, "tasks": 1}},
            }
        },
    )
    if status == "failed":
        record["hosts"][host]["msg"] = "health gate failed"
    run_records.write(directory / f"{record['run_id']}.json", record)
    return str(record["run_id"])


def report(directory: Path, run_id: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        main, ["report", run_id, "--records", str(directory), "-f", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_the_report_of_one_slice_is_the_whole_sliced_job(tmp_path: Path) -> None:
    first = slice_record(tmp_path, 901, "h3", "ok", "2026-12-06T19:00:02Z", TEMPLATE)
    second = slice_record(tmp_path, 902, "h2", "failed", "2026-12-06T19:00:01Z", TEMPLATE)
    # A job of the escalation workflow (workflow job 900 too, named after the workflow):
    # not a slice, never merged.
    other = slice_record(
        tmp_path, 905, "h4", "ok", "2026-12-06T19:00:03Z", "sre.rollback escalation"
    )
    for run_id in (first, second):
        merged = report(tmp_path, run_id)
        assert sorted(merged["hosts"]) == ["h2", "h3"]
        assert merged["status"] == "failed"  # the worst slice's
        assert merged["started"] == "2026-12-06T19:00:01Z"
        assert merged["duration"] == 89.0
        assert [s["job_id"] for s in merged["slices"]] == [902, 901]
        assert [s["hosts"] for s in merged["slices"]] == [["h2"], ["h3"]]
        assert merged["notes"][0].startswith("AWX sliced job 900: 2 slices merged")
        assert [t["host"] for t in merged["tasks"]] == ["h2", "h3"]
        assert run_records.problems(merged) == []
    alone = report(tmp_path, other)
    assert sorted(alone["hosts"]) == ["h4"] and "slices" not in alone
    markdown = CliRunner().invoke(main, ["report", first, "--records", str(tmp_path)])
    assert "| h2 " in markdown.stdout and "| h3 " in markdown.stdout, markdown.stdout
