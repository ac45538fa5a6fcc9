"""drill-config, the fault is visible: the bad app.ini is live, the pool is exhausted,
/health fails and requests fail above the policy's error-rate trigger."""

from __future__ import annotations

from conftest import CONFIG_DIR, check_error_ratio, health


def test_bad_config_is_live_and_health_fails(drill, note):
    codes = {}
    for name in drill.app:
        host = drill.host(name)
        assert "hold_connections = 5" in host.file(f"{CONFIG_DIR}/app.ini").content_string, name
        codes[name], body = health(host)
        assert codes[name] == 503, f"{name}: /health {codes[name]} {body}"
    note["health"] = codes


def test_error_ratio_above_trigger(drill, policy, note):
    check_error_ratio(drill, policy, note, fault=True, requests=24)  # each waits 2 s for the pool
