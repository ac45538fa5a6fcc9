"""``rollbackctl.trigger_action``: a firing rule -> the level, through the same path as
``emergency``, with real ansible-runner runs of the fake project's level playbooks
(test_run_cli's ``fake``): dedupe, cooldown, the rollback that answered an incident, the
maximum unattended level and ``approve``, the dry run, the state file across a restart,
and the times in the run record."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from rollbackctl.project import find_project
from rollbackctl.rollback import RunOptions, load_run_policy
from rollbackctl.trigger_action import (
    ActionSettings,
    Firing,
    StateError,
    StateFile,
    TriggerActions,
    approve,
    pending_requests,
)
from tests.support.prometheus import long_scenario
from tests.unit.test_run_cli import Fake, all_records, fake  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def actions_for(
    fake: Fake,  # noqa: F811 - the fixture's value
    artifacts: Path,
    *,
    max_level: int = 3,
    dry_run: bool = False,
    extra: dict[str, Any] | None = None,
    state: StateFile | None = None,
) -> tuple[TriggerActions, io.StringIO]:
    base = RunOptions(
        level=0,
        inventory=str(fake.inventory),
        project=find_project(fake.root),
        artifacts=artifacts,
        policy_file=fake.policy,
        extra_vars=extra or {},
    )
    policy, _ = load_run_policy(str(fake.inventory), fake.policy)
    out = io.StringIO()
    actions = TriggerActions(
        ActionSettings(base, max_level=max_level, cooldown=600, dry_run=dry_run),
        policy,
        state or StateFile.read(artifacts / "triggers" / "state.json"),
        Console(file=out, width=200),
        out,
    )
    return actions, out


def firing(rule: str = "error_rate", since: float = 40, fired: float = 10, key: str = "") -> Firing:
    now = time.time()
    return Firing(
        rule=rule,
        service="core_api",
        group={"job": "demo-app"},
        condition_since=now - since,
        fired_at=now - fired,
        value=0.25,
        source="watch",
        key=key or f"watch|{rule}|job=demo-app|{now - since}",
    )


def test_a_firing_runs_its_level_once_and_records_the_times(fake: Fake, tmp_path: Path) -> None:  # noqa: F811
    artifacts = tmp_path / "a"
    actions, out = actions_for(fake, artifacts)
    fired = firing()
    verdict = actions.handle(fired)
    assert verdict.outcome == "ran", (verdict.message, out.getvalue()[-3000:])
    assert verdict.exit_code == 0 and verdict.levels == "3"
    record = all_records(artifacts)[3]
    assert record["status"] == "ok"
    assert record["trigger"]["rule"] == "error_rate"
    assert record["trigger"]["decision"]["levels"] == "3-5"
    assert record["trigger"]["allowed_levels"] == "3"
    assert 29 <= record["metrics"]["time_to_detection"]["seconds"] <= 31
    assert 9 <= record["metrics"]["time_to_decision"]["seconds"] <= 60
    assert record["metrics"]["time_to_rollback"]["seconds"] > 0
    assert record["given"]["incident_started"] and record["given"]["detected"]
    assert "automatic trigger error_rate" in record["reason"]
    assert "ROLLBACK INITIATED" in fake.notifications.read_text()
    # The same firing again: nothing (also after a restart: the state file keeps it).
    assert actions.handle(fired).outcome == "duplicate"
    again, _ = actions_for(fake, artifacts)
    assert again.handle(fired).outcome == "duplicate"
    # A firing whose condition began before that rollback ended: the rollback answered it.
    assert again.handle(firing(since=30, key="other")).outcome == "handled"
    # A new condition after the rollback, within the cooldown: nothing runs.
    later = firing(since=0, fired=0, key="later")
    cooled = again.handle(later)
    assert cooled.outcome == "cooldown", cooled.message
    assert len(all_records(artifacts)) == 1


def test_above_the_maximum_it_pages_and_waits_for_approve(fake: Fake, tmp_path: Path) -> None:  # noqa: F811
    artifacts = tmp_path / "a"
    actions, out = actions_for(fake, artifacts, max_level=2)
    verdict = actions.handle(firing())
    assert verdict.outcome == "awaiting approval" and verdict.approval
    assert not (artifacts / "runs").exists(), "nothing ran"
    page = fake.notifications.read_text()
    assert "ROLLBACK NEEDS APPROVAL" in page and f"rollbackctl approve {verdict.approval}" in page
    assert actions.run_approved() == []
    (listed,) = pending_requests(actions.state.path)
    assert (listed["id"], listed["first"], listed["last"]) == (verdict.approval, 3, 5)
    with pytest.raises(StateError, match="no pending request 'nope'"):
        approve(actions.state.path, "nope", "alice", "")
    approve(actions.state.path, verdict.approval, "alice", "checked the dashboards")
    ran = actions.run_approved()
    assert [v.outcome for v in ran] == ["ran"], out.getvalue()[-3000:]
    record = all_records(artifacts)[3]
    assert record["trigger"]["approval"]["by"] == "alice"
    assert record["trigger"]["allowed_levels"] == "3-5"
    assert actions.state.data["pending"] == {}


@long_scenario
def test_an_escalation_past_the_maximum_is_held_for_approval(fake: Fake, tmp_path: Path) -> None:  # noqa: F811
    artifacts = tmp_path / "a"
    actions, _ = actions_for(fake, artifacts, extra={"fail_levels": [3]})
    verdict = actions.handle(firing())
    assert verdict.outcome == "ran" and verdict.exit_code == 1
    assert "level 3 not verified, level 4 held" in verdict.message
    assert set(all_records(artifacts)) == {3}, "level 4 did not run without a person"
    (request,) = actions.state.data["pending"].values()
    assert (request["first"], request["last"]) == (4, 5)


def test_dry_run_decides_and_runs_nothing(fake: Fake, tmp_path: Path) -> None:  # noqa: F811
    artifacts = tmp_path / "a"
    actions, _ = actions_for(fake, artifacts, dry_run=True)
    verdict = actions.handle(firing("db_pool"))
    assert verdict.outcome == "dry run"
    assert "would run levels 2-3" in verdict.message
    assert not (artifacts / "runs").exists() and not fake.notifications.exists()
    history = json.loads(actions.state.path.read_text())["history"]
    assert history[-1]["outcome"] == "dry run"


def test_one_process_holds_a_state_file(tmp_path: Path) -> None:
    state = StateFile.read(tmp_path / "state.json")
    state.hold()
    try:
        with pytest.raises(StateError, match="in use by another watch"):
            StateFile.read(tmp_path / "state.json").hold()
    finally:
        state.release()
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(StateError, match="move it aside"):
        StateFile.read(tmp_path / "bad.json")
