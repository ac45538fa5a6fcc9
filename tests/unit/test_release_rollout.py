"""The one-call rollout (release module, state=rolled_out): switch, restart, health gate,
switch back on failure, lock dropped on every path. No hosts needed: a real git
repository, and a real service (python3 -m http.server run by start/stop/status commands)
that serves the file `healthy` only from good releases, so the health gate really fails on
the bad one and really passes after the switch back.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import applock, health, releases
from ansible_collections.sre.rollback.plugins.module_utils import release_ops as mod
from ansible_collections.sre.rollback.plugins.module_utils import services as svc
from tests.conftest import REPO, VENV_BIN
from tests.support.ports import free_port
from tests.support.tools import git

GOOD, OLD, BAD = "v1.2.3-stable", "v1.2.2-stable", "v1.3.0"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A repository with two good releases and a bad one, and a service driven by commands
    (each logs what it did to service.log)."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q")
    commits = {}
    for tag in (OLD, GOOD, BAD):
        (src / "app.txt").write_text(tag)
        healthy = src / "healthy"
        if tag == BAD:
            healthy.unlink()
        else:
            healthy.write_text("ok\n")
        git(src, "add", "-A")
        git(src, "commit", "-qm", tag)
        git(src, "tag", tag)
        commits[tag] = git(src, "rev-parse", "HEAD")
    root = tmp_path / "app"
    pidfile, log = tmp_path / "service.pid", tmp_path / "service.log"
    port = free_port()
    service = {
        "manager": "command",
        "name": "fake-app",
        "start_command": f"cd {root}/current && echo start >> {log} && "
        f"{{ python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 & "
        f"echo $! > {pidfile}; }}",
        # Wait until the old server is gone, so the new one can listen on the port.
        "stop_command": f"echo stop >> {log}; pid=$(cat {pidfile}); kill $pid; "
        f"while kill -0 $pid 2>/dev/null; do sleep 0.02; done; rm -f {pidfile}",
        "status_command": f"test -f {pidfile} && kill -0 $(cat {pidfile})",
        "command_timeout": 10,
    }
    data = {
        "path": str(src),
        "commits": commits,
        "root": str(root),
        "log": log,
        "service": service,
        "url": f"http://127.0.0.1:{port}/healthy",
    }
    yield data
    subprocess.run(["sh", "-c", f"test -f {pidfile} && kill $(cat {pidfile})"], check=False)


def params(app: dict[str, Any], tag: str, **over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "app_root": app["root"],
        "state": "rolled_out",
        "release": None,
        "tag": tag,
        "commit": app["commits"][tag],
        "repo": app["path"],
        "build_command": "",
        "build_timeout": 60,
        "shared_paths": [],
        "keep": 5,
        "previous_state": "bad",
        "mark": None,
        "event": "rollback",
        "reason": None,
        "run_id": "run-1",
        "user": "tester",
        "controller": "ctl:1",
        "break_lock": False,
        "verify": "full",
        "tags_pattern": None,
        "service": app["service"],
        "health": {
            "url": app["url"],
            "status": [200],
            "successes": 2,
            "interval": 0.05,
            "timeout": 1.0,
            "deadline": 3.0,
            "json_expect": {},
        },
        "keep_lock": False,
    }
    p.update(over)
    return p


def roll_out(app: dict[str, Any], tag: str, check: bool = False, **over: Any) -> dict[str, Any]:
    module = SimpleNamespace(check_mode=check)
    return mod.do_rollout(module, params(app, tag, **over))  # type: ignore[arg-type]


def current_tag(app: dict[str, Any]) -> str:
    return Path(app["root"], "current", "app.txt").read_text()


def service_log(app: dict[str, Any]) -> list[str]:
    log: Path = app["log"]
    return log.read_text().split() if log.exists() else []


def locked(app: dict[str, Any]) -> bool:
    return applock.read_owner(app["root"]) is not None


def states(app: dict[str, Any]) -> dict[str, str]:
    entries = releases.release_states(releases.read_log(app["root"]))
    return {e["tag"]: e["state"] for e in entries.values()}


def deployed(app: dict[str, Any], *tags: str) -> None:
    """Deploy tags in order (good ones pass the gate; BAD is switched to without one)."""
    for tag in tags:
        gate = None if tag == BAD else params(app, tag)["health"]
        roll_out(app, tag, event="deploy", previous_state="good", health=gate)


def test_rollback_switches_restarts_gates_and_unlocks(app: dict[str, Any]) -> None:
    deployed(app, GOOD, BAD)
    app["log"].unlink()
    result = roll_out(app, GOOD)
    assert result["changed"] and result["path"] == "fast"
    assert current_tag(app) == GOOD
    assert service_log(app) == ["stop", "start"], "stopped because it ran, then started"
    assert result["health"]["healthy"] and result["health"]["attempts"] >= 2
    assert not result["reverted"] and not locked(app) and result["lock_released"]
    assert [p["phase"] for p in result["phases"]] == ["switch", "restart", "health", "unlock"]
    assert {"switch", "restart", "health", "unlock"} <= set(result["timings"])
    assert result["before"]["tag"] == BAD and result["after"]["tag"] == GOOD
    assert states(app)[BAD] == "bad" and states(app)[GOOD] == "current"


def test_failed_health_switches_back_restarts_and_marks_the_target_bad(
    app: dict[str, Any],
) -> None:
    deployed(app, GOOD)
    with pytest.raises(mod.RolloutFailed) as failed:
        roll_out(app, BAD, event="deploy", previous_state="good")
    result = failed.value.result
    good_id = releases.release_id(GOOD, app["commits"][GOOD])
    assert "was not healthy 2 times in a row" in str(failed.value)
    assert f"Switched back to {good_id} and restarted." in str(failed.value)
    assert result["revert_msg"].startswith(f"Switched back to {good_id} and restarted.")
    assert current_tag(app) == GOOD, "current points at the release the host had"
    assert result["reverted"] and result["current"]["tag"] == GOOD
    # Evidence against the release: it answered unhealthy, and the release the host had is
    # healthy again after the switch back (re-checked): marked bad, saying why and what next.
    assert states(app)[BAD] == "bad" and states(app)[GOOD] == "current"
    assert result["verdict"]["state"] == "bad" and result["verdict"]["failure"] == "unhealthy"
    assert result["had_health"]["healthy"] is True
    assert f"{BAD} is marked bad on this host: it answered unhealthy" in str(failed.value)
    assert "Next: roll back to a release that is not bad" in str(failed.value)
    log = releases.read_log(app["root"])
    assert log[-2]["event"] == "revert" and "not healthy" in log[-2]["reason"]
    assert log[-2]["state"] == "current" and log[-3]["state"] == "suspect"
    assert (log[-1]["event"], log[-1]["state"]) == ("gate_failed", "bad")
    assert service_log(app)[-4:] == ["stop", "start", "stop", "start"], "restarted twice"
    assert health.wait_healthy({"url": app["url"], "interval": 0.05, "deadline": 3})["healthy"]
    assert not locked(app)
    phases = {p["phase"]: p["status"] for p in result["phases"]}
    assert phases == {
        "build": "changed",
        "switch": "changed",
        "restart": "changed",
        "health": "failed",
        "revert": "changed",
        "recheck": "ok",
        "unlock": "ok",
    }


def test_failed_restart_switches_back_and_names_the_command(app: dict[str, Any]) -> None:
    deployed(app, GOOD)
    service = dict(app["service"], start_command="echo cannot bind >&2; exit 4")
    with pytest.raises(mod.RolloutFailed) as failed:
        roll_out(app, OLD, service=service)
    assert "the restart failed: 'echo cannot bind >&2; exit 4' failed (exit 4): cannot bind" in (
        str(failed.value)
    )
    assert current_tag(app) == GOOD
    assert failed.value.result["reverted"]
    assert "restarting it failed" in failed.value.result["revert_msg"], "same broken command"
    assert not locked(app)


def test_lock_is_dropped_when_the_switch_fails(app: dict[str, Any]) -> None:
    deployed(app, GOOD)
    with pytest.raises(mod.RolloutFailed) as failed:
        roll_out(app, OLD, commit=app["commits"][BAD], verify="commit")
    assert "the tag moved" in str(failed.value)
    assert failed.value.result["revert_msg"] == "The host was left as it was."
    first = failed.value.result["phases"][0]
    assert (first["phase"], first["status"]) == ("build", "failed")
    assert current_tag(app) == GOOD and not locked(app)


def test_another_runs_lock_is_refused_and_left_in_place(app: dict[str, Any]) -> None:
    deployed(app, GOOD)
    os.unlink(app["log"])
    applock.acquire(app["root"], {"run_id": "other", "user": "alice", "host": "ops1"})
    with pytest.raises(mod.RolloutFailed, match="locked by run other by alice@ops1"):
        roll_out(app, OLD)
    assert (applock.read_owner(app["root"]) or {})["run_id"] == "other"
    assert current_tag(app) == GOOD and service_log(app) == []


def test_check_mode_plans_and_changes_nothing(app: dict[str, Any]) -> None:
    deployed(app, GOOD, BAD)
    before = (current_tag(app), service_log(app), releases.read_log(app["root"]))
    plan = roll_out(app, GOOD, check=True)
    assert plan["changed"] and plan["path"] == "fast"
    assert plan["before"]["tag"] == BAD and plan["after"]["tag"] == GOOD
    assert plan["diff"]["after"].endswith(plan["release"] + "\n")
    assert plan["restart"] == "fake-app through its stop/start commands"
    assert plan["health"]["healthy"] is None
    assert (current_tag(app), service_log(app), releases.read_log(app["root"])) == before
    assert not locked(app)


def test_already_current_is_not_restarted_and_an_unhealthy_one_is_left_as_it_was(
    app: dict[str, Any],
) -> None:
    deployed(app, GOOD)
    os.unlink(app["log"])
    again = roll_out(app, GOOD)
    assert not again["changed"] and again["path"] == "none" and service_log(app) == []
    assert again["health"]["healthy"]
    subprocess.run(["sh", "-c", app["service"]["stop_command"]], check=True)
    with pytest.raises(mod.RolloutFailed, match="The host was left as it was"):
        roll_out(app, GOOD)
    assert current_tag(app) == GOOD and not locked(app)


def test_keep_lock_leaves_the_lock_for_the_tasks_that_follow(app: dict[str, Any]) -> None:
    result = roll_out(app, GOOD, keep_lock=True, event="deploy")
    assert locked(app) and not result["lock_released"]
    assert "unlock" not in [p["phase"] for p in result["phases"]]
    applock.release(app["root"], "run-1")


def test_without_a_health_gate_the_rollout_does_not_poll(app: dict[str, Any]) -> None:
    result = roll_out(app, BAD, health=None, event="deploy")
    assert result["health"]["healthy"] is None and current_tag(app) == BAD
    assert [p["phase"] for p in result["phases"]] == ["build", "switch", "restart", "unlock"]


def test_bad_inputs_are_refused_before_anything(app: dict[str, Any]) -> None:
    service = dict(app["service"], stop_command="")
    with pytest.raises(mod.ReleaseError, match="needs stop_command for fake-app"):
        roll_out(app, GOOD, service=service)
    with pytest.raises(mod.ReleaseError, match="must be http:// or https://"):
        roll_out(app, GOOD, health=dict(params(app, GOOD)["health"], url="file:///etc/passwd"))
    assert not os.path.exists(app["root"])


# --------------------------------------------------------------------------------------------
# The pieces: the health gate and the service restart


def test_health_gate_needs_consecutive_successes_before_the_deadline() -> None:
    answers = iter([200, 503, 200, 200, 200])
    clock = iter(range(100))
    result = health.wait_healthy(
        {"url": "http://x/health", "successes": 3, "interval": 1, "deadline": 60},
        probe_fn=lambda _url, _timeout: (next(answers), "{}"),
        sleep=lambda _s: None,
        clock=lambda: float(next(clock)),
    )
    assert result["healthy"] and result["attempts"] == 5
    assert result["last_error"].startswith("status 503")


def test_health_gate_polls_fast_until_the_service_is_up_then_confirms_interval_apart() -> None:
    answers = iter([0, 0, 200, 200, 200])
    now = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    result = health.wait_healthy(
        {"url": "http://x/health", "successes": 3, "interval": 0.5, "deadline": 60},
        probe_fn=lambda _url, _timeout: (next(answers), "connection refused"),
        sleep=sleep,
        clock=lambda: now[0],
    )
    assert result["healthy"] and result["attempts"] == 5
    assert pauses == [0.1, 0.1, 0.5, 0.5], "startup polls 0.1 s apart, confirmations 0.5 s"
    assert result["first_healthy"] == 0.2 and result["elapsed"] == 1.2


def test_health_gate_fails_at_once_when_a_service_that_was_up_fails_repeatedly() -> None:
    def run(**gate: Any) -> dict[str, Any]:
        answers = iter([200] + [500] * 200)
        clock = iter(range(1000))
        return health.wait_healthy(
            {"url": "http://x/health", "interval": 1, "deadline": 60, **gate},
            probe_fn=lambda _url, _timeout: (next(answers), "boom"),
            sleep=lambda _s: None,
            clock=lambda: float(next(clock)),
        )

    fast = run()
    assert not fast["healthy"] and fast["attempts"] == 5, "1 success, then 4 failures"
    assert "then failed 4 times in a row" in fast["msg"] and "status 500: boom" in fast["msg"]
    assert fast["first_healthy"] == 1.0
    patient = run(failures=0)
    assert not patient["healthy"] and patient["attempts"] > 50 and "within 60" in patient["msg"]


def test_health_gate_waits_for_the_deadline_while_the_service_never_answered_well() -> None:
    clock = iter(range(1000))
    result = health.wait_healthy(
        {"url": "http://x/health", "interval": 1, "startup_interval": 1, "deadline": 10},
        probe_fn=lambda _url, _timeout: (503, "warming up"),
        sleep=lambda _s: None,
        clock=lambda: float(next(clock)),
    )
    assert not result["healthy"] and result["attempts"] == 10 and result["first_healthy"] is None
    assert "within 10 s" in result["msg"], "no fast failure before it was ever up"


def test_health_gate_gives_up_at_the_deadline_and_says_why() -> None:
    clock = iter(range(100))
    result = health.wait_healthy(
        {"url": "http://x/health", "interval": 1, "deadline": 3, "json_expect": {"v": "2"}},
        probe_fn=lambda _url, _timeout: (200, json.dumps({"v": "1"})),
        sleep=lambda _s: None,
        clock=lambda: float(next(clock)),
    )
    assert not result["healthy"]
    assert "v is '1', expected '2'" in result["msg"] and "within 3 s" in result["msg"]


def test_command_restart_starts_a_stopped_service_without_stopping_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    spec = {
        "manager": "command",
        "name": "x",
        "status_command": "exit 3",
        "stop_command": f"echo stop >> {log}",
        "start_command": f"echo start >> {log}",
    }
    outcome = svc.restart(spec)
    assert outcome["changed"] and not outcome["stopped"] and log.read_text() == "start\n"
    with pytest.raises(svc.ServiceError, match=r"took longer than 0\.2 s"):
        svc.restart(dict(spec, start_command="sleep 5", command_timeout=0.2))


# --------------------------------------------------------------------------------------------
# The role's one-call path through ansible-playbook, as an operator runs level 3


def level3_inputs(app: dict[str, Any], tmp_path: Path) -> tuple[Path, Path]:
    """The inventory (localhost) and the variables (@file) of a level 3 run on ``app``."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[app]\nlocalhost ansible_connection=local\n")
    variables = tmp_path / "vars.json"
    service = app["service"]
    variables.write_text(
        json.dumps(
            {
                "ansible_python_interpreter": "/usr/bin/python3",
                "release_app_root": app["root"],
                "release_repo": app["path"],
                "release_service_name": service["name"],
                "release_service_manager": "command",
                "release_service_start_command": service["start_command"],
                "release_service_stop_command": service["stop_command"],
                "release_service_status_command": service["status_command"],
                "release_health_url": app["url"],
                "release_health_interval": 0.05,
                "release_health_deadline": 3,
                # The policy's observation window (10 s by default) kept short here.
                "release_health_observe": 0.5,
            }
        )
    )
    return inventory, variables


