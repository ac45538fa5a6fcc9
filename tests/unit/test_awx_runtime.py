"""AWX's runtime conventions, through ansible-runner as AWX runs a job (tests/support/awx_job.py:
AWX's extra vars file, environment, inventory script, awx_display as the stdout callback),
on the local connection: the run record callback works under AWX's callback set and keeps
the job's AWX ids; survey answers arrive as AWX sends them (``!unsafe`` extra vars, typed by
the survey) and the roles' argument specs accept them; set_stats results arrive as the job's
artifacts, each host's result kept (the levels on the rig: tests/integration/test_awx_jobs.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollbackctl import awx
from tests.conftest import COLLECTION, REPO
from tests.support.awx_job import AwxJob, run, safe_dump

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def local_inventory(*hosts: str) -> dict[str, Any]:
    return {"all": {"hosts": list(hosts)}, "_meta": {"hostvars": {h: dict(LOCAL) for h in hosts}}}


def template(name: str) -> dict[str, Any]:
    model = awx.build(awx.load_source(REPO / "awx" / "controller.yml"), REPO)
    return next(t for t in model["job_templates"] if t["name"] == name)


def answer(question: dict[str, Any]) -> Any:
    """An answer of the question's survey type, as AWX's launch passes it on."""
    kind = question["type"]
    if kind in awx.CHOICE_TYPES:
        first = awx.choice_list(question["choices"])[0]  # type: ignore[index]
        return [first] if kind == "multiselect" else first
    if kind in ("integer", "float"):
        return max(question.get("min") or 0, 7)
    return "v" * max(question.get("min") or 0, 2)


def test_awx_marks_every_extra_var_unsafe() -> None:
    assert safe_dump({"rollback_reason": "x", "n": 3}) == (
        "!unsafe 'rollback_reason': !unsafe 'x'\n!unsafe 'n': 3\n"
    )


def test_the_run_record_callback_works_under_awxs_callback_set(tmp_path: Path) -> None:
    """decide.yml as the template ``sre.rollback decide`` with its survey's answers: the
    record is written by the project's callback while awx_display is the stdout callback,
    with the job's AWX ids and AWX's user; the decision is the job's artifact."""
    decide = template("sre.rollback decide")
    answers = {"severity": "critical", "impact": "all", "time_to_fix": "2h"}
    for question in decide["survey_spec"]["spec"]:
        assert awx.answer_problems(question, answers) == []
    answers["rollback_incident"] = "4711"  # an incident id of digits, as text
    records = tmp_path / "records"
    job = AwxJob(
        job_id=41,
        template_id=7,
        template=decide["name"],
        playbook=decide["playbook"],
        inventory=local_inventory("localhost"),
        extra_vars=answers,
        task_env={"SRE_ROLLBACK_RECORD_DIR": str(records)},
    )
    result = run(job, tmp_path)
    assert (result.status, result.rc) == ("successful", 0), result.stdout[-3000:]
    assert any(e["event"] == "playbook_on_stats" for e in result.events)
    assert result.artifacts["rollback_decision"]["levels"] == [3, 4, 5]
    (path,) = [p for p in records.glob("*.json") if p.name != "latest.json"]
    record = json.loads(path.read_text())
    assert record["status"] == "ok"
    assert record["who"] == "oncall"
    assert record["incident"] == "4711"
    assert record["decision"]["levels"] == [3, 4, 5]
    assert record["awx"]["job_id"] == 41
    assert record["awx"]["job_template_name"] == "sre.rollback decide"
    assert record["awx"]["sliced_job_id"] is None  # launched alone, not a slice


def test_survey_answers_reach_every_levels_roles_with_their_types(tmp_path: Path) -> None:
    """Each level template's survey answered as AWX passes the answers on (``!unsafe``, typed
    by the question), then each answer that is a role's input checked by the role's own
    argument spec (ansible.builtin.validate_argument_spec), in one AWX job."""
    tasks, answers = [], {}
    for number in range(1, 6):
        level = next(
            t
            for t in awx.build(awx.load_source(REPO / "awx" / "controller.yml"), REPO)[
                "job_templates"
            ]
            if t.get("level") == number
        )
        for role in sorted(awx.playbook_roles(REPO / level["playbook"])):
            options = awx.role_options(role)
            asked = [q for q in level["survey_spec"]["spec"] if q["variable"] in options]
            for question in asked:
                value = answer(question)
                assert awx.answer_problems(question, {question["variable"]: value}) == []
                answers[question["variable"]] = value
            if asked:
                tasks.append(
                    {
                        "name": f"Level {number}: {role} accepts its survey answers",
                        "ansible.builtin.validate_argument_spec": {
                            "argument_spec": {q["variable"]: options[q["variable"]] for q in asked},
                            "provided_arguments": {
                                q["variable"]: f"{{{{ {q['variable']} }}}}" for q in asked
                            },
                        },
                    }
                )
    assert len({t["name"].split(":")[0] for t in tasks}) == 5, tasks  # every level asks
    playbook = tmp_path / "answers.yml"
    playbook.write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    )
    job = AwxJob(43, 9, "answers", str(playbook), local_inventory("localhost"), answers)
    result = run(job, tmp_path)
    assert (result.status, result.rc) == ("successful", 0), result.stdout[-3000:]
    ok = [e for e in result.events if e["event"] == "runner_on_ok"]
    assert len(ok) == len(tasks)


AGGREGATION = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.set_stats:
        per_host: false
        data:
          merged_results: "{{ {inventory_hostname: {'after': 'v1'}} }}"
          count: 1
    - ansible.builtin.set_stats:
        per_host: false
        aggregate: false
        data:
          replaced_results: "{{ {inventory_hostname: {'after': 'v1'}} }}"
