# GPL-3.0-or-later
"""Reading a policy file: every problem collected with its key path, in one message.

Part of the policy package (plugin_utils/policy/__init__.py says what it is).
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy.conditions import (
    parse_condition,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.model import (
    NO_DATA_POLICIES,
    Channels,
    Communication,
    CountTrigger,
    Escalation,
    MatrixRow,
    Policy,
    PoolTrigger,
    Revenue,
    Service,
    ThresholdTrigger,
    TriggerAction,
    Triggers,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.shape import (
    DEFAULT_POLICY,
    POLICY_VARIABLE,
    REPLACED_SECTIONS,
    SECTIONS,
    SEVERITIES,
    TEMPLATE_FIELDS,
    TEMPLATE_NAMES,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.units import (
    InputError,
    PolicyError,
    format_duration,
    format_percent,
    parse_duration,
    parse_impact,
    parse_levels,
    parse_percent,
    parse_seconds,
    parse_severity,
)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.prefix = ""

    def fail(self, path: str, message: str) -> None:
        self.problems.append((_join(self.prefix, path) or "(top level)", message))

    def mapping(self, value: Any, path: str) -> Mapping[Any, Any]:
        if isinstance(value, Mapping):
            return value
        self.fail(path, f"must be a mapping (key: value lines), got {_kind(value)}")
        return {}

    def known_keys(self, data: Mapping[Any, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in data:
            if key not in allowed:
                self.fail(_join(path, str(key)), _unknown_key_message(str(key), allowed))

    def required(self, data: Mapping[Any, Any], key: str, path: str, hint: str) -> bool:
        if data.get(key) is not None:
            return True
        self.fail(_join(path, key), f"missing: {hint}")
        return False

    def parsed(self, parse: Callable[[Any], Any], value: Any, path: str, fallback: Any) -> Any:
        try:
            return parse(value)
        except InputError as error:
            self.fail(path, str(error))
            return fallback

    def boolean(self, value: Any, path: str) -> bool:
        if isinstance(value, bool):
            return value
        self.fail(path, f"must be true or false, got {_kind(value)}")
        return False

    def text(self, value: Any, path: str) -> str:
        if isinstance(value, str):
            return value
        self.fail(path, f"must be text, got {_kind(value)}")
        return ""

    def optional_text(self, value: Any, path: str) -> str | None:
        return None if value in (None, "") else self.text(value, path)

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self.fail(path, f"must be a whole number from {low} to {high}, got {_kind(value)}")
        return low


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return repr(value)


def _join(path: str, key: str) -> str:
    if not path or not key:
        return path or key
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


def _unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key: {hint}valid keys here: {', '.join(allowed)}"


def _merge(defaults: Any, given: Any) -> Any:
    """``given`` over ``defaults``, key by key for mappings; null means the default."""
    if given is None:
        return copy.deepcopy(defaults)
    if isinstance(defaults, Mapping) and isinstance(given, Mapping):
        merged = copy.deepcopy(dict(defaults))
        for key, value in given.items():
            merged[key] = _merge(defaults[key], value) if key in defaults else value
        return merged
    return given


def _with_defaults(given: Mapping[Any, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for section, default in DEFAULT_POLICY.items():
        value = given.get(section)
        if section in REPLACED_SECTIONS and value is not None:
            merged[section] = value
        else:
            merged[section] = _merge(default, value)
    return merged


def _unwrap(document: Any, checker: _Checker) -> tuple[Mapping[Any, Any], str]:
    """The policy in a file and its key path: ``all.vars.rollback_policy`` in the
    inventory-shaped file, or the top level of a bare policy mapping."""
    if document is None:
        return {}, ""
    data = checker.mapping(document, "")
    if "all" not in data:
        return data, ""
    checker.known_keys(data, ("all",), "")
    group = checker.mapping(data.get("all"), "all")
    checker.known_keys(group, ("vars",), "all")
    variables = checker.mapping(group.get("vars"), "all.vars")
    checker.known_keys(variables, (POLICY_VARIABLE,), "all.vars")
    path = f"all.vars.{POLICY_VARIABLE}"
    policy = variables.get(POLICY_VARIABLE)
    return ({} if policy is None else checker.mapping(policy, path)), path


def validate_policy(document: Any, source: str = "policy") -> Policy:
    """The typed policy from a parsed policy file (inventory-shaped or bare, or None for the
    defaults). Raises PolicyError listing every problem with its key path."""
    checker = _Checker()
    given, checker.prefix = _unwrap(document, checker)
    checker.known_keys(given, SECTIONS, "")
    merged = _with_defaults(given)
    policy = Policy(
        matrix=_read_matrix(checker, merged["matrix"]),
        services=_read_services(checker, merged["services"]),
        communication=_read_communication(checker, merged["communication"]),
        escalation=_read_escalation(checker, merged["escalation"]),
        revenue=_read_revenue(checker, merged["revenue"]),
        triggers=_read_triggers(checker, merged["triggers"]),
        source=source,
    )
    if checker.problems:
        raise PolicyError(source, checker.problems)
    return policy


def default_policy() -> Policy:
    """The runbook's policy."""
    return validate_policy(None, "built-in defaults (the runbook)")


