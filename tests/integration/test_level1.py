"""Level 1 (feature flag kill switch) on real hosts over SSH, with the demo application.

The tests run in order on one rig: v1.3.0 is deployed with `new_checkout` on (it fails
over 10 % of checkouts), level 1 turns the flag off everywhere, a second run changes
nothing; then the http backend is driven against a real flag service that the test starts
on the controller's bridge address.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.rig import APP_ROOT, load, on, playbook
from tests.support.flagservice import FlagService

pytestmark = pytest.mark.integration

BAD = "v1.3.0"
FLAG = "new_checkout"
FLAGS_FILE = "/etc/demo-app/flags.json"
AUDIT_LOG = "/var/log/sre-rollback/feature-flags.jsonl"
TOKEN = "l1-flag-service-token-8842"  # noqa: S105 - planted, to prove it never shows


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    prepared = playbook(testhosts.inventory, "demo-app.yml")
    assert prepared.rc == 0, prepared.out[-4000:]
    deployed = playbook(testhosts.inventory, "deploy.yml", "-e", f"release_tag={BAD}")
    assert deployed.rc == 0, deployed.out[-4000:]
    return testhosts


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"]


def urls(rig: Any) -> list[str]:
    return [f"http://{rig.addr(h)}:8080" for h in app_hosts(rig)]


def flag_in_file(rig: Any, host: str) -> dict[str, Any]:
    return dict(json.loads(on(rig, host, f"cat {FLAGS_FILE}"))["flags"][FLAG])


def set_flag_state(rig: Any, host: str, state: str) -> None:
    on(
        rig,
        host,
        "python3 - <<'EOF'\nimport json\np='" + FLAGS_FILE + "'\n"
        "d=json.load(open(p))\nd['flags']['" + FLAG + "']['state']='" + state + "'\n"
        "json.dump(d,open(p,'w'),indent=2)\nEOF",
    )


def evaluated(rig: Any, host: str) -> dict[str, Any]:
    out = on(rig, host, f"curl -s http://127.0.0.1:8080/flags/{FLAG}")
    return dict(json.loads(out))


def audit(rig: Any, host: str) -> list[dict[str, Any]]:
    text = on(rig, host, f"cat {AUDIT_LOG} 2>/dev/null || true")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def lock_state(rig: Any, host: str) -> str:
    return on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free")


def l1(rig: Any, *extra: str) -> Any:
    return playbook(rig.inventory, "rollback-l1.yml", "-e", f"feature_flag_names={FLAG}", *extra)


def test_bad_release_with_the_flag_on_fails_more_than_10_percent(rig: Any) -> None:
    for host in app_hosts(rig):
        set_flag_state(rig, host, "ENABLED")
        on(rig, host, "curl -s -X POST http://127.0.0.1:8080/cache/clear")
        assert evaluated(rig, host)["value"] is True
    summary = load(urls(rig), requests=120)
    assert summary["error_ratio"] > 0.10, summary


def test_unknown_flag_fails_before_any_change(rig: Any) -> None:
    before = {h: (flag_in_file(rig, h), len(audit(rig, h))) for h in app_hosts(rig)}
    run = playbook(rig.inventory, "rollback-l1.yml", "-e", f"feature_flag_names={FLAG},new_chekout")
    assert run.rc != 0
    assert "unknown flag 'new_chekout' (did you mean 'new_checkout'?)" in run.out
    assert "Nothing was changed" in run.out
    assert {h: (flag_in_file(rig, h), len(audit(rig, h))) for h in app_hosts(rig)} == before


def test_without_the_plan_pass_an_unknown_flag_still_changes_nothing(rig: Any) -> None:
    before = {h: flag_in_file(rig, h) for h in app_hosts(rig)}
    run = l1(
        rig, "-e", "feature_flag_names=new_checkout,new_chekout", "-e", "feature_flag_plan=false"
    )
    assert run.rc != 0 and "unknown flag 'new_chekout'" in run.out
    assert {h: flag_in_file(rig, h) for h in app_hosts(rig)} == before


def test_check_mode_shows_the_diff_and_changes_nothing(rig: Any) -> None:
    run = l1(rig, "--check")
    assert run.rc == 0, run.out[-4000:]
    assert re.search(r'^\+ +"state": "DISABLED"', run.out, re.MULTILINE), run.out[-3000:]
    for host in app_hosts(rig):
        assert flag_in_file(rig, host)["state"] == "ENABLED"


def test_a_host_locked_by_another_run_stops_the_level_before_any_change(rig: Any) -> None:
    locked = app_hosts(rig)[-1]
    owner = {
        "run_id": "deploy-in-progress",
        "user": "bob",
        "host": "ci7",
        "pid": "77",
        "action": "deploy",
    }
    on(rig, locked, f"echo '{json.dumps(owner)}' > {APP_ROOT}/.rollback.lock")
    try:
        run = l1(rig)
    finally:
        on(rig, locked, f"rm -f {APP_ROOT}/.rollback.lock")
    assert run.rc != 0
    assert "is locked by run deploy-in-progress by bob@ci7 (pid 77, deploy)" in run.out
    for host in app_hosts(rig):
        assert flag_in_file(rig, host)["state"] == "ENABLED", "no host was changed"


def test_level1_turns_the_flag_off_where_the_app_evaluates_it(rig: Any) -> None:
    reason = {"rollback_reason": "checkout errors", "rollback_incident": "INC-1001"}
    run = l1(rig, "-e", json.dumps(reason))
    assert run.rc == 0, run.out[-4000:]
    results = run.record["hosts"]
    for host in app_hosts(rig):
        assert flag_in_file(rig, host)["state"] == "DISABLED"
        answer = evaluated(rig, host)
        assert answer["reason"] == "DISABLED" and answer["value"] is False, answer
        entry = audit(rig, host)[-1]
        assert (entry["flag"], entry["before"], entry["after"]) == (FLAG, "enabled", "disabled")
        assert (entry["reason"], entry["incident"]) == ("checkout errors", "INC-1001")
        result = results[host]["result"]
        assert result["status"] == "ok" and result["evaluation"]["ok"] is True
        assert result["audit"][0]["incident"] == "INC-1001", "the audit entry is in the run record"
        assert (
            on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free") == "free"
        )
    assert run.seconds < 60, f"level 1 took {run.seconds:.1f} s (runbook budget: 1 min)"
    summary = load(urls(rig), requests=120)
    assert summary["error_ratio"] < 0.10, summary


def test_second_run_changes_nothing(rig: Any) -> None:
    lines = {h: len(audit(rig, h)) for h in app_hosts(rig)}
    run = l1(rig)
    assert run.rc == 0, run.out[-4000:]
    assert "changed=0" in run.out and "changed=1" not in run.out
    assert {h: len(audit(rig, h)) for h in app_hosts(rig)} == lines
    for host in app_hosts(rig):
        assert run.record["hosts"][host]["result"]["status"] == "unchanged"


@pytest.fixture
def flag_service(rig: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlagService]:
    """The flag service on the controller, on the rig's bridge address (hosts reach it)."""
    bridge = rig.addr("h1").rsplit(".", 1)[0] + ".1"
    monkeypatch.setenv("FEATURE_FLAG_TOKEN", TOKEN)
    with FlagService(bind=bridge, token=TOKEN, flags={FLAG: True, "dark_mode": True}) as service:
        yield service


