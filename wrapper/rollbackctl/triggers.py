"""The trigger commands' library: render the policy's rules for Prometheus and Alertmanager,
and replay the rules over a past window (a series file, or Prometheus' range queries).

The rules, their evaluation and the decision are the collection's
(``plugin_utils/triggers.py``, ``plugin_utils/trigger_series.py``, ``policy.decide``);
this module reads files, talks HTTP and formats."""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import Policy
from ansible_collections.sre.rollback.plugins.plugin_utils.trigger_series import (
    evaluation_times,
    parse_openmetrics,
    replay,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import (
    Labels,
    Rule,
    build_rules,
    render_alertmanager,
    render_rules,
)

RULES_FILE = "sre-rollback-rules.yml"
ALERTMANAGER_FILE = "alertmanager-sre-rollback.yml"
DEFAULT_WEBHOOK = "http://127.0.0.1:9095/alerts"
HTTP_TIMEOUT = 10.0


class TriggerInputError(ValueError):
    """Bad input to render or replay (a time, a file, a Prometheus that does not answer)."""


def rendered_files(policy: Policy, webhook_url: str = DEFAULT_WEBHOOK) -> dict[str, str]:
    """File name -> YAML text: the Prometheus rule file and the Alertmanager snippet."""
    rules = build_rules(policy)
    header = f"# Rendered by `rollbackctl triggers render` from {policy.source}; do not edit.\n"
    return {
        RULES_FILE: header + _yaml(render_rules(policy, rules)),
        ALERTMANAGER_FILE: header
        + "# Merge the route under your route's `routes:` and add the receiver.\n"
        + _yaml(render_alertmanager(policy, webhook_url)),
    }


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)


def write_rendered(files: dict[str, str], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def parse_time(value: str) -> float:
    """Unix seconds, or an ISO 8601 time (UTC when it has no offset)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TriggerInputError(
            f"{value!r} is not a time: give Unix seconds or ISO 8601 (2024-01-15T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


ValuesAt = Callable[[Rule, float], dict[Labels, float]]


def series_source(path: Path) -> ValuesAt:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TriggerInputError(f"{path}: cannot read: {error.strerror}") from None
    try:
        samples = parse_openmetrics(text, str(path))
    except ValueError as error:
        raise TriggerInputError(str(error)) from None
    return lambda rule, at: rule.values(samples, at)


def prometheus_source(url: str, start: float, end: float, rules: list[Rule]) -> ValuesAt:
    """Every rule's value at every evaluation, from Prometheus' range queries."""
    tables: dict[str, dict[float, dict[Labels, float]]] = {}
    for rule in rules:
        data = query_prometheus(
            url,
            "query_range",
            {"query": rule.value_expr(), "start": start, "end": end, "step": rule.interval},
        )
        table: dict[float, dict[Labels, float]] = {}
        for series in data.get("result", []):
            group = group_of(rule, series["metric"])
            for timestamp, value in series.get("values", []):
                table.setdefault(float(timestamp), {})[group] = float(value)
        tables[rule.name] = table
    return lambda rule, at: tables[rule.name].get(at, {})


def group_of(rule: Rule, metric: dict[str, str]) -> Labels:
    """The rule's group (its ``by`` labels) of a series Prometheus answered."""
    return tuple(sorted((k, v) for k, v in metric.items() if k in rule.group_by))


def instant_values(url: str, rule: Rule, at: float) -> dict[Labels, float]:
    """The rule's value per group at ``at``: one instant query."""
    data = query_prometheus(url, "query", {"query": rule.value_expr(), "time": f"{at:.3f}"})
    return {
        group_of(rule, series["metric"]): float(series["value"][1])
        for series in data.get("result", [])
    }


def query_prometheus(url: str, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
    """One call of Prometheus' HTTP API; its ``data``, or TriggerInputError saying why not."""
    address = f"{url.rstrip('/')}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
    if not address.startswith(("http://", "https://")):
        raise TriggerInputError(f"{url!r} is not an http(s):// URL of a Prometheus server")
    try:
        with urllib.request.urlopen(address, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            payload = json.load(response)
    except (OSError, ValueError) as error:
        raise TriggerInputError(f"Prometheus at {url} did not answer: {error}") from None
    if payload.get("status") != "success":
        raise TriggerInputError(f"Prometheus at {url}: {payload.get('error', payload)}")
    data: dict[str, Any] = payload["data"]
    return data


def run_replay(policy: Policy, start: float, end: float, source: str, where: str) -> dict[str, Any]:
    """The timeline of every enabled rule from ``start`` to ``end``; ``source`` is
    ``series`` (``where`` a file) or ``prometheus`` (``where`` its URL)."""
    if end < start:
        raise TriggerInputError("--to is before --from")
    rules = build_rules(policy)
    interval = policy.triggers.evaluation_interval_seconds
    values_at = (
        series_source(Path(where))
        if source == "series"
        else prometheus_source(where, start, end, rules)
    )
    return replay(policy, rules, evaluation_times(start, end, interval), values_at)


def format_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timeline_lines(result: dict[str, Any]) -> list[str]:
    """The replay as text: one line per event, then what fired and what it would run."""
    lines = []
    for entry in result["timeline"]:
        group = ",".join(f"{k}={v}" for k, v in entry["group"].items()) or "-"
        value = entry["value"]
        shown = "" if value is None or math.isnan(value) else f" value={value:.4g}"
        line = f"{format_time(entry['at'])}  {entry['rule']:<22} {group:<28} {entry['kind']:<13}"
        line += f" {entry['message']}{shown}"
        if entry["kind"] == "firing":
            decision = entry["decision"]
            line += f" -> level {decision['start_level']} ({decision['summary']})"
        lines.append(line)
    fired = sum(len(entries) for entries in result["fired"].values())
    lines.append(f"{fired} firing event(s) from {format_time(result['from'])} to "
                 f"{format_time(result['to'])}, every {result['interval']}s; policy: "
                 f"{result['policy']}")  # fmt: skip
    return lines