# --- matrix

_ROW_KEYS = ("severity", "impact", "time_to_fix", "action", "levels")


def _read_matrix(checker: _Checker, value: Any) -> tuple[MatrixRow, ...]:
    if not isinstance(value, list) or not value:
        checker.fail("matrix", "must be a list of rows (severity, impact, time_to_fix, levels)")
        return ()
    rows = [_read_row(checker, item, index) for index, item in enumerate(value)]
    given = [item.get("severity") for item in value if isinstance(item, Mapping)]
    named = {str(severity).strip().lower() for severity in given}
    missing = [severity for severity in SEVERITIES if severity not in named]
    if missing:
        checker.fail(
            "matrix",
            f"no row for severity {', '.join(missing)}: every severity "
            f"({', '.join(SEVERITIES)}) needs at least one row",
        )
    complete = [row for row in rows if row is not None]
    _check_overlaps(checker, complete)
    return tuple(complete)


def _read_row(checker: _Checker, item: Any, index: int) -> MatrixRow | None:
    path = f"matrix[{index}]"
    data = checker.mapping(item, path)
    checker.known_keys(data, _ROW_KEYS, path)
    if not checker.required(data, "severity", path, f"one of {', '.join(SEVERITIES)}"):
        return None
    before = len(checker.problems)
    severity = checker.parsed(parse_severity, data["severity"], f"{path}.severity", "")
    impact = checker.parsed(
        lambda v: parse_condition(v, "impact"), _or(data, "impact", "any"), f"{path}.impact", None
    )
    time_to_fix = checker.parsed(
        lambda v: parse_condition(v, "time_to_fix"),
        _or(data, "time_to_fix", "any"),
        f"{path}.time_to_fix",
        None,
    )
    action = _or(data, "action", "rollback")
    levels = _read_row_levels(checker, data, action, path)
    if len(checker.problems) > before:
        return None
    return MatrixRow(index, severity, impact, time_to_fix, action, levels)


def _or(data: Mapping[Any, Any], key: str, default: Any) -> Any:
    """``data[key]``, or ``default`` when it is missing or null."""
    value = data.get(key)
    return default if value is None else value


def _read_row_levels(
    checker: _Checker, data: Mapping[Any, Any], action: Any, path: str
) -> tuple[int, ...]:
    if action == "fix_forward":
        if data.get("levels") is not None:
            checker.fail(f"{path}.levels", "a fix_forward row has no levels: remove the key")
        return ()
    if action != "rollback":
        checker.fail(f"{path}.action", f"{action!r} is not an action: use rollback or fix_forward")
        return ()
    if not checker.required(data, "levels", path, "the level range to roll back, e.g. 3-5"):
        return ()
    levels: tuple[int, ...] = checker.parsed(parse_levels, data["levels"], f"{path}.levels", ())
    return levels


