"""The runbook's communication: templates from the policy rendered with a run's data, and
delivered to stdout, a file and a Slack-compatible webhook (a local HTTP server here)."""

from __future__ import annotations

import io
import json
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    TEMPLATE_FIELDS,
    Policy,
    default_policy,
    validate_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import Redactor
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import finalize
from rollbackctl.messages import (
    Notifier,
    message_context,
    notifier_for,
    record_messages,
    render,
    send_closing,
    send_escalation,
    send_start,
)

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


class Hook:
    """A webhook receiver on 127.0.0.1: records the JSON bodies it gets."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                hook.paths.append(self.path)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/services/s3cr3t-hook-path"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def policy_with(**communication: Any) -> Policy:
    return validate_policy({"communication": communication}, "test")


def context(policy: Policy | None = None, **changes: Any) -> Any:
    values: dict[str, Any] = {
        "level": 3,
        "reason": "v1.3.0 breaks checkout",
        "impact": "60% of users",
        "severity": "high",
        "environment": "prod",
        "lead": "alice",
        "now": NOW,
    }
    values.update(changes)
    return message_context(policy or default_policy(), **values)


def test_the_runbook_internal_message() -> None:
    policy = default_policy()
    text = render(policy.communication.templates["internal"], context(policy).fields())
    assert text == (
        "ROLLBACK INITIATED\n\nTime: 2026-11-29 10:00 UTC\nReason: v1.3.0 breaks checkout\n"
        "Impact: 60% of users\nLevel: 3 (code)\n"
        "ETA: 2026-11-29 10:15 UTC (within 15 minutes)\nLead: alice\n"
    )


def test_the_customer_message_says_the_level_budget() -> None:
    policy = default_policy()
    text = render(policy.communication.templates["customer"], context(policy, level=5).fields())
    assert "We expect normal service to resume within 1 hour." in text


def test_every_template_field_has_a_value() -> None:
    fields = context().fields()
    assert set(TEMPLATE_FIELDS) <= set(fields)
    assert all(fields[name] for name in TEMPLATE_FIELDS if name != "status_page_url")


def test_a_policy_template_with_every_placeholder() -> None:
    template = " ".join(f"{name}={{{name}}}" for name in TEMPLATE_FIELDS)
    policy = policy_with(templates={"internal": template}, status_page_url="https://st.example")
    text = render(policy.communication.templates["internal"], context(policy).fields())
    assert "severity=high" in text and "level_name=code" in text
    assert "environment=prod" in text and "status_page_url=https://st.example" in text
    assert "{" not in text


def test_an_unknown_placeholder_is_left_as_it_is() -> None:
    assert render("a {nope} b {lead}", {"lead": "x"}) == "a {nope} b x"


def test_lead_falls_back_to_the_policy() -> None:
    policy = policy_with(lead="on-call SRE")
    assert context(policy, lead="").lead == "on-call SRE"
    assert context(default_policy(), lead="").lead == "not named"


def test_stdout_and_file_channels(tmp_path: Path) -> None:
    stream = io.StringIO()
    log = tmp_path / "private" / "notifications.log"
    notifier = Notifier(stream=stream, file=log)
    send_start(notifier, default_policy(), context())
    notifier.send("closing", "ROLLBACK COMPLETED")
    assert "----- message: internal -----\nROLLBACK INITIATED" in stream.getvalue()
    text = log.read_text()
    assert (
        text.count("=== ") == 3 and "ROLLBACK INITIATED" in text and "we apologize" in text.lower()
    )
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    assert all(d.ok for m in notifier.sent for d in m.deliveries)


def test_relative_file_channel_is_relative_to_the_base_dir(tmp_path: Path) -> None:
    policy = policy_with(channels={"file": "logs/messages.log", "stdout": False})
    notifier = notifier_for(policy, stream=io.StringIO(), base_dir=tmp_path, environ={})
    notifier.send("internal", "hello")
    assert (tmp_path / "logs" / "messages.log").read_text().endswith("hello\n\n")
    assert notifier.stream is None


def test_webhook_gets_slack_json(hook: Hook) -> None:
    policy = policy_with(channels={"webhook_url_env": "ROLLBACK_WEBHOOK_URL", "stdout": False})
    notifier = notifier_for(policy, stream=None, environ={"ROLLBACK_WEBHOOK_URL": hook.url})
    send_start(notifier, policy, context(policy))
    assert [body["text"].splitlines()[0] for body in hook.bodies] == [
        "ROLLBACK INITIATED",
        "We are currently experiencing technical difficulties with our service.",
    ]
    assert set(hook.bodies[0]) == {"text"}
    delivery = notifier.sent[0].deliveries[0]
    assert delivery.ok and delivery.detail == "$ROLLBACK_WEBHOOK_URL"


def test_a_failing_webhook_is_reported_without_its_url() -> None:
    failing = Hook(status=500)
    try:
        notifier = Notifier(webhook_url=failing.url, webhook_env="HOOK")
        message = notifier.send("internal", "x")
    finally:
        failing.close()
    delivery = message.deliveries[0]
    assert not delivery.ok and delivery.detail == "webhook ($HOOK) answered HTTP 500"
    assert "s3cr3t" not in json.dumps(message.as_dict())


def test_an_unreachable_webhook_does_not_stop_anything() -> None:
    notifier = Notifier(webhook_url="http://127.0.0.1:9/s3cr3t", webhook_env="HOOK")
    delivery = notifier.send("internal", "x").deliveries[0]
    assert not delivery.ok and "unreachable" in delivery.detail and "s3cr3t" not in delivery.detail


def test_an_unset_webhook_variable_is_a_note_not_a_warning() -> None:
    """A webhook is optional: its variable unset means none is wanted here. No failed
    delivery, no warning; one note for the run record."""
    policy = policy_with(channels={"webhook_url_env": "ROLLBACK_WEBHOOK_URL", "stdout": False})
    notifier = notifier_for(policy, stream=None, environ={})
    send_start(notifier, policy, context(policy))
    notifier.send("closing", "done")
    assert notifier.unreported_failures() == []
    assert all(m.deliveries == [] for m in notifier.sent)
    note = "webhook: $ROLLBACK_WEBHOOK_URL is not set, no webhook messages were sent"
    assert notifier.notes() == [note]
    record: dict[str, Any] = {"notes": []}
    record_messages(record, notifier.sent, notifier.notes())
    record_messages(record, notifier.sent, notifier.notes())
    assert record["notes"] == [note], "said once"


def test_dry_run_renders_but_delivers_nothing(tmp_path: Path) -> None:
    notifier = Notifier(stream=io.StringIO(), file=tmp_path / "m.log", dry_run=True)
    sent = notifier.send("internal", "x")
    assert sent.deliveries == [] and not (tmp_path / "m.log").exists()


def test_secrets_are_masked_in_messages(hook: Hook) -> None:
    redactor = Redactor(["hunter22-secret"])
    notifier = Notifier(webhook_url=hook.url, webhook_env="HOOK", redactor=redactor)
    notifier.send("internal", "db password hunter22-secret leaked")
    assert hook.bodies[0]["text"] == "db password ******** leaked"


def test_escalation_message_names_both_levels() -> None:
    notifier = Notifier(stream=io.StringIO())
    sent = send_escalation(notifier, context(level=4), 3, "health gate failed on h2")
    assert sent.text.startswith("ROLLBACK ESCALATED\n")
    assert "From: 3 (code)\nTo: 4 (database)\nWhy: health gate failed on h2" in sent.text
    assert "(within 30 minutes)" in sent.text


def run_record(status: str) -> dict[str, Any]:
    return finalize(
        {
            "run_id": "r9",
            "level": 3,
            "status": status,
            "started": "2026-11-29T10:00:00Z",
            "finished": "2026-11-29T10:04:00Z",
            "given": {"detected": "2026-11-29T09:50:00Z"},
            "hosts": {
                "h2": {"status": "ok", "phases": {}},
                "h3": {"status": "failed", "phases": {}},
            },
            "tasks": [],
        }
    )


def test_closing_messages_after_success() -> None:
    notifier = Notifier(stream=io.StringIO())
    sent = send_closing(notifier, default_policy(), context(), run_record("ok"))
    assert [m.kind for m in sent] == ["closing", "customer_closing"]
    assert sent[0].text.startswith("ROLLBACK COMPLETED\n")
    assert "Duration: 4m\n" in sent[0].text and "Downtime: 14m\n" in sent[0].text
    assert "Report: rollbackctl report r9" in sent[0].text
    assert "Normal service has been restored." in sent[1].text


def test_closing_after_failure_tells_the_team_not_the_customers() -> None:
    notifier = Notifier(stream=io.StringIO())
    sent = send_closing(notifier, default_policy(), context(), run_record("failed"))
    assert [m.kind for m in sent] == ["closing"]
    assert sent[0].text.startswith("ROLLBACK FAILED\n")
    assert "Result: 1 host(s) ok, not ok: h3" in sent[0].text


def test_recorded_messages_tick_the_checklist() -> None:
    notifier = Notifier(stream=io.StringIO())
    send_start(notifier, default_policy(), context())
    rec = run_record("ok")
    record_messages(rec, notifier.sent)
    record_messages(rec, notifier.sent)  # the same messages twice are kept once
    assert [m["kind"] for m in rec["messages"]] == ["internal", "customer"]
    finalize(rec)
    notify = rec["checklist"]["pre"][2]
    assert notify["item"] == "Notify team members" and notify["state"] == "done"
