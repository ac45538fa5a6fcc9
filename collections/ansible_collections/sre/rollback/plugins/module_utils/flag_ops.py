# GPL-3.0-or-later
"""What the ``sre.rollback.feature_flag`` module does on one host: set flags in a flagd-shaped
file or an HTTP flag service, read them back, clear caches and probe the evaluation.

Stdlib only: the module runs it under AnsibleModule, and the collection's ``feature_flag``
action plugin ships it to the host without AnsibleModule (plugins/plugin_utils/
stdlib_module.py; a call with a token or headers, which are no_log, takes the module path).
:func:`execute` is the entry point of both.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils import applock
from ansible_collections.sre.rollback.plugins.module_utils.feature_flags import (
    FlagError,
    clear_caches,
    fill,
    flag_state,
    http_request,
    http_settings,
    judge_evaluation,
    parse_document,
    placeholders,
    poll_evaluations,
    read_field_state,
    render_document,
    set_flag,
    unknown_flags,
)
from ansible_collections.sre.rollback.plugins.module_utils.hostchange import (
    LOCK_OPTIONS,
    ChangeError,
    CheckMode,
    append_jsonl,
    refuse_if_locked,
    take_lock,
    utc_now,
    write_atomic,
)

Failure = (FlagError, ChangeError, OSError, ValueError)


# --- file backend -----------------------------------------------------------------------------


def read_file(path: str) -> tuple[str, dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError as exc:
        raise FlagError(f"flags file {path} does not exist on this host: check the path") from exc
    return text, parse_document(text, path)


def plan_file(p: dict[str, Any], document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The new document and, per flag, before/after/changed. Raises before any change."""
    flags = document["flags"]
    problem = unknown_flags(p["flags"], list(flags))
    if problem:
        raise FlagError(f"{p['path']}: {problem}. Nothing was changed.")
    variant = p["off_variant"] if p["state"] == "disabled" else p["on_variant"]
    new_flags = dict(flags)
    report: dict[str, Any] = {}
    for name in p["flags"]:
        before = flag_state(flags[name])
        if before != p["state"]:
            new_flags[name] = set_flag(name, flags[name], p["state"], p["method"], variant)
            if flag_state(new_flags[name]) != p["state"]:
                raise FlagError(
                    f"flag {name!r} would still be {flag_state(new_flags[name])} with "
                    f"method={p['method']} (its default variant "
                    f"{new_flags[name].get('defaultVariant')!r} is "
                    f"{json.dumps(new_flags[name]['variants'][new_flags[name]['defaultVariant']])}"
                    "): use method=variant. Nothing was changed."
                )
        report[name] = {"before": before, "after": p["state"], "changed": before != p["state"]}
    new_document = dict(document)
    new_document["flags"] = new_flags
    parse_document(render_document(new_document), f"{p['path']} (as it would be written)")
    return new_document, report


def keep_backup(p: dict[str, Any], text: str) -> str:
    os.makedirs(p["backup_dir"], mode=0o700, exist_ok=True)
    base = os.path.basename(p["path"])
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{base}.{stamp}.{p['run_id'] or os.getpid()}"
    backup = os.path.join(p["backup_dir"], name)
    write_atomic(backup, text.encode("utf-8"), 0o600)
    mine = sorted(f for f in os.listdir(p["backup_dir"]) if f.startswith(f"{base}.") and f != name)
    for old in mine[: max(0, len(mine) + 1 - p["backup_keep"])]:
        os.unlink(os.path.join(p["backup_dir"], old))
    return backup


def write_file(p: dict[str, Any], old_text: str, new_document: dict[str, Any]) -> str:
    """Back up, write atomically, read back from disk; put the old content back if the
    read-back is not what was wanted."""
    backup = keep_backup(p, old_text)
    info = os.stat(p["path"])
    write_atomic(
        p["path"],
        render_document(new_document).encode(),
        info.st_mode & 0o7777,
        info.st_uid,
        info.st_gid,
    )
    try:
        _raw, reread = read_file(p["path"])
        wrong = [n for n in p["flags"] if flag_state(reread["flags"].get(n, {})) != p["state"]]
        if wrong:
            raise FlagError(f"{', '.join(wrong)} did not read back {p['state']} from {p['path']}")
    except FlagError as exc:
        write_atomic(p["path"], old_text.encode(), info.st_mode & 0o7777, info.st_uid, info.st_gid)
        raise FlagError(f"{exc}; the previous content was put back") from exc
    return backup


# --- http backend ------------------------------------------------------------------------------


def http_call(s: dict[str, Any], method: str, url: str, body: Any = None) -> tuple[int, str]:
    headers = {str(k): str(v) for k, v in (s.get("headers") or {}).items()}
    if s.get("token"):
        headers[s["token_header"]] = f"{s['token_prefix']}{s['token']}"
    status, text = http_request(method, url, headers, body, s["timeout"], s["validate_certs"])
    if status == 0:
        raise FlagError(f"{method} {url} failed: {text}")
    return status, text


