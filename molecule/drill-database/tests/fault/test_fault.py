"""drill-database, the fault is visible: the app's own integrity check fails on the damaged
prices (orders no longer match their items)."""

from __future__ import annotations

from conftest import CONFIG_DIR, DEMO_APP, run_json


def test_db_validate_fails_on_damaged_prices(drill, note):
    host = drill.host(drill.app[0])
    result = host.run(f"{DEMO_APP} db validate --config-dir {CONFIG_DIR}")
    assert result.rc == 1, result.stdout
    info = run_json(host, f"{DEMO_APP} db info --config-dir {CONFIG_DIR}")
    note["schema"] = info["current"]
    note["validate"] = result.stdout[-1000:]
    assert '"order_totals_match_prices"' in result.stdout
