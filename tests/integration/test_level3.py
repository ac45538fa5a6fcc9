"""Deploy and level 3 (code rollback) on real hosts over SSH, with the demo application.

The tests run in order on one rig: each leaves the hosts in the state the next expects
(stable deployed, then bad deployed, then rolled back...).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.rig import (
    APP_ROOT,
    app_hosts,
    current,
    deploy,
    health,
    load,
    on,
    playbook,
    prepared,
    release_log,
)

pytestmark = pytest.mark.integration

STABLE, OLD_STABLE, BAD = "v1.2.3-stable", "v1.2.2-stable", "v1.3.0"


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    return prepared(testhosts)


def urls(rig: Any) -> list[str]:
    return [f"http://{rig.addr(h)}:8080" for h in app_hosts(rig)]


def set_flag(rig: Any, host: str, state: str) -> None:
    on(
        rig,
        host,
        "python3 - <<'EOF'\nimport json\np='/etc/demo-app/flags.json'\n"
        "d=json.load(open(p))\nd['flags']['new_checkout']['state']='" + state + "'\n"
        "json.dump(d,open(p,'w'))\nEOF",
    )


def test_deploy_stable_everywhere(rig: Any) -> None:
    run = deploy(rig, STABLE)
    for host in app_hosts(rig):
        assert STABLE in current(rig, host)
        assert on(rig, host, "systemctl is-active demo-app") == "active"
        code, body = health(rig, host)
        assert code == 200 and body["release"].startswith(STABLE), body
        assert release_log(rig, host)[-1]["tag"] == STABLE
        assert run.host_results()[host]["after"]["tag"] == STABLE


def test_bad_release_really_misbehaves(rig: Any) -> None:
    deploy(rig, BAD)
    for host in app_hosts(rig):
        set_flag(rig, host, "ENABLED")
    summary = load(urls(rig))
    assert summary["error_ratio"] > 0.10, summary


def test_check_mode_plans_and_changes_nothing(rig: Any) -> None:
    before = {h: current(rig, h) for h in app_hosts(rig)}
    run = playbook(rig.inventory, "rollback-l3.yml", "--check")
    assert run.rc == 0, run.out[-4000:]
    assert f"-> {STABLE}" in run.out and "(fast;" in run.out
    assert {h: current(rig, h) for h in app_hosts(rig)} == before


def test_unknown_target_fails_before_any_change(rig: Any) -> None:
    before = {h: (current(rig, h), len(release_log(rig, h))) for h in app_hosts(rig)}
    run = playbook(rig.inventory, "rollback-l3.yml", "-e", "release_target=v9.9.9")
    assert run.rc != 0
    assert "'v9.9.9' is not a tag of the repository" in run.out
    assert {h: (current(rig, h), len(release_log(rig, h))) for h in app_hosts(rig)} == before


def test_lock_refuses_a_concurrent_run_and_can_be_broken(rig: Any) -> None:
    host = app_hosts(rig)[-1]
    owner = {
        "run_id": "crashed-run",
        "user": "alice",
        "host": "ops1",
        "pid": "4242",
        "action": "rollback",
        "time": "2026-11-29T03:00:00Z",
        "epoch": 0,
    }
    on(rig, host, f"echo '{json.dumps(owner)}' > {APP_ROOT}/.rollback.lock")
    refused = playbook(rig.inventory, "rollback-l3.yml")
    assert refused.rc != 0
    assert "locked by run crashed-run (alice@ops1, pid 4242" in refused.out
    assert BAD in current(rig, app_hosts(rig)[0]), "nothing was switched anywhere"
    broken = playbook(rig.inventory, "rollback-l3.yml", "-e", "rollback_break_lock=true")
    assert broken.rc == 0, broken.out[-4000:]
    assert on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free") == "free"


def test_level3_rolled_every_host_back(rig: Any) -> None:
    for host in app_hosts(rig):
        assert STABLE in current(rig, host)
        code, _ = health(rig, host)
        assert code == 200
        states = {e["tag"]: e["state"] for e in release_log(rig, host)}
        assert states[BAD] == "bad" and states[STABLE] == "current"
        assert on(rig, host, f"ls {APP_ROOT}/releases | grep -c {BAD}") == "1", "bad kept on disk"
    summary = load(urls(rig))
    assert summary["error_ratio"] < 0.10, summary


def test_second_run_changes_nothing(rig: Any) -> None:
    run = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert run.rc == 0, run.out[-4000:]
    assert "changed=0" in run.out and "changed=1" not in run.out
    for result in run.host_results().values():
        assert result["path"] == "none" and result["status"] == "unchanged"


def test_rebuild_path_when_the_release_was_deleted(rig: Any) -> None:
    deploy(rig, BAD)  # named explicitly, so the bad release may be deployed again
    victim = app_hosts(rig)[0]
    on(rig, victim, f"rm -rf {APP_ROOT}/releases/{STABLE}-g*")
    run = playbook(rig.inventory, "rollback-l3.yml")
    assert run.rc == 0, run.out[-4000:]
    paths = {h: r["path"] for h, r in run.host_results().items()}
    assert paths[victim] == "rebuild"
    assert all(p == "fast" for h, p in paths.items() if h != victim), paths
    for host in app_hosts(rig):
        assert STABLE in current(rig, host) and health(rig, host)[0] == 200


def test_named_target(rig: Any) -> None:
    run = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={OLD_STABLE}")
    assert run.rc == 0, run.out[-4000:]
    for host in app_hosts(rig):
        assert OLD_STABLE in current(rig, host)
        assert health(rig, host)[1]["release"].startswith(OLD_STABLE)


def test_failing_health_check_reverts_the_canary_and_stops(rig: Any) -> None:
    canary, rest = app_hosts(rig)[0], app_hosts(rig)[1:]
    # Break the canary's health gate only: its health URL points at a closed port.
    host_vars = rig.dir / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{canary}.yml").write_text("release_health_url: http://127.0.0.1:9/health\n")
    try:
        run = playbook(
            rig.inventory,
            "rollback-l3.yml",
            "-e",
            f"release_target={STABLE}",
            "-e",
            "release_health_deadline=4",
        )
    finally:
        (host_vars / f"{canary}.yml").unlink()
    assert run.rc != 0
    assert f"Switched back to {OLD_STABLE}" in run.out, run.out[-3000:]
    assert "Later batches were not touched" in run.out
    assert OLD_STABLE in current(rig, canary), "the canary went back to the release it had"
    assert health(rig, canary)[0] == 200, "and runs it again"
    for host in rest:
        assert OLD_STABLE in current(rig, host), "later batches untouched"
    assert on(rig, canary, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free") == "free"
    assert run.host_results()[canary]["reverted"] is True
    failed = run.record["hosts"][canary]
    assert failed["failed_phase"] == "health", "the phase that went wrong, not the verdict's"
    assert failed["phases"]["revert"]["status"] == "ok", failed["phases"]
    assert "Later batches were not touched" in failed["msg"]


def test_cut_host_is_reported_unreachable_fast_and_rerun_completes(rig: Any) -> None:
    victim = app_hosts(rig)[-1]
    rig.cut(victim)
    try:
        run = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    finally:
        rig.heal(victim)
    assert run.rc != 0
    assert "UNREACHABLE" in run.out and victim in run.out
    assert run.seconds < 45, f"took {run.seconds:.0f} s to notice the cut host"
    again = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert again.rc == 0, again.out[-4000:]
    for host in app_hosts(rig):
        assert STABLE in current(rig, host)