def _check_overlaps(checker: _Checker, rows: list[MatrixRow]) -> None:
    for first, second in itertools.combinations(rows, 2):
        if first.severity != second.severity:
            continue
        impact = first.impact.interval.intersect(second.impact.interval)
        time_to_fix = first.time_to_fix.interval.intersect(second.time_to_fix.interval)
        if impact.is_empty() or time_to_fix.is_empty():
            continue
        checker.fail(
            f"matrix[{second.index}]",
            f"overlaps matrix[{first.index}]: both match severity {first.severity} with "
            f"impact {format_percent(impact.sample())} and time to fix "
            f"{format_duration(time_to_fix.sample())}; narrow one of the two rows' impact "
            f"or time_to_fix so that every input matches one row",
        )


# --- services

_SERVICE_KEYS = ("name", "rto", "rpo", "priority")
_SERVICE_REQUIRED = {
    "rto": "recovery time objective, e.g. 5m",
    "rpo": "recovery point objective, e.g. 1m",
    "priority": f"one of {', '.join(SEVERITIES)}",
}
_SERVICE_KEY = re.compile(r"[a-z][a-z0-9_]*")


def _read_services(checker: _Checker, value: Any) -> dict[str, Service]:
    services: dict[str, Service] = {}
    for key, item in checker.mapping(value, "services").items():
        path = f"services.{key}"
        if not _SERVICE_KEY.fullmatch(str(key)):
            checker.fail(path, "a service key is lowercase letters, digits and _, e.g. core_api")
        data = checker.mapping(item, path)
        checker.known_keys(data, _SERVICE_KEYS, path)
        present = [
            checker.required(data, field, path, hint) for field, hint in _SERVICE_REQUIRED.items()
        ]
        if not all(present):
            continue
        services[str(key)] = Service(
            name=checker.text(data.get("name", str(key).replace("_", " ").title()), f"{path}.name"),
            rto=checker.parsed(parse_duration, data["rto"], f"{path}.rto", 0),
            rpo=checker.parsed(parse_duration, data["rpo"], f"{path}.rpo", 0),
            priority=_read_priority(checker, data["priority"], f"{path}.priority"),
        )
    return services


def _read_priority(checker: _Checker, value: Any, path: str) -> str:
    priority = str(value).strip().lower()
    if priority not in SEVERITIES:
        checker.fail(path, f"{value!r} is not a priority: use one of {', '.join(SEVERITIES)}")
    return priority


# --- communication

_COMMUNICATION_KEYS = ("lead", "status_page_url", "channels", "templates")
_CHANNEL_KEYS = ("stdout", "file", "webhook_url_env")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _read_communication(checker: _Checker, value: Any) -> Communication:
    data = checker.mapping(value, "communication")
    checker.known_keys(data, _COMMUNICATION_KEYS, "communication")
    url = checker.text(data.get("status_page_url") or "", "communication.status_page_url")
    if url and not re.match(r"https?://", url):
        checker.fail("communication.status_page_url", f"{url!r} is not an http(s):// URL")
    return Communication(
        lead=checker.text(data.get("lead") or "", "communication.lead"),
        status_page_url=url,
        channels=_read_channels(checker, data.get("channels")),
        templates=_read_templates(checker, data.get("templates")),
    )


