#!/usr/bin/python
# GPL-3.0-or-later
"""Level 1's atomic step on a host: set flags to an explicit state and read them back."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: feature_flag
short_description: Set feature flags to an explicit state and verify it, in a flags file or a flag service
version_added: "0.1.0"
description:
  - Sets every flag of I(flags) to I(state) (C(disabled) or C(enabled); there is no toggle,
    so running it again changes nothing) and reads each one back from the backend.
  - C(backend=file) edits a flags file in the flagd JSON shape. The file is checked against
    the schema before and after the change, the previous content is kept in I(backup_dir),
    and the new content replaces the old with one atomic rename (mode and owner kept).
    After the write the file is read again from disk; if a flag does not read back as
    wanted, the previous content is put back and the module fails.
  - C(backend=http) drives a flag service's API (presets for Unleash's admin API and for
    reading state from an OFREP evaluation endpoint, or any API given as URL and body
    templates). The token is sent in a header and never shown.
  - Optionally, in the same call on the host, clears the application's caches after a
    change (I(clear)) and polls where the application evaluates the flags until they read
    as wanted (I(probe)), so that the kill switch costs one module call per host. The
    C(sre.rollback.flag_evaluation) module does the same on its own.
  - Unknown flags and an invalid file fail before anything changes.
  - Every change appends one JSON line per flag (time, who, run id, flag, before, after,
    reason, incident) to I(audit_log) and is returned in C(audit).
  - With I(lock_root) and I(run_id), the application lock shared with deploy and every
    rollback level is taken for the change and dropped afterwards (unless this run already
    held it); a lock held by another run fails the call with the owner's name.
author:
  - SRE rollback team
extends_documentation_fragment:
  - sre.rollback.app_lock
attributes:
  check_mode:
    support: full
    description: Reads the backend, fails on unknown flags or a bad file, reports the plan and changes nothing.
  diff_mode:
    support: full
    description: The flags file before and after (file), or each flag's state before and after (http).
options:
  flags:
    description: Names of the flags to set.
    type: list
    elements: str
    required: true
  state:
    description: The state every flag must have afterwards.
    type: str
    choices: [disabled, enabled]
    default: disabled
  backend:
    description: Where the flags live.
    type: str
    choices: [file, http]
    default: file
  path:
    description: The flags file (C(backend=file)).
    type: path
  method:
    description:
      - How a flag of the file is switched. C(state) writes C(state) C(DISABLED) or C(ENABLED).
        C(variant) keeps the flag C(ENABLED) and points C(defaultVariant) at the off variant
        (I(off_variant), or the variant whose value is C(false)) or the on variant.
    type: str
    choices: [state, variant]
    default: state
  off_variant:
    description: Variant that means off, for C(method=variant) (default the one whose value is C(false)).
    type: str
  on_variant:
    description: Variant that means on, for C(method=variant) (default the one whose value is C(true)).
    type: str
  backup_dir:
    description: Directory that keeps the previous content of the flags file, one file per change.
    type: path
    default: /var/lib/sre-rollback/flag-backups
  backup_keep:
    description: Backups of one flags file kept in I(backup_dir).
    type: int
    default: 20
  http:
    description: The flag service (C(backend=http)). Templates may use C({base_url}), C({project}),
      C({environment}), C({flag}), C({state}) (disabled/enabled), C({STATE}), C({on_off}) and
      C({enabled}) (a body value that is exactly C({enabled}) becomes a JSON boolean).
    type: dict
    default: {}
    suboptions:
      preset:
        description: C(unleash) (admin API, one project and environment) or C(ofrep) (read the state from an OFREP evaluation).
        type: str
        choices: ["", unleash, ofrep]
        default: ""
      base_url:
        description: Base URL of the service.
        type: str
      token:
        description: API token, sent in I(token_header) with I(token_prefix). Never logged.
        type: str
      token_header:
        description: Header that carries the token.
        type: str
      token_prefix:
        description: Text before the token in its header (C(Bearer )).
        type: str
      headers:
        description: More request headers (never logged).
        type: dict
      set_method:
        description: HTTP method of the request that sets a flag.
        type: str
      set_url:
        description: URL template of the request that sets a flag.
        type: str
      set_body:
        description: JSON body template of the request that sets a flag.
        type: raw
      get_method:
        description: HTTP method of the request that reads a flag back.
        type: str
      get_url:
        description: URL template of the request that reads a flag back.
        type: str
      get_body:
        description: JSON body template of the read request.
        type: raw
      read:
        description: C(field) reads I(state_path) of the JSON answer; C(ofrep) reads an OFREP evaluation (empty, the preset's or C(field)).
        type: str
        choices: ["", field, ofrep]
      state_path:
        description: Dotted path of the field that holds the state (C(enabled), C(state), C(data.0.on)).
        type: str
      off_values:
        description: Values of that field (or OFREP values) that mean off.
        type: list
        elements: raw
      project:
        description: Project (C({project}), Unleash).
        type: str
      environment:
        description: Environment (C({environment}), Unleash).
        type: str
      not_found_is_off:
        description: With C(read=ofrep), take C(FLAG_NOT_FOUND) as off (services that hide disabled flags).
        type: bool
        default: false
      timeout:
        description: Seconds one request may take.
        type: float
        default: 10
      validate_certs:
        description: Check the service's TLS certificate.
        type: bool
        default: true
  clear:
    description: After a change, make the app drop its caches (not in check mode, not when nothing changed).
    type: dict
    default: {}
    suboptions:
      url:
        description: URL requested from the host (a 2xx answer is expected).
        type: str
      method:
        description: Method of that request.
        type: str
        default: POST
      command:
        description: Shell command run on the host instead (exit 0 expected).
        type: str
  probe:
    description:
      - Poll an evaluation endpoint from the host until every flag evaluates to I(state)
        (both ways flag systems say "disabled" count as off), or fail after I(deadline) s.
        Not in check mode. Empty for no probe.
    type: dict
    default: {}
    suboptions:
      url:
        description: Evaluation URL with C({flag}) (C(http://127.0.0.1:8080/flags/{flag})).
        type: str
      method:
        description: HTTP method (C(POST) for OFREP).
        type: str
        default: GET
      body:
        description: JSON body of each request.
        type: raw
      headers:
        description: Request headers (never logged).
        type: dict
        default: {}
      off_values:
        description: Evaluated values that mean off.
        type: list
        elements: raw
        default: [false]
      not_found_is_off:
        description: Take C(FLAG_NOT_FOUND) as off.
        type: bool
        default: false
      deadline:
        description: Seconds after which the probe fails.
        type: float
        default: 20
      interval:
        description: Seconds between rounds.
        type: float
        default: 0.25
      timeout:
        description: Seconds one request may take.
        type: float
        default: 3
  audit_log:
    description: JSON-lines audit log on the host; empty for none.
    type: path
    default: /var/log/sre-rollback/feature-flags.jsonl
  reason:
    description: Why (audit log).
    type: str
  incident:
    description: Incident id (audit log).
    type: str
"""

