"""awx/controller.yml: the shipped definition is valid by AWX's own rules and the roles'
inputs; each kind of mistake fails naming its object; the export and the awx.awx playbook
describe the same objects."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils import levels
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import SEVERITIES
from rollbackctl import awx
from tests.conftest import REPO, VENV_BIN

DEFINITION = REPO / "awx" / "controller.yml"


def model(source: dict[str, Any] | None = None) -> dict[str, Any]:
    return awx.build(source or awx.load_source(DEFINITION), REPO)


def rollbackctl(*args: str, definition: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--definition", str(definition)] if definition else []
    return subprocess.run(
        [str(VENV_BIN / "rollbackctl"), "awx", *args, *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_shipped_definition_is_valid() -> None:
    proc = rollbackctl("validate", "--no-lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Valid: 7 job templates, 13 workflow nodes." in proc.stdout


def test_surveys_take_their_types_and_choices_from_the_roles_and_the_policy() -> None:
    templates = {t.get("level"): t for t in model()["job_templates"]}
    assert sorted(n for n in templates if n) == sorted(levels.LEVELS)
    for number, known in levels.LEVELS.items():
        questions = {q["variable"]: q for q in templates[number]["survey_spec"]["spec"]}
        assert templates[number]["playbook"] == f"playbooks/{known.playbook}"
        for target in known.targets:
            assert target.var in questions
        assert questions["rollback_severity"]["choices"] == list(SEVERITIES)
        assert questions["rollback_reason"]["required"] is True
    # Level 1 cannot run without its flags: the registry's required input is a required question.
    assert {q["variable"]: q for q in templates[1]["survey_spec"]["spec"]}["feature_flag_names"][
        "required"
    ]


def test_the_workflow_escalates_with_an_approval_before_levels_4_and_5() -> None:
    nodes = {n["identifier"]: n for n in model()["workflow_nodes"]}
    assert nodes["level-3"]["success_nodes"] == ["validate-level-3"]
    assert nodes["validate-level-3"]["failure_nodes"] == ["approve-level-4"]
    assert nodes["level-3"]["failure_nodes"] == ["approve-level-4"]
    assert nodes["approve-level-4"]["success_nodes"] == ["level-4"]
    assert "approval" in nodes["approve-level-5"]
    assert nodes["validate-level-1"]["failure_nodes"] == ["level-2"]


def broken(tmp_path: Path, change: Any) -> Path:
    source = yaml.safe_load(DEFINITION.read_text())
    change(source)
    path = tmp_path / "controller.yml"
    path.write_text(yaml.safe_dump(source))
    return path


def test_a_survey_type_awx_rejects_fails_naming_the_template(tmp_path: Path) -> None:
    def bad_type(source: dict[str, Any]) -> None:
        source["templates"][0]["survey"][2]["type"] = "duration"

    proc = rollbackctl("validate", "--no-lint", definition=broken(tmp_path, bad_type))
    assert proc.returncode == 1
    assert (
        "job template 'sre.rollback decide' survey question 2 (time_to_fix): type 'duration' "
        "is not one of AWX's" in proc.stdout
    )


def test_a_survey_variable_no_role_accepts_fails_naming_the_template(tmp_path: Path) -> None:
    def unknown(source: dict[str, Any]) -> None:
        source["level_templates"]["survey"].append(
            {
                "variable": "release_colour",
                "question_name": "Colour",
                "type": "text",
                "required": False,
            }
        )

    proc = rollbackctl("validate", "--no-lint", definition=broken(tmp_path, unknown))
    assert proc.returncode == 1
    assert (
        "job template 'sre.rollback level 3 (code)': survey variable 'release_colour' is not "
        "an input of playbooks/rollback-l3.yml" in proc.stdout
    )


def test_a_missing_approval_before_level_4_fails_naming_the_node(tmp_path: Path) -> None:
    def no_approval(source: dict[str, Any]) -> None:
        source["workflow"]["approval_before"] = [5]

    proc = rollbackctl("validate", "--no-lint", definition=broken(tmp_path, no_approval))
    assert proc.returncode == 1
    assert (
        "workflow sre.rollback escalation node level-4: level 4 is reached without an approval "
        "node" in proc.stdout
    )
    # The definition asks for the approvals: without asking, nothing is said about them.
    assert rollbackctl("validate", "--no-lint").returncode == 0


def test_graph_problems_name_the_node() -> None:
    good = model()
    assert awx.graph_problems(good) == []
    missing = copy.deepcopy(good)
    missing["workflow_nodes"][0]["success_nodes"].append("level-9")
    assert [str(p) for p in awx.graph_problems(missing)] == [
        "workflow sre.rollback escalation node decide: "
        "success_nodes link to a missing node 'level-9'"
    ]
    cycle = copy.deepcopy(good)
    next(n for n in cycle["workflow_nodes"] if n["identifier"] == "validate-level-5")[
        "failure_nodes"
    ].append("level-1")
    assert any("cycle: level-1 -> " in str(p) for p in awx.graph_problems(cycle))
    twice = copy.deepcopy(good)
    twice["workflow_nodes"].append(dict(twice["workflow_nodes"][1]))
    assert "node level-1: identifier is not unique" in " ".join(map(str, awx.graph_problems(twice)))
    unknown = copy.deepcopy(good)
    unknown["workflow_nodes"][1]["unified_job_template"] = "sre.rollback level 9"
    assert "template 'sre.rollback level 9' does not exist" in str(awx.graph_problems(unknown)[0])


QUESTION = {"variable": "x", "question_name": "X", "type": "text", "required": True}
SPEC = {"name": "", "description": "", "spec": [QUESTION]}


# One case per rule of awx/api/views/__init__.py JobTemplateSurveySpec._validate_spec_data
# (what AWX refuses), then the ones AWX accepts but that cannot work (ours, each says why).
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param({"description": "", "spec": [QUESTION]}, "field 'name' is missing", id="name"),
        pytest.param(
            {**SPEC, "description": 1}, "'description' must be a string", id="description"
        ),
        pytest.param({**SPEC, "spec": {}}, "'spec' must be a list", id="spec-list"),
        pytest.param({**SPEC, "spec": []}, "'spec' has no questions", id="spec-empty"),
        pytest.param({**SPEC, "spec": ["x"]}, "is not a JSON object", id="question-object"),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": None}]},
            "'type' must be a string",
            id="type-string",
        ),
        pytest.param(
            {**SPEC, "spec": [{k: v for k, v in QUESTION.items() if k != "question_name"}]},
            "'question_name' missing",
            id="question-name",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "variable": 3}]},
            "'variable' must be a string",
            id="variable-string",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "required": "yes"}]},
            "'required' must be true or false",
            id="required-bool",
        ),
        pytest.param(
            {**SPEC, "spec": [QUESTION, {**QUESTION, "question_name": "Y"}]},
            "variable 'x' duplicated",
            id="duplicate",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "duration"}]},
            "type 'duration' is not one of AWX's",
            id="type",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "integer", "default": "3"}]},
            "default '3' must be a integer",
            id="default-integer",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "default": 5}]},
            "default 5 must be a string",
            id="default-string",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "min": "1"}]},
            "'min' must be an integer",
            id="min-integer",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "float", "max": 2.5}]},
            "'max' must be an integer",
            id="max-integer",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "multiselect"}]},
            "must specify choices",
            id="choices-missing",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "multiplechoice", "choices": {"a": 1}}]},
            "choices must be a list or a newline-separated string",
            id="choices-shape",
        ),
        pytest.param(
            {
                **SPEC,
                "spec": [
                    {**QUESTION, "type": "multiplechoice", "choices": "a\nb", "default": "a\nb"}
                ],
            },
            "can have only one default",
            id="one-default",
        ),
        pytest.param(
            {
                **SPEC,
                "spec": [{**QUESTION, "type": "multiplechoice", "choices": ["a"], "default": "b"}],
            },
            "default 'b' is not among the choices",
            id="default-choice",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "default": "$encrypted$"}]},
            "reserved for password questions",
            id="encrypted-text",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "password", "default": "$encrypted$"}]},
            "keeps an encrypted default that a new survey lacks",
            id="encrypted-new",
        ),
        # AWX accepts these; they cannot work (ours):
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "password", "default": "hunter2"}]},
            "would put a secret in the definition",
            id="password-default",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "min": 3, "default": "ab"}]},
            "AWX leaves it out at launch: 'x' is shorter than 3",
            id="default-dropped-text",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "integer", "max": 9, "default": 10}]},
            "AWX leaves it out at launch: 'x' value 10 is above 9",
            id="default-dropped-integer",
        ),
        pytest.param(
            {
                **SPEC,
                "spec": [
                    {**QUESTION, "type": "multiselect", "choices": ["a", "b"], "default": "a\nb"}
                ],
            },
            "AWX leaves it out at launch: 'x' value must be a list",
            id="default-dropped-multiselect",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "min": 5, "max": 2}]},
            "min 5 is above max 2: no answer can pass",
            id="min-above-max",
        ),
        pytest.param(
            {**SPEC, "spec": [{**QUESTION, "type": "multiplechoice", "choices": []}]},
            "choices are empty: no answer can pass",
            id="choices-empty",
        ),
    ],
)
def test_survey_rules_are_awxs(spec: dict[str, Any], message: str) -> None:
    problems = awx.survey_problems("job template 't'", spec)
    assert any(message in str(p) for p in problems), problems


@pytest.mark.parametrize(
    "question",
    [
        {**QUESTION, "type": "float", "default": 2, "min": 1, "max": 3},
        {**QUESTION, "type": "multiplechoice", "choices": "a\n\nb\n", "default": "b"},
        {**QUESTION, "type": "integer", "default": "", "min": 0},
        {**QUESTION, "min": 1, "max": 64, "default": ""},
    ],
)
def test_what_awx_accepts_passes(question: dict[str, Any]) -> None:
    assert awx.survey_problems("job template 't'", {**SPEC, "spec": [question]}) == []


def test_answers_are_checked_with_their_survey_types_as_awx_does_at_launch() -> None:
    integer = {**QUESTION, "type": "integer", "min": 0, "max": 10}
    assert awx.answer_problems(integer, {"x": 3}) == []
    assert awx.answer_problems(integer, {"x": "3"}) == ["value '3' for 'x' must be an integer"]
    assert awx.answer_problems(integer, {"x": True}) == ["value True for 'x' must be an integer"]
    assert awx.answer_problems(integer, {"x": 11}) == ["'x' value 11 is above 10"]
    assert awx.answer_problems({**QUESTION, "type": "float"}, {"x": 2}) == []
    assert awx.answer_problems(QUESTION, {}) == ["'x' value missing"]
    assert awx.answer_problems(
        {**QUESTION, "type": "multiselect", "choices": "a\nb"}, {"x": ["a", "c"]}
    ) == ["'c' for 'x' is not one of ['a', 'b']"]


def test_the_export_and_the_awx_awx_playbook_describe_the_same_objects() -> None:
    proc = rollbackctl("export")
    assert proc.returncode == 0, proc.stderr
    exported = json.loads(proc.stdout)
    # awxkit's resources, each asset with its natural key; no secret, no credential input.
    assert set(exported) == {
        "organizations",
        "credential_types",
        "credentials",
        "notification_templates",
        "projects",
        "inventory",
        "job_templates",
        "workflow_job_templates",
    }
    assert all(asset["natural_key"] for assets in exported.values() for asset in assets)
    assert all(c["inputs"] == {} for c in exported["credentials"])
    names = {t["name"] for t in exported["job_templates"]}
    flow = exported["workflow_job_templates"][0]
    for node in flow["related"]["workflow_nodes"]:
        template = node["unified_job_template"]
        assert template is None or template["name"] in names
    # The playbook applies the export itself: every resource of it is looped over by one task.
    play = yaml.safe_load((REPO / "playbooks" / "awx-configure.yml").read_text())[0]
    assert "rollbackctl awx export" in play["vars"]["awx_export"]
    loops = [task["loop"] for task in play["tasks"]]
    for resource in exported:
        assert any(f"awx_export.{resource} " in loop + " " for loop in loops), resource
    assert all(next(iter(k for k in task if k.startswith("awx.awx."))) for task in play["tasks"])


AWX_COLLECTION = REPO / ".collections-awx" / "ansible_collections" / "awx" / "awx"


@pytest.mark.skipif(
    not AWX_COLLECTION.is_dir(), reason="awx.awx not installed: run scripts/install-awx-collection"
)
def test_ansible_lint_checks_the_playbook_against_awx_awx(tmp_path: Path) -> None:
    assert rollbackctl("validate").returncode == 0
    bad = (REPO / "playbooks" / "awx-configure.yml").read_text()
    bad = bad.replace('        playbook: "{{ item.playbook }}"\n', "        playbok: x\n", 1)
    assert "playbok" in bad
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    for name in ("awx", "collections", ".collections-awx", "ansible.cfg", ".ansible-lint"):
        os.symlink(REPO / name, project / name)
    for playbook in (REPO / "playbooks").glob("*.yml"):
        os.symlink(playbook, project / "playbooks" / playbook.name)
    (project / "playbooks" / "awx-configure.yml").unlink()
    (project / "playbooks" / "awx-configure.yml").write_text(bad)
    proc = subprocess.run(
        [str(VENV_BIN / "rollbackctl"), "awx", "validate", "--project-dir", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1
    assert (
        "awx-configure.yml task 'Job templates, one per level, with their surveys and "
        "notifications' (awx.awx.job_template): awx.awx.job_template has no option 'playbok'"
    ) in proc.stdout
