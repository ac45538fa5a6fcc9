"""The collection's Event-Driven Ansible content without a JVM: the rulebooks against
ansible-rulebook's own JSON schema and parser, the AWX variant equal to the playbook one but
for its action, the extra vars the levels accept, and the Alertmanager source plugin over
HTTP on loopback with the recorded payloads (tests/eda/payloads, from a real Alertmanager).
The real ansible-rulebook run is in test_eda_ansible_rulebook.py."""

from __future__ import annotations

import asyncio
import copy
import importlib.resources
import json
import re
import runpy
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import COLLECTION, REPO, VENV_BIN
from tests.support.rulebook import payload_bytes

EDA = COLLECTION / "extensions" / "eda"
RULEBOOK = EDA / "rulebooks" / "alertmanager_rollback.yml"
AWX_RULEBOOK = EDA / "rulebooks" / "alertmanager_rollback_awx.yml"
SOURCE_PLUGIN = EDA / "plugins" / "event_source" / "alertmanager.py"


def load(path: Path) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text())


def payload(name: str) -> dict[str, Any]:
    return json.loads(payload_bytes(name))


def run_rule(rulebook: list[dict[str, Any]]) -> dict[str, Any]:
    return rulebook[0]["rules"][0]


def passed_extra_vars(rule: dict[str, Any]) -> dict[str, Any]:
    action = rule["action"]
    if "run_playbook" in action:
        return action["run_playbook"]["extra_vars"]
    return action["run_job_template"]["job_args"]["extra_vars"]


