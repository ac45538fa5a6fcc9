"""The runbook's "Communication During Rollback": messages rendered from the policy's
templates and delivered to stdout, a file and/or a Slack-compatible webhook.

* ``internal`` (ROLLBACK INITIATED: time, reason, impact, level, ETA, lead) and
  ``customer`` come from the policy's ``communication.templates`` (placeholders:
  plugin_utils/policy/shape.py ``TEMPLATE_FIELDS``), sent when a rollback starts;
* ``escalation`` when a level's verification fails and the next level starts;
* ``closing`` (internal) and ``customer_closing`` when it ends;
* ``approval`` (a page) when an automatic trigger decided a level above what it may run
  without a person, and waits for ``rollbackctl approve``.

Delivery never stops a rollback: a channel that fails is reported, not raised. The
webhook URL is a secret: it is read from the environment variable the policy names
(``communication.channels.webhook_url_env``) and never printed or recorded.
"""

from __future__ import annotations

import json
import os
import string
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    LEVEL_NAMES,
    TEMPLATE_FIELDS,
    Policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import Redactor
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import (
    LEVEL_BUDGETS,
    human_duration,
    iso,
    utcnow,
)
from rollbackctl.project import private_dir

WEBHOOK_TIMEOUT = 5.0

ESCALATION_TEMPLATE = """ROLLBACK ESCALATED

Time: {time}
From: {from_level}
To: {level}
Why: {why}
Impact: {impact}
ETA: {eta}
Lead: {lead}
"""

CLOSING_TEMPLATE = """ROLLBACK {outcome}

Time: {time}
Reason: {reason}
Level: {level}
Result: {result}
Duration: {duration}
Downtime: {downtime}
Lead: {lead}
Report: {report}
"""

CUSTOMER_CLOSING_TEMPLATE = """Normal service has been restored.
Thank you for your patience, and we apologize for any inconvenience.
"""

APPROVAL_TEMPLATE = """ROLLBACK NEEDS APPROVAL

Time: {time}
Reason: {reason}
Decision: {decision}
Level: {level} (runs without a person up to level {max_level})
Impact: {impact}
Approve: {approve}
Lead: {lead}
"""

BUILT_IN = {
    "approval": APPROVAL_TEMPLATE,
    "escalation": ESCALATION_TEMPLATE,
    "closing": CLOSING_TEMPLATE,
    "customer_closing": CUSTOMER_CLOSING_TEMPLATE,
}
"""Messages the runbook has no template for. The policy schema (plugin_utils/policy/)
only takes ``internal`` and ``customer``; these are fixed until it takes more."""


# --------------------------------------------------------------------------------------------
# What a message says


@dataclass
class MessageContext:
    """The placeholders of the policy's templates (``TEMPLATE_FIELDS``) and a few more for
    the built-in escalation and closing messages."""

    time: str
    reason: str
    impact: str
    severity: str
    level: str
    level_name: str
    eta: str
    lead: str
    timeframe: str
    environment: str
    status_page_url: str
    extra: dict[str, str] = field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        values = {name: str(getattr(self, name)) for name in TEMPLATE_FIELDS}
        return {**values, **self.extra}


def clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def message_context(
    policy: Policy,
    *,
    level: int,
    reason: str,
    impact: str = "",
    severity: str = "",
    environment: str = "",
    lead: str = "",
    now: datetime | None = None,
    budget_seconds: float | None = None,
) -> MessageContext:
    """The context of a rollback at ``level`` starting ``now``; the ETA is the level's
    runbook budget (< 1 min ... < 1 h) unless another budget is given."""
    moment = now or utcnow()
    budget = budget_seconds if budget_seconds is not None else LEVEL_BUDGETS.get(level, 3600)
    return MessageContext(
        time=clock(moment),
        reason=reason or "not given",
        impact=impact or "being assessed",
        severity=severity or "not assessed",
        level=f"{level} ({LEVEL_NAMES.get(level, '?')})",
        level_name=LEVEL_NAMES.get(level, "?"),
        eta=f"{clock(moment + timedelta(seconds=budget))} (within {human_duration(budget)})",
        lead=lead or policy.communication.lead or "not named",
        timeframe=human_duration(budget),
        environment=environment or "unknown",
        status_page_url=policy.communication.status_page_url or "",
    )


