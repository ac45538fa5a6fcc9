# GPL-3.0-or-later
"""Feature flags for level 1: the flagd file shape, explicit on/off states, OFREP answers.

* A flags file in the flagd JSON shape (``{"flags": {name: {state, variants,
  defaultVariant, targeting?, metadata?}}}``) is checked against the schema's rules,
  a flag is set to an explicit state (never toggled), and read back.
* Flag systems say "disabled" in two ways (OpenFeature's reason ``DISABLED`` with the
  caller's default value, or an error code: ``FLAG_DISABLED``, or flagd's OFREP
  ``FLAG_NOT_FOUND`` whose details say the flag is disabled); ``judge_evaluation``
  accepts both.
* HTTP flag services: presets (Unleash's admin API, an OFREP evaluation endpoint) and
  the placeholders of URL and body templates.

* The evaluation probe: clear the app's caches, then poll where the app evaluates the
  flags until they read as wanted, before a deadline.

Standard library only (it runs on the managed hosts; level 1 is timed in seconds, so the
imports stay light).
"""

from __future__ import annotations

import difflib
import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.hostio import run_command

STATES = ("ENABLED", "DISABLED")
TOP_LEVEL_KEYS = frozenset({"flags", "$schema", "$evaluators", "metadata"})
FLAG_KEYS = frozenset({"state", "variants", "defaultVariant", "targeting", "metadata"})
WANTS = ("disabled", "enabled")
DISABLED_ERROR_CODES = frozenset({"FLAG_DISABLED"})


class FlagError(Exception):
    """A failure with a message that tells the user what to fix."""


# --- the flagd file ---------------------------------------------------------------------


def flag_problems(name: str, flag: Any) -> list[str]:
    if not isinstance(flag, dict):
        return [f"flag {name!r}: must be an object"]
    problems = [f"flag {name!r}: unknown key {k!r}" for k in sorted(set(flag) - FLAG_KEYS)]
    if flag.get("state") not in STATES:
        problems.append(f"flag {name!r}: state must be ENABLED or DISABLED")
    variants = flag.get("variants")
    if not isinstance(variants, dict) or not variants:
        problems.append(f"flag {name!r}: variants must be a non-empty object")
    elif flag.get("defaultVariant") not in variants:
        problems.append(
            f"flag {name!r}: defaultVariant {flag.get('defaultVariant')!r} is not one of the "
            f"variants ({', '.join(sorted(variants))})"
        )
    if "targeting" in flag and not isinstance(flag["targeting"], dict):
        problems.append(f"flag {name!r}: targeting must be an object")
    return problems


def document_problems(document: Any) -> list[str]:
    """What makes a parsed flags document unusable; empty when it follows the flagd shape."""
    if not isinstance(document, dict) or not isinstance(document.get("flags"), dict):
        return ['must be a JSON object with a "flags" object: {"flags": {"name": {...}}}']
    problems = [f"unknown top-level key {k!r}" for k in sorted(set(document) - TOP_LEVEL_KEYS)]
    for name, flag in document["flags"].items():
        problems.extend(flag_problems(name, flag))
    return problems


