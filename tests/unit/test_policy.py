"""The rollback policy and the runbook's decision matrix (plugin_utils/policy/), its published
schema (plugin_utils/policy.schema.json), the policy files of the inventories, and the filter
plugins through a real ansible-playbook run of playbooks/decide.yml."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    ACTIONS,
    DEFAULT_POLICY,
    NO_DATA_POLICIES,
    SCHEMA_FILE,
    SCHEMA_VERSION,
    SECTIONS,
    TEMPLATE_NAMES,
    InputError,
    PolicyError,
    decide,
    default_policy,
    format_duration,
    parse_duration,
    parse_impact,
    parse_levels,
    parse_percent,
    validate_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.schema import (
    FORMATS,
    schema_problems,
    without_nulls,
)
from tests.conftest import REPO, VENV_BIN

RUNBOOK = default_policy()


def policy_with(**sections: Any) -> dict[str, Any]:
    """A bare policy document giving only these sections."""
    return dict(sections)


def problems(document: Any, source: str = "policy.yml") -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as raised:
        validate_policy(document, source)
    return raised.value.problems


def problem_at(document: Any, path: str) -> str:
    found = dict(problems(document))
    assert path in found, f"no problem at {path}: {found}"
    return found[path]


# --------------------------------------------------------------------------------------------
# The matrix: every row and every boundary of the runbook's table

MATRIX_CASES = [
    # severity, impact, time_to_fix -> action, levels, row used, what it shows
    ("critical", "all", "2h", "rollback", [3, 4, 5], "critical", "row 1 holds"),
    ("critical", 100, "1h", "rollback", [3, 4, 5], "critical", "exactly 1 h counts as > 1 hour"),
    ("critical", "all", "59m", "rollback", [3, 4, 5], "critical", "floor: 59 min is below >= 1h"),
    ("critical", 99.9, "2h", "rollback", [3, 4, 5], "critical", "floor: 99.9 % is not all"),
    ("high", 80, "45m", "rollback", [2, 3], "high", "row 2 holds"),
    ("high", 50, "45m", "rollback", [2, 3], "high", "exactly 50 % counts as > 50%"),
    ("high", 80, "30m", "rollback", [2, 3], "high", "exactly 30 min counts as > 30 min"),
    ("high", 49.9, "29m", "rollback", [2, 3], "high", "floor: below on both"),
    ("high", "all", "1h", "rollback", [3, 4, 5], "critical", "rule 3: critical holds outright"),
    ("high", "all", "59m", "rollback", [2, 3], "high", "just under 1 h stays high"),
    ("medium", 30, "20m", "rollback", [1, 2], "medium", "row 3 holds"),
    ("medium", 10, "15m", "rollback", [1, 2], "medium", "exactly 15 min counts as > 15 min"),
    ("medium", 49.9, "15m", "rollback", [1, 2], "medium", "just under 50 % stays medium"),
    ("medium", 50, "15m", "rollback", [2, 3], "high", "exactly 50 % exceeds < 50%: up to high"),
    ("medium", 5, "5m", "rollback", [1, 2], "medium", "floor: milder than row 3"),
    ("low", 5, "10m", "fix_forward", [], "low", "row 4 holds"),
    ("low", 9.9, "14m59s", "fix_forward", [], "low", "just under both limits"),
    ("low", 0, 0, "fix_forward", [], "low", "nothing at all"),
    ("low", 10, "10m", "rollback", [1, 2], "medium", "exactly 10 % is not < 10%: up to medium"),
    ("low", 5, "15m", "rollback", [1, 2], "medium", "exactly 15 min is not < 15 min"),
    ("low", 50, "10m", "rollback", [2, 3], "high", "walks up two rows to high"),
    ("low", 60, "45m", "rollback", [2, 3], "high", "walks up to high, which holds"),
    ("low", "all", "2h", "rollback", [3, 4, 5], "critical", "critical holds outright"),
]


@pytest.mark.parametrize(
    ("severity", "impact", "time_to_fix", "action", "levels", "row", "why"),
    MATRIX_CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in MATRIX_CASES],
)
def test_matrix_rows_and_boundaries(
    severity: str,
    impact: Any,
    time_to_fix: Any,
    action: str,
    levels: list[int],
    row: str,
    why: str,
) -> None:
    decision = decide(RUNBOOK, severity, impact, time_to_fix).as_dict()
    assert (decision["action"], decision["levels"], decision["row"]["severity"]) == (
        action,
        levels,
        row,
    ), why
    assert decision["start_level"] == (levels[0] if levels else None)
    assert decision["max_level"] == (levels[-1] if levels else None)
    assert decision["escalated_from"] == (severity if row != severity else None)


def test_a_matching_row_reports_its_conditions_held() -> None:
    decision = decide(RUNBOOK, "high", "80%", "45 min").as_dict()
    assert decision["row"] == {
        "index": 1,
        "severity": "high",
        "impact": ">= 50%",
        "time_to_fix": ">= 30m",
        "action": "rollback",
        "levels": [2, 3],
    }
    assert [(c["field"], c["rule"], c["value"], c["held"]) for c in decision["conditions"]] == [
        ("impact", ">= 50%", "80%", True),
        ("time_to_fix", ">= 30m", "45m", True),
    ]
    assert "matrix[1]" in decision["reason"] and "holds" in decision["reason"]
    assert decision["summary"].startswith("roll back, levels 2-3: start at level 2")


def test_between_rows_the_declared_severity_is_a_floor_with_an_explanation() -> None:
    decision = decide(RUNBOOK, "critical", 20, "10m").as_dict()
    assert (decision["levels"], decision["start_level"]) == ([3, 4, 5], 3)
    assert [(c["field"], c["held"], c["position"]) for c in decision["conditions"]] == [
        ("impact", False, "below"),
        ("time_to_fix", False, "below"),
    ]
    assert "impact 20% is below 'all'" in decision["reason"]
    assert "time to fix 10m is below '>= 1h'" in decision["reason"]
    assert "never lower a declared severity" in decision["reason"]


def test_numbers_that_exceed_a_row_move_up_and_say_why() -> None:
    decision = decide(RUNBOOK, "low", 50, "10m").as_dict()
    assert decision["escalated_from"] == "low"
    assert [c["row"] for c in decision["conditions"]] == [3, 3, 2, 2, 1, 1]
    reason = decision["reason"]
    assert "matrix[3] (low" in reason and "impact 50% is above '< 10%'" in reason
    assert "matrix[1] (high" in reason and "is not exceeded" in reason


def test_inputs_are_case_insensitive_and_accept_units() -> None:
    decision = decide(RUNBOOK, " CRITICAL ", "ALL", "1 hour 30 min").as_dict()
    assert decision["inputs"] == {"severity": "critical", "impact": 100.0, "time_to_fix": 5400}
    assert decide(RUNBOOK, "High", "60 %", 1800).as_dict()["levels"] == [2, 3]


@pytest.mark.parametrize(
    ("severity", "impact", "time_to_fix", "message"),
    [
        ("urgent", 50, "1h", "severity: 'urgent' is not a severity"),
        ("high", 101, "1h", "impact: 101 is out of range"),
        ("high", "lots", "1h", "impact: 'lots' is not a percentage"),
        ("high", -5, "1h", "impact: -5 is out of range"),
        ("high", 50, "soon", "time_to_fix: 'soon' is not a duration"),
        ("high", 50, -60, "time_to_fix: -60 is not a duration"),
    ],
)
def test_bad_inputs_are_errors_that_name_the_input(
    severity: Any, impact: Any, time_to_fix: Any, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        decide(RUNBOOK, severity, impact, time_to_fix)


def test_escalation_is_capped_by_max_level_and_can_be_turned_off() -> None:
    capped = validate_policy(policy_with(escalation={"max_level": 4}))
    decision = decide(capped, "critical", "all", "2h")
    assert (decision.start_level, decision.max_level) == (3, 4)
    assert "capped by escalation.max_level 4" in decision.summary
    off = validate_policy(policy_with(escalation={"on_failed_verification": False}))
    decision = decide(off, "critical", "all", "2h")
    assert (decision.start_level, decision.max_level) == (3, 3)
    assert "no escalation" in decision.summary


def test_rows_of_one_severity_split_by_impact() -> None:
    matrix = [
        {"severity": "critical", "impact": ">= 50%", "levels": "3-5"},
        {"severity": "critical", "impact": "< 50%", "levels": "3"},
        *DEFAULT_POLICY["matrix"][1:],
    ]
    policy = validate_policy(policy_with(matrix=matrix))
    assert decide(policy, "critical", 60, "5m").row.index == 0
    assert decide(policy, "critical", 49, "5m").row.levels == (3,)


# --------------------------------------------------------------------------------------------
# Durations, percentages, levels


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("5 min", 300),
        ("5 minutes", 300),
        ("1h", 3600),
        ("2 hours", 7200),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1 hour 30 min", 5400),
        ("1.5h", 5400),
        ("1d", 86400),
        ("0s", 0),
        ("45", 45),
        (45, 45),
        (" 10M ", 600),
    ],
)
def test_durations(text: Any, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "soon", "5 mins ago", "-5m", "1h1h", "0.5s", "5 parsecs", True, None, -1]
)
def test_bad_durations(text: Any) -> None:
    with pytest.raises(InputError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (90, "1m30s"), (300, "5m"), (5400, "1h30m"), (0.5, "0.5s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_percentages_and_impact() -> None:
    assert [parse_percent(v) for v in ("50%", "50 %", "12.5", 0, 100)] == [50, 50, 12.5, 0, 100]
    assert parse_impact("All") == 100
    for bad in ("150%", "-1", "half", True, None):
        with pytest.raises(InputError):
            parse_percent(bad)


def test_level_ranges() -> None:
    assert parse_levels("3-5") == (3, 4, 5)
    assert parse_levels(2) == (2,)
    assert parse_levels("1 - 2") == (1, 2)
    for bad, message in (("5-3", "reversed"), ("0-2", "out of range"), ("6", "out of range")):
        with pytest.raises(InputError, match=message):
            parse_levels(bad)


# --------------------------------------------------------------------------------------------
# Validation: every error names the file, the key path and what to fix


def test_no_policy_means_the_runbook() -> None:
    policy = default_policy().as_dict()
    assert [row["levels"] for row in policy["matrix"]] == [[3, 4, 5], [2, 3], [1, 2], []]
    services = {k: (s["rto"], s["rpo"], s["priority"]) for k, s in policy["services"].items()}
    assert services == {
        "core_api": (300, 60, "critical"),
        "user_auth": (300, 60, "critical"),
        "database": (900, 300, "critical"),
        "file_storage": (1800, 900, "high"),
        "analytics": (7200, 3600, "medium"),
    }
    triggers = policy["triggers"]
    assert (triggers["error_rate"]["above"], triggers["error_rate"]["for_seconds"]) == (10, 300)
    assert triggers["response_time_p95"]["above"] == 5
    assert triggers["health_check_failures"]["consecutive_above"] == 3
    assert triggers["memory"]["above"] == 95
    assert triggers["db_pool"]["in_use_at_least"] == 100
    assert policy["escalation"] == {"on_failed_verification": True, "max_level": 5}
    assert "ROLLBACK INITIATED" in policy["communication"]["templates"]["internal"]


def test_omitted_keys_keep_their_defaults() -> None:
    policy = validate_policy(policy_with(communication={"lead": "Ada"}, triggers=None))
    assert policy.communication.lead == "Ada"
    assert policy.communication.status_page_url == "https://status.example.com"
    assert policy.communication.templates == default_policy().communication.templates
    assert policy.triggers == default_policy().triggers


def test_unknown_keys_get_the_closest_valid_key() -> None:
    message = problem_at(policy_with(comunication={}), "comunication")
    assert "did you mean 'communication'?" in message
    document = policy_with(triggers={"error_rate": {"abov": "10%"}})
    assert "did you mean 'above'?" in problem_at(document, "triggers.error_rate.abov")
    matrix = [dict(DEFAULT_POLICY["matrix"][0], level="3-5"), *DEFAULT_POLICY["matrix"][1:]]
    assert "did you mean 'levels'?" in problem_at(policy_with(matrix=matrix), "matrix[0].level")


def test_errors_name_the_file_and_the_path_inside_the_inventory_shape() -> None:
    document = {"all": {"vars": {"rollback_policy": {"escalation": {"max_level": 7}}}}}
    with pytest.raises(PolicyError) as raised:
        validate_policy(document, "inventories/prod/policy.yml")
    assert str(raised.value) == (
        "inventories/prod/policy.yml: all.vars.rollback_policy.escalation.max_level: "
        "must be a whole number from 1 to 5, got 7"
    )


def test_bad_durations_and_percentages_in_a_policy() -> None:
    document = policy_with(
        services={"core_api": {"rto": "5 minutes please", "rpo": "1m", "priority": "critical"}},
        triggers={"memory": {"above": "120%"}, "error_rate": {"for": "a while"}},
    )
    found = dict(problems(document))
    assert "is not a duration" in found["services.core_api.rto"]
    assert "out of range" in found["triggers.memory.above"]
    assert "is not a duration" in found["triggers.error_rate.for"]


def test_reversed_and_out_of_range_levels() -> None:
    matrix = [dict(row) for row in DEFAULT_POLICY["matrix"]]
    matrix[0]["levels"] = "5-3"
    matrix[1]["levels"] = "2-6"
    found = dict(problems(policy_with(matrix=matrix)))
    assert "reversed: write the lower level first (3-5)" in found["matrix[0].levels"]
    assert "out of range: levels are 1 to 5" in found["matrix[1].levels"]


def test_missing_severity() -> None:
    matrix = [row for row in DEFAULT_POLICY["matrix"] if row["severity"] != "medium"]
    message = problem_at(policy_with(matrix=matrix), "matrix")
    assert message.startswith("no row for severity medium")


def test_overlapping_rows_show_an_input_matching_both() -> None:
    matrix = [
        *DEFAULT_POLICY["matrix"],
        {"severity": "high", "impact": "> 40%", "time_to_fix": "any", "levels": "2"},
    ]
    message = problem_at(policy_with(matrix=matrix), "matrix[4]")
    assert message.startswith("overlaps matrix[1]: both match severity high with impact 50%")


def test_rows_that_only_touch_do_not_overlap() -> None:
    matrix = [
        {"severity": "critical", "impact": ">= 50%", "levels": "3-5"},
        {"severity": "critical", "impact": "< 50%", "levels": "3"},
        *DEFAULT_POLICY["matrix"][1:],
    ]
    validate_policy(policy_with(matrix=matrix))


@pytest.mark.parametrize(
    ("row", "path", "message"),
    [
        ({"severity": "critical", "impact": "50%", "levels": 3}, "impact", "is not a condition"),
        ({"severity": "critical", "impact": "> 100%", "levels": 3}, "impact", "can never hold"),
        ({"severity": "critical", "time_to_fix": "> soon", "levels": 3}, "time_to_fix", "dur"),
        ({"severity": "critical"}, "levels", "missing: the level range"),
        ({"severity": "critical", "action": "fix_forward", "levels": 3}, "levels", "no levels"),
        ({"severity": "critical", "action": "revert", "levels": 3}, "action", "not an action"),
        ({"impact": "all", "levels": 3}, "severity", "missing"),
    ],
)
def test_bad_matrix_rows(row: dict[str, Any], path: str, message: str) -> None:
    matrix = [row, *DEFAULT_POLICY["matrix"][1:]]
    assert message in problem_at(policy_with(matrix=matrix), f"matrix[0].{path}")


def test_the_webhook_url_is_never_in_the_file() -> None:
    document = policy_with(communication={"channels": {"webhook_url_env": "https://hooks/x"}})
    message = problem_at(document, "communication.channels.webhook_url_env")
    assert "never the URL itself" in message


def test_templates_are_overridable_and_checked() -> None:
    good = policy_with(communication={"templates": {"customer": "Back within {timeframe}."}})
    assert validate_policy(good).communication.templates["customer"] == "Back within {timeframe}."
    bad = policy_with(communication={"templates": {"internal": "Hi {name}"}})
    assert "unknown placeholder {name}" in problem_at(bad, "communication.templates.internal")


def test_every_problem_is_reported_at_once() -> None:
    document = policy_with(
        escalation={"max_level": 0, "on_failed_verification": "yes"},
        revenue={"per_minute": -1},
    )
    assert {path for path, _ in problems(document)} == {
        "escalation.max_level",
        "escalation.on_failed_verification",
        "revenue.per_minute",
    }


def test_a_policy_file_that_is_not_a_mapping() -> None:
    assert problems(["matrix"]) == [
        ("(top level)", "must be a mapping (key: value lines), got a list")
    ]


# --------------------------------------------------------------------------------------------
# The schema: published, checked by jsonschema, one source of the names the code reads


def load_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


def test_the_schema_ships_with_the_collection_and_is_draft_2020_12() -> None:
    from jsonschema import Draft202012Validator

    collection = REPO / "collections/ansible_collections/sre/rollback"
    assert collection / "plugins/plugin_utils/policy.schema.json" == SCHEMA_FILE
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/policy/{SCHEMA_VERSION}.json")
    readme = (REPO / "README.md").read_text()
    assert f"plugins/plugin_utils/policy.schema.json`\n(version {SCHEMA_VERSION}," in readme


def test_the_runbook_defaults_satisfy_the_schema() -> None:
    runbook = without_nulls(DEFAULT_POLICY)
    assert schema_problems(runbook) == []
    assert schema_problems({"all": {"vars": {"rollback_policy": runbook}}}) == []


def test_every_format_the_schema_names_has_one_parser() -> None:
    used = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                used.add(node["format"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load_schema())
    assert used == set(FORMATS)


def test_the_names_the_code_reads_come_from_the_schema() -> None:
    policy = load_schema()["$defs"]["policy"]["properties"]
    assert SECTIONS == tuple(policy) == tuple(DEFAULT_POLICY)
    assert ACTIONS == ("rollback", "fix_forward")
    assert tuple(DEFAULT_POLICY["communication"]["templates"]) == TEMPLATE_NAMES
    assert NO_DATA_POLICIES == ("reset",)
    triggers = policy["triggers"]["properties"]
    assert set(triggers) == set(DEFAULT_POLICY["triggers"])
    for name, trigger in DEFAULT_POLICY["triggers"].items():
        if isinstance(trigger, dict):
            assert set(trigger) <= set(triggers[name]["properties"]), name


def test_a_standard_validator_reads_the_schema_without_the_unit_parsers() -> None:
    """An editor or CI job with any Draft 2020-12 validator finds the shape problems (keys,
    types, ranges) at the same paths; only the units need the collection's parsers."""
    from jsonschema import Draft202012Validator

    document = policy_with(
        escalation={"max_level": 9, "max_levle": 4},
        triggers={"memory": "off"},
        matrix=[{"impact": "all", "levels": 3}],
    )
    plain = Draft202012Validator(load_schema())
    paths = {"/".join(map(str, e.absolute_path)) for e in plain.iter_errors(document)}
    assert paths == {"escalation/max_level", "escalation", "triggers/memory", "matrix/0"}
    assert {path for path, _ in problems(document)} >= {
        "escalation.max_level",
        "escalation.max_levle",
        "triggers.memory",
        "matrix[0].severity",
    }


