"""``rollbackctl triggers render`` and ``rollbackctl replay --series``: the CLI over the
collection's rules and evaluator, on a generated incident (the differential test's series,
on which our evaluator and promtool agree at every evaluation)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from click.testing import CliRunner

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import validate_policy
from ansible_collections.sre.rollback.plugins.plugin_utils.trigger_series import (
    evaluation_times,
    format_openmetrics,
    parse_openmetrics,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import (
    RuleEvaluator,
    build_rules,
)
from rollbackctl.cli import main
from tests.support.trigger_scenarios import scenario
from tests.unit.test_triggers_promtool import DIFFERENTIAL_POLICY, STEP, STEPS


def test_render_writes_rules_and_route_from_the_policy(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["triggers", "render", "-i", "inventories/testhosts", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    rules = yaml.safe_load((tmp_path / "sre-rollback-rules.yml").read_text())["groups"][0]
    error_rate = next(r for r in rules["rules"] if r["alert"] == "RollbackErrorRate")
    assert (error_rate["for"], error_rate["keep_firing_for"]) == ("20s", "10s")  # the rig: 20s, 5s
    assert error_rate["labels"]["rollback_level"] == "3"
    assert error_rate["labels"]["service"] == "core_api"
    route = yaml.safe_load((tmp_path / "alertmanager-sre-rollback.yml").read_text())
    assert route["route"]["routes"][0]["receiver"] == "sre-rollback"


def test_replay_of_a_series_file_gives_the_evaluators_timeline(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text(yaml.safe_dump(DIFFERENTIAL_POLICY))
    series = tmp_path / "incident.om"
    series.write_text(format_openmetrics(scenario(3, STEPS, STEP)))
    end = (STEPS - 1) * STEP
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["replay", "--policy", str(policy_file), "--series", str(series),
         "--from", "0", "--to", str(end), "--json"],
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.output)
    fired = [(e["at"], e["rule"]) for e in timeline["timeline"] if e["kind"] == "firing"]
    # The same evaluator, step by step, as in the differential test against promtool.
    policy = validate_policy(DIFFERENTIAL_POLICY)
    samples = parse_openmetrics(series.read_text())
    expected = []
    evaluators = [RuleEvaluator(rule) for rule in build_rules(policy)]
    for at in evaluation_times(0, end, STEP):
        for evaluator in evaluators:
            events = evaluator.step(at, evaluator.rule.values(samples, at))
            expected += [(e.at, e.rule) for e in events if e.kind == "firing"]
    assert fired == expected and fired
    first = next(e for e in timeline["timeline"] if e["kind"] == "firing")
    assert first["decision"]["start_level"] in (2, 3)
    assert first["detected_after"] >= 0
    assert {"reset", "pending", "resolved"} <= {e["kind"] for e in timeline["timeline"]}
    assert elapsed < 5, f"replay of {STEPS} evaluations took {elapsed:.1f}s"


def test_replay_says_what_is_wrong_with_its_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.om"
    bad.write_text('demo_health_ok{job="demo-app",instance="a"} 1\n')
    runner = CliRunner()
    result = runner.invoke(main, ["replay", "--series", str(bad), "--from", "0", "--to", "60"])
    assert result.exit_code == 2 and "has no timestamp" in result.output
    result = runner.invoke(main, ["replay", "--from", "0", "--to", "60"])
    assert result.exit_code == 2 and "--prometheus URL or --series FILE" in result.output
    result = runner.invoke(
        main, ["replay", "--prometheus", "http://127.0.0.1:9", "--from", "0", "--to", "60"]
    )
    assert result.exit_code == 2 and "did not answer" in result.output
