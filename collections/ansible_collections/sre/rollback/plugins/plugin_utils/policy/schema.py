# GPL-3.0-or-later
"""A policy file checked against its published schema (``plugins/plugin_utils/policy.schema.json``,
loaded by ``shape``), and what the validator's complaints say to the user.

The schema is checked by ``jsonschema`` (Draft 2020-12), the validator the run record uses.
Its ``format`` names are the policy's units: each is one of the parsers of ``units`` and
``conditions``, so a value is parsed one way whether the schema checks it or the model is
built from it, and a format error carries the parser's own message. Each complaint becomes
``(key path, what was wrong and what to write instead)``: an unknown key gets the closest
valid one, a missing key the schema's ``x-missing`` hint, a wrong value the schema's
``x-expect`` or ``x-error`` text.

Part of the policy package (plugin_utils/policy/__init__.py says what it is). Needs
``jsonschema`` (imported when a policy is checked, not when this module is imported).
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import units
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.conditions import (
    parse_condition,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.shape import (
    SCHEMA,
    SEVERITIES,
    TEMPLATE_FIELDS,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy.units import InputError


def parse_priority(value: Any) -> str:
    priority = str(value).strip().lower()
    if priority not in SEVERITIES:
        raise InputError(f"{value!r} is not a priority: use one of {', '.join(SEVERITIES)}")
    return priority


def parse_evaluation_interval(value: Any) -> int:
    if units.parse_duration(value) < 1:
        raise InputError("must be 1s or more, e.g. 15s")
    return units.parse_duration(value)


def check_template(text: Any) -> None:
    """A message template uses only the placeholders messages fill in."""
    try:
        parsed = string.Formatter().parse(str(text))
        fields = [field for _literal, field, _spec, _conv in parsed if field is not None]
    except ValueError as error:
        raise InputError(
            f"{error}: placeholders are written {{name}}; write {{{{ and }}}} for braces"
        ) from None
    unknown = sorted({field for field in fields if field not in TEMPLATE_FIELDS})
    if unknown:
        names = ", ".join(f"{{{field}}}" for field in unknown)
        raise InputError(f"unknown placeholder {names}: use {', '.join(TEMPLATE_FIELDS)}")


FORMATS: dict[str, Callable[[Any], Any]] = {
    "duration": units.parse_duration,
    "latency": units.parse_seconds,
    "percent": units.parse_percent,
    "impact": units.parse_impact,
    "severity": units.parse_severity,
    "priority": parse_priority,
    "levels": units.parse_levels,
    "impact-condition": lambda value: parse_condition(value, "impact"),
    "time-condition": lambda value: parse_condition(value, "time_to_fix"),
    "template": check_template,
    "evaluation-interval": parse_evaluation_interval,
}
"""The schema's formats: the parser that reads a value of each (InputError: not one)."""


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker(formats=())
    for name, parse in FORMATS.items():
        checker.checks(name, raises=InputError)(_accepts(parse))
    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA, format_checker=checker)


def _accepts(parse: Callable[[Any], Any]) -> Callable[[Any], bool]:
    """A format check: true when ``parse`` reads the value (its result may be 0 or None)."""

    def check(value: Any) -> bool:
        parse(value)
        return True

    return check


def without_nulls(value: Any) -> Any:
    """A null value in a mapping means the default: the key is left out."""
    if isinstance(value, Mapping):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def schema_problems(document: Any) -> list[tuple[str, str]]:
    """What the schema finds wrong with a policy file (nulls already left out): one
    (key path, message) each, in the schema's order."""
    found: list[tuple[str, str]] = []
    for error in _validator().iter_errors(document):
        for path, message in _explain(error):
            if (path, message) not in found:
                found.append((path, message))
    return found


def key_path(parts: Iterable[Any]) -> str:
    """``matrix[0].levels`` from ("matrix", 0, "levels"); ``(top level)`` from ()."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else str(part)
    return text or "(top level)"


def unknown_key_message(key: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key: {hint}valid keys here: {', '.join(allowed)}"


def kind(value: Any) -> str:
    """A value as an error message shows what was found."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return repr(value)


def _explain(error: Any) -> list[tuple[str, str]]:
    parts = list(error.absolute_path)
    node: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    keyword = error.validator
    if keyword == "additionalProperties":
        allowed = tuple(node.get("properties", {}))
        extra = [key for key in instance if key not in allowed]
        return [(key_path([*parts, key]), unknown_key_message(str(key), allowed)) for key in extra]
    if keyword == "required":
        hints = node.get("x-missing", {})
        missing = [key for key in node["required"] if key not in instance]
        return [
            (key_path([*parts, key]), "missing: " + _fill(hints.get(key, "give a value"), node))
            for key in missing
        ]
    if keyword == "format":
        return [(key_path(parts), str(error.cause or error.message))]
    if list(error.relative_schema_path)[-2:-1] == ["propertyNames"]:
        parts.append(instance)  # a bad key: the path is the key's own
    if keyword != "type" and "x-error" in node:
        return [(key_path(parts), _fill(node["x-error"], node, instance))]
    return [(key_path(parts), f"must be {_expected(node)}, got {kind(instance)}")]


def _fill(text: str, node: Mapping[str, Any], value: Any = None) -> str:
    return text.format(
        value=repr(value),
        severities=", ".join(SEVERITIES),
        choices=", ".join(str(choice) for choice in node.get("enum", ())),
    )


def _expected(node: Mapping[str, Any]) -> str:
    if "x-expect" in node:
        return str(node["x-expect"])
    kind_of = node.get("type")
    if kind_of == "integer":
        return f"a whole number from {node['minimum']} to {node['maximum']}"
    if kind_of == "number":
        return f"a number >= {node['minimum']}"
    return {
        "object": "a mapping (key: value lines)",
        "boolean": "true or false",
        "string": "text",
        "array": "a list",
    }.get(str(kind_of), "a valid value")
