"""`rollbackctl validate` (playbooks/validate.yml) on real hosts: valid on a healthy rig
with one release everywhere (releases, /health, the demo app's check-config, the database
on h1), invalid naming the host that runs another release."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rollbackctl.cli import main
from tests.conftest import REPO
from tests.integration.rig import current, playbook

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

STABLE, OLDER = "v1.2.3-stable", "v1.2.2-stable"


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    prepared = playbook(testhosts.inventory, "demo-app.yml")
    assert prepared.rc == 0, prepared.out[-4000:]
    deployed = playbook(testhosts.inventory, "deploy.yml", "-e", f"release_tag={STABLE}")
    assert deployed.rc == 0, deployed.out[-4000:]
    return testhosts


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"] or list(rig.hosts)


def validate(rig: Any, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["validate", "-i", str(rig.inventory), "--project-dir", str(REPO), *args],
        catch_exceptions=False,
    )


def test_a_healthy_rig_is_valid(rig: Any) -> None:
    result = validate(rig, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["release"] == STABLE
    rows = {row["host"]: row for row in report["hosts"]}
    assert set(rows) == set(app_hosts(rig))
    for row in rows.values():
        assert row["release"] == STABLE and row["release_consistent"] is True
        assert (row["health"], row["config"], row["database"]) == ("ok", "ok", "ok"), row
    table = validate(rig)
    assert table.exit_code == 0, table.output
    assert STABLE in table.output and "INVALID" not in table.output


def test_a_host_on_another_release_is_named(rig: Any) -> None:
    odd = app_hosts(rig)[-1]
    deployed = playbook(rig.inventory, "deploy.yml", "-e", f"release_tag={OLDER}", "--limit", odd)
    assert deployed.rc == 0, deployed.out[-4000:]
    assert OLDER in current(rig, odd)
    result = validate(rig)
    assert result.exit_code == 1, result.output
    assert f"releases differ: {odd} not on" in result.output, result.output
    report = json.loads(validate(rig, "--json").stdout)
    rows = {row["host"]: row for row in report["hosts"]}
    assert rows[odd]["release"] == OLDER and rows[odd]["release_consistent"] is False
    assert rows[odd]["health"] == "ok", "the odd host is healthy, only its release differs"
