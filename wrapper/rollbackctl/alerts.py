"""``rollbackctl alerts serve``: an Alertmanager webhook receiver (payload version 4) that
feeds firing alerts of the rendered rules to ``trigger_action``, the path ``watch`` uses.

- Only alerts of the rendered rules count (``source="sre.rollback"``, not the ``info``
  no-data notices); an alert is the same firing again when its fingerprint and
  ``startsAt`` are (Alertmanager repeats a group every ``repeat_interval``): idempotent,
  also across restarts (the state file keeps the keys).
- A resolved alert never starts a rollback; it is logged.
- ``startsAt`` is when Prometheus fired the alert (detection); the condition began the
  rule's ``for`` before that.
- The HTTP thread only parses and queues; the main thread acts (a level runs there, with
  its signal handling), and runs what ``rollbackctl approve`` let through.
- Binds to loopback by default: whoever can post here can start a rollback.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rich.console import Console

from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import SOURCE_LABEL, Rule
from rollbackctl.trigger_action import Firing, TriggerActions, Verdict

DEFAULT_LISTEN = "127.0.0.1:9095"
PATH = "/alerts"
MAX_BODY = 1 << 20
# Labels the rendered rules add; what is left names the alert's group (job, instance).
RULE_LABELS = {
    "alertname",
    "source",
    "rule",
    "service",
    "severity",
    "rollback_action",
    "rollback_level",
    "rollback_levels",
}


class PayloadError(ValueError):
    """Not an Alertmanager webhook payload of version 4."""


@dataclass(frozen=True)
class Received:
    """What one alert of a payload is to the receiver: a firing, or why not."""

    firing: Firing | None
    note: str


def parse_time(text: str) -> float:
    """Alertmanager's RFC 3339 time (nanoseconds allowed) as Unix seconds."""
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(trimmed).timestamp()
    except ValueError:
        raise PayloadError(f"not an RFC 3339 time: {text!r}") from None


def read_payload(body: bytes, rules: Mapping[str, Rule]) -> list[Received]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise PayloadError("the body is not JSON") from None
    if not isinstance(payload, dict) or str(payload.get("version")) != "4":
        raise PayloadError('not an Alertmanager webhook payload of version "4"')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("the payload has no alerts list")
    return [received(alert, rules) for alert in alerts if isinstance(alert, dict)]


def received(alert: Mapping[str, Any], rules: Mapping[str, Rule]) -> Received:
    labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
    name = labels.get("alertname", "?")
    if labels.get("source") != SOURCE_LABEL or labels.get("severity") == "info":
        return Received(None, f"{name}: not a trigger of sre.rollback: ignored")
    starts = parse_time(str(alert.get("startsAt") or ""))
    if alert.get("status") != "firing":
        return Received(None, f"{name}: {alert.get('status')}: a resolved alert never runs")
    rule = rules.get(labels.get("rule", ""))
    fingerprint = str(alert.get("fingerprint") or "") or _fingerprint(labels)
    group = {k: v for k, v in labels.items() if k not in RULE_LABELS}
    firing = Firing(
        rule=labels.get("rule", "?"),
        service=labels.get("service", "?"),
        group=group,
        condition_since=starts - (rule.for_seconds if rule else 0),
        fired_at=starts,
        value=None,
        source="alertmanager",
        key=f"alertmanager|{fingerprint}|{alert.get('startsAt')}",
    )
    return Received(firing, f"{name}: firing since {alert.get('startsAt')}")


def _fingerprint(labels: Mapping[str, str]) -> str:
    text = json.dumps(sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Receiver:
    """The HTTP side: parses payloads and queues what they hold."""

    def __init__(self, listen: str, rules: Mapping[str, Rule]) -> None:
        host, _, port = listen.rpartition(":")
        self.rules = rules
        self.queue: queue.Queue[Received] = queue.Queue()
        self.server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{PATH}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.split("?")[0] != PATH:
                    self._answer(404, f"post Alertmanager's webhook to {PATH}")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._answer(413, "payload too large")
                    return
                try:
                    items = read_payload(self.rfile.read(length), receiver.rules)
                except PayloadError as error:
                    self._answer(400, str(error))
                    return
                for item in items:
                    receiver.queue.put(item)
                self._answer(200, f"{len(items)} alert(s) received")

            def _answer(self, code: int, text: str) -> None:
                body = json.dumps({"status": code, "message": text}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the receiver says what it did with each alert instead."""

        return Handler


def serve(
    actions: TriggerActions,
    receiver: Receiver,
    console: Console,
    stop: threading.Event,
    poll: float = 1.0,
) -> list[Verdict]:
    """Act on what arrives until ``stop`` is set and what arrived before is done; every
    verdict is printed and returned."""
    verdicts: list[Verdict] = []

    def say(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True)

    while True:
        draining = stop.is_set()  # stopped: what arrived before is still acted on
        try:
            item: Received | None = receiver.queue.get(timeout=0 if draining else poll)
        except queue.Empty:
            item = None
        if item is not None:
            if item.firing is None:
                say(item.note)
            else:
                verdict = actions.handle(item.firing)
                verdicts.append(verdict)
                say(verdict.line())
        for verdict in actions.run_approved():
            verdicts.append(verdict)
            say(verdict.line())
        if draining and item is None:
            break
    return verdicts