def level3(app: dict[str, Any], tmp_path: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    inventory, variables = level3_inputs(app, tmp_path)
    records = tmp_path / "records"
    run_id = f"unit-{time.time_ns()}"
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "playbooks/rollback-l3.yml",
            "-e",
            f"@{variables}",
            "-e",
            f"rollback_run_id={run_id}",
            *extra,
        ],
        cwd=REPO,
        env=dict(
            os.environ,
            SRE_ROLLBACK_RECORD_DIR=str(records),
            ANSIBLE_NOCOLOR="1",
            PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    record = json.loads((records / f"{run_id}.json").read_text())
    return proc.returncode, proc.stdout + proc.stderr, record


@pytest.mark.slow
def test_level3_playbook_rolls_out_in_one_call_and_records_every_phase(
    app: dict[str, Any], tmp_path: Path
) -> None:
    deployed(app, OLD, GOOD, BAD)
    rc, out, record = level3(app, tmp_path)
    assert rc == 0, out[-3000:]
    assert current_tag(app) == GOOD and not locked(app)
    host = record["hosts"]["localhost"]
    assert {"plan", "switch", "restart", "health", "unlock", "record"} <= set(host["phases"])
    # Inputs checked and host inspected in one task, then decide, refuse and hand the hosts
    # to the rollout plays (run once); a named target the repository lacks is refused as
    # bad input, the run's one preflight task (run once).
    assert host["phases"]["plan"]["tasks"] == 4
    assert (
        host["phases"]["preflight"]["tasks"] == 1 and host["phases"]["preflight"]["status"] == "ok"
    )
    assert not {"play", "sre.rollback.release"} & set(host["phases"]), host["phases"]
    assert host["phases"]["restart"]["changed"] and host["phases"]["health"]["status"] == "ok"
    result = host["result"]
    assert result["status"] == "ok" and result["path"] == "fast" and not result["reverted"]
    assert result["before"]["tag"] == BAD and result["after"]["tag"] == GOOD
    assert result["health"]["healthy"] is True and result["health"]["attempts"] >= 3
    assert {"switch", "restart", "health", "total"} <= set(result["timings"])
    steps = [t["task"] for t in record["tasks"] if t["phase"] in ("switch", "restart", "health")]
    assert len(steps) == 1, f"one module call rolls the host out, not {steps}"

    rc, out, record = level3(app, tmp_path, "-e", f"release_target={BAD}")
    assert rc != 0
    good_id = releases.release_id(GOOD, app["commits"][GOOD])
    assert "Switched back to" in out
    message = record["hosts"]["localhost"]["msg"]
    assert "not healthy 3 times in a row" in message
    assert f"Switched back to {good_id} and restarted. {BAD} is marked bad" in message
    assert message.endswith("Later batches were not touched.")
    assert current_tag(app) == GOOD and not locked(app)
    host = record["hosts"]["localhost"]
    assert host["phases"]["health"]["status"] == "failed"
    assert host["result"]["reverted"] is True and host["result"]["status"] == "failed"
    assert host["result"]["after"]["tag"] == GOOD
    checklist = {item["item"]: item for stage in record["checklist"].values() for item in stage}
    assert checklist["Verify each step"]["state"] == "failed"


# --------------------------------------------------------------------------------------------
# Phases of a one-call rollout in the run record and in rollbackctl's live progress

STEPS = [
    {"phase": "switch", "status": "changed", "seconds": 0.01},
    {"phase": "restart", "status": "changed", "seconds": 0.5},
    {"phase": "health", "status": "failed", "seconds": 4.0, "msg": "not healthy 3 times"},
    {"phase": "revert", "status": "changed", "seconds": 0.6},
    {"phase": "unlock", "status": "ok", "seconds": 0.001},
]


def test_run_record_shows_each_phase_of_one_call() -> None:
    from ansible_collections.sre.rollback.plugins.callback.run_record import CallbackModule

    callback = CallbackModule.__new__(CallbackModule)
    callback.record = {"hosts": {}}
    entry = {"host": "h2", "phase": "switch", "status": "failed", "changed": True, "msg": "x"}
    callback._host_steps("h2", {**entry, "duration": 5.2, "at": ""}, STEPS, 1_700_000_000.0)
    host = callback.record["hosts"]["h2"]
    assert list(host["phases"]) == ["switch", "restart", "health", "revert", "unlock"]
    assert host["phases"]["health"]["status"] == "failed"
    assert host["phases"]["health"]["msg"] == "not healthy 3 times"
    assert host["phases"]["restart"]["changed"] and host["phases"]["restart"]["duration"] == 0.5
    assert host["failed_phase"] == "health" and host["status"] == "failed"
    assert host["phases"]["revert"]["started"] == "2023-11-14T22:13:24Z"  # 4.51 s in


def test_live_progress_shows_each_phase_of_one_call() -> None:
    from rollbackctl.progress import RunState

    state = RunState()
    data = {"host": "h2", "task_tags": ["phase_switch"]}
    state.handle({"event": "runner_on_start", "event_data": data})
    changes = state.handle(
        {
            "event": "runner_on_failed",
            "event_data": {**data, "res": {"msg": "failed", "phases": STEPS}},
        }
    )
    assert [c.phase for c in changes] == ["switch", "restart", "health", "revert", "unlock"]
    phases = state.hosts["h2"]
    assert phases["health"].status == "failed" and phases["restart"].status == "changed"
    assert round(phases["revert"].seconds, 2) == 0.6
    assert state.failed_hosts() == ["h2"]


def test_live_progress_gives_includes_no_phase_and_argument_checks_to_preflight() -> None:
    from rollbackctl.progress import RunState

    state = RunState()
    include = {"host": "h2", "task_action": "ansible.builtin.include_role", "task_tags": []}
    assert state.handle({"event": "runner_on_start", "event_data": include}) == []
    assert state.handle({"event": "runner_on_ok", "event_data": {**include, "res": {}}}) == []
    check = {"host": "h2", "task_action": "validate_argument_spec", "task_tags": []}
    state.handle({"event": "runner_on_start", "event_data": check})
    state.handle({"event": "runner_on_ok", "event_data": {**check, "res": {}}})
    assert state.phases == ["preflight"]
    failed = {**include, "res": {"msg": "could not find the tasks file"}}
    state.handle({"event": "runner_on_failed", "event_data": failed})
    assert state.hosts["h2"]["preflight"].status == "failed", "a failed include still fails"


def test_the_stop_verdict_keeps_the_phase_that_failed() -> None:
    """After a one-call rollout failed its health gate and switched back, the rescue's
    `fail` task (tagged revert) carries the message; the failed phase stays `health`."""
    from ansible_collections.sre.rollback.plugins.callback.run_record import CallbackModule
    from rollbackctl.progress import RunState

    callback = CallbackModule.__new__(CallbackModule)
    callback.record = {"hosts": {}}
    entry = {"host": "h2", "phase": "switch", "status": "failed", "changed": True, "msg": "x"}
    callback._host_steps("h2", {**entry, "duration": 5.2, "at": ""}, STEPS, 1_700_000_000.0)
    verdict = {**entry, "phase": "revert", "msg": "rollback failed on h2: ... switched back"}
    callback._host_phase("h2", {**verdict, "duration": 0.1, "at": ""}, "", verdict=True)
    host = callback.record["hosts"]["h2"]
    assert host["failed_phase"] == "health" and host["status"] == "failed"
    assert host["msg"] == verdict["msg"] == host["phases"]["health"]["msg"]
    assert host["phases"]["revert"]["status"] == "ok"

    state = RunState()
    data = {"host": "h2", "task_tags": ["phase_switch"]}
    state.handle({"event": "runner_on_start", "event_data": data})
    state.handle(
        {"event": "runner_on_failed", "event_data": {**data, "res": {"msg": "x", "phases": STEPS}}}
    )
    stop = {"host": "h2", "task_tags": ["phase_revert"], "task_action": "ansible.builtin.fail"}
    state.handle({"event": "runner_on_start", "event_data": stop})
    state.handle(
        {"event": "runner_on_failed", "event_data": {**stop, "res": {"msg": verdict["msg"]}}}
    )
    assert state.hosts["h2"]["health"].status == "failed"
    assert state.hosts["h2"]["health"].msg == verdict["msg"]
    assert state.hosts["h2"]["revert"].status not in ("failed", "unreachable")


def test_a_batch_published_once_gives_every_host_its_record_phase() -> None:
    """The release role publishes a batch's results in one run_once set_stats task: the run
    record and the live progress give the `record` phase to every host it names."""
    from ansible_collections.sre.rollback.plugins.callback.run_record import published_hosts
    from rollbackctl.progress import RunState

    stats = {
        "ansible_stats": {
            "data": {"release_results": {"h2": {}, "h3": {}, "h9": {}}},
            "per_host": False,
            "aggregate": True,
        }
    }
    assert published_hosts(stats, {"h2": {}, "h3": {}}) == {"h2", "h3"}
    assert published_hosts({"changed": False}, {"h2": {}}) == set()

    state = RunState()
    for host in ("h2", "h3"):
        data = {"host": host, "task_tags": ["phase_switch"]}
        state.handle({"event": "runner_on_start", "event_data": data})
        state.handle(
            {"event": "runner_on_ok", "event_data": {**data, "res": {"phases": STEPS[:3]}}}
        )
    publish = {"host": "h2", "task_tags": ["phase_record"]}
    state.handle({"event": "runner_on_start", "event_data": publish})
    changes = state.handle({"event": "runner_on_ok", "event_data": {**publish, "res": stats}})
    assert [(c.host, c.phase) for c in changes] == [("h3", "record")]
    assert state.hosts["h3"]["record"].status == "ok"
    assert "record" in state.hosts["h2"] and "h9" not in state.hosts


def test_live_progress_gives_a_refusal_on_the_inputs_to_preflight() -> None:
    """The release plan's first task checks the inputs and then inspects the host (tagged
    phase_plan); refused on its inputs, the inspection never ran: the host failed its
    preflight, as the run record says, and no `plan` phase is shown."""
    from rollbackctl.progress import RunState

    state = RunState()
    for host in ("h2", "h3"):
        data = {
            "host": host,
            "task_action": "sre.rollback.role_inputs",
            "task_tags": ["phase_plan"],
        }
        state.handle({"event": "runner_on_start", "event_data": data})
    refused = {"msg": "Bad release inputs: ... Nothing was changed.", "argument_errors": []}
    data = {"host": "h2", "task_action": "sre.rollback.role_inputs", "task_tags": ["phase_plan"]}
    changes = state.handle({"event": "runner_on_failed", "event_data": {**data, "res": refused}})
    assert [(c.host, c.phase, c.state.status) for c in changes] == [("h2", "preflight", "failed")]
    assert "plan" not in state.hosts["h2"] and state.hosts["h2"]["preflight"].msg
    assert "plan" in state.phases, "h3 is still in its plan"
    # A role_inputs task that fails in the action `then` ran is that action's phase.
    inspected = {"msg": "app_root /x does not exist"}
    data = {"host": "h3", "task_action": "sre.rollback.role_inputs", "task_tags": ["phase_plan"]}
    changes = state.handle({"event": "runner_on_failed", "event_data": {**data, "res": inspected}})
    assert [(c.host, c.phase) for c in changes] == [("h3", "plan")]
