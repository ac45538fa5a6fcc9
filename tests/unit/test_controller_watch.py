"""A host-side call that notices its controller is gone (module_utils controller_watch), the
lock's live holder, the host's journal, and how the wrapper turns what the hosts say after
a cancel or a kill into the record (runner.host_end, records.settled)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import applock, controller_watch
from ansible_collections.sre.rollback.plugins.module_utils import release_ops as mod
from rollbackctl import records
from rollbackctl.runner import host_end
from tests.unit import test_release_rollout
from tests.unit.test_release_rollout import (
    BAD,
    GOOD,
    current_tag,
    deployed,
    locked,
    params,
    service_log,
    states,
)

app = test_release_rollout.app  # the fixture: a repository, releases and a real service

# --- watching the controller ------------------------------------------------------------------


def test_a_pipe_whose_reader_is_gone_says_so() -> None:
    read_end, write_end = os.pipe()
    try:
        watch = controller_watch.ControllerWatch(write_end)
        assert watch.watching and not watch.gone()
        os.close(read_end)
        assert watch.gone()
        with pytest.raises(controller_watch.ControllerLost) as lost:
            watch.check("restart")
        assert lost.value.step == "restart" and watch.lost == "restart"
        with pytest.raises(controller_watch.ControllerLost):
            watch.sleep(5.0)  # at once, not after 5 s
    finally:
        os.close(write_end)


def test_a_socket_whose_peer_closed_says_so() -> None:
    import socket

    mine, peer = socket.socketpair()
    with mine:
        watch = controller_watch.ControllerWatch(mine.fileno())
        assert not watch.gone()
        peer.close()
        assert watch.gone()


def test_a_file_or_terminal_is_not_watched(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w") as handle:
        watch = controller_watch.ControllerWatch(handle.fileno())
        assert not watch.watching and not watch.gone()
        watch.sleep(0.01)
    assert not controller_watch.NO_WATCH.gone()


# --- the lock's holder ------------------------------------------------------------------------


def test_a_holder_is_alive_only_while_its_process_runs() -> None:
    me = controller_watch.this_process()
    assert controller_watch.alive(me)
    assert not controller_watch.alive({**me, "start": (me["start"] or 0) + 1}), "pid reused"
    assert not controller_watch.alive({**me, "boot_id": "another-boot"}), "host rebooted"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not controller_watch.alive({"pid": child.pid, "start": None, "boot_id": None})
    assert not controller_watch.alive(None) and not controller_watch.alive({"pid": "?"})


def live_holder_lock(root: Path, run_id: str) -> subprocess.Popen[bytes]:
    """A lock of run_id held by a live process other than this one (a sleeping child)."""
    child = subprocess.Popen(["sleep", "30"])
    holder = {
        "pid": child.pid,
        "start": controller_watch._start_ticks(child.pid),
        "boot_id": controller_watch._boot_id(),
    }
    owner = applock.owner(run_id, "t", "ctl:1", "rollback")
    assert applock.acquire(str(root), owner)["acquired"]
    path = Path(applock.lock_path(str(root)))
    import json

    path.write_text(json.dumps({**json.loads(path.read_text()), "holder": holder}))
    return child


def test_nobody_releases_or_breaks_a_lock_under_a_live_call(tmp_path: Path) -> None:
    child = live_holder_lock(tmp_path, "run-1")
    try:
        released = applock.release(str(tmp_path), "run-1")
        assert not released["released"] and released["busy"]["pid"] == child.pid
        broken = applock.acquire(str(tmp_path), applock.owner("run-2", "t", "c:2", "x"), True)
        assert not broken["acquired"] and "still runs on this host" in broken["msg"]
        assert applock.read_owner(str(tmp_path))["run_id"] == "run-1"
    finally:
        child.kill()
        child.wait()
    assert applock.release(str(tmp_path), "run-1")["released"], "the holder is dead now"


def test_unlock_waits_for_the_holder_then_releases(tmp_path: Path) -> None:
    child = live_holder_lock(tmp_path, "run-1")
    child.kill()  # ends while the unlock waits
    child.wait()
    p = {"app_root": str(tmp_path), "run_id": "run-1", "wait": 5}
    result = mod.do_unlock(SimpleNamespace(check_mode=False), p)  # type: ignore[arg-type]
    assert result["released"] and result["lock"] is None and result["calls"] == []


# --- the journal ------------------------------------------------------------------------------


def test_the_journal_keeps_each_call_and_stays_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller_watch.journal(str(tmp_path), {"run_id": "a", "outcome": "completed"})
    controller_watch.journal(str(tmp_path), {"run_id": "b", "outcome": "switched back"})
    (only,) = controller_watch.calls(str(tmp_path), "b")
    assert only["outcome"] == "switched back" and only["pid"] == os.getpid() and only["time"]
    monkeypatch.setattr(controller_watch, "JOURNAL_MAX_BYTES", 2000)
    for n in range(100):
        controller_watch.journal(str(tmp_path), {"run_id": f"r{n}", "outcome": "completed"})
    assert Path(controller_watch.journal_path(str(tmp_path))).stat().st_size <= 2000
    assert controller_watch.calls(str(tmp_path))[-1]["run_id"] == "r99"


# --- the one-call rollout when its controller goes away ---------------------------------------


class GoneAt(controller_watch.ControllerWatch):
    """A controller that goes away just before ``step``."""

    def __init__(self, step: str) -> None:
        super().__init__(None)
        self.step = step

    def check(self, step: str) -> None:
        if step == self.step:
            self.lost = step
        super().check(step)


def rolled_out(app: dict[str, Any], tag: str, watch: Any) -> dict[str, Any]:
    p = params(app, tag, run_id="canceled-run")
    result: dict[str, Any] = {"health": mod.no_health(), "reverted": False, "phases": []}
    mod.roll_out(SimpleNamespace(check_mode=False), p, result, watch)  # type: ignore[arg-type]
    controller_watch.journal_call(app["root"], p["run_id"], result, watch)
    applock.release(app["root"], p["run_id"])
    return result


def test_gone_before_the_switch_changes_nothing(app: dict[str, Any]) -> None:
    deployed(app, GOOD, BAD)
    result = rolled_out(app, GOOD, GoneAt("switch"))
    assert current_tag(app) == BAD and not locked(app)
    assert result["outcome"] == "stopped before switch" and result["controller_lost"] == "switch"
    (call,) = controller_watch.calls(app["root"], "canceled-run")
    assert call["outcome"] == "stopped before switch" and call["current"] == call["before"]


def test_gone_during_the_gate_switches_back_without_marking_the_target_bad(
    app: dict[str, Any],
) -> None:
    deployed(app, GOOD, BAD)
    before = states(app)[GOOD]
    app["log"].unlink()
    result = rolled_out(app, GOOD, GoneAt("health"))
    assert current_tag(app) == BAD, "the host is back on the release it had"
    assert result["reverted"] and result["controller_lost"] == "health"
    assert states(app)[GOOD] == before, "not proven bad: its state is as before"
    assert service_log(app) == ["stop", "start", "stop", "start"], "restarted back"
    (call,) = controller_watch.calls(app["root"], "canceled-run")
    assert call["outcome"] == "switched back" and call["controller_lost"] == "health"


def test_a_controller_that_stays_lets_the_call_complete(app: dict[str, Any]) -> None:
    deployed(app, GOOD, BAD)
    rolled_out(app, GOOD, GoneAt("never"))
    assert current_tag(app) == GOOD
    (call,) = controller_watch.calls(app["root"], "canceled-run")
    assert call["outcome"] == "completed" and call["controller_lost"] is None


# --- what the wrapper makes of it -------------------------------------------------------------


def test_host_end_reads_the_hosts_answer() -> None:
    call = {"outcome": "switched back", "controller_lost": "health", "msg": "undone"}
    end = host_end("h2", "runner_on_ok", {"calls": [call], "current": "v1.3.0-gabc", "lock": None})
    assert (end.outcome, end.lock, end.current) == ("switched back", "free", "v1.3.0-gabc")
    assert end.line() == "h2: switched back, current v1.3.0-gabc, lock free (undone)"
    busy = host_end("h2", "runner_on_ok", {"busy": {"pid": 7}, "lock": {"run_id": "r"}})
    assert busy.outcome == "still running" and "pid 7" in busy.lock
    assert host_end("h3", "runner_on_unreachable", {}).outcome == "unknown"
    assert host_end("h1", "runner_on_ok", {"calls": [], "lock": None}).outcome == "not started"


def test_after_a_kill_in_flight_hosts_are_what_their_journal_says_or_unknown() -> None:
    record: dict[str, Any] = {
        "hosts": {"h2": {"status": "ok", "phases": {"plan": {"status": "ok"}}}},
        "status": "running",
    }
    ends = {
        "h2": {"outcome": "completed", "lock": "free"},
        "h3": {"outcome": "unknown", "lock": "unknown"},
    }
    records.settled(record, ends, {"h2": "switch", "h3": "switch"}, killed=True)
    assert record["hosts"]["h2"]["status"] == "ok" and "journal" in record["hosts"]["h2"]["msg"]
    assert record["hosts"]["h3"]["status"] == "unknown"
    assert record["hosts"]["h3"]["phases"]["switch"]["status"] == "unknown"
    assert record["hosts"]["h2"]["end"]["outcome"] == "completed"