def test_http_backend_against_a_real_flag_service(rig: Any, flag_service: FlagService) -> None:
    base = flag_service.url
    http = [
        "-e",
        "feature_flag_backend=http",
        "-e",
        "feature_flag_http_preset=unleash",
        "-e",
        f"feature_flag_http_base_url={base}",
        "-e",
        f"feature_flag_probe_url={base}/ofrep/v1/evaluate/flags/{{flag}}",
        "-e",
        "feature_flag_probe_method=POST",
        "-e",
        '{"feature_flag_probe_body": {"context": {}}}',
        "-e",
        "feature_flag_cache_clear=none",
    ]
    unknown = playbook(rig.inventory, "rollback-l1.yml", "-e", "feature_flag_names=nope", *http)
    assert unknown.rc != 0 and "unknown flag 'nope'" in unknown.out
    assert not [
        r for r in flag_service.requests if r["method"] == "POST" and "/environments/" in r["path"]
    ]

    run = l1(rig, *http)
    assert run.rc == 0, run.out[-4000:]
    assert flag_service.flags == {FLAG: False, "dark_mode": True}
    sets = [r for r in flag_service.requests if r["path"].endswith("/off")]
    assert len(sets) == 1, "the flag service is called once per run, not once per host"
    assert all(r["authorized"] for r in flag_service.requests if "/api/admin/" in r["path"])
    evaluations = [r for r in flag_service.requests if r["path"].startswith("/ofrep/")]
    assert len(evaluations) >= len(app_hosts(rig)), "every host evaluated the flag"
    assert TOKEN not in run.out and TOKEN not in json.dumps(run.record)
    again = l1(rig, *http)
    assert again.rc == 0 and "changed=0" in again.out and "changed=1" not in again.out
