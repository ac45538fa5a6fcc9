"""`rollbackctl decide` through click's CliRunner: text and JSON output, policy lookup, exit
codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from rollbackctl.cli import main
from tests.conftest import REPO

PROD = str(REPO / "inventories" / "prod")


def decide(*args: str) -> Result:
    return CliRunner().invoke(main, ["decide", *args])


def test_help_documents_inputs_and_exit_codes() -> None:
    result = decide("--help")
    assert result.exit_code == 0
    for text in ("--severity", "--impact", "--time-to-fix", "--inventory", "--policy", "--json"):
        assert text in result.output
    assert "Exit codes:" in result.output
    assert "0  decided" in result.output
    assert "2  bad input" in result.output


def test_the_group_lists_decide() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "decide" in result.output


def test_text_output_shows_range_start_level_and_row() -> None:
    result = decide("--severity", "critical", "--impact", "all", "--time-to-fix", "2h", "-i", PROD)
    assert result.exit_code == 0, result.output
    assert "ROLL BACK, levels 3-5" in result.output
    assert "level 3 (code)" in result.output
    assert "level 5 (full system)" in result.output
    assert "matrix[0] (critical" in result.output
    assert "inventories/prod/policy.yml" in result.output
    assert "Why:" in result.output


def test_text_output_for_fix_forward() -> None:
    result = decide("-s", "low", "--impact", "5%", "-t", "10 min")
    assert result.exit_code == 0, result.output
    assert "FIX FORWARD" in result.output
    assert "built-in defaults (the runbook)" in result.output


def test_text_output_explains_a_move_up() -> None:
    result = decide("-s", "LOW", "--impact", "50", "-t", "10m")
    assert result.exit_code == 0, result.output
    assert "ROLL BACK, levels 2-3" in result.output
    assert "declared severity low" in result.output


def test_json_output_is_the_decision_only() -> None:
    result = decide("-s", "high", "--impact", "80", "-t", "45m", "-i", PROD, "--json")
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["action"] == "rollback"
    assert (decision["levels"], decision["start_level"], decision["max_level"]) == ([2, 3], 2, 3)
    assert decision["row"]["index"] == 1
    assert all(condition["held"] for condition in decision["conditions"])
    assert decision["policy"].endswith("inventories/prod/policy.yml")


def test_json_fix_forward_is_exit_0() -> None:
    result = decide("-s", "low", "--impact", "0", "-t", "0", "--json")
    assert result.exit_code == 0
    decision = json.loads(result.output)
    assert decision["action"] == "fix_forward"
    assert (decision["levels"], decision["start_level"], decision["max_level"]) == ([], None, None)


def test_inventory_by_environment_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = decide("-s", "high", "--impact", "60", "-t", "45m", "-i", "staging", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["policy"] == "inventories/staging/policy.yml"


def write_policy(directory: Path, policy: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policy.yml"
    path.write_text(yaml.safe_dump(policy))
    return path


def test_inventory_given_as_a_file_uses_the_policy_next_to_it(tmp_path: Path) -> None:
    write_policy(tmp_path / "env", {"all": {"vars": {"rollback_policy": {"escalation": None}}}})
    (tmp_path / "env" / "hosts.yml").write_text("all: {}\n")
    hosts = str(tmp_path / "env" / "hosts.yml")
    result = decide("-s", "high", "--impact", "60", "-t", "45m", "-i", hosts, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["policy"] == str(tmp_path / "env" / "policy.yml")


def test_generated_inventory_finds_the_policy_through_its_group_vars_symlink(
    tmp_path: Path,
) -> None:
    write_policy(tmp_path / "inventories" / "rig", {"escalation": {"max_level": 4}})
    (tmp_path / "inventories" / "rig" / "group_vars").mkdir()
    generated = tmp_path / ".testhosts"
    generated.mkdir()
    (generated / "inventory.ini").write_text("[app]\n")
    (generated / "group_vars").symlink_to(tmp_path / "inventories" / "rig" / "group_vars")
    inventory = str(generated / "inventory.ini")
    result = decide("-s", "critical", "--impact", "all", "-t", "2h", "-i", inventory, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["max_level"] == 4


def test_inventory_without_a_policy_uses_the_runbook_and_says_so(tmp_path: Path) -> None:
    result = decide("-s", "high", "--impact", "60", "-t", "45m", "-i", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["policy"] == (
        f"built-in defaults (the runbook): {tmp_path} has no policy.yml"
    )


def test_a_bad_policy_file_is_exit_2_naming_file_and_key(tmp_path: Path) -> None:
    path = write_policy(tmp_path, {"matrix": [{"severity": "critical", "levels": "5-3"}]})
    result = decide("-s", "high", "--impact", "60", "-t", "45m", "--policy", str(path))
    assert result.exit_code == 2
    assert f"{path}: matrix[0].levels: '5-3' is reversed" in result.output
    assert f"{path}: matrix: no row for severity high, medium, low" in result.output


def test_a_policy_file_that_is_not_yaml_is_exit_2_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text("matrix:\n  - severity: high\n    impact: >= 50%\n")
    result = decide("-s", "high", "--impact", "60", "-t", "45m", "--policy", str(path))
    assert result.exit_code == 2
    assert f"{path}: not valid YAML: line 3" in result.output
    assert "quote conditions that start with '>'" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "urgent", "--impact", "60", "-t", "45m"], "'urgent' is not one of"),
        (["-s", "high", "--impact", "160", "-t", "45m"], "'160' is out of range"),
        (["-s", "high", "--impact", "lots", "-t", "45m"], "'lots' is not a percentage"),
        (["-s", "high", "--impact", "60", "-t", "soon"], "'soon' is not a duration"),
        (["-s", "high", "--impact", "60"], "Missing option '-t' / '--time-to-fix'"),
        (["-s", "high", "--impact", "60", "-t", "1h", "-i", "nowhere"], "'nowhere' not found"),
        (["-s", "high", "--impact", "60", "-t", "1h", "--policy", "/nonexistent/p.yml"], "read"),
        (["-s", "high", "--impact", "60", "-t", "1h", "-i", PROD, "--policy", "x"], "not both"),
    ],
)
def test_bad_input_is_exit_2(args: list[str], message: str) -> None:
    result = decide(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