EXAMPLES = r"""
- name: Kill switch for the new checkout in the app's flags file
  sre.rollback.feature_flag:
    flags: [new_checkout]
    state: disabled
    path: /etc/demo-app/flags.json
    lock_root: /opt/demo-app
    run_id: "{{ rollback_run_id }}"
    reason: checkout errors above 10 %
    incident: INC-1234

- name: The same flag in Unleash (production environment of the default project)
  sre.rollback.feature_flag:
    flags: [new_checkout]
    state: disabled
    backend: http
    http:
      preset: unleash
      base_url: https://unleash.example.com
      environment: production
      token: "{{ lookup('ansible.builtin.env', 'UNLEASH_ADMIN_TOKEN') }}"
"""

RETURN = r"""
flags:
  description: Per flag, its state before and after (C(disabled) or C(enabled)) and whether it changed.
  returned: always
  type: dict
  sample: {new_checkout: {before: enabled, after: disabled, changed: true}}
verified:
  description: Every flag read back from the backend in the wanted state (false in check mode).
  returned: always
  type: bool
cleared:
  description: How caches were cleared (url and status, or command and rc); null when not asked or nothing changed.
  returned: always
  type: dict
evaluation:
  description: The probe's verdict (ok, evaluations per flag, rounds, elapsed); null without a probe.
  returned: always
  type: dict
audit:
  description: The audit entries written (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
backup:
  description: File that keeps the previous content of the flags file.
  returned: when backend=file and the file changed
  type: str
lock:
  description: The lock holder seen before the change (null when free).
  returned: always
  type: dict
timings:
  description: Seconds spent reading, writing and verifying.
  returned: always
  type: dict
"""

import json
import os
import socket
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

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
    append_jsonl,
    lock_owner,
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
        _, reread = read_file(p["path"])
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


def run(module: AnsibleModule, p: dict[str, Any]) -> dict[str, Any]:
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

    owner = lock_owner(p["run_id"] or "", p["user"], p["controller"], "feature_flag")
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


def main() -> None:
    http_options = {
        "preset": {"type": "str", "default": "", "choices": ["", "unleash", "ofrep"]},
        "base_url": {"type": "str"},
        "token": {"type": "str", "no_log": True},
        "token_header": {"type": "str"},
        "token_prefix": {"type": "str"},
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
    module = AnsibleModule(
        argument_spec={
            "flags": {"type": "list", "elements": "str", "required": True},
            "state": {"type": "str", "default": "disabled", "choices": ["disabled", "enabled"]},
            "backend": {"type": "str", "default": "file", "choices": ["file", "http"]},
            "path": {"type": "path"},
            "method": {"type": "str", "default": "state", "choices": ["state", "variant"]},
            "off_variant": {"type": "str"},
            "on_variant": {"type": "str"},
            "backup_dir": {"type": "path", "default": "/var/lib/sre-rollback/flag-backups"},
            "backup_keep": {"type": "int", "default": 20},
            "http": {"type": "dict", "default": {}, "options": http_options},
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
        },
        required_if=[("backend", "file", ["path"])],
        supports_check_mode=True,
    )
    p = dict(module.params)
    p["flags"] = [f for f in dict.fromkeys(p["flags"]) if f]
    if not p["flags"]:
        module.fail_json(msg="flags is empty: name the flags to set")
    if p["backup_keep"] < 1:
        module.fail_json(msg="backup_keep must be at least 1")
    for key in ("probe", "clear"):
        url = p[key].get("url")
        if url and not url.startswith(("http://", "https://")):
            module.fail_json(msg=f"{key}.url must be http:// or https://, not {url!r}")
    try:
        result = run(module, p)
    except Failure as exc:
        module.fail_json(msg=str(exc), flags={}, audit=[], verified=False)
    if not module.check_mode:
        result["phases"] = phases_of(result)
    if result["evaluation"] and not result["evaluation"]["ok"]:
        # The backend has the new state (and the audit says so): only the app lags.
        module.fail_json(msg=result["evaluation"]["msg"], **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
