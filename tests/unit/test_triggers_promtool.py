"""The rendered rules against the real promtool: ``check rules``, the hand-written unit tests
in tests/triggers/ (fire, no fire, gap, flap, no data per rule), ``amtool check-config``,
and the differential test: on the same series our evaluator and ``promtool test rules``
agree on when each rule fires, at every evaluation."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    Policy,
    default_policy,
    validate_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.trigger_series import (
    evaluation_times,
    expected_alerts,
    format_openmetrics,
    parse_openmetrics,
    promtool_input_series,
    stale_rows,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import (
    RuleEvaluator,
    build_rules,
    render_alertmanager,
    render_rules,
)
from tests.conftest import REPO
from tests.support.tools import require_tool
from tests.support.trigger_scenarios import scenario

HAND_WRITTEN = sorted((REPO / "tests" / "triggers").glob("*.yml"))
DIFFERENTIAL_SERIES = 40
SUMMED = ("error_rate", "response_time_p95")
STEP = 15
STEPS = 60

# Short windows so that rules fire and reset within a 15-minute series; every semantics in use.
DIFFERENTIAL_POLICY = {
    "triggers": {
        "error_rate": {"for": "1m"},
        "response_time_p95": {"for": "1m"},
        "memory": {"for": "0s"},
        "db_pool": {"for": "30s"},
    }
}


def write_rules(policy: Policy, directory: Path) -> Path:
    path = directory / "rules.yml"
    path.write_text(yaml.safe_dump(render_rules(policy, build_rules(policy)), sort_keys=False))
    return path


def run_tool(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120, check=False
    )


def test_rendered_rules_pass_promtool_check(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    for name, policy in (
        ("default", default_policy()),
        ("testhosts", _policy_file(REPO / "inventories" / "testhosts" / "policy.yml")),
    ):
        directory = tmp_path / name
        directory.mkdir()
        result = run_tool(promtool, "check", "rules", write_rules(policy, directory))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS: 10 rules found" in result.stdout


def test_hand_written_rule_tests_pass(tmp_path: Path) -> None:
    """tests/triggers/*.yml: the runbook's rules (the default policy) under promtool."""
    promtool = require_tool("promtool", "prometheus")
    assert len(HAND_WRITTEN) >= 5
    write_rules(default_policy(), tmp_path)
    for test_file in HAND_WRITTEN:
        shutil.copy(test_file, tmp_path / test_file.name)
    result = run_tool(promtool, "test", "rules", *(tmp_path / f.name for f in HAND_WRITTEN))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_route_passes_amtool(tmp_path: Path) -> None:
    amtool = require_tool("amtool", "prometheus-alertmanager")
    path = tmp_path / "alertmanager.yml"
    config = render_alertmanager(default_policy(), "http://127.0.0.1:9095/alerts")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_tool(amtool, "check-config", path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The route sends a firing trigger to the rollback receiver, and its no-data notice not.
    route = run_tool(
        amtool, "config", "routes", "test", "--config.file", path,
        "source=sre.rollback", "rule=error_rate", "severity=critical",
    )  # fmt: skip
    assert route.stdout.strip() == "sre-rollback", route.stdout + route.stderr
    notice = run_tool(
        amtool, "config", "routes", "test", "--config.file", path,
        "source=sre.rollback", "rule=error_rate", "severity=info",
    )  # fmt: skip
    assert notice.stdout.strip() == "default", notice.stdout + notice.stderr


def _policy_file(path: Path) -> Policy:
    return validate_policy(yaml.safe_load(path.read_text()), str(path))


def differential_group(policy: Policy, seed: int) -> tuple[dict[str, Any], int] | None:
    """One promtool test group from scenario ``seed``: its series (read back from the
    OpenMetrics text replay reads) and, at every evaluation, the alerts our evaluator fires.
    None when a summed value equals its threshold to the last bits: Prometheus sums in Go
    map order, so promtool's own answer then changes from run to run (seen at 10 % errors)."""
    samples = parse_openmetrics(format_openmetrics(scenario(seed, STEPS, STEP)), f"seed {seed}")
    rules = build_rules(policy)
    evaluators = [RuleEvaluator(rule) for rule in rules]
    tests = []
    fired = 0
    for at in evaluation_times(0, (STEPS - 1) * STEP, STEP):
        for evaluator in evaluators:
            values = evaluator.rule.values(samples, at)
            if evaluator.rule.name in SUMMED and any(
                math.isclose(value, evaluator.rule.threshold, rel_tol=1e-9)
                for value in values.values()
            ):
                return None
            evaluator.step(at, values)
            firing = evaluator.firing()
            fired += len(firing)
            tests.append(
                {
                    "eval_time": f"{int(at)}s",
                    "alertname": evaluator.rule.alert,
                    "exp_alerts": expected_alerts(policy, evaluator.rule, firing),
                }
            )
    group = {
        "interval": f"{STEP}s",
        "input_series": promtool_input_series(stale_rows(samples), 0, STEP),
        "alert_rule_test": tests,
    }
    return group, fired


def test_our_evaluator_and_promtool_agree_on_every_evaluation(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    policy = validate_policy(DIFFERENTIAL_POLICY, "differential")
    write_rules(policy, tmp_path)
    groups, fired, seed = [], 0, 0
    while len(groups) < DIFFERENTIAL_SERIES:
        made = differential_group(policy, seed)
        seed += 1
        if made is not None:
            groups.append(made[0])
            fired += made[1]
    assert seed < 2 * DIFFERENTIAL_SERIES, "too many series with a value on a threshold"
    assert fired > 100, "the scenarios must make the rules fire"
    test_file = tmp_path / "differential.yml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": ["rules.yml"], "evaluation_interval": f"{STEP}s", "tests": groups},
            sort_keys=False,
        )
    )
    result = run_tool(promtool, "test", "rules", test_file)
    assert result.returncode == 0, (result.stdout + result.stderr)[:6000]


@pytest.mark.parametrize("rule", ["error_rate", "response_time_p95", "health_check_failures"])
def test_every_rule_fires_somewhere_in_the_differential_scenarios(rule: str) -> None:
    policy = validate_policy(DIFFERENTIAL_POLICY, "differential")
    evaluator = RuleEvaluator(next(r for r in build_rules(policy) if r.name == rule))
    samples = parse_openmetrics(format_openmetrics(scenario(1, STEPS, STEP)))
    kinds = set()
    for seed in range(6):
        samples = parse_openmetrics(format_openmetrics(scenario(seed, STEPS, STEP)))
        evaluator = RuleEvaluator(evaluator.rule)
        for at in evaluation_times(0, (STEPS - 1) * STEP, STEP):
            kinds |= {e.kind for e in evaluator.step(at, evaluator.rule.values(samples, at))}
    assert {"pending", "firing", "reset"} <= kinds