# What the schema finds that the hand-written readers left unsaid: a reader stopped reading a
# row or a service at its first missing key, or an action it did not know, and went on
# reading the keys of a section that was not a mapping (one error said many times).


def test_a_row_without_severity_still_has_its_other_keys_checked() -> None:
    matrix = [{"impact": "half", "levels": "9"}, *DEFAULT_POLICY["matrix"][1:]]
    found = dict(problems(policy_with(matrix=matrix)))
    assert found["matrix[0].severity"] == "missing: one of critical, high, medium, low"
    assert "'half' is not a condition" in found["matrix[0].impact"]
    assert "'9' is out of range: levels are 1 to 5" in found["matrix[0].levels"]


def test_a_row_with_an_unknown_action_still_has_its_levels_checked() -> None:
    matrix = [{"severity": "critical", "action": "revert", "levels": "5-3"}]
    found = dict(problems(policy_with(matrix=[*matrix, *DEFAULT_POLICY["matrix"][1:]])))
    assert found["matrix[0].action"] == "'revert' is not an action: use rollback or fix_forward"
    assert "reversed: write the lower level first (3-5)" in found["matrix[0].levels"]


def test_a_service_missing_an_objective_still_has_its_other_keys_checked() -> None:
    services = {"core_api": {"name": 5, "rpo": "soon", "priority": "urgent"}}
    found = dict(problems(policy_with(services=services)))
    assert found["services.core_api.rto"] == "missing: recovery time objective, e.g. 5m"
    assert "'soon' is not a duration" in found["services.core_api.rpo"]
    assert found["services.core_api.priority"].startswith("'urgent' is not a priority: use one")
    assert found["services.core_api.name"] == "must be text, got 5"