class _Keep(dict[str, str]):
    """format_map that leaves an unknown ``{placeholder}`` as it is."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, fields: Mapping[str, str]) -> str:
    try:
        return string.Formatter().vformat(template, (), _Keep(fields))
    except (ValueError, IndexError):
        return template  # a template the policy check let through cannot break a rollback


def template_for(policy: Policy, kind: str) -> str:
    if kind in policy.communication.templates:
        return policy.communication.templates[kind]
    return BUILT_IN[kind]


# --------------------------------------------------------------------------------------------
# Where it goes


@dataclass
class Delivery:
    channel: str  # stdout | file | webhook
    ok: bool
    detail: str = ""


@dataclass
class SentMessage:
    kind: str
    at: str
    text: str
    deliveries: list[Delivery]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Notifier:
    """Sends messages to the channels a policy turns on; keeps what it sent."""

    def __init__(
        self,
        *,
        stream: TextIO | None = None,
        file: Path | None = None,
        webhook_url: str | None = None,
        webhook_env: str | None = None,
        dry_run: bool = False,
        redactor: Redactor | None = None,
    ) -> None:
        self.stream = stream
        self.redactor = redactor or Redactor()
        self.file = file
        self.webhook_url = webhook_url
        self.webhook_env = webhook_env
        self.dry_run = dry_run
        self.sent: list[SentMessage] = []
        self.reported: set[str] = set()

    def unreported_failures(self) -> list[str]:
        """Delivery problems not reported yet, each once (an unset webhook variable is
        reported once, not for every message)."""
        fresh = []
        for message in self.sent:
            for delivery in message.deliveries:
                key = f"{delivery.channel}: {delivery.detail}"
                if not delivery.ok and key not in self.reported:
                    self.reported.add(key)
                    fresh.append(f"{message.kind} message via {key}")
        return fresh

    def send(self, kind: str, text: str) -> SentMessage:
        text = self.redactor.text(text)
        deliveries = [] if self.dry_run else self._deliver(kind, text)
        message = SentMessage(kind, iso(utcnow()) or "", text, deliveries)
        self.sent.append(message)
        return message

    def _deliver(self, kind: str, text: str) -> list[Delivery]:
        deliveries = []
        if self.stream is not None:
            deliveries.append(self._to_stream(kind, text))
        if self.file is not None:
            deliveries.append(self._to_file(kind, text))
        if self.webhook_env and self.webhook_url:
            deliveries.append(self._to_webhook(text))
        return deliveries

    def notes(self) -> list[str]:
        """What the run should know about its channels, at info level: a webhook the policy
        names but whose variable is not set is not wanted here, not a failed delivery."""
        if self.webhook_env and not self.webhook_url and not self.dry_run:
            return [f"webhook: ${self.webhook_env} is not set, no webhook messages were sent"]
        return []

    def _to_stream(self, kind: str, text: str) -> Delivery:
        assert self.stream is not None
        banner = f"----- message: {kind} -----"
        self.stream.write(f"{banner}\n{text.rstrip()}\n{'-' * len(banner)}\n")
        self.stream.flush()
        return Delivery("stdout", True)

    def _to_file(self, kind: str, text: str) -> Delivery:
        assert self.file is not None
        try:
            private_dir(self.file.parent)
            fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(f"=== {iso(utcnow())} {kind}\n{text.rstrip()}\n\n")
        except OSError as error:
            return Delivery("file", False, f"{self.file}: {error.strerror}")
        return Delivery("file", True, str(self.file))

    def _to_webhook(self, text: str) -> Delivery:
        name = self.webhook_env
        url = self.webhook_url or ""
        if not url.startswith(("http://", "https://")):
            return Delivery("webhook", False, f"${name} is not an http(s) URL")
        return post_webhook(url, text, name or "webhook")


def post_webhook(url: str, text: str, name: str) -> Delivery:
    """POST ``{"text": ...}`` (Slack-compatible). Errors name the variable, not the URL."""
    body = json.dumps({"text": text}).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as error:
        return Delivery("webhook", False, f"webhook (${name}) answered HTTP {error.code}")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Delivery("webhook", False, f"webhook (${name}) unreachable: {type(reason).__name__}")
    if not 200 <= status < 300:
        return Delivery("webhook", False, f"webhook (${name}) answered HTTP {status}")
    return Delivery("webhook", True, f"${name}")


def notifier_for(
    policy: Policy,
    *,
    stream: TextIO | None,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    dry_run: bool = False,
    redactor: Redactor | None = None,
) -> Notifier:
    """The channels the policy turns on: stdout (to ``stream``), a file (relative to
    ``base_dir``, the working directory by default), the webhook named by
    ``webhook_url_env``."""
    channels = policy.communication.channels
    environ = os.environ if environ is None else environ
    file = None
    if channels.file:
        file = Path(channels.file).expanduser()
        if not file.is_absolute():
            file = (base_dir or Path.cwd()) / file
    env_name = channels.webhook_url_env
    url = environ.get(env_name) if env_name else None
    if redactor is not None and url:
        redactor.add([url])
    return Notifier(
        stream=stream if channels.stdout else None,
        file=file,
        webhook_url=url,
        webhook_env=env_name,
        dry_run=dry_run,
        redactor=redactor,
    )


# --------------------------------------------------------------------------------------------
# The messages of a rollback


def send_start(notifier: Notifier, policy: Policy, context: MessageContext) -> list[SentMessage]:
    """ROLLBACK INITIATED (internal) and the customer message."""
    fields = context.fields()
    return [
        notifier.send(kind, render(template_for(policy, kind), fields))
        for kind in ("internal", "customer")
    ]


def send_escalation(
    notifier: Notifier, context: MessageContext, from_level: int, why: str
) -> SentMessage:
    context.extra.update(
        {"from_level": f"{from_level} ({LEVEL_NAMES.get(from_level, '?')})", "why": why}
    )
    return notifier.send("escalation", render(ESCALATION_TEMPLATE, context.fields()))


def send_approval_request(
    notifier: Notifier, context: MessageContext, decision: str, max_level: int, approve: str
) -> SentMessage:
    """The page: a trigger decided a level above ``max_level``; ``approve`` is the command
    that lets it run."""
    context.extra.update({"decision": decision, "max_level": str(max_level), "approve": approve})
    return notifier.send("approval", render(APPROVAL_TEMPLATE, context.fields()))


def send_closing(
    notifier: Notifier, policy: Policy, context: MessageContext, record: Mapping[str, Any]
) -> list[SentMessage]:
    """The internal closing message, and the customer one when service is restored."""
    status = str(record.get("status"))
    metrics = record.get("metrics") or {}
    hosts = record.get("hosts") or {}
    failed = sorted(h for h, v in hosts.items() if v.get("status") != "ok")
    context.extra.update(
        {
            "outcome": {"ok": "COMPLETED", "canceled": "CANCELED"}.get(status, "FAILED"),
            "result": f"{len(hosts) - len(failed)} host(s) ok"
            + (f", not ok: {', '.join(failed)}" if failed else ""),
            "duration": (metrics.get("time_to_rollback") or {}).get("text", "unknown"),
            "downtime": (metrics.get("total_downtime") or {}).get("text", "unknown"),
            "report": f"rollbackctl report {record.get('run_id')}",
        }
    )
    sent = [notifier.send("closing", render(CLOSING_TEMPLATE, context.fields()))]
    if status == "ok":
        sent.append(
            notifier.send("customer_closing", render(CUSTOMER_CLOSING_TEMPLATE, context.fields()))
        )
    return sent


def record_messages(
    record: dict[str, Any], sent: list[SentMessage], notes: list[str] | None = None
) -> None:
    """Add the messages to the run record (the checklist reads them), and the notifier's
    ``notes`` once to the record's notes."""
    known = {(m.get("kind"), m.get("at")) for m in record.get("messages") or []}
    for message in sent:
        if (message.kind, message.at) not in known:
            record.setdefault("messages", []).append(message.as_dict())
    for line in notes or []:
        if line not in (record.get("notes") or []):
            record.setdefault("notes", []).append(line)
