"""drill-flag, everything is back after level 1 (rollbackctl run --level 1 --target
new_checkout): the flag is off in the flags file and where the app evaluates it, the change
is in the audit log, the release is untouched, no order was lost, the error ratio is under
the trigger."""

from __future__ import annotations

import json

from conftest import APP_ROOT, CONFIG_DIR, check_error_ratio, check_writes, flag, health


def test_flag_is_off_where_it_is_evaluated(drill):
    for name in drill.app:
        host = drill.host(name)
        flags = json.loads(host.file(f"{CONFIG_DIR}/flags.json").content_string)
        assert flags["flags"]["new_checkout"]["state"] == "DISABLED", name
        answer = flag(host, "new_checkout")
        assert answer.get("value") is not True, f"{name}: {answer}"


def test_change_is_audited(drill):
    for name in drill.app:
        audit = drill.host(name).file("/var/log/sre-rollback/feature-flags.jsonl").content_string
        assert "new_checkout" in audit and drill.run_dir.name in audit, f"{name}: {audit[-400:]}"


def test_release_untouched_and_healthy(drill):
    before = drill.baseline("release")
    for name in drill.app:
        host = drill.host(name)
        assert host.file(f"{APP_ROOT}/current").linked_to == before[name], name
        code, body = health(host)
        assert code == 200 and body.get("status") == "ok", f"{name}: {code} {body}"


def test_error_ratio_under_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=False)


def test_no_acknowledged_write_lost(drill, note):
    check_writes(drill, note, restored=False)