def test_a_section_of_the_wrong_kind_is_one_problem_not_one_per_key() -> None:
    assert problems(policy_with(triggers={"memory": "off"})) == [
        ("triggers.memory", "must be a mapping (key: value lines), got 'off'")
    ]
    assert problems(policy_with(communication={"channels": ["stdout"]})) == [
        ("communication.channels", "must be a mapping (key: value lines), got a list")
    ]


def test_a_bad_service_key_is_named_by_its_own_path() -> None:
    services = {"Core-API": {"rto": "5m", "rpo": "1m", "priority": "critical"}}
    assert problems(policy_with(services=services)) == [
        ("services.Core-API", "a service key is lowercase letters, digits and _, e.g. core_api")
    ]


def test_null_means_the_default_everywhere() -> None:
    document = policy_with(
        matrix=None,
        communication={"lead": None, "channels": {"file": None}},
        triggers={"memory": {"above": None, "action": None}},
    )
    assert validate_policy(document).as_dict() == {**RUNBOOK.as_dict(), "source": "policy"}


# --------------------------------------------------------------------------------------------
# The inventories' policy files

ENVIRONMENTS = ["prod", "staging", "testhosts"]


def load_inventory_policy(env: str) -> Any:
    return yaml.safe_load((REPO / "inventories" / env / "policy.yml").read_text())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_inventory_policies_validate_and_keep_the_runbook_matrix(env: str) -> None:
    policy = validate_policy(load_inventory_policy(env), f"inventories/{env}/policy.yml")
    assert policy.matrix == RUNBOOK.matrix
    assert policy.services == RUNBOOK.services


