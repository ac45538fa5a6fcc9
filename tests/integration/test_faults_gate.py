"""Fault injection (issue: reliability under real incidents), level 3's health gate and run
identity, on real hosts over SSH with the demo application:

- a dependency that is down fails the gate of a rollback: the good target is NOT marked bad
  (the release the host had fails too), and the next run, once the database is back, goes to
  the same target, not an older one;
- a release that crash-loops (it answers /health between its deaths) fails the gate within
  the observation window and IS marked bad, with the evidence, and the host is back on the
  release it had;
- two plain ansible-playbook runs started in the same second get their own run ids, and
  never both work inside one lock.

The tests run in order on one rig, each from a state it sets up itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest

from tests.conftest import REPO, VENV_BIN
from tests.integration.rig import (
    app_hosts,
    current,
    deploy,
    health,
    lock_free,
    on,
    playbook,
    prepared,
    release_log,
    tag_patched_release,
)

pytestmark = pytest.mark.integration

STABLE, OLD_STABLE, BAD, CRASH = "v1.2.3-stable", "v1.2.2-stable", "v1.3.0", "v1.3.1-crash"


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    return prepared(testhosts)


def states(rig: Any, host: str) -> dict[str, str]:
    """The latest state of each tag in the host's release log."""
    latest: dict[str, str] = {}
    for entry in release_log(rig, host):
        latest[entry["tag"] or entry["release"]] = entry["state"]
    return latest


def postgresql(rig: Any, action: str) -> None:
    on(rig, "h1", f"systemctl {action} postgresql")


def test_a_database_outage_does_not_mark_the_good_target_bad(rig: Any) -> None:
    deploy(rig, STABLE)
    deploy(rig, BAD)
    canary, rest = app_hosts(rig)[0], app_hosts(rig)[1:]
    postgresql(rig, "stop")
    try:
        run = playbook(
            rig.inventory, "rollback-l3.yml", "-e", "release_health_deadline=4", timeout=300
        )
    finally:
        postgresql(rig, "start")
    assert run.rc != 0
    # The canary went to the stable release, which could not answer well without its
    # database; so could the release it had: the fault is outside the release.
    assert BAD in current(rig, canary), "switched back to the release it had"
    for host in rest:
        assert BAD in current(rig, host), "later batches untouched"
    for host in app_hosts(rig):
        assert states(rig, host).get(STABLE) != "bad", f"{STABLE} wrongly marked bad on {host}"
        assert lock_free(rig, host)
    assert states(rig, canary)[STABLE] == "suspect"
    result = run.record["hosts"][canary]
    assert "is marked suspect on this host" in result["msg"]
    assert "fails its health gate too" in result["msg"] and "Next:" in result["msg"]
    # Database back: the next run picks the same target, and every host gets there.
    for _ in range(50):
        if health(rig, canary)[0] == 200:
            break
        time.sleep(0.2)
    again = playbook(rig.inventory, "rollback-l3.yml")
    assert again.rc == 0, again.out[-4000:]
    for host in app_hosts(rig):
        assert STABLE in current(rig, host), f"{host} is not on {STABLE}: an older release?"
        assert health(rig, host)[0] == 200
        assert lock_free(rig, host)


def make_crashing_release(rig: Any, host: str) -> None:
    """Tag CRASH in the host's mirror: the stable release, but the server exits 1 s after it
    starts serving (systemd restarts it 2 s later). The same commit id on every host."""
    patch = (
        "text = open(path).read()\n"
        'anchor = \'    server.RequestHandlerClass = type("DemoHandler", (Handler,), '
        '{"app": app})\\n\'\n'
        "assert anchor in text\n"
        "crash = '    import os, threading\\n    threading.Timer(1.0, os._exit, args=(1,))"
        ".start()\\n'\n"
        "open(path, 'w').write(text.replace(anchor, anchor + crash))"
    )
    tag_patched_release(
        rig, host, CRASH, STABLE, patch, "crash after 1 s", "2024-03-01T10:00:00+00:00"
    )


def test_a_crash_looping_release_fails_the_gate_and_is_marked_bad(rig: Any) -> None:
    deploy(rig, STABLE)
    canary, rest = app_hosts(rig)[0], app_hosts(rig)[1:]
    for host in app_hosts(rig):
        make_crashing_release(rig, host)
    run = playbook(rig.inventory, "deploy.yml", "-e", f"release_tag={CRASH}", timeout=300)
    assert run.rc != 0, "a crash loop must not pass the gate"
    assert STABLE in current(rig, canary), "the canary is back on the release it had"
    assert health(rig, canary)[0] == 200
    for host in rest:
        assert STABLE in current(rig, host), "later batches untouched"
    seen = states(rig, canary)
    assert seen.get(CRASH) == "bad", (seen, run.record["hosts"][canary], run.out[-3000:])
    assert states(rig, canary)[STABLE] == "current"
    msg = run.record["hosts"][canary]["msg"]
    assert "crashed during the health gate" in msg, msg
    assert f"{CRASH} is marked bad on this host" in msg
    for host in app_hosts(rig):
        assert lock_free(rig, host)


def raw_playbook(rig: Any, name: str, records: Any, *args: str) -> subprocess.Popen[str]:
    """ansible-playbook as AWX or an operator runs it: no run id given."""
    env = dict(
        os.environ,
        SRE_ROLLBACK_RECORD_DIR=str(records),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
    )
    return subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(rig.inventory), f"playbooks/{name}", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_runs_started_in_the_same_second_never_share_a_lock(rig: Any, tmp_path: Any) -> None:
    deploy(rig, BAD)
    before = {host: len(release_log(rig, host)) for host in app_hosts(rig)}
    records = tmp_path / "records"
    runs = [raw_playbook(rig, "rollback-l3.yml", records) for _ in range(2)]
    outs = [proc.communicate(timeout=300)[0] for proc in runs]
    codes = [proc.returncode for proc in runs]
    files = sorted(p for p in records.glob("*.json") if p.name != "latest.json")
    ids = [json.loads(p.read_text())["run_id"] for p in files]
    assert len(ids) == 2 and len(set(ids)) == 2, f"run ids {ids}"
    # Each host was switched by one run only: one rollback entry per host, and a run that
    # found a host locked was refused there, naming the other run.
    for host in app_hosts(rig):
        new = release_log(rig, host)[before[host] :]
        switched = [e for e in new if e["event"] == "rollback" and e["state"] == "current"]
        assert len(switched) == 1, f"{host}: {switched}"
        assert switched[0]["run_id"] in ids
        assert STABLE in current(rig, host)
        assert lock_free(rig, host)
    refused = [out for out, code in zip(outs, codes, strict=True) if code != 0]
    for out in refused:
        assert "is locked by run" in out, out[-3000:]
    assert 0 in codes, "one of the two runs rolled back"
