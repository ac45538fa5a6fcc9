# GPL-3.0-or-later
"""Reading a policy file: its schema first (``schema``: every problem with its key path, in
one message), then the rules across matrix rows that a schema cannot say (every severity has
a row; rows of one severity do not overlap), then the runbook's defaults fill what the file
leaves out and the typed policy is built from values the schema has already accepted.

Part of the policy package (plugin_utils/policy/__init__.py says what it is).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import model, units
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.conditions import (
    parse_condition,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.schema import (
    key_path,
    parse_evaluation_interval,
    parse_priority,
    schema_problems,
    without_nulls,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.shape import (
    DEFAULT_POLICY,
    POLICY_VARIABLE,
    REPLACED_SECTIONS,
    SCHEMA,
    SEVERITIES,
    TEMPLATE_NAMES,
)

_ROW = SCHEMA["$defs"]["matrix_row"]["properties"]


def validate_policy(document: Any, source: str = "policy") -> model.Policy:
    """The typed policy from a parsed policy file (inventory-shaped or bare, or None for the
    defaults). Raises PolicyError listing every problem with its key path."""
    given = {} if document is None else without_nulls(document)
    problems = schema_problems(given)
    policy, prefix = _unwrap(given)
    problems += _matrix_problems(policy.get("matrix"), prefix, problems)
    if problems:
        raise units.PolicyError(source, problems)
    return _build(_with_defaults(policy), source)


def default_policy() -> model.Policy:
    """The runbook's policy."""
    return validate_policy(None, "built-in defaults (the runbook)")


def _unwrap(document: Any) -> tuple[Mapping[Any, Any], list[Any]]:
    """The policy in a file and its key path: ``all.vars.rollback_policy`` in the
    inventory-shaped file, or the top level of a bare policy mapping."""
    if not isinstance(document, Mapping):
        return {}, []
    if "all" not in document:
        return document, []
    policy: Any = document
    for key in ("all", "vars", POLICY_VARIABLE):
        policy = policy.get(key) if isinstance(policy, Mapping) else None
    return (policy if isinstance(policy, Mapping) else {}), ["all", "vars", POLICY_VARIABLE]


def _merge(defaults: Any, given: Any) -> Any:
    """``given`` over ``defaults``, key by key for mappings."""
    if isinstance(defaults, Mapping) and isinstance(given, Mapping):
        merged = copy.deepcopy(dict(defaults))
        for key, value in given.items():
            merged[key] = _merge(defaults[key], value) if key in defaults else value
        return merged
    return copy.deepcopy(given)