def http_read(s: dict[str, Any], flag: str) -> str:
    values = placeholders(s, flag, "disabled")
    url = fill(s["get_url"], values)
    status, body = http_call(s, s["get_method"], url, fill(s.get("get_body"), values))
    if s["read"] == "ofrep":
        state, summary = judge_evaluation(status, body, s["off_values"], s["not_found_is_off"])
        if state == "error":
            raise FlagError(f"flag {flag!r}: {url} answered {summary}")
        return state
    if status == 404:
        raise FlagError(f"unknown flag {flag!r}: {url} answered 404")
    if status >= 300:
        raise FlagError(f"flag {flag!r}: {url} answered {status}: {body.strip()[:200]}")
    return read_field_state(body, s["state_path"], s["off_values"])


def http_set(s: dict[str, Any], flag: str, want: str) -> None:
    values = placeholders(s, flag, want)
    url = fill(s["set_url"], values)
    status, body = http_call(s, s["set_method"], url, fill(s.get("set_body"), values))
    if status >= 300:
        raise FlagError(f"flag {flag!r}: {url} answered {status}: {body.strip()[:200]}")


def plan_http(p: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    problems = []
    for name in p["flags"]:
        try:
            before = http_read(s, name)
        except FlagError as exc:
            problems.append(str(exc))
            continue
        report[name] = {"before": before, "after": p["state"], "changed": before != p["state"]}
    if problems:
        raise FlagError(f"{'; '.join(problems)}. Nothing was changed.")
    return report


# --- the call ----------------------------------------------------------------------------------


def audit_entries(p: dict[str, Any], report: dict[str, Any], target: str) -> list[dict[str, Any]]:
    host = socket.gethostname()
    return [
        {
            "time": utc_now(),
            "who": p["user"] or "?",
            "host": host,
            "run_id": p["run_id"],
            "backend": p["backend"],
            "target": target,
            "flag": name,
            "before": change["before"],
            "after": change["after"],
            "reason": p["reason"],
            "incident": p["incident"],
        }
        for name, change in report.items()
        if change["changed"]
    ]


def diff_of(report: dict[str, Any], key: str) -> str:
    return "".join(f"{name}: {change[key]}\n" for name, change in sorted(report.items()))


def verify_where_evaluated(p: dict[str, Any], result: dict[str, Any]) -> None:
    """The second check: the app evaluates the flags as wanted (when a probe is given)."""
    if not p["probe"].get("url"):
        return
    started = time.monotonic()
    result["evaluation"] = poll_evaluations(p["probe"], p["flags"], p["state"])
    result["timings"]["evaluation"] = round(time.monotonic() - started, 3)


def phases_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The call's phases for the run record (set in the backend, then verify where the app
    evaluates, caches cleared first), as the one-call rollouts report them."""
    timings = result["timings"]
    seconds = round(timings.get("read", 0.0) + timings.get("write_verify", 0.0), 3)
    found = [
        {"phase": "set", "status": "changed" if result["changed"] else "ok", "seconds": seconds}
    ]
    evaluation = result.get("evaluation")
    if evaluation is not None:
        step = {
            "phase": "verify",
            "status": "ok" if evaluation.get("ok") else "failed",
            "seconds": timings.get("evaluation", 0.0),
        }
        if not evaluation.get("ok"):
            step["msg"] = str(evaluation.get("msg") or "")[:500]
        found.append(step)
    return found


def run(module: CheckMode, p: dict[str, Any]) -> dict[str, Any]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    result: dict[str, Any] = {
        "lock": None,
        "verified": False,
        "cleared": None,
        "evaluation": None,
        "timings": timings,
    }
    if p["lock_root"]:
        result["lock"] = applock.read_owner(p["lock_root"])
    refuse_if_locked(p["lock_root"], p["run_id"], p["break_lock"])
    if p["backend"] == "file":
        if not p["path"]:
            raise FlagError("backend=file needs path (the flags file)")
        old_text, document = read_file(p["path"])
        new_document, report = plan_file(p, document)
        target = p["path"]
        result["diff"] = {
            "before": old_text,
            "after": render_document(new_document)
            if any(c["changed"] for c in report.values())
            else old_text,
            "before_header": p["path"],
            "after_header": p["path"],
        }
    else:
        settings = http_settings(p["http"])
        report = plan_http(p, settings)
        target = str(settings.get("base_url") or settings["get_url"])
        result["diff"] = {
            "before": diff_of(report, "before"),
            "after": diff_of(report, "after"),
            "before_header": target,
            "after_header": target,
        }
    timings["read"] = round(time.monotonic() - started, 3)
    changed = any(c["changed"] for c in report.values())
    result.update(changed=changed, flags=report, audit=audit_entries(p, report, target))
    if module.check_mode:
        return result
    if not changed:
        result["verified"] = True
        verify_where_evaluated(p, result)
        return result

    owner = applock.owner(p["run_id"] or "", p["user"], p["controller"], "feature_flag")
    took = take_lock(p["lock_root"], p["run_id"], owner, p["break_lock"])
    try:
        started = time.monotonic()
        if p["backend"] == "file":
            result["backup"] = write_file(p, old_text, new_document)
        else:
            for name, change in report.items():
                if change["changed"]:
                    http_set(settings, name, p["state"])
            wrong = [n for n in p["flags"] if http_read(settings, n) != p["state"]]
            if wrong:
                raise FlagError(
                    f"the flag service still reports {', '.join(wrong)} as not {p['state']} "
                    "after the change"
                )
        timings["write_verify"] = round(time.monotonic() - started, 3)
        result["verified"] = True
        if p["audit_log"]:
            append_jsonl(p["audit_log"], result["audit"])
        try:
            result["cleared"] = clear_caches(p["clear"], p["probe"].get("deadline") or 20.0)
        except FlagError as exc:
            result["evaluation"] = {"ok": False, "msg": f"{exc} (the backend has the new state)"}
            return result
        verify_where_evaluated(p, result)
    finally:
        if took:
            applock.release(p["lock_root"], p["run_id"])
    return result


# The module's options (plugins/modules/feature_flag.py documents them).
HTTP_OPTIONS: dict[str, Any] = {
    "preset": {"type": "str", "default": "", "choices": ["", "unleash", "ofrep"]},
    "base_url": {"type": "str"},
    "token": {"type": "str", "no_log": True},
    # The header's name and the prefix before the token (Bearer), not secrets.
    "token_header": {"type": "str", "no_log": False},
    "token_prefix": {"type": "str", "no_log": False},
    "headers": {"type": "dict", "no_log": True},
    "set_method": {"type": "str"},
    "set_url": {"type": "str"},
    "set_body": {"type": "raw"},
    "get_method": {"type": "str"},
    "get_url": {"type": "str"},
    "get_body": {"type": "raw"},
    "read": {"type": "str", "choices": ["", "field", "ofrep"]},
    "state_path": {"type": "str"},
    "off_values": {"type": "list", "elements": "raw"},
    "project": {"type": "str"},
    "environment": {"type": "str"},
    "not_found_is_off": {"type": "bool", "default": False},
    "timeout": {"type": "float", "default": 10.0},
    "validate_certs": {"type": "bool", "default": True},
}
ARGUMENT_SPEC: dict[str, Any] = {
    "flags": {"type": "list", "elements": "str", "required": True},
    "state": {"type": "str", "default": "disabled", "choices": ["disabled", "enabled"]},
    "backend": {"type": "str", "default": "file", "choices": ["file", "http"]},
    "path": {"type": "path"},
    "method": {"type": "str", "default": "state", "choices": ["state", "variant"]},
    "off_variant": {"type": "str"},
    "on_variant": {"type": "str"},
    "backup_dir": {"type": "path", "default": "/var/lib/sre-rollback/flag-backups"},
    "backup_keep": {"type": "int", "default": 20},
    "http": {"type": "dict", "default": {}, "options": HTTP_OPTIONS},
    "clear": {
        "type": "dict",
        "default": {},
        "options": {
            "url": {"type": "str"},
            "method": {"type": "str", "default": "POST"},
            "command": {"type": "str"},
        },
    },
    "probe": {
        "type": "dict",
        "default": {},
        "options": {
            "url": {"type": "str"},
            "method": {"type": "str", "default": "GET"},
            "body": {"type": "raw"},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "off_values": {"type": "list", "elements": "raw", "default": [False]},
            "not_found_is_off": {"type": "bool", "default": False},
            "deadline": {"type": "float", "default": 20.0},
            "interval": {"type": "float", "default": 0.25},
            "timeout": {"type": "float", "default": 3.0},
        },
    },
    "audit_log": {"type": "path", "default": "/var/log/sre-rollback/feature-flags.jsonl"},
    "reason": {"type": "str"},
    "incident": {"type": "str"},
    **LOCK_OPTIONS,
}
REQUIRED_IF: list[tuple[str, str, list[str]]] = [("backend", "file", ["path"])]


def execute(p: dict[str, Any], check_mode: bool) -> tuple[bool, dict[str, Any]]:
    """Carry out one call with validated parameters: (failed, result); a failed result has
    ``msg``. Shared by the module and the action plugin's stdlib-only path."""
    module = CheckMode(check_mode)
    p["flags"] = [f for f in dict.fromkeys(p["flags"]) if f]
    if not p["flags"]:
        return True, {"msg": "flags is empty: name the flags to set"}
    if p["backup_keep"] < 1:
        return True, {"msg": "backup_keep must be at least 1"}
    for key in ("probe", "clear"):
        url = p[key].get("url")
        if url and not url.startswith(("http://", "https://")):
            return True, {"msg": f"{key}.url must be http:// or https://, not {url!r}"}
    try:
        result = run(module, p)
    except Failure as exc:
        return True, {"msg": str(exc), "flags": {}, "audit": [], "verified": False}
    if not check_mode:
        result["phases"] = phases_of(result)
    if result["evaluation"] and not result["evaluation"]["ok"]:
        # The backend has the new state (and the audit says so): only the app lags.
        return True, {**result, "msg": result["evaluation"]["msg"]}
    return False, result
