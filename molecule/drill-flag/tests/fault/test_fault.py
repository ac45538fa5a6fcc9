"""drill-flag, the fault is visible: new_checkout evaluates on where the app evaluates it,
and checkouts fail above the policy's error-rate trigger."""

from __future__ import annotations

from conftest import APP_ROOT, check_error_ratio, flag


def test_flag_is_on(drill, note):
    for name in drill.app:
        assert flag(drill.host(name), "new_checkout")["value"] is True, name
    note["release"] = {n: drill.host(n).file(f"{APP_ROOT}/current").linked_to for n in drill.app}


def test_error_ratio_above_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=True)