def _read_channels(checker: _Checker, value: Any) -> Channels:
    path = "communication.channels"
    data = checker.mapping(value, path)
    checker.known_keys(data, _CHANNEL_KEYS, path)
    env_name = checker.optional_text(data.get("webhook_url_env"), f"{path}.webhook_url_env")
    if env_name is not None and not _ENV_NAME.fullmatch(env_name):
        checker.fail(
            f"{path}.webhook_url_env",
            "must be the NAME of the environment variable that holds the webhook URL "
            "(e.g. ROLLBACK_WEBHOOK_URL), never the URL itself: the URL is a secret",
        )
        env_name = None
    return Channels(
        stdout=checker.boolean(data.get("stdout"), f"{path}.stdout"),
        file=checker.optional_text(data.get("file"), f"{path}.file"),
        webhook_url_env=env_name,
    )


def _read_templates(checker: _Checker, value: Any) -> dict[str, str]:
    path = "communication.templates"
    data = checker.mapping(value, path)
    checker.known_keys(data, TEMPLATE_NAMES, path)
    templates = {}
    for name in TEMPLATE_NAMES:
        text = checker.text(data.get(name), f"{path}.{name}")
        problem = _template_problem(text)
        if problem:
            checker.fail(f"{path}.{name}", problem)
        templates[name] = text
    return templates


def _template_problem(text: str) -> str | None:
    try:
        parsed = string.Formatter().parse(text)
        fields = [field for _literal, field, _spec, _conv in parsed if field is not None]
    except ValueError as error:
        return f"{error}: placeholders are written {{name}}; write {{{{ and }}}} for braces"
    unknown = sorted({field for field in fields if field not in TEMPLATE_FIELDS})
    if unknown:
        names = ", ".join(f"{{{field}}}" for field in unknown)
        return f"unknown placeholder {names}: use {', '.join(TEMPLATE_FIELDS)}"
    return None


# --- escalation, revenue


def _read_escalation(checker: _Checker, value: Any) -> Escalation:
    data = checker.mapping(value, "escalation")
    checker.known_keys(data, ("on_failed_verification", "max_level"), "escalation")
    return Escalation(
        on_failed_verification=checker.boolean(
            data.get("on_failed_verification"), "escalation.on_failed_verification"
        ),
        max_level=checker.integer(data.get("max_level"), "escalation.max_level", 1, 5),
    )


def _read_revenue(checker: _Checker, value: Any) -> Revenue:
    data = checker.mapping(value, "revenue")
    checker.known_keys(data, ("per_minute", "currency"), "revenue")
    per_minute = data.get("per_minute")
    if isinstance(per_minute, bool) or not isinstance(per_minute, int | float) or per_minute < 0:
        checker.fail("revenue.per_minute", f"must be a number >= 0, got {_kind(per_minute)}")
        per_minute = 0
    currency = checker.text(data.get("currency"), "revenue.currency")
    if not currency.strip():
        checker.fail("revenue.currency", "must name a currency, e.g. USD")
    return Revenue(per_minute=float(per_minute), currency=currency)


# --- triggers

_TRIGGER_NAMES = ("error_rate", "response_time_p95", "health_check_failures", "memory", "db_pool")
_TRIGGER_SETTINGS = ("service", "job", "evaluation_interval")
_TRIGGER_COMMON = ("enabled", "no_data", "action")


