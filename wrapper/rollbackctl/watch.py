"""``rollbackctl watch``: evaluate the policy's triggers against Prometheus' HTTP API (one
instant query per rule at every evaluation interval), show each rule's value, window and
state, and hand every firing rule to ``trigger_action`` (dry run, maximum unattended
level, dedupe, cooldown, approval, the run itself).

The evaluator is the collection's (``plugin_utils/triggers.py``), the same one ``replay``
uses and the differential test holds against promtool. Its windows are kept in the state
file after every evaluation. After a restart, or when Prometheus did not answer for a
while, the evaluations missed since the last one are made up from Prometheus' range
queries before the next live one: a window half-elapsed before a restart is not
forgotten, and a gap never completes a window by itself (no data resets it, as the rule's
``no_data`` policy says). While Prometheus does not answer, nothing is evaluated and
nothing runs; each evaluation says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import Policy, format_duration
from ansible_collections.sre.rollback.plugins.plugin_utils.trigger_series import (
    evaluation_times,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import (
    CONSECUTIVE,
    Event,
    Labels,
    Rule,
    RuleEvaluator,
    build_rules,
    format_group,
    format_value,
)
from rollbackctl.trigger_action import Firing, TriggerActions, Verdict, stamp
from rollbackctl.triggers import TriggerInputError, instant_values, prometheus_source

MAX_CATCH_UP = 3600  # seconds; older windows are forgotten (and the watcher says so)


@dataclass
class Row:
    rule: str
    group: str
    value: str
    window: str
    state: str

    def line(self, at: float) -> str:
        return (
            f"{stamp(at)}  {self.rule:<22} {self.group:<34} {self.value:>16}  "
            f"window {self.window:<12} {self.state}"
        )


@dataclass
class Watcher:
    policy: Policy
    url: str
    actions: TriggerActions
    console: Console
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    evaluators: dict[str, RuleEvaluator] = field(init=False)
    values: dict[str, dict[Labels, float]] = field(init=False, default_factory=dict)
    reachable: bool | None = field(init=False, default=None)
    live: Live | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        rules = build_rules(self.policy)
        self.evaluators = {rule.name: RuleEvaluator(rule) for rule in rules}
        saved = self.actions.state.data["evaluators"]
        for name, evaluator in self.evaluators.items():
            if name in saved:
                evaluator.load(saved[name])

    @property
    def interval(self) -> int:
        return self.policy.triggers.evaluation_interval_seconds

    def last_at(self) -> float | None:
        times = [e.last_at for e in self.evaluators.values() if e.last_at is not None]
        return max(times) if times else None

    # --- one evaluation

    def evaluate(self, at: float) -> list[Verdict]:
        """Catch up if evaluations were missed, evaluate every rule at ``at``, act on what
        fires; nothing at all when Prometheus does not answer."""
        try:
            self._catch_up(at)
            values = {rule.name: instant_values(self.url, e.rule, at) for rule, e in self._rules()}
        except TriggerInputError as error:
            self._unreachable(at, str(error))
            return []
        if self.reachable is False:
            self._say(f"{stamp(at)}  Prometheus at {self.url} answers again")
        self.reachable = True
        self._step(at, values)
        self.values = values
        self._show_rows(at)
        return self._act()

    def _rules(self) -> list[tuple[Rule, RuleEvaluator]]:
        return [(e.rule, e) for e in self.evaluators.values()]

    def _unreachable(self, at: float, why: str) -> None:
        self.reachable = False
        self._say(
            f"{stamp(at)}  {why}: nothing is evaluated and nothing runs; trying again in "
            f"{format_duration(self.interval)}"
        )

    def _catch_up(self, now: float) -> None:
        last = self.last_at()
        if last is None or now - last < 1.5 * self.interval:
            return
        if now - last > MAX_CATCH_UP:
            self._say(
                f"{stamp(now)}  the last evaluation was at {stamp(last)}, more than "
                f"{format_duration(MAX_CATCH_UP)} ago: every window starts again"
            )
            for evaluator in self.evaluators.values():
                evaluator.alerts.clear()
                evaluator.last_at = None
            return
        start = math.ceil(last) + self.interval
        times = evaluation_times(start, now - 1, self.interval)
        if not times:
            return
        rules = [e.rule for e in self.evaluators.values()]
        values_at = prometheus_source(self.url, times[0], times[-1], rules)
        self._say(
            f"{stamp(now)}  catching up {len(times)} evaluation(s) missed since {stamp(last)} "
            "from Prometheus' range queries (windows kept)"
        )
        for at in times:
            self._step(at, {rule.name: values_at(rule, at) for rule in rules})

    def _step(self, at: float, values: dict[str, dict[Labels, float]]) -> None:
        for name, evaluator in self.evaluators.items():
            for event in evaluator.step(at, values.get(name, {})):
                if event.kind in ("reset_no_data", "no_data", "firing", "resolved", "data_back"):
                    self._say(event_line(evaluator.rule, event))
        self._save()

    def _save(self) -> None:
        self.actions.state.data["evaluators"] = {
            name: evaluator.dump() for name, evaluator in self.evaluators.items()
        }
        self.actions.state.save()

    # --- acting

    def firings(self) -> list[Firing]:
        found = []
        for evaluator in self.evaluators.values():
            rule = evaluator.rule
            for group, alert in sorted(evaluator.alerts.items()):
                if alert.state != "firing" or alert.fired_at is None:
                    continue
                found.append(
                    Firing(
                        rule=rule.name,
                        service=rule.service,
                        group=dict(group),
                        condition_since=alert.active_at,
                        fired_at=alert.fired_at,
                        value=None if math.isnan(alert.value) else alert.value,
                        source="watch",
                        key=f"watch|{rule.name}|{format_group(group)}|{alert.active_at}",
                    )
                )
        return found

    def _act(self) -> list[Verdict]:
        verdicts = []
        seen = self.actions.state.data["seen"]
        for firing in self.firings():
            if firing.key in seen:
                continue
            with self._paused():
                verdict = self.actions.handle(firing)
            verdicts.append(verdict)
            self._after(verdict)
        with self._paused():
            approved = self.actions.run_approved()
        for verdict in approved:
            self._after(verdict)
        return verdicts + approved

    def _after(self, verdict: Verdict) -> None:
        self._say(verdict.line())
        if verdict.outcome == "ran":
            # A window that was pending during the rollback measured the release it replaced:
            # it starts again from what runs now. Firing rules resolve in their own time.
            for evaluator in self.evaluators.values():
                if evaluator.rule.service == verdict.firing.service:
                    for group, alert in list(evaluator.alerts.items()):
                        if alert.state == "pending":
                            del evaluator.alerts[group]
            self._say(
                f"{stamp(self.clock())}  after the rollback the pending windows of "
                f"{verdict.firing.service} start again"
            )
            self._save()

    # --- showing it

    def rows(self, at: float) -> list[Row]:
        rows = []
        for name, evaluator in self.evaluators.items():
            rule = evaluator.rule
            values = self.values.get(name, {})
            groups = sorted(set(values) | set(evaluator.alerts) | evaluator.missing)
            if not groups:
                rows.append(Row(name, "-", "no data", "-", "no data"))
            for group in groups:
                value = values.get(group)
                rows.append(
                    Row(
                        name,
                        format_group(group),
                        format_value(rule, value),
                        window_text(evaluator, group, at),
                        evaluator.state_of(group),
                    )
                )
        return rows

    def table(self) -> RenderableType:
        at = self.last_at() or self.clock()
        table = Table(
            title=f"rollbackctl watch: {self.url}, every {format_duration(self.interval)}, "
            f"{stamp(at)}",
            title_justify="left",
        )
        for column in ("rule", "group", "value", "window", "state"):
            table.add_column(column)
        for row in self.rows(at):
            style = {"firing": "bold red", "pending": "yellow", "no data": "magenta"}.get(
                row.state.split(" ")[0], ""
            )
            table.add_row(row.rule, row.group, row.value, row.window, row.state, style=style)
        return table

    def _show_rows(self, at: float) -> None:
        if self.live is not None:
            self.live.refresh()
            return
        for row in self.rows(at):
            self.console.print(row.line(at), highlight=False, soft_wrap=True)

    def _say(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True)

    def _paused(self) -> _Pause:
        return _Pause(self)

    # --- the loop

    def run(self, iterations: int | None = None) -> None:
        """Evaluate every interval until stopped (``iterations``: for tests)."""
        if self.console.is_terminal:
            self.live = Live(console=self.console, get_renderable=self.table, auto_refresh=False)
            self.live.start()
        try:
            count = 0
            # Evaluations are stamped with their schedule, exactly one interval apart, as
            # Prometheus stamps a rule group's: a window of N intervals is N intervals, not
            # one more because a query took a few milliseconds.
            at = float(math.floor(self.clock()))
            while iterations is None or count < iterations:
                self.evaluate(at)
                count += 1
                at += self.interval
                if at < self.clock() - self.interval:  # fell behind (a level ran): skip ahead
                    at += (self.clock() - at) // self.interval * self.interval
                self.sleep(max(0.0, at - self.clock()))
        finally:
            if self.live is not None:
                self.live.stop()


class _Pause:
    """Stop the live table while a level runs: the run shows its own live progress."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def __enter__(self) -> None:
        if self.watcher.live is not None:
            self.watcher.live.stop()

    def __exit__(self, *exc: object) -> None:
        if self.watcher.live is not None:
            self.watcher.live.start()


def window_text(evaluator: RuleEvaluator, group: Labels, at: float) -> str:
    rule = evaluator.rule
    alert = evaluator.alerts.get(group)
    if rule.for_seconds == 0:
        return "at once"
    if rule.semantics == CONSECUTIVE:
        needed = (rule.consecutive or 0) + 1
        failed = 0
        if alert is not None:
            failed = (
                needed
                if alert.state == "firing"
                else int((at - alert.active_at) // rule.interval) + 1
            )
        return f"{min(failed, needed)}/{needed} failed"
    elapsed = 0.0 if alert is None else min(rule.for_seconds, at - alert.active_at)
    if alert is not None and alert.state == "firing":
        elapsed = rule.for_seconds
    return f"{format_duration(elapsed)}/{format_duration(rule.for_seconds)}"


def event_line(rule: Rule, event: Event) -> str:
    return (
        f"{stamp(event.at)}  {rule.name:<22} {format_group(event.group):<34} "
        f"{event.kind}: {event.message} ({format_value(rule, event.value)})"
    )
