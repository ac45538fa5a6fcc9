# GPL-3.0-or-later
"""The runbook's automatic rollback triggers: one definition of each rule, read from the
policy's ``triggers`` section, and the evaluator that decides when a rule fires.

Each ``Rule`` carries everything about one trigger: the metric (a PromQL expression over the
demo app's ``/metrics``, and the same computation in Python over raw samples), the
comparison and threshold, the window and its semantics, the no-data policy, and the incident
it declares (severity, impact, time to fix) that ``policy.decide`` turns into levels. The
Prometheus alerting rules (``render_rules``), our own evaluator (``Evaluator``, used by
``rollbackctl replay`` and ``watch``) and the ``promtool test rules`` files the tests
generate are all made from it.

Semantics (the README's truth table says the same):

- *sustained*: the condition holds at every evaluation for the whole window (Prometheus'
  ``for:``); the first evaluation where it holds starts the window (pending), it fires at
  the first evaluation at least ``for`` after that. One evaluation where it does not hold
  resets the window.
- *consecutive*: more than N checks in a row fail; one check per evaluation, so the rule is
  a window of N evaluation intervals (``for: N * interval``): it fires at the (N+1)th
  failing evaluation in a row.
- *instant*: fires at the first evaluation where the condition holds (``for: 0s``).
- Once firing, a rule keeps firing for ``keep_firing_for`` (two evaluation intervals) after
  its condition stops holding: one good sample or one gap does not resolve it and restart a
  new window (flapping).
- No data (no sample within the lookback, a stale series after a failed scrape): the
  condition does not hold, so a gap never fires and never counts towards a window; with the
  ``reset`` policy a pending window starts again once data is back, and the evaluator says
  "window reset: no data" (Prometheus: the rule's ``...NoData`` alert, e.g.
  ``RollbackErrorRateNoData``). ``NaN`` (no
  requests at all in the rate window) is data that does not hold.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    Policy,
    TriggerAction,
    decide,
    format_duration,
    format_levels,
)

SUSTAINED, CONSECUTIVE, INSTANT = "sustained", "consecutive", "instant"
LOOKBACK_SECONDS = 300  # Prometheus' default lookback delta for instant selectors
RATE_WINDOW_INTERVALS = 4  # rate()'s range: four scrapes (the rules assume scrape = evaluation)
KEEP_FIRING_INTERVALS = 2
QUANTILE = 0.95
PROBE_PATHS = "/metrics|/health"  # probe traffic, not users': left out of error rate and p95
SOURCE_LABEL = "sre.rollback"
NO_DATA_SUFFIX = "NoData"  # RollbackErrorRateNoData: the rule's data is missing

Labels = tuple[tuple[str, str], ...]
"""A series' labels, sorted by name (``__name__`` included for raw series)."""