def _read_triggers(checker: _Checker, value: Any) -> Triggers:
    data = checker.mapping(value, "triggers")
    checker.known_keys(data, _TRIGGER_NAMES + _TRIGGER_SETTINGS, "triggers")
    sections = {
        name: checker.mapping(data.get(name), f"triggers.{name}")
        for name in _TRIGGER_NAMES
        if name in data
    }
    count = sections.get("health_check_failures", {})
    path = "triggers.health_check_failures"
    checker.known_keys(count, (*_TRIGGER_COMMON, "consecutive_above", "observe_for"), path)
    pool = sections.get("db_pool", {})
    checker.known_keys(pool, (*_TRIGGER_COMMON, "in_use_at_least", "for"), "triggers.db_pool")
    return Triggers(
        error_rate=_read_threshold(checker, sections.get("error_rate", {}), "error_rate"),
        response_time_p95=_read_threshold(
            checker, sections.get("response_time_p95", {}), "response_time_p95"
        ),
        health_check_failures=CountTrigger(
            enabled=checker.boolean(count.get("enabled"), f"{path}.enabled"),
            consecutive_above=checker.integer(
                count.get("consecutive_above"), f"{path}.consecutive_above", 0, 1000
            ),
            observe_for_seconds=checker.parsed(
                parse_duration, count.get("observe_for", "10s"), f"{path}.observe_for", 0
            ),
            no_data=_read_no_data(checker, count, path),
            action=_read_action(checker, count.get("action"), path),
        ),
        memory=_read_threshold(checker, sections.get("memory", {}), "memory"),
        db_pool=PoolTrigger(
            enabled=checker.boolean(pool.get("enabled"), "triggers.db_pool.enabled"),
            in_use_at_least=checker.parsed(
                parse_percent, pool.get("in_use_at_least"), "triggers.db_pool.in_use_at_least", 0
            ),
            for_seconds=checker.parsed(parse_duration, pool.get("for"), "triggers.db_pool.for", 0),
            no_data=_read_no_data(checker, pool, "triggers.db_pool"),
            action=_read_action(checker, pool.get("action"), "triggers.db_pool"),
        ),
        service=_read_trigger_service(checker, data.get("service")),
        job=checker.text(data.get("job"), "triggers.job"),
        evaluation_interval_seconds=_read_interval(checker, data.get("evaluation_interval")),
    )


def _read_threshold(checker: _Checker, data: Mapping[Any, Any], name: str) -> ThresholdTrigger:
    path = f"triggers.{name}"
    checker.known_keys(data, (*_TRIGGER_COMMON, "above", "for"), path)
    parse_above = parse_seconds if name == "response_time_p95" else parse_percent
    return ThresholdTrigger(
        enabled=checker.boolean(data.get("enabled"), f"{path}.enabled"),
        above=checker.parsed(parse_above, data.get("above"), f"{path}.above", 0.0),
        for_seconds=checker.parsed(parse_duration, data.get("for"), f"{path}.for", 0),
        no_data=_read_no_data(checker, data, path),
        action=_read_action(checker, data.get("action"), path),
    )


def _read_no_data(checker: _Checker, data: Mapping[Any, Any], path: str) -> str:
    value = data.get("no_data", "reset")
    if value not in NO_DATA_POLICIES:
        checker.fail(
            f"{path}.no_data",
            f"{value!r} is not a no-data policy: use {', '.join(NO_DATA_POLICIES)} (a gap "
            "never fires; the window starts again once data is back, and says so)",
        )
    return str(value)


def _read_action(checker: _Checker, value: Any, path: str) -> TriggerAction:
    path = f"{path}.action"
    data = checker.mapping(value if value is not None else {}, path)
    checker.known_keys(data, ("severity", "impact", "time_to_fix"), path)
    default = TriggerAction()
    return TriggerAction(
        severity=checker.parsed(
            parse_severity, data.get("severity", default.severity), f"{path}.severity", "critical"
        ),
        impact=checker.parsed(
            parse_impact, data.get("impact", default.impact), f"{path}.impact", 100.0
        ),
        time_to_fix=checker.parsed(
            parse_duration,
            data.get("time_to_fix", default.time_to_fix),
            f"{path}.time_to_fix",
            3600,
        ),
    )


def _read_trigger_service(checker: _Checker, value: Any) -> str:
    service = checker.text(value, "triggers.service")
    if service and not _SERVICE_KEY.fullmatch(service):
        checker.fail("triggers.service", "a service key is lowercase letters, digits and _")
    return service


def _read_interval(checker: _Checker, value: Any) -> int:
    seconds: int = checker.parsed(parse_duration, value, "triggers.evaluation_interval", 15)
    if seconds < 1:
        checker.fail("triggers.evaluation_interval", "must be 1s or more, e.g. 15s")
        return 15
    return seconds