def test_staging_is_the_runbook_written_out() -> None:
    staging = validate_policy(load_inventory_policy("staging")).as_dict()
    runbook = RUNBOOK.as_dict()
    staging.pop("source")
    runbook.pop("source")
    assert staging == runbook


def test_prod_names_the_webhook_variable_not_the_url() -> None:
    channels = validate_policy(load_inventory_policy("prod")).communication.channels
    assert channels.webhook_url_env == "ROLLBACK_WEBHOOK_URL"
    text = (REPO / "inventories" / "prod" / "policy.yml").read_text()
    assert "webhook_url_env: ROLLBACK_WEBHOOK_URL\n" in text


def test_ansible_reads_a_policy_file_as_inventory_variables_without_warnings() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", "inventories/prod", "--list", "--export"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "policy.yml" not in result.stderr, result.stderr
    inventory = json.loads(result.stdout)
    assert inventory["all"]["vars"]["rollback_policy"]["matrix"][0]["levels"] == "3-5"
    assert set(inventory) <= {"_meta", "all", "ungrouped"} | set(
        inventory["all"].get("children", [])
    )


# --------------------------------------------------------------------------------------------
# The filter plugins: imported, and through a real ansible-playbook run


def test_filter_plugin_exposes_the_filters_and_ansible_errors() -> None:
    from ansible.errors import AnsibleFilterError

    from ansible_collections.sre.rollback.plugins.filter.policy import FilterModule

    filters = FilterModule().filters()
    assert set(filters) == {"rollback_decision", "validate_policy", "parse_duration"}
    assert filters["parse_duration"]("1h30m") == 5400
    assert filters["rollback_decision"]("low", 5, "10m")["action"] == "fix_forward"
    assert filters["validate_policy"](None)["escalation"]["max_level"] == 5
    with pytest.raises(AnsibleFilterError, match=r"x\.yml: matrx: unknown key"):
        filters["validate_policy"]({"matrx": []}, "x.yml")


