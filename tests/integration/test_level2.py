"""Level 2 (configuration rollback) on real hosts over SSH, with the demo application.

The tests run in order on one rig. The pool-exhaustion change (`[database]
hold_connections` = pool_size) goes in through playbooks/config.yml and is rolled back
from the revision store; then the same with the config directory in git. An invalid target
is refused with nothing changed; a target that fails its health check is reverted. The
module's teardown puts the original app.ini back and removes the git repository.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.rig import APP_ROOT, health, on, playbook

pytestmark = pytest.mark.integration

CONF = "/etc/demo-app"
INI = f"{CONF}/app.ini"
GIT = "git -c user.name=oncall -c user.email=oncall@example.com"
STORE = "/var/lib/sre-rollback/config/etc__demo-app"


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"]


def ini(rig: Any, host: str) -> str:
    return on(rig, host, f"cat {INI}") + "\n"


def holding(text: str, held: str) -> str:
    return text.replace("hold_connections = 0", f"hold_connections = {held}")


def app_pids(rig: Any, host: str) -> str:
    # [p]: the pattern does not match the shell that runs pgrep.
    return on(rig, host, "pgrep -f 'demo-ap[p] serve' | sort | tr '\\n' ' '", check=False)


def lock_state(rig: Any, host: str) -> str:
    return on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free")


def restart(rig: Any, host: str) -> None:
    if rig.runtime == "systemd":
        on(rig, host, "systemctl restart demo-app")
        return
    app = f"{APP_ROOT}/current/bin/demo-app"
    on(
        rig,
        host,
        f"{app} stop --pidfile /run/demo-app.pid; {app} serve --daemon --pidfile /run/demo-app.pid "
        f"--log-file /var/log/demo-app/demo-app.log --config-dir {CONF}",
    )


def wait_health(rig: Any, host: str, code: int, seconds: float = 15) -> int:
    deadline = time.monotonic() + seconds
    seen = 0
    while time.monotonic() < deadline:
        seen = health(rig, host)[0]
        if seen == code:
            return seen
        time.sleep(0.5)
    return seen


def apply(rig: Any, tmp_path: Path, text: str, *extra: str) -> Any:
    """playbooks/config.yml with new app.ini content (the same for every app host)."""
    variables = tmp_path / f"config-{time.time_ns()}.json"
    variables.write_text(json.dumps({"config_apply_files": {"app.ini": text}}))
    return playbook(rig.inventory, "config.yml", "-e", f"@{variables}", *extra)


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Iterator[Any]:
    hosts = app_hosts(testhosts)
    if any(on(testhosts, h, f"readlink {APP_ROOT}/current", check=False) == "" for h in hosts):
        # Not prepared and deployed by an earlier module of the session: do it here.
        prepared = playbook(testhosts.inventory, "demo-app.yml")
        assert prepared.rc == 0, prepared.out[-4000:]
        deployed = playbook(testhosts.inventory, "deploy.yml", "-e", "release_tag=v1.2.3-stable")
        assert deployed.rc == 0, deployed.out[-4000:]
    original = {h: ini(testhosts, h) for h in hosts}
    yield testhosts
    for host in hosts:
        on(testhosts, host, f"rm -rf {CONF}/.git")
        if ini(testhosts, host) != original[host]:
            on(testhosts, host, f"cat > {INI} <<'EOF'\n{original[host]}EOF")
            restart(testhosts, host)


@pytest.fixture(scope="module")
def good(rig: Any) -> str:
    text = ini(rig, app_hosts(rig)[0])
    assert "hold_connections = 0" in text, text
    assert all(ini(rig, h) == text for h in app_hosts(rig)), "the rig's app hosts share app.ini"
    return text


def test_snapshot_records_the_live_config(rig: Any, good: str) -> None:
    run = playbook(rig.inventory, "config.yml", "-e", "config_action=snapshot")
    assert run.rc == 0, run.out[-4000:]
    for host in app_hosts(rig):
        assert run.record["hosts"][host]["result"]["after"]["revision"].startswith("r")


def test_the_pool_exhaustion_change_breaks_the_app(rig: Any, good: str, tmp_path: Path) -> None:
    # How a bad change gets in: applied without a health gate (it looked harmless).
    run = apply(rig, tmp_path, holding(good, "5"), "-e", "config_health_check=false")
    assert run.rc == 0, run.out[-4000:]
    for host in app_hosts(rig):
        assert "hold_connections = 5" in ini(rig, host)
        assert wait_health(rig, host, 503) == 503, "the pool is exhausted"


def test_an_invalid_config_is_refused_with_nothing_changed(
    rig: Any, good: str, tmp_path: Path
) -> None:
    before = {h: (ini(rig, h), app_pids(rig, h)) for h in app_hosts(rig)}
    run = apply(rig, tmp_path, good.replace("pool_size = 5", "pool_size = lots"))
    assert run.rc != 0
    assert "is invalid; nothing was changed" in run.out
    assert "pool_size = 'lots' is invalid" in run.out, "the validator's own message"
    assert {h: (ini(rig, h), app_pids(rig, h)) for h in app_hosts(rig)} == before


def test_check_mode_shows_each_hosts_diff_and_changes_nothing(rig: Any) -> None:
    before = {h: ini(rig, h) for h in app_hosts(rig)}
    run = playbook(rig.inventory, "rollback-l2.yml", "--check")
    assert run.rc == 0, run.out[-4000:]
    assert run.out.count("-hold_connections = 5\n+hold_connections = 0") >= len(app_hosts(rig))
    assert {h: ini(rig, h) for h in app_hosts(rig)} == before


def test_level2_rolls_the_pool_exhaustion_back_from_the_store(rig: Any, good: str) -> None:
    reason = json.dumps({"rollback_reason": "db pool exhausted", "rollback_incident": "INC-2002"})
    run = playbook(rig.inventory, "rollback-l2.yml", "-e", reason)
    assert run.rc == 0, run.out[-4000:]
    for host in app_hosts(rig):
        assert ini(rig, host) == good
        assert health(rig, host)[0] == 200
        result = run.record["hosts"][host]["result"]
        assert result["status"] == "ok" and result["files"]["changed"] == ["app.ini"]
        assert result["target"]["why"].startswith("the revision live before")
        assert lock_state(rig, host) == "free"
        last = json.loads(on(rig, host, f"tail -1 {STORE}/timeline.jsonl"))
        assert (last["event"], last["reason"], last["incident"]) == (
            "rollback",
            "db pool exhausted",
            "INC-2002",
        )
        assert last["bad"] == result["before"]["revision"], "the revision left behind is bad"
    assert run.seconds < 300, f"level 2 took {run.seconds:.0f} s (runbook budget: 5 min)"


def test_a_target_that_fails_health_is_reverted_and_stops_the_rollout(rig: Any, good: str) -> None:
    # Name the revision that the rollback left behind (marked bad): the pool-exhausting one.
    timeline = on(rig, app_hosts(rig)[0], f"cat {STORE}/timeline.jsonl")
    target = [json.loads(line)["bad"] for line in timeline.splitlines() if '"bad"' in line][-1]
    canary, rest = app_hosts(rig)[0], app_hosts(rig)[1:]
    run = playbook(
        rig.inventory,
        "rollback-l2.yml",
        "-e",
        f"config_target={target}",
        "-e",
        "config_health_deadline=6",
    )
    assert run.rc != 0
    assert "Put back revision" in run.out and "Later batches were not touched" in run.out
    assert ini(rig, canary) == good, "the canary has the config it had"
    assert wait_health(rig, canary, 200) == 200
    for host in rest:
        assert ini(rig, host) == good and health(rig, host)[0] == 200, "later batches untouched"
    assert run.record["hosts"][canary]["result"]["reverted"] is True
    phases = run.record["hosts"][canary]["phases"]
    assert {"change", "restart", "health", "revert"} <= set(phases), phases
    assert phases["health"]["status"] == "failed" and phases["revert"]["status"] == "ok", phases
    assert run.record["hosts"][canary]["failed_phase"] == "health"
    assert lock_state(rig, canary) == "free"


def test_git_source_rolls_back_head_1(rig: Any, good: str) -> None:
    for host in app_hosts(rig):
        on(
            rig,
            host,
            f"cd {CONF} && git init -q && {GIT} add app.ini && {GIT} commit -qm 'good config' && "
            f"sed -i 's/hold_connections = 0/hold_connections = 5/' app.ini && "
            f"{GIT} commit -qam 'raise hold_connections'",
        )
        restart(rig, host)
        assert wait_health(rig, host, 503) == 503
    run = playbook(rig.inventory, "rollback-l2.yml", "-e", "config_source=git")
    assert run.rc == 0, run.out[-4000:]
    for host in app_hosts(rig):
        assert ini(rig, host) == good
        assert health(rig, host)[0] == 200
        assert on(rig, host, f"cd {CONF} && git log -1 --format=%s") == "raise hold_connections"
        assert on(rig, host, f"cd {CONF} && git status --porcelain app.ini") == "M app.ini"
        assert run.record["hosts"][host]["result"]["target"]["subject"] == "good config"


def test_git_invalid_target_is_refused_with_nothing_changed(rig: Any, good: str) -> None:
    for host in app_hosts(rig):
        on(
            rig,
            host,
            f"cd {CONF} && sed -i 's/pool_size = 5/pool_size = lots/' app.ini && "
            f"{GIT} commit -qam 'typo' && git show HEAD~2:app.ini > app.ini && "
            f"{GIT} commit -qam 'fix the typo'",
        )
    before = {h: (ini(rig, h), app_pids(rig, h)) for h in app_hosts(rig)}
    run = playbook(rig.inventory, "rollback-l2.yml", "-e", "config_source=git")
    assert run.rc != 0
    assert "is invalid; nothing was changed" in run.out and "pool_size" in run.out
    assert {h: (ini(rig, h), app_pids(rig, h)) for h in app_hosts(rig)} == before
