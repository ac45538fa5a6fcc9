"""Faults in the middle of a level-3 rollout, on real hosts over SSH: the wrapper gets
SIGTERM, ansible-playbook gets SIGKILL, the canary is cut off the network. Each time the
hosts are asked (over their own namespaces, not the run's record) which release they run,
whether the lock is free or held by a live call, and what their journal says; then the
record must say the same, and the next run must do the right thing.

The canary's health gate is made slow but passing (many confirmations), so the call is
still in its gate when the fault comes. The tests run in order on one rig and each starts
from the bad release everywhere. Timings are printed (pytest -s) for the README.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, VENV_BIN
from tests.integration.rig import APP_ROOT, current, on, playbook, release_log, wrapper_args
from tests.unit.test_progress_lines import assert_log_closes_with_next_step

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

STABLE, BAD = "v1.2.3-stable", "v1.3.0"
# 30 confirmations 0.5 s apart: a gate that passes after ~15 s.
SLOW_GATE = ["-e", "release_health_successes=30", "-e", "release_health_interval=0.5"]
JOURNAL = f"{APP_ROOT}/.rollback.calls.jsonl"


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    for host in testhosts.hosts:
        on(testhosts, host, f"rm -f {APP_ROOT}/releases.log {APP_ROOT}/.rollback.lock {JOURNAL}")
    prepared = playbook(testhosts.inventory, "demo-app.yml")
    assert prepared.rc == 0, prepared.out[-4000:]
    deploy(testhosts, STABLE)
    return testhosts


@pytest.fixture
def bad_everywhere(rig: Any) -> Any:
    for host in rig.hosts:
        rig.heal(host)
    deploy(rig, BAD)
    for host in app_hosts(rig):
        assert BAD in current(rig, host) and lock_owner(rig, host) is None
    return rig


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"]


def deploy(rig: Any, tag: str) -> None:
    run = playbook(rig.inventory, "deploy.yml", "-e", f"release_tag={tag}")
    assert run.rc == 0, run.out[-4000:]


def lock_owner(rig: Any, host: str) -> dict[str, Any] | None:
    text = on(rig, host, f"cat {APP_ROOT}/.rollback.lock 2>/dev/null || true")
    return json.loads(text) if text else None


def running(rig: Any, host: str, pid: int) -> bool:
    return on(rig, host, f"test -d /proc/{pid} && echo yes || echo no") == "yes"


def journal(rig: Any, host: str, run_id: str) -> list[dict[str, Any]]:
    text = on(rig, host, f"cat {JOURNAL} 2>/dev/null || true")
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [e for e in entries if e.get("run_id") == run_id]


def release_states(rig: Any, host: str) -> dict[str, str]:
    return {e["tag"]: e["state"] for e in release_log(rig, host)}


def start_rollback(artifacts: Path, rig: Any, *extra: str) -> subprocess.Popen[str]:
    command = [
        str(VENV_BIN / "rollbackctl"),
        *("run", "--level", "3"),
        *wrapper_args(rig, artifacts),
        *SLOW_GATE,
        *extra,
    ]
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def holder_in_gate(rig: Any, host: str, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait until the host's call holds the lock (the holder is that call), then a little
    more, into its slow gate; the lock's owner record."""
    deadline = time.monotonic() + 120
    owner = lock_owner(rig, host)
    while not (owner and owner.get("holder")):
        assert time.monotonic() < deadline, "the run never took the canary's lock"
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.3)
        owner = lock_owner(rig, host)
    assert running(rig, host, owner["holder"]["pid"])
    time.sleep(4)  # restarted, well into the gate
    return owner