def parse_document(text: str, where: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise FlagError(f"{where} is not valid JSON: {exc}. Nothing was changed.") from exc
    problems = document_problems(document)
    if problems:
        raise FlagError(
            f"{where} does not follow the flagd schema: {'; '.join(problems)}. Fix the file "
            "first; nothing was changed."
        )
    return dict(document)


def render_document(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def flag_state(flag: dict[str, Any]) -> str:
    """``disabled`` when the flag evaluates off (state DISABLED, or its default variant's
    value is false), else ``enabled``."""
    if flag.get("state") == "DISABLED":
        return "disabled"
    variants = flag.get("variants") or {}
    if variants.get(flag.get("defaultVariant")) is False:
        return "disabled"
    return "enabled"


def unknown_flags(names: list[str], known: list[str]) -> str | None:
    """A message naming the flags that do not exist (with close matches), or None."""
    missing = [n for n in names if n not in known]
    if not missing:
        return None
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown flag {', '.join(hints)}; known flags: {', '.join(sorted(known)) or 'none'}"


def variant_with_value(flag: dict[str, Any], value: bool) -> str | None:
    for variant, variant_value in (flag.get("variants") or {}).items():
        if variant_value is value:
            return str(variant)
    return None


def set_flag(
    name: str, flag: dict[str, Any], want: str, method: str, variant: str | None = None
) -> dict[str, Any]:
    """The flag with an explicit state.

    ``method=state`` writes ``state: DISABLED`` (or ``ENABLED``). ``method=variant`` keeps
    the flag ENABLED and points ``defaultVariant`` at the off variant (the one given, or
    the one whose value is ``false``; ``true`` for enabled).
    """
    if want not in WANTS:
        raise FlagError(f"state must be one of {', '.join(WANTS)}, not {want!r}")
    changed = dict(flag)
    if method == "state":
        changed["state"] = "DISABLED" if want == "disabled" else "ENABLED"
        return changed
    chosen = variant or variant_with_value(flag, want == "enabled")
    if chosen is None or chosen not in (flag.get("variants") or {}):
        raise FlagError(
            f"flag {name!r} has no {'given' if variant else 'boolean'} variant to switch to "
            f"for {want} (variants: {', '.join(flag.get('variants') or {}) or 'none'}); name "
            "one (off_variant / on_variant) or use method=state. Nothing was changed."
        )
    changed["state"] = "ENABLED"
    changed["defaultVariant"] = chosen
    return changed


# --- evaluation answers (OFREP and the like) -----------------------------------------------


def judge_evaluation(
    status: int, body: str, off_values: list[Any], not_found_is_off: bool = False
) -> tuple[str, str]:
    """Read one evaluation answer as (``disabled`` | ``enabled`` | ``error``, summary).

    Disabled answers: reason ``DISABLED`` (the caller's default value comes with it, or no
    value at all), a value listed in ``off_values`` (``false`` by default), error code
    ``FLAG_DISABLED``, or ``FLAG_NOT_FOUND`` whose details say "disabled" (flagd's OFREP
    before reason DISABLED existed), or any ``FLAG_NOT_FOUND`` when ``not_found_is_off``.
    """
    if status == 0:
        return "error", f"no answer: {body[:200]}"
    try:
        answer = json.loads(body) if body.strip() else {}
    except ValueError:
        return "error", f"status {status}, body is not JSON: {body.strip()[:200]}"
    if not isinstance(answer, dict):
        return "error", f"status {status}, unexpected JSON: {body.strip()[:200]}"
    code = answer.get("errorCode")
    details = str(answer.get("errorDetails") or "")
    if code:
        summary = f"status {status}, errorCode {code}" + (f" ({details[:160]})" if details else "")
        if code in DISABLED_ERROR_CODES:
            return "disabled", summary
        if code == "FLAG_NOT_FOUND" and ("disabled" in details.lower() or not_found_is_off):
            return "disabled", summary
        return "error", summary
    if status >= 400:
        return "error", f"status {status}: {body.strip()[:200]}"
    reason = str(answer.get("reason") or "")
    value = answer.get("value")
    summary = f"status {status}, reason {reason or '-'}, value {json.dumps(value)}"
    if reason.upper() == "DISABLED":
        return "disabled", summary
    if "value" in answer and any(_same(value, off) for off in off_values):
        return "disabled", summary
    if "value" not in answer:
        return "error", f"status {status}: no value and no reason DISABLED in {body[:200]}"
    return "enabled", summary


def _same(value: Any, expected: Any) -> bool:
    """Equal, and of the same JSON type (``0`` is not ``false``)."""
    return type(value) is type(expected) and value == expected


# --- HTTP flag services ----------------------------------------------------------------------

PRESETS: dict[str, dict[str, Any]] = {
    # Unleash admin API (v4 and later): one environment of one project.
    "unleash": {
        "set_method": "POST",
        "set_url": "{base_url}/api/admin/projects/{project}/features/{flag}/environments/"
        "{environment}/{on_off}",
        "set_body": None,
        "get_method": "GET",
        "get_url": "{base_url}/api/admin/projects/{project}/features/{flag}/environments/"
        "{environment}",
        "get_body": None,
        "read": "field",
        "state_path": "enabled",
        "off_values": [False],
        "token_header": "Authorization",
        "token_prefix": "",
    },
    # Read the state back from an OFREP evaluation endpoint (OFREP itself cannot set flags:
    # the set request is the service's own, given with set_url).
    "ofrep": {
        "get_method": "POST",
        "get_url": "{base_url}/ofrep/v1/evaluate/flags/{flag}",
        "get_body": {"context": {}},
        "read": "ofrep",
        "off_values": [False],
        "token_header": "Authorization",
        "token_prefix": "Bearer ",
    },
}

HTTP_DEFAULTS: dict[str, Any] = {
    "set_method": "PUT",
    "set_url": "",
    "set_body": None,
    "get_method": "GET",
    "get_url": "",
    "get_body": None,
    "read": "field",
    "state_path": "state",
    "off_values": [False, "DISABLED", "disabled", "off"],
    "token_header": "Authorization",
    "token_prefix": "Bearer ",
    "project": "default",
    "environment": "production",
}


def http_settings(given: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then the preset, then what the user set (None, "", [] and {} mean "not set")."""
    preset = given.get("preset") or ""
    if preset and preset not in PRESETS:
        raise FlagError(f"unknown http preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    settings = dict(HTTP_DEFAULTS)
    settings.update(PRESETS.get(preset, {}))
    settings.update({k: v for k, v in given.items() if v not in (None, "", [], {})})
    problems = []
    templates = f"{settings.get('set_url')} {settings.get('get_url')}"
    if not settings.get("base_url") and "{base_url}" in templates:
        problems.append("base_url")
    for key in ("set_url", "get_url"):
        if not settings.get(key):
            problems.append(key)
    if problems:
        raise FlagError(
            f"the http backend needs {', '.join(problems)} (or a preset that sets them: "
            f"{', '.join(sorted(PRESETS))})"
        )
    return settings


def check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise FlagError(f"flag service URLs must be http:// or https://, not {url[:80]!r}")
    return url


def placeholders(settings: dict[str, Any], flag: str, want: str) -> dict[str, str]:
    return {
        "base_url": str(settings.get("base_url") or "").rstrip("/"),
        "project": str(settings.get("project") or ""),
        "environment": str(settings.get("environment") or ""),
        "flag": flag,
        "state": want,
        "STATE": want.upper(),
        "on_off": "off" if want == "disabled" else "on",
        "enabled": "true" if want == "enabled" else "false",
    }


def fill(template: Any, values: dict[str, str]) -> Any:
    """Replace ``{name}`` placeholders in strings, recursively; a string that is exactly
    ``{enabled}`` becomes a JSON boolean."""
    if isinstance(template, str):
        if template == "{enabled}":
            return values["enabled"] == "true"
        out = template
        for key, value in values.items():
            out = out.replace("{" + key + "}", value)
        return out
    if isinstance(template, dict):
        return {fill(k, values): fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    return template


def dig(data: Any, path: str) -> Any:
    """``a.b.0.c`` into nested JSON; KeyError when a step is missing."""
    for step in [s for s in path.split(".") if s]:
        if isinstance(data, list):
            data = data[int(step)]
        elif isinstance(data, dict):
            data = data[step]
        else:
            raise KeyError(step)
    return data


def read_field_state(body: str, state_path: str, off_values: list[Any]) -> str:
    """``disabled`` or ``enabled`` from the field of a service's JSON answer."""
    try:
        value = dig(json.loads(body), state_path)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise FlagError(
            f"the flag service's answer has no {state_path!r} (state_path): {body.strip()[:200]}"
        ) from exc
    return "disabled" if any(_same(value, off) for off in off_values) else "enabled"


def http_request(
    method: str,
    url: str,
    headers: dict[str, str],
    body: Any = None,
    timeout: float = 10.0,
    validate_certs: bool = True,
) -> tuple[int, str]:
    """(status, body) of one JSON request, never through a proxy; an HTTP error status is an
    answer, not an exception; a failed connection is status 0 with the reason as body."""
    sent = {"Accept": "application/json", "User-Agent": "sre.rollback", **headers}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    # check_url lets only http(s) through: no file: or custom scheme reaches the opener.
    request = urllib.request.Request(check_url(url), data=data, headers=sent, method=method)  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as answer:
            return int(answer.status), answer.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(1 << 20).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def clear_caches(clear: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    """Make the app drop its caches (``command`` run on the host, or a request to ``url``);
    None when neither is given; FlagError when it did not work."""
    if clear.get("command"):
        proc = run_command(["/bin/sh", "-c", clear["command"]], timeout)
        if proc.rc is None:
            raise FlagError(f"cache clear {clear['command']!r} took over {timeout} s")
        if proc.rc != 0:
            raise FlagError(
                f"cache clear {clear['command']!r} failed (exit {proc.rc}): {proc.output[-500:]}"
            )
        return {"command": clear["command"], "rc": 0}
    if clear.get("url"):
        method = clear.get("method") or "POST"
        status, body = http_request(method, clear["url"], {}, None, timeout)
        if not 200 <= status < 300:
            raise FlagError(
                f"cache clear {method} {clear['url']} answered {status or 'nothing'}: "
                f"{body.strip()[:200]}"
            )
        return {"url": clear["url"], "status": status}
    return None


def poll_evaluations(probe: dict[str, Any], flags: list[str], expect: str) -> dict[str, Any]:
    """Ask ``probe['url']`` (``{flag}`` replaced) for every flag, round after round, until a
    round finds all of them ``expect`` or ``deadline`` passes; {ok, evaluations, rounds,
    elapsed, msg}."""
    headers = {str(k): str(v) for k, v in (probe.get("headers") or {}).items()}
    started = time.monotonic()
    rounds = 0
    while True:
        rounds += 1
        seen = {}
        for flag in flags:
            status, body = http_request(
                probe.get("method") or "GET",
                probe["url"].replace("{flag}", flag),
                headers,
                probe.get("body"),
                probe.get("timeout") or 3.0,
            )
            state, summary = judge_evaluation(
                status,
                body,
                probe.get("off_values") or [False],
                bool(probe.get("not_found_is_off")),
            )
            seen[flag] = {"state": state, "answer": summary}
        elapsed = round(time.monotonic() - started, 3)
        result = {"ok": True, "evaluations": seen, "rounds": rounds, "elapsed": elapsed}
        if all(e["state"] == expect for e in seen.values()):
            return result
        if elapsed + probe["interval"] > probe["deadline"]:
            wrong = "; ".join(
                f"{flag}: {e['state']} ({e['answer']})"
                for flag, e in seen.items()
                if e["state"] != expect
            )
            result.update(
                ok=False,
                msg=f"the flags did not evaluate {expect} at {probe['url']} within "
                f"{probe['deadline']} s ({rounds} rounds); last answers: {wrong}. The backend has "
                "the new state: look at the app's flag cache and how it reloads flags.",
            )
            return result
        time.sleep(probe["interval"])
