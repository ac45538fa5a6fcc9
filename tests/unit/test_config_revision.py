"""The config_revision module on real directories, a real git repository and a real
validator command, in a temporary folder (no hosts needed)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import applock
from ansible_collections.sre.rollback.plugins.module_utils import config_ops as mod
from ansible_collections.sre.rollback.plugins.module_utils import config_revisions as cr
from ansible_collections.sre.rollback.plugins.module_utils.hostchange import ChangeError
from tests.conftest import REPO, VENV_BIN
from tests.support.tools import git

GOOD = "[database]\npool_size = 5\nhold_connections = 0\n"
BAD = "[database]\npool_size = 5\nhold_connections = 5\n"
INVALID = "[database]\npool_size = lots\n"
# A validator like `check-config --config-dir {dir}`: app.ini must exist and have no 'lots'.
VALIDATOR = (
    "test -f {dir}/app.ini && ! grep -q lots {dir}/app.ini "
    "|| { echo 'pool_size = lots is invalid' >&2; exit 1; }"
)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "demo-app"
    path.mkdir(parents=True)
    (path / "app.ini").write_text(GOOD)
    (path / "app.ini").chmod(0o640)
    (path / "flags.json").write_text('{"flags": {}}\n')
    (path / "db-password").write_text("hunter2-password\n")
    (tmp_path / "app").mkdir()
    return path


def params(conf: Path, **over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "path": str(conf),
        "state": "restored",
        "source": "store",
        "target": "",
        "content": {},
        "files": ["*"],
        "exclude": ["flags.json", "db-password"],
        "store_root": str(conf.parent.parent / "store"),
        "keep": 20,
        "validate": VALIDATOR,
        "validate_timeout": 30,
        "event": None,
        "reason": "pool exhausted",
        "incident": "INC-7",
        "run_id": "run-1",
        "user": "alice",
        "controller": "ops1:1",
        "lock_root": str(conf.parent.parent / "app"),
        "break_lock": False,
        "keep_lock": False,
        "service": None,
        "health": None,
    }
    p.update(over)
    return p


def call(conf: Path, check: bool = False, **over: Any) -> dict[str, Any]:
    p = params(conf, **over)
    module = SimpleNamespace(check_mode=check)
    store = cr.Store(p["store_root"], p["path"])
    live = cr.read_live(p["path"], p["files"], p["exclude"])
    if p["state"] == "inspect":
        return mod.do_inspect(p, store, live)
    if p["state"] == "snapshot":
        return mod.do_snapshot(module, p, store, live)  # type: ignore[arg-type]
    return mod.do_change(module, p, store, live)  # type: ignore[arg-type]


def apply(conf: Path, text: str, **over: Any) -> dict[str, Any]:
    return call(conf, state="applied", content={"app.ini": text}, **over)


def store_of(conf: Path) -> cr.Store:
    return cr.Store(str(conf.parent.parent / "store"), str(conf))


def test_snapshot_stores_each_content_once_without_excluded_files(conf: Path) -> None:
    first = call(conf, state="snapshot")
    assert first["changed"] and first["snapshot"].startswith("r0001-")
    again = call(conf, state="snapshot")
    assert not again["changed"] and again["snapshot"] == first["snapshot"]
    stored = sorted(
        p.name for p in Path(store_of(conf).revisions_dir, first["snapshot"], "files").iterdir()
    )
    assert stored == ["app.ini"], "excluded files (secrets, flags) are never stored"
    assert oct(Path(store_of(conf).path).stat().st_mode & 0o777) == "0o700"


def test_apply_snapshots_first_and_records_what_became_live(conf: Path) -> None:
    result = apply(conf, BAD)
    assert result["changed"] and result["files"]["changed"] == ["app.ini"]
    assert (conf / "app.ini").read_text() == BAD
    assert oct((conf / "app.ini").stat().st_mode & 0o777) == "0o640", "mode kept"
    assert result["validation"]["ok"] is True
    assert store_of(conf).load(result["snapshot"])["app.ini"].data == GOOD.encode()
    assert store_of(conf).live_history() == [result["snapshot"], result["after"]["revision"]]
    assert not Path(params(conf)["lock_root"], ".rollback.lock").exists()


def test_invalid_target_is_refused_with_the_validators_message_and_nothing_changes(
    conf: Path,
) -> None:
    with pytest.raises(
        ChangeError, match=r"is invalid; nothing was changed.*pool_size = lots is invalid"
    ):
        apply(conf, INVALID)
    assert (conf / "app.ini").read_text() == GOOD
    assert store_of(conf).manifests() == []
    assert not [p for p in conf.parent.iterdir() if "staging" in p.name], "staging removed"


def test_rollback_restores_the_previous_revision_and_marks_the_bad_one(conf: Path) -> None:
    apply(conf, BAD)
    back = call(conf)
    assert back["changed"] and (conf / "app.ini").read_text() == GOOD
    assert back["target"]["why"].startswith("the revision live before")
    bad = back["snapshot"]
    assert bad in store_of(conf).bad()
    assert call(conf, target=back["after"]["revision"])["changed"] is False, (
        "named target: idempotent"
    )
    listing = call(conf, state="inspect")["revisions"]
    assert {r["id"]: r["state"] for r in listing} == {back["after"]["revision"]: "live", bad: "bad"}


def test_previous_skips_bad_revisions(conf: Path) -> None:
    apply(conf, GOOD.replace("5", "6"))  # r1 good (original), r2
    apply(conf, BAD)  # r3
    call(conf)  # back to r2, r3 bad
    second = call(conf)  # r2 -> r1, never r3
    assert (conf / "app.ini").read_text() == GOOD
    assert second["target"]["revision"].startswith("r0001-")


def test_nothing_to_go_back_to_says_what_to_do(conf: Path) -> None:
    with pytest.raises(ChangeError, match="no earlier revision"):
        call(conf)
    with pytest.raises(ChangeError, match=r"not in a git repository \(source=git\)"):
        call(conf, source="git")


def test_a_damaged_revision_is_refused(conf: Path) -> None:
    first = apply(conf, BAD)
    stored = Path(store_of(conf).revisions_dir, first["snapshot"], "files", "app.ini")
    stored.chmod(0o600)
    stored.write_text(GOOD + "tampered = 1\n")
    with pytest.raises(ChangeError, match=r"is damaged: app\.ini"):
        call(conf)
    assert (conf / "app.ini").read_text() == BAD


def test_check_mode_shows_the_diff_and_changes_nothing(conf: Path) -> None:
    apply(conf, BAD)
    plan = call(conf, check=True)
    assert plan["changed"] and plan["validation"]["ok"] is True
    assert "-hold_connections = 5\n+hold_connections = 0\n" in plan["diff"]["prepared"]
    assert (conf / "app.ini").read_text() == BAD
    assert len(store_of(conf).manifests()) == 2


def test_validator_without_dir_runs_after_the_change_and_puts_files_back(conf: Path) -> None:
    check = f"! grep -q lots {conf}/app.ini || {{ echo invalid >&2; exit 1; }}"
    with pytest.raises(ChangeError, match="previous files were put back"):
        apply(conf, INVALID, validate=check)
    assert (conf / "app.ini").read_text() == GOOD


def test_lock_is_kept_for_the_restart_when_asked_and_refused_to_others(conf: Path) -> None:
    lock_root = params(conf)["lock_root"]
    apply(conf, BAD, keep_lock=True)
    assert applock.read_owner(lock_root)["action"] == "config apply"
    with pytest.raises(ChangeError, match="locked by run run-1 by alice@ops1"):
        call(conf, run_id="run-2")
    applock.release(lock_root, "run-1")


def test_new_and_removed_files(conf: Path) -> None:
    (conf / "conf.d").mkdir()
    (conf / "conf.d" / "extra.ini").write_text("[cache]\nttl_seconds = 1\n")
    call(conf, state="snapshot")
    os.unlink(conf / "conf.d" / "extra.ini")
    (conf / "conf.d" / "new.ini").write_text("[cache]\nttl_seconds = 2\n")
    back = call(conf, target=store_of(conf).manifests()[0]["id"])
    assert back["files"] == {
        "added": ["conf.d/extra.ini"],
        "changed": [],
        "removed": ["conf.d/new.ini"],
    }
    assert sorted(p.name for p in (conf / "conf.d").iterdir()) == ["extra.ini"]


# --- git -------------------------------------------------------------------------------------


@pytest.fixture
def repo(conf: Path) -> Path:
    git(conf, "init", "-q")
    git(conf, "add", "app.ini")
    git(conf, "commit", "-qm", "good")
    (conf / "app.ini").write_text(BAD)
    (conf / "limits.ini").write_text("[limits]\nx = 1\n")
    git(conf, "add", "app.ini", "limits.ini")
    git(conf, "commit", "-qm", "bad: hold every connection")
    return conf


def test_git_goes_back_to_head_1_like_git_checkout(repo: Path) -> None:
    (repo / "local.ini").write_text("untracked\n")
    result = call(repo, source="git")
    assert result["changed"] and result["target"]["subject"] == "good"
    assert (repo / "app.ini").read_text() == GOOD
    assert not (repo / "limits.ini").exists(), "a file the bad commit added goes"
    assert (repo / "local.ini").read_text() == "untracked\n", "files git does not know stay"
    assert git(repo, "log", "-1", "--format=%s") == "bad: hold every connection", (
        "history untouched"
    )
    assert oct((repo / "app.ini").stat().st_mode & 0o777) == "0o640"
    assert not call(repo, source="git")["changed"], "HEAD~1 again: nothing to do"
    assert store_of(repo).load(result["snapshot"])["app.ini"].data == BAD.encode(), "snapshot first"


def test_git_invalid_or_unknown_target_changes_nothing(repo: Path) -> None:
    (repo / "app.ini").write_text(INVALID)
    git(repo, "commit", "-qam", "invalid")
    (repo / "app.ini").write_text(GOOD)
    git(repo, "commit", "-qam", "fixed")
    with pytest.raises(ChangeError, match="pool_size = lots is invalid"):
        call(repo, source="git")
    with pytest.raises(ChangeError, match=r"'v0\.0\.0' is not a revision.*recent commits: .*fixed"):
        call(repo, source="git", target="v0.0.0")
    assert (repo / "app.ini").read_text() == GOOD
    named = call(repo, source="git", target="HEAD~3", check=True)
    assert named["target"]["subject"] == "good" and "-x = 1" in named["diff"]["prepared"]


# --- through Ansible -------------------------------------------------------------------------


def test_module_runs_through_ansible_with_a_diff_in_check_mode(conf: Path) -> None:
    apply(conf, BAD)
    args = {k: v for k, v in params(conf).items() if v is not None and k != "content"}
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-m",
            "sre.rollback.config_revision",
            "-a",
            json.dumps(args),
            "--check",
            "--diff",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3", ANSIBLE_NOCOLOR="1"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "+hold_connections = 0" in proc.stdout and "hunter2" not in proc.stdout
    assert (conf / "app.ini").read_text() == BAD


# --- restart and health gate in the same call -------------------------------------------------


class App:
    """A real HTTP service for the gate: unhealthy (500) while the live app.ini holds
    connections, as the demo app is with the pool-exhausting change. Started and stopped
    by shell commands (the `command` service manager), which log what they did."""

    def __init__(self, conf: Path, tmp: Path) -> None:
        import http.server
        import threading

        config = conf / "app.ini"
        self.dependency_down = tmp / "dependency-down"  # exists: unhealthy whatever the config
        down = self.dependency_down

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sick = down.exists() or "hold_connections = 0" not in config.read_text()
                self.send_response(500 if sick else 200)
                self.end_headers()
                self.wfile.write(b"pool exhausted" if sick else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        self.log = tmp / "service.log"
        self.service = {
            "manager": "command",
            "name": "app",
            "start_command": f"echo start >> {self.log}",
            "stop_command": f"echo stop >> {self.log}",
            "status_command": "true",
            "command_timeout": 10,
        }
        self.health = {
            "url": self.url,
            "status": [200],
            "successes": 2,
            "interval": 0.05,
            "timeout": 2.0,
            "deadline": 1.0,
            "json_expect": {},
        }

    def restarts(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []


@pytest.fixture
def app(conf: Path, tmp_path: Path) -> Any:
    served = App(conf, tmp_path)
    yield served
    served.server.shutdown()


def test_restart_and_health_gate_in_the_same_call(conf: Path, app: App) -> None:
    call(conf, state="snapshot")
    result = apply(
        conf, GOOD.replace("pool_size = 5", "pool_size = 6"), service=app.service, health=app.health
    )
    assert result["changed"] and app.restarts() == ["stop", "start"]
    assert result["health"]["healthy"] is True
    assert [ph["phase"] for ph in result["phases"]] == ["change", "restart", "health"]
    assert not Path(params(conf)["lock_root"], ".rollback.lock").exists()


def test_unhealthy_after_the_change_puts_the_config_back_restarts_and_fails(
    conf: Path, app: App
) -> None:
    call(conf, state="snapshot")
    with pytest.raises(mod.GateFailed) as failed:
        apply(conf, BAD, service=app.service, health=app.health)
    result = failed.value.result
    assert (conf / "app.ini").read_text() == GOOD, "the config that was running is back"
    assert app.restarts() == ["stop", "start", "stop", "start"], "restarted on the change and back"
    assert "was not healthy" in str(failed.value) and "and restarted" in str(failed.value)
    assert result["reverted"] and result["after"]["revision"] == result["snapshot"]
    assert [(ph["phase"], ph["status"]) for ph in result["phases"]] == [
        ("change", "changed"),
        ("restart", "changed"),
        ("health", "failed"),
        ("revert", "changed"),
        ("recheck", "ok"),
    ]
    # The config it had is healthy again after the switch back: evidence against the new
    # one, which is marked bad (the revert records it as a suspect first).
    revert, marked = store_of(conf).timeline()[-2:]
    assert revert["event"] == "revert" and revert["suspect"] == revert["from"] != revert["revision"]
    assert marked["event"] == "gate_failed" and marked["bad"] == revert["from"]
    assert result["verdict"]["state"] == "bad" and "is marked bad" in str(failed.value)
    assert revert["from"] in store_of(conf).bad()
    assert not Path(params(conf)["lock_root"], ".rollback.lock").exists(), "lock dropped on failure"


def test_a_failing_restart_is_reverted_too(conf: Path, app: App) -> None:
    call(conf, state="snapshot")
    service = dict(app.service, start_command=f"grep -q 'hold_connections = 0' {conf}/app.ini")
    with pytest.raises(mod.GateFailed, match="the restart failed"):
        apply(conf, BAD, service=service, health=app.health)
    assert (conf / "app.ini").read_text() == GOOD


def test_nothing_to_change_restarts_nothing(conf: Path, app: App) -> None:
    call(conf, state="snapshot")
    result = apply(conf, GOOD, service=app.service, health=app.health)
    assert not result["changed"] and app.restarts() == [] and "phases" not in result


def test_a_dependency_down_does_not_mark_the_new_config_bad(conf: Path, app: App) -> None:
    """The gate fails, and so does the config it had once it is back: the fault is outside
    the config. The revision stays a suspect (a candidate), not bad."""
    call(conf, state="snapshot")
    app.dependency_down.touch()
    with pytest.raises(mod.GateFailed) as failed:
        apply(
            conf,
            GOOD.replace("pool_size = 5", "pool_size = 6"),
            service=app.service,
            health=app.health,
        )
    result = failed.value.result
    assert (conf / "app.ini").read_text() == GOOD, "the config that was running is back"
    assert result["verdict"]["state"] == "suspect" and result["had_health"]["healthy"] is False
    assert "fails its health gate too" in str(failed.value) and "Next:" in str(failed.value)
    revert = store_of(conf).timeline()[-1]
    assert revert["event"] == "revert" and revert["suspect"] == revert["from"]
    assert not store_of(conf).bad(), "no revision marked bad"