class Quiet:
    """Measures, from a moment on, when the host-side call is gone and the lock is free."""

    def __init__(self, rig: Any, host: str, pid: int) -> None:
        self.t0 = time.monotonic()
        self.call_gone: float | None = None
        self.lock_free: float | None = None
        self._thread = threading.Thread(target=self._watch, args=(rig, host, pid), daemon=True)
        self._thread.start()

    def _watch(self, rig: Any, host: str, pid: int) -> None:
        while time.monotonic() - self.t0 < 120 and None in (self.call_gone, self.lock_free):
            out = on(
                rig,
                host,
                f"test -d /proc/{pid} && echo run || echo gone; "
                f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free",
            )
            now = round(time.monotonic() - self.t0, 2)
            if "gone" in out and self.call_gone is None:
                self.call_gone = now
            if "free" in out and self.lock_free is None:
                self.lock_free = now
            time.sleep(0.1)

    def result(self) -> tuple[float | None, float | None]:
        self._thread.join(130)
        return self.call_gone, self.lock_free


def the_record(artifacts: Path) -> dict[str, Any]:
    (path,) = [p for p in (artifacts / "runs").glob("*.json") if not p.is_symlink()]
    return dict(json.loads(path.read_text()))


def ansible_playbook_of(pid: int) -> int:
    """The ansible-playbook process that the wrapper (pid) started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid and "ansible-playbook" in cmdline:
            return int(entry.name)
    raise AssertionError(f"no ansible-playbook child of {pid}")


def test_sigterm_mid_gate_switches_the_canary_back_and_says_so(
    bad_everywhere: Any, tmp_path: Path
) -> None:
    rig = bad_everywhere
    canary, rest = app_hosts(rig)[0], app_hosts(rig)[1:]
    proc = start_rollback(tmp_path / "a", rig)
    try:
        owner = holder_in_gate(rig, canary, proc)
        quiet = Quiet(rig, canary, owner["holder"]["pid"])
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=150)
        wrapper_done = round(time.monotonic() - quiet.t0, 2)
    finally:
        if proc.poll() is None:
            proc.kill()
    call_gone, lock_free = quiet.result()
    print(f"\nSIGTERM: call gone {call_gone} s, lock free {lock_free} s, wrapper {wrapper_done} s")
    assert proc.returncode == 3, out
    assert call_gone is not None and call_gone < 10, "the host-side call stopped by itself"
    # The host: back on the release it had, lock free, the target not marked bad.
    assert BAD in current(rig, canary)
    assert lock_owner(rig, canary) is None
    assert release_states(rig, canary)[STABLE] == "good", "not proven bad"
    run_id = owner["run_id"]
    (call,) = journal(rig, canary, run_id)
    assert call["outcome"] == "switched back" and call["controller_lost"] == "health"
    for host in rest:
        assert BAD in current(rig, host) and lock_owner(rig, host) is None
        assert journal(rig, host, run_id) == []
    # The record says what the hosts say.
    record = the_record(tmp_path / "a")
    assert record["status"] == "canceled" and record["run_id"] == run_id
    end = record["hosts"][canary]["end"]
    assert end["outcome"] == "switched back" and end["lock"] == "free", end
    assert BAD in end["current"] and end["controller_lost"] == "health"
    assert f"{canary}: switched back" in out
    assert all(record["hosts"][h]["end"]["outcome"] == "not started" for h in rest)
    # The next run does the whole rollback.
    again = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert again.rc == 0, again.out[-4000:]
    assert all(STABLE in current(rig, h) for h in app_hosts(rig))


def test_sigkill_of_ansible_playbook_records_no_result_it_never_got(
    bad_everywhere: Any, tmp_path: Path
) -> None:
    rig = bad_everywhere
    canary, rest = app_hosts(rig)[0], app_hosts(rig)[1:]
    proc = start_rollback(tmp_path / "a", rig)
    try:
        owner = holder_in_gate(rig, canary, proc)
        quiet = Quiet(rig, canary, owner["holder"]["pid"])
        os.kill(ansible_playbook_of(proc.pid), signal.SIGKILL)
        out, _ = proc.communicate(timeout=150)
        wrapper_done = round(time.monotonic() - quiet.t0, 2)
    finally:
        if proc.poll() is None:
            proc.kill()
    call_gone, lock_free = quiet.result()
    print(f"\nSIGKILL: call gone {call_gone} s, lock free {lock_free} s, wrapper {wrapper_done} s")
    assert proc.returncode == 1, out
    # Nobody stopped the host-side call (its ssh lived on): its gate passed, it completed,
    # and it dropped its own lock. Nothing else touched the lock while it ran.
    run_id = owner["run_id"]
    (call,) = journal(rig, canary, run_id)
    assert call["outcome"] == "completed" and call["controller_lost"] is None
    assert STABLE in current(rig, canary) and lock_owner(rig, canary) is None
    for host in rest:
        assert BAD in current(rig, host) and lock_owner(rig, host) is None
    record = the_record(tmp_path / "a")
    assert record["status"] == "killed", record["status"]
    host = record["hosts"][canary]
    assert "no result came back" in host["msg"] and "journal says: completed" in host["msg"]
    assert host["end"]["outcome"] == "completed" and STABLE in host["end"]["current"]
    assert "result" not in host, "no result from Ansible is claimed"
    assert any("results of hosts in flight" in note for note in record["notes"])
    again = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert again.rc == 0, again.out[-4000:]
    assert again.host_results()[canary]["path"] == "none", "already there: unchanged"
    assert all(STABLE in current(rig, h) for h in app_hosts(rig))


def test_a_canary_cut_mid_call_finishes_its_step_alone_and_says_so(
    bad_everywhere: Any, tmp_path: Path
) -> None:
    rig = bad_everywhere
    canary, rest = app_hosts(rig)[0], app_hosts(rig)[1:]
    proc = start_rollback(tmp_path / "a", rig)
    try:
        owner = holder_in_gate(rig, canary, proc)
        quiet = Quiet(rig, canary, owner["holder"]["pid"])
        rig.cut(canary)
        out, _ = proc.communicate(timeout=150)
        wrapper_done = round(time.monotonic() - quiet.t0, 2)
        call_gone, lock_free = quiet.result()
    finally:
        if proc.poll() is None:
            proc.kill()
        rig.heal(canary)
    print(f"\ncut: call gone {call_gone} s, lock free {lock_free} s, wrapper {wrapper_done} s")
    assert proc.returncode == 1, out
    # An unreachable host in a log: its line whole (ssh's own reason, not cut at "over
    # ssh:"), the state and the next step last.
    state, step, lines = assert_log_closes_with_next_step(out)
    (cut,) = [m for m in lines if m[1] == canary and m[3] == "unreachable"]
    assert "unreachable over ssh: " in cut[4] and not cut[4].rstrip().endswith("over ssh:"), cut[0]
    assert f"{canary} unreachable" in state
    assert step.startswith(f"Next: check that {canary} is up and reachable over ssh"), step
    assert f"--limit {canary}" in step
    record = the_record(tmp_path / "a")
    host = record["hosts"][canary]
    assert host["status"] == "unreachable", host
    assert "result" not in host or not host["result"].get("after"), "no result is claimed"
    for other in rest:
        assert BAD in current(rig, other) and lock_owner(rig, other) is None
    # Alone, the canary's call finished its step by its own rules, wrote it to its journal
    # and dropped its own lock; nothing else released it meanwhile. Its sshd never noticed
    # the controller was gone (no ClientAlive probes on the rig). Cut off, the demo app
    # also loses its database on h1, so the gate may fail: then the call switches back.
    (call,) = journal(rig, canary, owner["run_id"])
    assert call["controller_lost"] is None, call
    assert call["outcome"] in ("completed", "switched back"), call
    tag = STABLE if call["outcome"] == "completed" else BAD
    assert tag in current(rig, canary) and lock_owner(rig, canary) is None
    print(f"cut: the canary's call ended alone: {call['outcome']}: {call['msg'][:200]}")
    status = subprocess.run(
        [
            str(VENV_BIN / "rollbackctl"),
            "status",
            "-i",
            str(rig.inventory),
            "--project-dir",
            str(REPO),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = {row["host"]: row for row in json.loads(status.stdout)["hosts"]}
    assert rows[canary]["last_call"]["outcome"] == call["outcome"], rows[canary]
    again = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert again.rc == 0, again.out[-4000:]
    assert all(STABLE in current(rig, h) for h in app_hosts(rig))