def _with_defaults(given: Mapping[Any, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for section, default in DEFAULT_POLICY.items():
        if section not in given:
            merged[section] = copy.deepcopy(default)
        elif section in REPLACED_SECTIONS:
            merged[section] = given[section]
        else:
            merged[section] = _merge(default, given[section])
    return merged


# --- the rules across matrix rows


def _matrix_problems(
    matrix: Any, prefix: list[Any], found: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Every severity has a row; two rows of one severity never match the same input (rows
    the schema found wrong are left out of the second check)."""
    if not isinstance(matrix, list) or not matrix:
        return []  # the runbook's matrix, or the schema has said what is wrong
    path = key_path([*prefix, "matrix"])
    problems = []
    named = {str(row.get("severity")).strip().lower() for row in matrix if isinstance(row, Mapping)}
    missing = [severity for severity in SEVERITIES if severity not in named]
    if missing:
        problems.append(
            (
                path,
                f"no row for severity {', '.join(missing)}: every severity "
                f"({', '.join(SEVERITIES)}) needs at least one row",
            )
        )
    wrong = {where for where, _message in found}
    rows = [
        _row(index, row)
        for index, row in enumerate(matrix)
        if isinstance(row, Mapping) and not _under(f"{path}[{index}]", wrong)
    ]
    return problems + _overlaps(rows, path)


def _under(path: str, paths: set[str]) -> bool:
    return any(p == path or p.startswith((f"{path}.", f"{path}[")) for p in paths)


def _overlaps(rows: list[model.MatrixRow], path: str) -> list[tuple[str, str]]:
    problems = []
    for first, second in itertools.combinations(rows, 2):
        if first.severity != second.severity:
            continue
        impact = first.impact.interval.intersect(second.impact.interval)
        time_to_fix = first.time_to_fix.interval.intersect(second.time_to_fix.interval)
        if impact.is_empty() or time_to_fix.is_empty():
            continue
        problems.append(
            (
                f"{path}[{second.index}]",
                f"overlaps matrix[{first.index}]: both match severity {first.severity} with "
                f"impact {units.format_percent(impact.sample())} and time to fix "
                f"{units.format_duration(time_to_fix.sample())}; narrow one of the two rows' "
                "impact or time_to_fix so that every input matches one row",
            )
        )
    return problems


# --- the typed policy, from values the schema has accepted


def _row(index: int, row: Mapping[str, Any]) -> model.MatrixRow:
    def given(key: str) -> Any:
        return row.get(key, _ROW[key].get("default"))

    action = given("action")
    return model.MatrixRow(
        index=index,
        severity=units.parse_severity(row["severity"]),
        impact=parse_condition(given("impact"), "impact"),
        time_to_fix=parse_condition(given("time_to_fix"), "time_to_fix"),
        action=action,
        levels=units.parse_levels(row["levels"]) if action == "rollback" else (),
    )


def _build(merged: Mapping[str, Any], source: str) -> model.Policy:
    return model.Policy(
        matrix=tuple(_row(index, row) for index, row in enumerate(merged["matrix"])),
        services={
            key: model.Service(
                name=data.get("name", key.replace("_", " ").title()),
                rto=units.parse_duration(data["rto"]),
                rpo=units.parse_duration(data["rpo"]),
                priority=parse_priority(data["priority"]),
            )
            for key, data in merged["services"].items()
        },
        communication=_communication(merged["communication"]),
        escalation=model.Escalation(
            on_failed_verification=merged["escalation"]["on_failed_verification"],
            max_level=int(merged["escalation"]["max_level"]),
        ),
        revenue=model.Revenue(
            per_minute=float(merged["revenue"]["per_minute"]),
            currency=merged["revenue"]["currency"],
        ),
        triggers=_triggers(merged["triggers"]),
        source=source,
    )


def _communication(data: Mapping[str, Any]) -> model.Communication:
    channels = data["channels"]
    return model.Communication(
        lead=data["lead"],
        status_page_url=data["status_page_url"],
        channels=model.Channels(
            stdout=channels["stdout"],
            file=channels.get("file") or None,
            webhook_url_env=channels.get("webhook_url_env") or None,
        ),
        templates={name: data["templates"][name] for name in TEMPLATE_NAMES},
    )


def _triggers(data: Mapping[str, Any]) -> model.Triggers:
    count = data["health_check_failures"]
    pool = data["db_pool"]
    return model.Triggers(
        error_rate=_threshold(data["error_rate"], units.parse_percent),
        response_time_p95=_threshold(data["response_time_p95"], units.parse_seconds),
        health_check_failures=model.CountTrigger(
            enabled=count["enabled"],
            consecutive_above=count["consecutive_above"],
            observe_for_seconds=units.parse_duration(count["observe_for"]),
            no_data=count["no_data"],
            action=_action(count["action"]),
        ),
        memory=_threshold(data["memory"], units.parse_percent),
        db_pool=model.PoolTrigger(
            enabled=pool["enabled"],
            in_use_at_least=units.parse_percent(pool["in_use_at_least"]),
            for_seconds=units.parse_duration(pool["for"]),
            no_data=pool["no_data"],
            action=_action(pool["action"]),
        ),
        service=data["service"],
        job=data["job"],
        evaluation_interval_seconds=parse_evaluation_interval(data["evaluation_interval"]),
    )


def _threshold(data: Mapping[str, Any], parse_above: Any) -> model.ThresholdTrigger:
    return model.ThresholdTrigger(
        enabled=data["enabled"],
        above=parse_above(data["above"]),
        for_seconds=units.parse_duration(data["for"]),
        no_data=data["no_data"],
        action=_action(data["action"]),
    )


def _action(data: Mapping[str, Any]) -> model.TriggerAction:
    return model.TriggerAction(
        severity=units.parse_severity(data["severity"]),
        impact=units.parse_impact(data["impact"]),
        time_to_fix=units.parse_duration(data["time_to_fix"]),
    )
