"""Level jobs on the rig as AWX runs them (tests/support/awx_job.py: the job's inventory
script, extra vars, environment and ansible-runner, from AWX's source): a sliced level 3
job (``job_slice_count: 2``) whose slices run at the same time, each locking and recording
its own hosts, reported as one; a level 1 job launched with its survey's answers.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollbackctl import awx
from tests.conftest import REPO, VENV_BIN
from tests.integration.rig import APP_ROOT, app_hosts, current, deploy, on, prepared
from tests.support.awx_job import AwxJob, imported_inventory, run, run_concurrently, script_data

pytestmark = pytest.mark.integration

STABLE, BAD = "v1.2.3-stable", "v1.3.0"
FLAGS_FILE = "/etc/demo-app/flags.json"


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    return prepared(testhosts)


def level_template(number: int) -> dict[str, Any]:
    model = awx.build(awx.load_source(REPO / "awx" / "controller.yml"), REPO)
    return next(t for t in model["job_templates"] if t.get("level") == number)


def answered(template: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """The answers, checked as AWX checks them at launch (a wrong type is refused there)."""
    for question in template["survey_spec"]["spec"]:
        assert awx.answer_problems(question, answers) == [], question
    return answers


def awx_inventory(rig: Any) -> dict[str, Any]:
    """The rig's inventory as an AWX inventory holds it: hosts, groups and variables as
    data. The rig's group_vars find the rig's policy through the inventory's directory
    (a lookup), which an imported inventory does not have (AWX stores the template text,
    and a job's inventory is a script in its private data directory): AWX's inventory
    holds the policy itself, as an inventory source of ``inventories/testhosts`` gives it."""
    imported = imported_inventory(rig.inventory)
    policy = yaml.safe_load((REPO / "inventories" / "testhosts" / "policy.yml").read_text())
    imported["all"]["vars"]["rollback_policy"] = policy["all"]["vars"]["rollback_policy"]
    return imported


def report(records: Path, run_id: str, *args: str) -> str:
    """``rollbackctl report RUN_ID --records DIR ARGS``: its output (it must succeed)."""
    proc = subprocess.run(
        [str(VENV_BIN / "rollbackctl"), "report", run_id, "--records", str(records), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def records_in(directory: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text()) for p in sorted(directory.glob("*.json")) if not p.is_symlink()
    ]


def test_a_sliced_level_3_job_locks_and_records_each_slice_and_reports_as_one(
    rig: Any, tmp_path: Path
) -> None:
    deploy(rig, STABLE)
    deploy(rig, BAD)
    template = level_template(3)
    answers = answered(
        template,
        {
            "rollback_severity": "critical",
            "rollback_users_affected": 1200,
            "rollback_incident": "INC-2207",
            "rollback_reason": "v1.3.0 fails a quarter of checkouts",
        },
    )
    imported = awx_inventory(rig)
    records = tmp_path / "records"
    # AWX's sliced job 900: a workflow job named after the template, a job per slice.
    jobs = [
        AwxJob(
            job_id=900 + number,
            template_id=3,
            template=template["name"],
            playbook=template["playbook"],
            inventory=script_data(imported, number, 2),
            extra_vars=answers,
            workflow_job=(900, template["name"]),
            task_env={"SRE_ROLLBACK_RECORD_DIR": str(records)},
        )
        for number in (1, 2)
    ]
    # Hosts ordered by name, every second one: h1 (db) and h3 in slice 1, h2 in slice 2.
    shares = [sorted(job.inventory["_meta"]["hostvars"]) for job in jobs]
    assert shares == [["h1", "h3"], ["h2"]]
    results = run_concurrently(jobs, tmp_path)
    for result in results:
        assert (result.status, result.rc) == ("successful", 0), result.stdout[-4000:]
    for host in app_hosts(rig):
        assert STABLE in current(rig, host)

    slices = sorted(records_in(records), key=lambda r: r["awx"]["job_id"])
    assert [r["awx"]["job_id"] for r in slices] == [901, 902]
    assert {r["awx"]["sliced_job_id"] for r in slices} == {900}
    assert [sorted(r["hosts"]) for r in slices] == [["h3"], ["h2"]]
    assert len({r["run_id"] for r in slices}) == 2
    # Each slice held the lock of its own hosts under its own run id (the host-side journal).
    for record in slices:
        for host in record["hosts"]:
            journal = on(rig, host, f"cat {APP_ROOT}/.rollback.calls.jsonl")
            runs = [json.loads(line)["run_id"] for line in journal.splitlines() if line]
            assert runs[-1] == record["run_id"], (host, runs[-3:])
            assert (
                on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free")
                == "free"
            )
        assert record["given"]["users_affected"] == 1200  # the survey's integer, as an int
    # The two slices ran at the same time.
    (a, b) = slices
    assert a["started"] <= b["finished"] and b["started"] <= a["finished"]
    # Each slice's artifacts (AWX's job artifacts) carry its own hosts' results.
    for result, record in zip(results, slices, strict=True):
        published = result.artifacts["release_results"]
        assert sorted(published) == sorted(record["hosts"])
        assert all(r["after"]["tag"] == STABLE for r in published.values())

    merged = json.loads(report(records, slices[1]["run_id"], "-f", "json"))
    assert sorted(merged["hosts"]) == ["h2", "h3"]
    assert merged["status"] == "ok"
    assert sorted(s["job_id"] for s in merged["slices"]) == [901, 902]
    markdown = report(records, slices[0]["run_id"])
    assert "| h2 " in markdown and "| h3 " in markdown
    assert "AWX sliced job 900: 2 slices merged" in markdown


def test_a_level_1_job_takes_its_survey_answers_as_awx_sends_them(rig: Any, tmp_path: Path) -> None:
    """feature_flag_names is a text question; AWX sends the answer as an ``!unsafe`` string
    and the role's list option splits it."""
    hosts = app_hosts(rig)
    for host in hosts:
        on(
            rig,
            host,
            "python3 - <<'EOF'\nimport json\np='" + FLAGS_FILE + "'\nd=json.load(open(p))\n"
            "d['flags']['new_checkout']['state']='ENABLED'\njson.dump(d,open(p,'w'),indent=2)\nEOF",
        )
    template = level_template(1)
    answers = answered(
        template,
        {
            "feature_flag_names": "new_checkout",
            "rollback_severity": "high",
            "rollback_users_affected": 40,
            "rollback_incident": "INC-2208",
            "rollback_reason": "new checkout errors",
        },
    )
    records = tmp_path / "records"
    job = AwxJob(
        job_id=911,
        template_id=1,
        template=template["name"],
        playbook=template["playbook"],
        inventory=script_data(awx_inventory(rig)),
        extra_vars=answers,
        task_env={"SRE_ROLLBACK_RECORD_DIR": str(records)},
    )
    result = run(job, tmp_path)
    assert (result.status, result.rc) == ("successful", 0), result.stdout[-4000:]
    for host in hosts:
        flags = json.loads(on(rig, host, f"cat {FLAGS_FILE}"))["flags"]
        assert flags["new_checkout"]["state"] == "DISABLED", host
    (record,) = records_in(records)
    assert record["status"] == "ok"
    assert record["given"]["users_affected"] == 40
    assert record["incident"] == "INC-2208"
    assert record["awx"]["sliced_job_id"] is None
    assert sorted(result.artifacts["feature_flag_results"]) == sorted(hosts)