@pytest.mark.parametrize("path", [RULEBOOK, AWX_RULEBOOK], ids=lambda p: p.name)
def test_rulebook_is_valid_for_ansible_rulebooks_schema(path: Path) -> None:
    schema_file = importlib.resources.files("ansible_rulebook") / "schema/ruleset_schema.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(load(path), schema)
    broken = copy.deepcopy(load(path))
    broken[0]["rules"][0]["throttle"]["once_within"] = "15m"  # not ansible-rulebook's form
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@pytest.mark.parametrize("path", [RULEBOOK, AWX_RULEBOOK], ids=lambda p: p.name)
def test_rulebook_parses_with_ansible_rulebooks_parser(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its parser reads the conditions (ansible-rulebook's condition language) and finds
    the source plugin in the collection (through ansible-galaxy, as ansible-rulebook does)."""
    from ansible_rulebook import rules_parser
    from ansible_rulebook.conf import settings

    galaxy = shutil.which("ansible-galaxy", path=str(VENV_BIN))
    monkeypatch.setattr(settings, "ansible_galaxy_path", galaxy)
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(REPO / "collections"))
    (ruleset,) = rules_parser.parse_rule_sets(load(path))
    assert ruleset.sources[0].source_name == "sre.rollback.alertmanager"
    run, explain = ruleset.rules
    assert run.throttle.once_within == "15 minutes"
    assert run.throttle.group_by_attributes == [
        "event.alert.labels.service",
        "event.alert.labels.rollback_level",
    ]
    assert "not in" in str(explain.condition) and "'info'" in str(explain.condition)


def test_awx_rulebook_is_the_playbook_rulebook_but_for_the_action() -> None:
    playbook, awx = load(RULEBOOK), load(AWX_RULEBOOK)
    assert playbook[0]["sources"] == awx[0]["sources"]
    for ours, theirs in zip(playbook[0]["rules"], awx[0]["rules"], strict=True):
        assert {k: v for k, v in ours.items() if k != "action"} == {
            k: v for k, v in theirs.items() if k != "action"
        }
    assert passed_extra_vars(run_rule(playbook)) == passed_extra_vars(run_rule(awx))
    assert run_rule(awx)["action"]["run_job_template"]["name"].endswith(
        "{{ event.alert.labels.rollback_level }}"
    )


def test_extra_vars_are_what_the_levels_read() -> None:
    """Every variable passed to a level is one its roles or the run record read: the roles'
    argument specs (``rollback_reason | default``...) or the run_record callback's operator
    facts; a misspelt one would be silently ignored by the level."""
    from ansible_collections.sre.rollback.plugins.callback import run_record

    read_by_roles = set()
    for spec in (COLLECTION / "roles").glob("*/meta/argument_specs.yml"):
        read_by_roles |= set(re.findall(r"\b(rollback_\w+)\s*\|\s*default", spec.read_text()))
    read_by_record = set(re.findall(r"C\((rollback_\w+)\)", run_record.DOCUMENTATION))
    read_by_record |= set(run_record.GIVEN_TIMES.values()) | set(run_record.GIVEN_VALUES.values())
    passed = set(passed_extra_vars(run_rule(load(RULEBOOK))))
    assert {"rollback_reason", "rollback_incident"} <= read_by_roles
    assert passed - (read_by_roles | read_by_record) == set()
    playbook = run_rule(load(RULEBOOK))["action"]["run_playbook"]["name"]
    levels = run_rule(load(RULEBOOK))["condition"].split(" in ")[-1]
    for level in json.loads(levels):
        rendered = playbook.replace("{{ rollback_playbook_dir | default('playbooks') }}", "")
        rendered = rendered.replace("{{ event.alert.labels.rollback_level }}", level)
        assert (REPO / "playbooks" / rendered.lstrip("/")).is_file(), rendered


# --- the source plugin, loaded the way ansible-rulebook loads it (runpy)


@pytest.fixture(scope="module")
def plugin() -> dict[str, Any]:
    return runpy.run_path(str(SOURCE_PLUGIN))


def test_plugin_documents_itself(plugin: dict[str, Any]) -> None:
    doc = yaml.safe_load(plugin["DOCUMENTATION"])
    assert set(doc["options"]) == {"host", "port", "token"}
    assert doc["options"]["host"]["default"] == "127.0.0.1"
    examples = yaml.safe_load(plugin["EXAMPLES"])
    assert all("sre.rollback.alertmanager" in example for example in examples)


def test_one_event_per_alert_of_a_recorded_payload(plugin: dict[str, Any]) -> None:
    recorded = payload("health_core_api_h2_h3_firing")
    events = plugin["alert_events"](recorded, "alerts")
    assert [e["alert"]["labels"]["instance"] for e in events] == ["h2:8080", "h3:8080"]
    assert events[0]["alert"] == recorded["alerts"][0]  # unchanged
    assert events[0]["alertmanager"]["groupKey"] == recorded["groupKey"]
    assert events[0]["meta"] == {"endpoint": "alerts"}  # no hosts (no --limit), no headers


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "not a JSON object"),
        ({**payload("error_rate_core_api_firing"), "version": "3"}, "version '3'"),
        ({"version": "4"}, "no 'alerts' list"),
        ({"version": "4", "alerts": [{"labels": {}}]}, "alerts[0] is not an alert"),
    ],
)
def test_a_payload_that_is_not_version_4_is_refused(
    plugin: dict[str, Any], body: Any, says: str
) -> None:
    with pytest.raises(plugin["BadPayload"], match=re.escape(says)):
        plugin["alert_events"](body, "alerts")


def test_plugin_over_http(plugin: dict[str, Any]) -> None:
    async def scenario() -> tuple[list[tuple[int, str]], list[dict[str, Any]]]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        answers = []
        async with TestClient(TestServer(plugin["make_app"](queue, "s3cret"))) as client:
            firing = payload("health_core_api_h2_h3_firing")
            bearer = {"Authorization": "Bearer s3cret"}
            for body, headers in (
                (json.dumps(firing), {}),  # no token
                (json.dumps(firing), {"Authorization": "Bearer wrong"}),
                ("{not json", bearer),
                (json.dumps({**firing, "version": "3"}), bearer),
                (json.dumps(firing), bearer),
            ):
                response = await client.post("/alerts", data=body, headers=headers)
                answers.append((response.status, await response.text()))
            status = await client.get("/")
            answers.append((status.status, await status.text()))
        return answers, [queue.get_nowait() for _ in range(queue.qsize())]

    answers, queued = asyncio.run(scenario())
    assert [status for status, _ in answers] == [401, 401, 400, 400, 202, 200]
    assert "bearer token" in answers[0][1]
    assert answers[4][1] == "queued 2 alert(s)"
    assert len(queued) == 2  # refused bodies queued nothing
    assert "s3cret" not in json.dumps(queued)