"""


def test_set_stats_mappings_keyed_by_host_arrive_whole_as_artifacts(tmp_path: Path) -> None:
    """Why the levels publish ``{host: result}`` mappings with ``aggregate`` left true:
    Ansible merges mappings (AggregateStats.update_custom_stats: merge_hash, per host key)
    and adds anything else; with ``aggregate: false`` the last host's call replaces the
    others'. AWX's artifacts are ansible-runner's ``stats.custom['_run']``."""
    playbook = tmp_path / "stats.yml"
    playbook.write_text(AGGREGATION)
    job = AwxJob(44, 9, "stats", str(playbook), local_inventory("a", "b", "c"))
    result = run(job, tmp_path)
    assert result.rc == 0, result.stdout[-3000:]
    artifacts = result.artifacts
    assert sorted(artifacts["merged_results"]) == ["a", "b", "c"]
    assert artifacts["count"] == 3  # a number is summed across hosts
    assert len(artifacts["replaced_results"]) == 1  # aggregate: false keeps one host


def set_stats_tasks() -> list[tuple[str, dict[str, Any]]]:
    """Every set_stats task of the collection and the project's playbooks."""
    files = [*COLLECTION.glob("roles/*/tasks/*.yml"), *COLLECTION.glob("playbooks/*.yml")]
    files += sorted((REPO / "playbooks").glob("*.yml"))
    found = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "ansible.builtin.set_stats" in node:
                found.append((f"{where}: {node.get('name')}", node))
            for value in node.values():
                walk(value, where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    for path in files:
        walk(yaml.safe_load(path.read_text()), str(path.relative_to(REPO)))
    return found


def test_every_level_publishes_for_the_run_keyed_by_host() -> None:
    """A level's results are the job's artifacts only when published for the whole run
    (``per_host: false``; awx_display sends ``stats.custom['_run']``), and stay complete
    only when aggregated (the default): per-host results are ``<name>_results`` mappings
    keyed by host (the run record merges them into ``hosts.<host>.result``)."""
    tasks = set_stats_tasks()
    assert len(tasks) >= 12, tasks
    for where, task in tasks:
        stats = task["ansible.builtin.set_stats"]
        assert stats.get("per_host", False) is False, where
        assert stats.get("aggregate", True) is True, where
        for key, value in stats["data"].items():
            assert key.endswith("_results") or key in (
                "rollback_decision",
                "rollback_status",
                "validation_database",
                "mark_release",
            ), (where, key)
            if key.endswith("_results") and isinstance(value, str):
                # built as {inventory_hostname: ...}, by a filter keyed by host, or a loop
                # over the play's hosts (the task's vars included)
                assert any(
                    marker in str(task)
                    for marker in (
                        "inventory_hostname",
                        "release_results(",
                        "results.update({host",
                        "zip(",
                    )
                ), (where, value)


@pytest.mark.parametrize("prefix", ["awx", "tower"])
def test_a_slice_is_known_by_its_workflow_job_named_after_its_template(prefix: str) -> None:
    from ansible_collections.sre.rollback.plugins.plugin_utils.awx_job import awx_job

    def meta(workflow: str | None) -> dict[str, Any]:
        job = AwxJob(52, 7, "sre.rollback level 3 (code)", "x", {}, workflow_job=None)
        if workflow:
            job.workflow_job = (50, workflow)
        return {k: v for k, v in job.meta_vars().items() if k.startswith(prefix)}

    assert awx_job(meta("sre.rollback level 3 (code)"))["sliced_job_id"] == 50  # type: ignore[index]
    assert awx_job(meta("sre.rollback escalation"))["sliced_job_id"] is None  # type: ignore[index]
    assert awx_job(meta(None))["workflow_job_id"] is None  # type: ignore[index]
    assert awx_job({"rollback_reason": "x"}) is None


def test_awx_text_answers_of_digits_arrive_as_numbers(tmp_path: Path) -> None:
    """AWX writes a text answer as a quoted ``!unsafe`` string; ansible-core 2.19 and later
    resolve it as if it were plain YAML: digits become a number (a leading zero is read as
    octal), ``true`` a boolean. A role's ``str`` option turns the number back into the same
    digits (level 4's timestamp revisions survive); a leading zero does not survive."""
    playbook = tmp_path / "types.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "ansible.builtin.validate_argument_spec": {
                                "argument_spec": {
                                    "database_target_revision": awx.role_options("database")[
                                        "database_target_revision"
                                    ]
                                },
                                "provided_arguments": {
                                    "database_target_revision": "{{ database_target_revision }}"
                                },
                            }
                        },
                        {
                            "ansible.builtin.debug": {
                                "msg": "{{ [revision, padded, word] | map('type_debug') | list }}"
                                " {{ padded }}"
                            },
                            "vars": {
                                "revision": "{{ database_target_revision }}",
                                "padded": "{{ release_target }}",
                                "word": "{{ rollback_reason }}",
                            },
                        },
                    ],
                }
            ]
        )
    )
    extra = {
        "database_target_revision": "20240101120000",
        "release_target": "0123",
        "rollback_reason": "true",
    }
    job = AwxJob(45, 9, "types", str(playbook), local_inventory("localhost"), extra)
    result = run(job, tmp_path)
    assert result.rc == 0, result.stdout[-3000:]
    shown = [
        e["event_data"]["res"]["msg"]
        for e in result.events
        if e["event"] == "runner_on_ok"
        and e["event_data"]["task_action"] == "ansible.builtin.debug"
    ]
    assert shown == ["['int', 'int', 'bool'] 83"]
