"""`rollbackctl run --check` says the target it chose (#21): in check mode nothing changes,
so the record's `after` is the current release; the plan's choice is `result.target` and
the summary line names it, with what each host runs now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.unit import test_release_rollout
from tests.unit.test_release_rollout import BAD, GOOD, OLD, current_tag, deployed, level3_inputs
from tests.unit.test_run_cli import invoke, only_record

release_app = test_release_rollout.app  # test_release_rollout's app and service, as a fixture

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def test_check_mode_names_the_target_it_chose(release_app: dict[str, Any], tmp_path: Path) -> None:
    deployed(release_app, OLD, GOOD, BAD)
    inventory, variables = level3_inputs(release_app, tmp_path)
    artifacts = tmp_path / "artifacts"
    args = ["-i", str(inventory), "--project-dir", str(REPO), "--artifacts", str(artifacts)]
    result = invoke("run", "--level", "3", *args, "--check", "--no-notify", "-e", f"@{variables}")
    assert result.exit_code == 0, result.output
    assert current_tag(release_app) == BAD, "check mode changed nothing"
    summary = next(line for line in result.output.splitlines() if line.startswith("Rollback "))
    assert summary.endswith(f"Target: {GOOD} (localhost now on {BAD})."), summary
    host = only_record(artifacts)["hosts"]["localhost"]["result"]
    assert host["target"]["tag"] == GOOD and host["after"]["tag"] == BAD


def test_a_real_run_says_no_target_line(release_app: dict[str, Any], tmp_path: Path) -> None:
    """The record has the target; the summary names it only in check mode, where `after`
    cannot."""
    deployed(release_app, OLD, GOOD, BAD)
    inventory, variables = level3_inputs(release_app, tmp_path)
    artifacts = tmp_path / "artifacts"
    args = ["-i", str(inventory), "--project-dir", str(REPO), "--artifacts", str(artifacts)]
    result = invoke("run", "--level", "3", *args, "--no-notify", "-e", f"@{variables}")
    assert result.exit_code == 0, result.output
    assert current_tag(release_app) == GOOD and "Target:" not in result.output
    host = only_record(artifacts)["hosts"]["localhost"]["result"]
    assert host["target"]["tag"] == host["after"]["tag"] == GOOD
