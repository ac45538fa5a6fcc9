"""The release module on a real git repository in a temporary folder (no hosts needed)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import applock, releases
from ansible_collections.sre.rollback.plugins.module_utils import release_ops as mod
from tests.conftest import REPO, VENV_BIN

BUILD = "python3 -c \"import os; open('BUILT','w').write(os.environ['RELEASE_TAG'])\""


def git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q")
    commits = {}
    for tag in ("v1.2.2-stable", "v1.2.3-stable", "v1.3.0"):
        (src / "app.txt").write_text(tag)
        (src / "uploads").mkdir(exist_ok=True)
        (src / "uploads" / "README").write_text("replaced by a link to shared/")
        git(src, "add", "-A")
        git(src, "commit", "-qm", tag)
        git(src, "tag", tag)
        commits[tag] = git(src, "rev-parse", "HEAD")
    return {"path": str(src), "commits": commits, "root": str(tmp_path / "app")}


def params(repo: dict[str, Any], **over: Any) -> dict[str, Any]:
    p = {
        "app_root": repo["root"],
        "state": "switched",
        "release": None,
        "tag": None,
        "commit": None,
        "repo": repo["path"],
        "build_command": BUILD,
        "build_timeout": 60,
        "shared_paths": ["uploads"],
        "keep": 5,
        "previous_state": "good",
        "mark": None,
        "event": "deploy",
        "reason": None,
        "run_id": "run-1",
        "user": "tester",
        "controller": "ctl:1",
        "break_lock": False,
        "verify": "full",
        "tags_pattern": None,
    }
    p.update(over)
    return p


def switch(repo: dict[str, Any], tag: str, check: bool = False, **over: Any) -> dict[str, Any]:
    fake = SimpleNamespace(check_mode=check)
    p = params(repo, tag=tag, commit=repo["commits"][tag], **over)
    result = mod.do_switch(fake, p)  # type: ignore[arg-type]
    if not check:
        applock.release(repo["root"], p["run_id"])
    return result


def current(repo: dict[str, Any]) -> str:
    return os.readlink(os.path.join(repo["root"], "current"))


def test_deploy_builds_links_shared_and_records(repo: dict[str, Any]) -> None:
    result = switch(repo, "v1.2.3-stable")
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    assert result["path"] == "rebuild" and result["changed"]
    assert current(repo) == f"releases/{rid}"
    rel = Path(repo["root"], "releases", rid)
    assert (rel / "BUILT").read_text() == "v1.2.3-stable"
    assert os.path.islink(rel / "uploads")
    assert os.readlink(rel / "uploads") == os.path.join(repo["root"], "shared", "uploads")
    log = releases.read_log(repo["root"])
    assert log[-1]["release"] == rid and log[-1]["state"] == "current"
    assert log[-1]["commit"] == repo["commits"]["v1.2.3-stable"]


def test_second_identical_run_changes_nothing(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    again = switch(repo, "v1.2.3-stable")
    assert again["path"] == "none" and not again["changed"]
    assert len(releases.read_log(repo["root"])) == 1


def test_rollback_takes_fast_path_and_marks_bad(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    back = switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    assert back["path"] == "fast"
    assert back["before"]["tag"] == "v1.3.0" and back["after"]["tag"] == "v1.2.3-stable"
    states = releases.release_states(releases.read_log(repo["root"]))
    bad = releases.release_id("v1.3.0", repo["commits"]["v1.3.0"])
    assert states[bad]["state"] == "bad"
    assert Path(repo["root"], "releases", bad).is_dir(), "the bad release stays for investigation"


def test_damaged_release_is_rebuilt_and_kept_aside(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    Path(repo["root"], "releases", rid, "app.txt").write_text("tampered")
    back = switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    assert back["path"] == "rebuild"
    assert "app.txt" in back["reason_for_rebuild"]
    assert Path(repo["root"], "releases", rid, "app.txt").read_text() == "v1.2.3-stable"
    assert Path(back["damaged_copy"], "app.txt").read_text() == "tampered"


def test_check_mode_plans_and_changes_nothing(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    before = sorted(p.name for p in Path(repo["root"], "releases").iterdir())
    plan = switch(repo, "v1.3.0", check=True)
    assert plan["changed"] and plan["path"] == "rebuild"
    assert plan["diff"]["after"].endswith(plan["release"] + "\n")
    assert sorted(p.name for p in Path(repo["root"], "releases").iterdir()) == before
    assert "v1.2.3-stable" in current(repo)


def test_moved_tag_is_refused(repo: dict[str, Any]) -> None:
    with pytest.raises(mod.ReleaseError, match="the tag moved"):
        mod.do_switch(
            SimpleNamespace(check_mode=False),  # type: ignore[arg-type]
            params(repo, tag="v1.3.0", commit=repo["commits"]["v1.2.2-stable"]),
        )
    assert not os.path.lexists(os.path.join(repo["root"], "current"))


def test_failed_build_leaves_nothing_behind(repo: dict[str, Any]) -> None:
    with pytest.raises(mod.ReleaseError, match="exit 3"):
        switch(repo, "v1.2.3-stable", build_command="echo broken >&2; exit 3")
    assert os.listdir(os.path.join(repo["root"], "releases")) == []


def test_lock_refuses_a_second_run_and_names_the_owner(repo: dict[str, Any]) -> None:
    os.makedirs(repo["root"])
    applock.acquire(
        repo["root"],
        {"run_id": "other", "user": "alice", "host": "ops1", "pid": "42", "action": "rollback"},
    )
    with pytest.raises(mod.ReleaseError, match=r"locked by run other by alice@ops1 \(pid 42"):
        switch(repo, "v1.2.3-stable")
    result = switch(repo, "v1.2.3-stable", break_lock=True)
    assert result["lock_broken"]["run_id"] == "other"


def test_prune_keeps_current_last_good_and_bad(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.2-stable")
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    result = switch(repo, "v1.2.2-stable", keep=1, event="rollback")
    left = sorted(p.name for p in Path(repo["root"], "releases").iterdir())
    assert len(left) == 3, "current, the last good and the bad release stay"
    assert result["pruned"] == []


def test_target_selection_orders_by_version_and_skips_bad() -> None:
    tags = ["v1.2.2-stable", "v1.10.0-stable", "v1.9.0-stable", "v1.11.0"]
    choice = releases.select_target(tags, "v1.11.0", {"v1.10.0-stable"})
    assert choice["tag"] == "v1.9.0-stable"
    assert "skipping bad v1.10.0-stable" in choice["why"]
    assert releases.select_target(tags, "v1.11.0", set(), named="v1.10.0-stable")["ok"]
    unknown = releases.select_target(tags, "v1.11.0", set(), named="v9")
    assert not unknown["ok"] and "v1.2.2-stable" in unknown["msg"]


def test_plan_names_hosts_that_resolve_another_commit() -> None:
    good = {
        "repo_tags": {"v1.2.3-stable": "a" * 40, "v1.3.0": "b" * 40},
        "current": {"tag": "v1.3.0", "release": "x"},
        "releases": {},
    }
    odd = json.loads(json.dumps(good))
    odd["repo_tags"]["v1.2.3-stable"] = "c" * 40
    plan = releases.plan_target({"h2": good, "h3": good, "h4": odd})
    assert not plan["ok"] and "h4" in plan["msg"] and "h2" not in plan["msg"].split(":")[0]
    ok = releases.plan_target({"h2": good, "h3": good})
    assert ok["ok"] and ok["tag"] == "v1.2.3-stable" and ok["hosts"]["h2"]["path"] == "rebuild"


def test_module_runs_through_ansible(repo: dict[str, Any]) -> None:
    """The module as Ansible runs it (FQCN, argument spec, JSON result), in check mode."""
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-o",
            "-m",
            "sre.rollback.release",
            "-a",
            f"app_root={repo['root']} repo={repo['path']} tags_pattern=stable",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split("=>", 1)[1])
    assert set(result["repo_tags"]) == {"v1.2.2-stable", "v1.2.3-stable"}
