"""app_lock: the database level holds the same per-application lock as deploys (applock)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sre.rollback.plugins.module_utils import applock
from ansible_collections.sre.rollback.plugins.modules import app_lock


def call(**args: Any) -> dict[str, Any]:
    out = io.StringIO()
    with patch_module_args(args), redirect_stdout(out), pytest.raises(SystemExit):
        app_lock.main()
    return dict(json.loads(out.getvalue()))


def test_lock_is_the_release_lock_and_reentrant(tmp_path: Path) -> None:
    root = str(tmp_path)
    taken = call(app_root=root, state="locked", run_id="l4-run", action="rollback-l4")
    assert taken["acquired"] and not taken["changed"]
    assert applock.read_owner(root)["run_id"] == "l4-run"
    assert call(app_root=root, state="locked", run_id="l4-run")["acquired"]
    # A deploy (the release module takes the same file) is refused while L4 holds it.
    refused = applock.acquire(root, {"run_id": "deploy-run"})
    assert not refused["acquired"] and "l4-run" in refused["msg"]


def test_another_run_is_named_and_a_stale_lock_broken_only_when_asked(tmp_path: Path) -> None:
    root = str(tmp_path)
    applock.acquire(root, {"run_id": "crashed", "user": "alice", "host": "ops1", "pid": "7"})
    refused = call(app_root=root, state="locked", run_id="mine")
    assert refused["failed"] and "locked by run crashed by alice@ops1" in refused["msg"]
    checked = call(app_root=root, state="locked", run_id="mine", _ansible_check_mode=True)
    assert checked["failed"], "check mode says the run would be refused"
    broken = call(app_root=root, state="locked", run_id="mine", break_lock=True)
    assert broken["broken"]["run_id"] == "crashed"
    assert call(app_root=root, state="unlocked", run_id="other")["released"] is False
    assert call(app_root=root, state="unlocked", run_id="mine")["released"] is True
    assert call(app_root=root)["lock"] is None


def test_missing_app_root_is_a_clear_error(tmp_path: Path) -> None:
    result = call(app_root=str(tmp_path / "nope"), state="inspect")
    assert result["failed"] and "does not exist" in result["msg"]