# --------------------------------------------------------------------------------------------
# Raw samples, and the few PromQL functions the rules use, as Prometheus 2.42 computes them


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # = != =~ !~
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op in ("=", "!="):
            return (actual == self.value) == (self.op == "=")
        return (re.fullmatch(self.value, actual) is not None) == (self.op == "=~")

    def promql(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


@dataclass
class Samples:
    """Raw samples by series; a value of None is a staleness marker."""

    series: dict[Labels, list[tuple[float, float | None]]] = field(default_factory=dict)

    def add(self, labels: Labels, timestamp: float, value: float | None) -> None:
        self.series.setdefault(labels, []).append((timestamp, value))

    def sort(self) -> None:
        for points in self.series.values():
            points.sort(key=lambda point: point[0])

    def select(
        self, metric: str, matchers: Sequence[Matcher]
    ) -> Iterable[tuple[Labels, list[tuple[float, float | None]]]]:
        for labels, points in self.series.items():
            as_dict = dict(labels)
            if as_dict.get("__name__") == metric and all(m.matches(as_dict) for m in matchers):
                yield labels, points

    def times(self) -> list[float]:
        return sorted({t for points in self.series.values() for t, _value in points})


def _drop_name(labels: Labels) -> Labels:
    return tuple(item for item in labels if item[0] != "__name__")


def _keep(labels: Labels, names: Sequence[str]) -> Labels:
    return tuple(item for item in labels if item[0] in names)


def instant(
    samples: Samples, metric: str, matchers: Sequence[Matcher], at: float
) -> dict[Labels, float]:
    """``metric{matchers}`` at ``at``: the newest sample within the lookback, none when that
    is a staleness marker."""
    result = {}
    for labels, points in samples.select(metric, matchers):
        newest = None
        for timestamp, value in points:
            if timestamp > at:
                break
            newest = (timestamp, value)
        if newest is None or newest[0] < at - LOOKBACK_SECONDS or newest[1] is None:
            continue
        result[_drop_name(labels)] = newest[1]
    return result


def rate(
    samples: Samples, metric: str, matchers: Sequence[Matcher], at: float, window: float
) -> dict[Labels, float]:
    """``rate(metric{matchers}[window])`` at ``at``: Prometheus' extrapolated rate over the
    samples in [at - window, at] (staleness markers left out), counter resets included."""
    result = {}
    for labels, points in samples.select(metric, matchers):
        inside = [(t, v) for t, v in points if at - window <= t <= at and v is not None]
        if len(inside) < 2:
            continue
        result[_drop_name(labels)] = _extrapolated_rate(inside, at - window, at, window)
    return result


def _extrapolated_rate(
    points: list[tuple[float, float]], start: float, end: float, window: float
) -> float:
    first, last = points[0], points[-1]
    increase = last[1] - first[1]
    previous = 0.0
    for _t, value in points:
        if value < previous:
            increase += previous
        previous = value
    to_start = first[0] - start
    to_end = end - last[0]
    sampled = last[0] - first[0]
    average = sampled / (len(points) - 1)
    if increase > 0 and first[1] >= 0:
        to_zero = sampled * (first[1] / increase)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return increase * (interval / sampled) / window


def sum_by(values: Mapping[Labels, float], names: Sequence[str]) -> dict[Labels, float]:
    result: dict[Labels, float] = {}
    for labels, value in values.items():
        key = _keep(labels, names)
        result[key] = result.get(key, 0.0) + value
    return result


def bucket_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over (upper bound, cumulative count) pairs."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    merged: list[tuple[float, float]] = []
    for bound, count in buckets:  # coalesce equal bounds
        if merged and merged[-1][0] == bound:
            merged[-1] = (bound, merged[-1][1] + count)
        else:
            merged.append((bound, count))
    monotonic = []
    highest = -math.inf
    for bound, count in merged:
        highest = max(highest, count)
        monotonic.append((bound, highest))
    observations = monotonic[-1][1]
    if observations == 0:
        return math.nan
    rank = quantile * observations
    index = next(i for i, (_t, count) in enumerate(monotonic) if count >= rank)
    if index == len(monotonic) - 1:
        return monotonic[-2][0]
    if index == 0 and monotonic[0][0] <= 0:
        return monotonic[0][0]
    start, count = 0.0, monotonic[index][1]
    end = monotonic[index][0]
    if index > 0:
        start = monotonic[index - 1][0]
        count -= monotonic[index - 1][1]
        rank -= monotonic[index - 1][1]
    return start + (end - start) * (rank / count)


# --------------------------------------------------------------------------------------------
# The rules


@dataclass(frozen=True)
class Rule:
    """One trigger, as the policy defines it."""

    name: str
    alert: str
    summary: str
    semantics: str
    comparison: str  # > or >=
    threshold: float  # in the value's unit: a ratio 0..1, or seconds
    threshold_text: str  # as the policy says it: 10%, 5s, 3 consecutive
    for_seconds: int
    interval: int
    no_data: str
    action: TriggerAction
    service: str
    job: str
    group_by: tuple[str, ...]
    consecutive: int | None = None

    @property
    def keep_firing_for(self) -> int:
        return KEEP_FIRING_INTERVALS * self.interval

    @property
    def rate_window(self) -> int:
        return RATE_WINDOW_INTERVALS * self.interval

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value > self.threshold if self.comparison == ">" else value >= self.threshold

    # --- the metric, in PromQL and in Python

    def _job(self) -> Matcher:
        return Matcher("job", "=", self.job)

    def _user_traffic(self) -> tuple[Matcher, Matcher]:
        return self._job(), Matcher("path", "!~", PROBE_PATHS)

    def value_expr(self) -> str:
        job = "{" + self._job().promql() + "}"
        traffic = "{" + ",".join(m.promql() for m in self._user_traffic()) + "}"
        window = format_duration(self.rate_window)
        by = ", ".join(self.group_by)
        if self.name == "error_rate":
            errors = "{" + ",".join(m.promql() for m in self._user_traffic()) + ',status=~"5.."}'
            total = f"sum by ({by}) (rate(demo_http_requests_total{traffic}[{window}]))"
            return (
                f"(sum by ({by}) (rate(demo_http_requests_total{errors}[{window}])) "
                f"or {total} * 0) / {total}"
            )
        if self.name == "response_time_p95":
            return (
                f"histogram_quantile({QUANTILE}, sum by ({by}, le) "
                f"(rate(demo_http_request_duration_seconds_bucket{traffic}[{window}])))"
            )
        if self.name == "health_check_failures":
            return f"max by ({by}) ((1 - demo_health_ok{job}) or on ({by}) (1 - up{job}))"
        if self.name == "memory":
            return (
                f"max by ({by}) (process_resident_memory_bytes{job} / demo_memory_limit_bytes{job})"
            )
        return f"max by ({by}) (demo_db_pool_in_use{job} / demo_db_pool_size{job})"

    def expr(self) -> str:
        return f"{self.value_expr()} {self.comparison} {self.threshold!r}"

    def values(self, samples: Samples, at: float) -> dict[Labels, float]:
        """The rule's metric at ``at`` per group, computed as Prometheus does."""
        by = self.group_by
        if self.name in ("error_rate", "response_time_p95"):
            return self._traffic_values(samples, at)
        job = [self._job()]
        if self.name == "health_check_failures":
            ok = {k: 1 - v for k, v in instant(samples, "demo_health_ok", job, at).items()}
            up = {k: 1 - v for k, v in instant(samples, "up", job, at).items()}
            left = {_keep(k, by) for k in ok}
            merged = {**ok, **{k: v for k, v in up.items() if _keep(k, by) not in left}}
            return _max_by(merged, by)
        names = {
            "memory": ("process_resident_memory_bytes", "demo_memory_limit_bytes"),
            "db_pool": ("demo_db_pool_in_use", "demo_db_pool_size"),
        }[self.name]
        top = instant(samples, names[0], job, at)
        bottom = instant(samples, names[1], job, at)
        return _max_by({k: _divide(v, bottom[k]) for k, v in top.items() if k in bottom}, by)

    def _traffic_values(self, samples: Samples, at: float) -> dict[Labels, float]:
        by = self.group_by
        traffic = self._user_traffic()
        if self.name == "error_rate":
            requests = rate(samples, "demo_http_requests_total", traffic, at, self.rate_window)
            total = sum_by(requests, by)
            failed = sum_by(
                {k: v for k, v in requests.items() if re.fullmatch("5..", dict(k)["status"])}, by
            )
            numerator = failed or {k: v * 0 for k, v in total.items()}
            return {k: _divide(v, total[k]) for k, v in numerator.items() if k in total}
        buckets = rate(
            samples, "demo_http_request_duration_seconds_bucket", traffic, at, self.rate_window
        )
        grouped = sum_by(buckets, (*by, "le"))
        per_group: dict[Labels, list[tuple[float, float]]] = {}
        for labels, value in grouped.items():
            le = float(dict(labels)["le"].replace("+Inf", "inf"))
            per_group.setdefault(_keep(labels, by), []).append((le, value))
        return {k: bucket_quantile(QUANTILE, v) for k, v in per_group.items()}

    # --- what the rule says about itself

    def describe(self) -> str:
        """E.g. ``error ratio > 10% sustained for 5m``."""
        if self.semantics == CONSECUTIVE:
            return f"{self.summary}: more than {self.consecutive} consecutive failed checks"
        window = (
            f"sustained for {format_duration(self.for_seconds)}"
            if self.semantics == SUSTAINED
            else "at once"
        )
        return f"{self.summary} {self.comparison} {self.threshold_text}, {window}"

    def decision_inputs(self) -> dict[str, Any]:
        return dataclasses.asdict(self.action)

    def labels(self, policy: Policy) -> dict[str, str]:
        decision = decide(policy, **self.decision_inputs())
        return {
            "source": SOURCE_LABEL,
            "rule": self.name,
            "service": self.service,
            "severity": decision.row.severity,
            "rollback_action": decision.action,
            "rollback_level": str(decision.start_level or ""),
            "rollback_levels": format_levels(decision.row.levels),
        }

    def annotations(self) -> dict[str, str]:
        return {
            "summary": f"{self.name}: {self.describe()}",
            "no_data": f"{self.no_data}: a gap never fires; the window starts again",
        }

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(
            expr=self.expr(),
            value_expr=self.value_expr(),
            keep_firing_for=self.keep_firing_for,
            description=self.describe(),
        )
        return data


def _divide(top: float, bottom: float) -> float:
    if bottom == 0:
        return math.nan if top == 0 else math.copysign(math.inf, top)
    return top / bottom


def _max_by(values: Mapping[Labels, float], names: Sequence[str]) -> dict[Labels, float]:
    result: dict[Labels, float] = {}
    for labels, value in values.items():
        key = _keep(labels, names)
        if key not in result or value > result[key] or math.isnan(result[key]):
            result[key] = value
    return result


def build_rules(policy: Policy) -> list[Rule]:
    """The enabled triggers of a policy, as rules."""
    triggers = policy.triggers
    interval = triggers.evaluation_interval_seconds
    error, p95 = triggers.error_rate, triggers.response_time_p95
    health, memory, pool = triggers.health_check_failures, triggers.memory, triggers.db_pool

    def rule(name: str, alert: str, summary: str, setting: Any, **given: Any) -> Rule | None:
        if not setting.enabled:
            return None
        for_seconds = given.pop("for_seconds", getattr(setting, "for_seconds", 0))
        return Rule(
            name=name,
            alert=alert,
            summary=summary,
            semantics=given.pop("semantics", SUSTAINED if for_seconds > 0 else INSTANT),
            comparison=given.pop("comparison", ">"),
            for_seconds=for_seconds,
            interval=interval,
            no_data=setting.no_data,
            action=setting.action,
            service=triggers.service,
            job=triggers.job,
            group_by=given.pop("group_by", ("job", "instance")),
            **given,
        )

    made = [
        rule(
            "error_rate", "RollbackErrorRate", "error ratio", error, group_by=("job",),
            threshold=error.above / 100, threshold_text=f"{error.above:g}%",
        ),
        rule(
            "response_time_p95", "RollbackResponseTimeP95", "p95 response time", p95,
            group_by=("job",), threshold=p95.above, threshold_text=format_duration(p95.above),
        ),
        rule(
            "health_check_failures", "RollbackHealthCheckFailures", "health check", health,
            semantics=CONSECUTIVE, threshold=0.0, threshold_text="failing",
            for_seconds=health.consecutive_above * interval,
            consecutive=health.consecutive_above,
        ),
        rule(
            "memory", "RollbackMemory", "process memory / its limit", memory,
            threshold=memory.above / 100, threshold_text=f"{memory.above:g}%",
        ),
        rule(
            "db_pool", "RollbackDbPoolExhausted", "DB pool in use / size", pool,
            comparison=">=", threshold=pool.in_use_at_least / 100,
            threshold_text=f"{pool.in_use_at_least:g}%",
        ),
    ]  # fmt: skip
    return [item for item in made if item is not None]


# --------------------------------------------------------------------------------------------
# Rendering: Prometheus alerting rules and an Alertmanager route


def render_rules(policy: Policy, rules: Sequence[Rule]) -> dict[str, Any]:
    """A Prometheus rule file (as data) with one alerting rule per trigger, and one alert
    per rule that says when its data is missing (its window reset)."""
    interval = policy.triggers.evaluation_interval_seconds
    alerting = []
    for rule in rules:
        alerting.append(
            {
                "alert": rule.alert,
                "expr": rule.expr(),
                "for": format_duration(rule.for_seconds),
                "keep_firing_for": format_duration(rule.keep_firing_for),
                "labels": rule.labels(policy),
                "annotations": rule.annotations(),
            }
        )
    for rule in rules:
        alerting.append(
            {
                "alert": rule.alert + NO_DATA_SUFFIX,
                "expr": f"absent({rule.value_expr()})",
                "labels": {
                    "source": SOURCE_LABEL,
                    "rule": rule.name,
                    "service": rule.service,
                    "severity": "info",
                },
                "annotations": no_data_annotations(rule),
            }
        )
    return {
        "groups": [
            {
                "name": "sre-rollback-triggers",
                "interval": format_duration(interval),
                "rules": alerting,
            }
        ]
    }


def no_data_annotations(rule: Rule) -> dict[str, str]:
    return {
        "summary": f"{rule.name}: no data; its window is reset (a gap never fires a rollback)",
    }


def render_alertmanager(policy: Policy, webhook_url: str) -> dict[str, Any]:
    """An Alertmanager configuration whose route sends the triggers' alerts (not their
    no-data notices) to a webhook receiver, grouped per rule and service."""
    interval = policy.triggers.evaluation_interval_seconds
    return {
        "route": {
            "receiver": "default",
            "routes": [
                {
                    "receiver": "sre-rollback",
                    "matchers": [f'source="{SOURCE_LABEL}"', 'severity!="info"'],
                    "group_by": ["rule", "service"],
                    "group_wait": "0s",
                    "group_interval": format_duration(interval),
                    "repeat_interval": "1h",
                    "continue": False,
                }
            ],
        },
        "receivers": [
            {"name": "default"},
            {
                "name": "sre-rollback",
                "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
            },
        ],
    }


# --------------------------------------------------------------------------------------------
# The evaluator: Prometheus' alerting state machine, plus what it says about gaps


@dataclass
class AlertState:
    state: str  # pending | firing
    active_at: float
    fired_at: float | None = None
    keep_firing_since: float | None = None
    value: float = math.nan


@dataclass(frozen=True)
class Event:
    at: float
    rule: str
    group: Labels
    kind: str  # pending, firing, resolved, reset, reset_no_data, no_data, data_back
    value: float | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        value = None if self.value is None or math.isnan(self.value) else self.value
        return {
            "at": self.at,
            "rule": self.rule,
            "group": dict(self.group),
            "kind": self.kind,
            "value": value,
            "message": self.message,
        }


@dataclass
class RuleEvaluator:
    """The state of one rule across evaluations (one alert per group)."""

    rule: Rule
    alerts: dict[Labels, AlertState] = field(default_factory=dict)
    last_values: dict[Labels, float] = field(default_factory=dict)
    missing: set[Labels] = field(default_factory=set)
    last_at: float | None = None

    def step(self, at: float, values: Mapping[Labels, float]) -> list[Event]:
        rule = self.rule
        events = []
        seen = set(values) | set(self.last_values)
        for group in sorted(seen):
            if group not in values and group not in self.missing:
                self.missing.add(group)
                events.append(Event(at, rule.name, group, "no_data", None, "no data"))
            elif group in values and group in self.missing:
                self.missing.discard(group)
                events.append(Event(at, rule.name, group, "data_back", values[group], "data back"))
        holding = {group for group, value in values.items() if rule.holds(value)}
        for group in holding:
            alert = self.alerts.get(group)
            if alert is None:
                alert = self.alerts[group] = AlertState("pending", at)
                events.append(
                    Event(at, rule.name, group, "pending", values[group], "window started")
                )
            alert.value = values[group]
            alert.keep_firing_since = None
        for group, alert in list(self.alerts.items()):
            if group not in holding:
                keep = False
                if alert.state == "firing" and rule.keep_firing_for > 0:
                    if alert.keep_firing_since is None:
                        alert.keep_firing_since = at
                    keep = at - alert.keep_firing_since < rule.keep_firing_for
                if not keep:
                    del self.alerts[group]
                    events.append(self._ended(at, group, alert, values.get(group)))
                    continue
            if alert.state == "pending" and at - alert.active_at >= rule.for_seconds:
                alert.state, alert.fired_at = "firing", at
                after = format_duration(at - alert.active_at)
                events.append(
                    Event(at, rule.name, group, "firing", alert.value, f"fires {after} after")
                )
        self.last_values = dict(values)
        self.last_at = at
        return events

    def _ended(self, at: float, group: Labels, alert: AlertState, value: float | None) -> Event:
        name = self.rule.name
        if alert.state == "firing":
            return Event(at, name, group, "resolved", value, "resolved")
        if value is None:
            held = format_duration(at - alert.active_at)
            window = format_duration(self.rule.for_seconds)
            message = f"window reset: no data ({held} of {window} had elapsed)"
            return Event(at, name, group, "reset_no_data", None, message)
        return Event(at, name, group, "reset", value, "condition no longer holds: window reset")

    def progress(self, group: Labels, at: float) -> float:
        """How much of the window has elapsed for a group (1.0 once firing)."""
        alert = self.alerts.get(group)
        if alert is None:
            return 0.0
        if alert.state == "firing" or self.rule.for_seconds == 0:
            return 1.0
        return min(1.0, (at - alert.active_at) / self.rule.for_seconds)

    def state_of(self, group: Labels) -> str:
        if group in self.missing:
            return "no data"
        alert = self.alerts.get(group)
        if alert is None:
            return "ok"
        if alert.state == "firing" and alert.keep_firing_since is not None:
            return "firing (keep)"
        return alert.state

    def firing(self) -> set[Labels]:
        return {group for group, alert in self.alerts.items() if alert.state == "firing"}

    def dump(self) -> dict[str, Any]:
        """Plain data to keep across restarts (watch's state file)."""
        return {
            "last_at": self.last_at,
            "alerts": [
                {"group": [list(item) for item in group], **dataclasses.asdict(alert)}
                for group, alert in self.alerts.items()
            ],
        }

    def load(self, data: Mapping[str, Any]) -> None:
        self.last_at = data.get("last_at")
        self.alerts = {}
        for item in data.get("alerts", []):
            alert = dict(item)
            group = tuple((str(k), str(v)) for k, v in alert.pop("group"))
            self.alerts[group] = AlertState(**alert)


def decide_for(policy: Policy, rule: Rule) -> dict[str, Any]:
    """What the decision matrix does when ``rule`` fires (``policy.decide``'s answer)."""
    decision = decide(policy, **rule.decision_inputs())
    return {
        "severity": decision.row.severity,
        "action": decision.action,
        "start_level": decision.start_level,
        "max_level": decision.max_level,
        "levels": format_levels(decision.row.levels),
        "summary": decision.summary,
    }


def format_group(group: Labels) -> str:
    return ",".join(f"{k}={v}" for k, v in group) or "-"


def format_value(rule: Rule, value: float | None) -> str:
    if value is None:
        return "no data"
    if math.isnan(value):
        return "NaN (no requests)"
    if rule.name == "response_time_p95":
        return f"{value:.3g}s"
    if rule.name == "health_check_failures":
        return "failing" if value > 0 else "ok"
    return f"{value * 100:.3g}%"