def run_decide(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """ansible-playbook playbooks/decide.yml; returns the run and its set_stats data."""
    env = {
        **os.environ,
        "ANSIBLE_SHOW_CUSTOM_STATS": "true",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_NOCOLOR": "1",
        "SRE_ROLLBACK_RECORD_DIR": str(tmp_path / "runs"),
    }
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/decide.yml", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
    )
    stats = None
    for line in result.stdout.splitlines():
        if line.strip().startswith("RUN:"):
            stats = json.loads(line.split("RUN:", 1)[1])
    return result, stats


@pytest.mark.slow
def test_playbook_decides_with_the_inventory_policy(tmp_path: Path) -> None:
    result, stats = run_decide(
        tmp_path,
        *("-i", "inventories/testhosts"),
        *("-e", "severity=Low", "-e", "impact=50", "-e", "time_to_fix=10m"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    decision = stats["rollback_decision"]
    assert (decision["levels"], decision["start_level"], decision["max_level"]) == ([2, 3], 2, 3)
    assert decision["escalated_from"] == "low"
    assert "rollback_policy of the inventory" in decision["policy"]
    assert "Decision: roll back, levels 2-3: start at level 2 (configuration)" in result.stdout


@pytest.mark.slow
def test_playbook_reads_a_policy_file_and_defaults_without_one(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(yaml.safe_dump({"escalation": {"max_level": 4}}))
    incident = ("-e", "severity=critical", "-e", "impact=all", "-e", "time_to_fix=1h")
    result, stats = run_decide(
        tmp_path, "-i", "localhost,", *incident, "-e", f"rollback_policy_file={policy}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (stats["rollback_decision"]["max_level"], stats["rollback_decision"]["policy"]) == (
        4,
        str(policy),
    )
    result, stats = run_decide(tmp_path, "-i", "localhost,", *incident)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stats["rollback_decision"]["max_level"] == 5
    assert stats["rollback_decision"]["policy"] == "built-in defaults (the runbook)"


@pytest.mark.slow
def test_playbook_fails_clearly_on_a_bad_policy_or_input(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(yaml.safe_dump({"escalation": {"max_levle": 4}}))
    result, _ = run_decide(
        tmp_path,
        *("-i", "localhost,", "-e", "severity=high", "-e", "impact=60"),
        *("-e", "time_to_fix=45m", "-e", f"rollback_policy_file={policy}"),
    )
    assert result.returncode == 2, result.stdout
    assert f"{policy}: escalation.max_levle: unknown key: did you mean 'max_level'?" in (
        result.stdout
    )
    result, _ = run_decide(tmp_path, "-i", "localhost,", "-e", "severity=high")
    assert result.returncode == 2
    assert "Describe the incident with extra vars" in result.stdout
