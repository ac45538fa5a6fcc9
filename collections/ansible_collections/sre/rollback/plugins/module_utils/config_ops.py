# GPL-3.0-or-later
"""What the ``sre.rollback.config_revision`` module does on one host: inspect, snapshot,
restore or apply a config revision (with the restart and health gate in the same call).

Stdlib only: the module runs it under AnsibleModule, and the collection's
``config_revision`` action plugin ships it to the host without AnsibleModule
(plugins/plugin_utils/stdlib_module.py). :func:`execute` is the entry point of both.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils import applock, rollout
from ansible_collections.sre.rollback.plugins.module_utils import config_revisions as cr
from ansible_collections.sre.rollback.plugins.module_utils.hostchange import (
    LOCK_OPTIONS,
    ChangeError,
    CheckMode,
    refuse_if_locked,
    take_lock,
    utc_now,
)
from ansible_collections.sre.rollback.plugins.module_utils.releases import blame

# The module's options (plugins/modules/config_revision.py documents them).
ARGUMENT_SPEC: dict[str, Any] = {
    "path": {"type": "path", "required": True},
    "state": {
        "type": "str",
        "default": "inspect",
        "choices": ["inspect", "snapshot", "restored", "applied"],
    },
    "source": {"type": "str", "default": "store", "choices": ["store", "git"]},
    "target": {"type": "str", "default": ""},
    "content": {"type": "dict", "default": {}},
    "files": {"type": "list", "elements": "str", "default": ["*"]},
    "exclude": {"type": "list", "elements": "str", "default": []},
    "store_root": {"type": "path", "default": "/var/lib/sre-rollback/config"},
    "keep": {"type": "int", "default": 20},
    "validate": {"type": "str", "default": ""},
    "validate_timeout": {"type": "int", "default": 60},
    "event": {"type": "str", "choices": ["rollback", "apply", "revert", "snapshot"]},
    "reason": {"type": "str"},
    "incident": {"type": "str"},
    **LOCK_OPTIONS,
    "keep_lock": {"type": "bool", "default": False},
    "service": rollout.SERVICE_SPEC,
    "health": rollout.HEALTH_SPEC,
}
REQUIRED_IF: list[tuple[str, str, list[str]]] = [("state", "applied", ["content"])]

DEFAULT_EVENT = {"restored": "rollback", "applied": "apply", "snapshot": "snapshot"}


def describe_live(store: cr.Store, live: cr.Tree) -> dict[str, Any]:
    total = cr.checksum(live)
    return {"revision": store.by_checksum(total), "checksum": total, "files": len(live)}


def resolve_target(
    p: dict[str, Any], store: cr.Store, live: cr.Tree, live_id: str | None
) -> tuple[cr.Tree, dict[str, Any]]:
    """The target tree and how it was picked."""
    if p["state"] == "applied":
        given = {
            str(rel).lstrip("/"): cr.File(str(text).encode()) for rel, text in p["content"].items()
        }
        outside = [
            rel
            for rel in given
            if not cr.managed(rel, p["files"], p["exclude"]) or ".." in rel.split("/")
        ]
        if outside:
            raise ChangeError(
                f"content for {', '.join(outside)}: not a managed file of {p['path']} (files "
                f"{p['files']}, exclude {p['exclude']}); nothing was changed"
            )
        target = dict(live)
        target.update(cr.with_live_owners(given, live, p["path"]))
        return target, {"source": "content", "files": sorted(given)}
    if p["source"] == "git":
        cr.git_check(p["path"])
        commit = cr.git_resolve(p["path"], p["target"] or "HEAD~1")
        wanted = cr.with_live_owners(
            cr.git_tree(p["path"], commit, p["files"], p["exclude"]), live, p["path"]
        )
        tracked = cr.git_tracked(p["path"])
        # Files git does not know stay as they are; tracked files absent in the target go.
        target = {rel: f for rel, f in live.items() if rel not in tracked}
        target.update(wanted)
        return target, {
            "source": "git",
            "ref": p["target"] or "HEAD~1",
            **cr.git_describe(p["path"], commit),
        }
    rid = p["target"]
    why = "named"
    if not rid:
        found, why = store.previous(live_id)
        if found is None:
            known = ", ".join(m["id"] for m in store.manifests()) or "none"
            raise ChangeError(
                f"no earlier revision of {p['path']} to go back to ({why}; revisions: {known}, "
                f"bad: {', '.join(sorted(store.bad())) or 'none'}). Name one with target, or "
                "apply configs through the config role so that each change has a revision."
            )
        rid = found
    return store.load(rid), {"source": "store", "revision": rid, "why": why}


def run_validation(
    p: dict[str, Any], target: cr.Tree, changes: dict[str, list[str]]
) -> dict[str, Any]:
    """Validate the target in a staged copy of the directory; ChangeError when invalid."""
    if not p["validate"]:
        return {"ran": False, "ok": None, "output": "no validator configured"}
    if "{dir}" not in p["validate"]:
        return {
            "ran": False,
            "ok": None,
            "output": "runs after the change (the validator takes no {dir})",
        }
    staging = cr.stage(p["path"], target, changes["removed"])
    try:
        ok, output = cr.validate(
            p["validate"], staging, p["validate_timeout"], f"{p['path']} (staged target)"
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not ok:
        raise ChangeError(
            f"the target config of {p['path']} is invalid; nothing was changed. Validator {output}"
        )
    return {"ran": True, "ok": True, "output": output}


def do_inspect(p: dict[str, Any], store: cr.Store, live: cr.Tree) -> dict[str, Any]:
    live_info = describe_live(store, live)
    bad = store.bad()
    previous, why = store.previous(live_info["revision"])
    revisions = [
        {
            "id": m["id"],
            "created": m.get("created"),
            "checksum": m.get("checksum"),
            "files": sorted(m.get("files", {})),
            "reason": m.get("reason"),
            "state": "live"
            if m["id"] == live_info["revision"]
            else ("bad" if m["id"] in bad else "good"),
        }
        for m in store.manifests()
    ]
    return {
        "changed": False,
        "before": live_info,
        "revisions": revisions,
        "previous": {"revision": previous, "why": why},
    }


def meta_of(p: dict[str, Any], event: str) -> dict[str, Any]:
    return {
        "event": event,
        "run_id": p["run_id"],
        "user": p["user"],
        "reason": p["reason"],
        "incident": p["incident"],
    }


def timeline_entry(p: dict[str, Any], event: str, revision: str, **more: Any) -> dict[str, Any]:
    return {
        "time": utc_now(),
        "host": socket.gethostname(),
        "revision": revision,
        **meta_of(p, event),
        **more,
    }


def do_snapshot(
    module: CheckMode, p: dict[str, Any], store: cr.Store, live: cr.Tree
) -> dict[str, Any]:
    before = describe_live(store, live)
    if module.check_mode:
        return {"changed": before["revision"] is None, "before": before, "after": before}
    rid, created = store.save(live, meta_of(p, "snapshot"))
    history = store.live_history()
    if not history or history[-1] != rid:
        store.record(timeline_entry(p, "snapshot", rid))
    store.prune(p["keep"], {rid})
    return {
        "changed": created,
        "before": before,
        "after": {**before, "revision": rid},
        "snapshot": rid,
    }


def do_change(
    module: CheckMode, p: dict[str, Any], store: cr.Store, live: cr.Tree
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    before = describe_live(store, live)
    target, picked = resolve_target(p, store, live, before["revision"])
    changes = cr.compare(live, target)
    diff_text = cr.unified_diff(live, target, changes)
    which = picked.get("revision") or picked.get("commit") or "given content"
    after = {
        "revision": picked.get("revision") or store.by_checksum(cr.checksum(target)),
        "checksum": cr.checksum(target),
    }
    result: dict[str, Any] = {
        "changed": cr.has_changes(changes),
        "before": before,
        "after": after,
        "target": picked,
        "files": changes,
        "diff": {
            "before_header": p["path"],
            "after_header": f"{p['path']} ({which})",
            "prepared": diff_text,
        },
        "validation": {"ran": False, "ok": None, "output": "nothing to change"},
        "timings": timings,
    }
    timings["resolve"] = round(time.monotonic() - started, 3)
    if not result["changed"]:
        return result
    refuse_if_locked(p["lock_root"], p["run_id"], p["break_lock"])
    started = time.monotonic()
    result["validation"] = run_validation(p, target, changes)
    timings["validate"] = round(time.monotonic() - started, 3)
    if module.check_mode:
        return result

    event = p["event"] or DEFAULT_EVENT[p["state"]]
    owner = applock.owner(p["run_id"] or "", p["user"], p["controller"], f"config {event}")
    take_lock(p["lock_root"], p["run_id"], owner, p["break_lock"])
    try:
        started = time.monotonic()
        snapshot, _created = store.save(live, meta_of(p, "snapshot"))
        history = store.live_history()
        if not history or history[-1] != snapshot:
            store.record(timeline_entry(p, "snapshot", snapshot))
        result["snapshot"] = snapshot
        timings["snapshot"] = round(time.monotonic() - started, 3)
        started = started_change = time.monotonic()
        try:
            cr.apply(p["path"], target, changes)
            if p["validate"] and "{dir}" not in p["validate"]:
                ok, output = cr.validate(p["validate"], p["path"], p["validate_timeout"])
                result["validation"] = {"ran": True, "ok": ok, "output": output}
                if not ok:
                    raise ChangeError(
                        f"the new config of {p['path']} is invalid. Validator {output}"
                    )
        except (ChangeError, OSError) as exc:
            cr.apply(p["path"], live, cr.compare(target, live))
            raise ChangeError(f"{exc}; the previous files were put back") from exc
        timings["apply"] = round(time.monotonic() - started, 3)
        rid, _created = store.save(target, meta_of(p, event))
        extra: dict[str, Any] = {"from": snapshot}
        if event in ("rollback", "revert") and snapshot != rid:
            extra["bad"] = snapshot
        if picked["source"] == "git":
            extra["git_commit"] = picked["commit"]
        store.record(timeline_entry(p, event, rid, **extra))
        result["after"] = {"revision": rid, "checksum": cr.checksum(target)}
        result["pruned"] = store.prune(p["keep"], {rid, snapshot})
        if p["service"] or p["health"]:
            gate(p, store, live, target, result, timings, started_change)
    finally:
        if not p["keep_lock"] and p["lock_root"] and p["run_id"]:
            applock.release(p["lock_root"], p["run_id"])
    return result


class GateFailed(ChangeError):
    """The change went in but the host was not healthy afterwards; result says what was
    done about it (put back, restarted)."""

    def __init__(self, msg: str, result: dict[str, Any]) -> None:
        super().__init__(msg)
        self.result = result


def gate(
    p: dict[str, Any],
    store: cr.Store,
    live: cr.Tree,
    target: cr.Tree,
    result: dict[str, Any],
    timings: dict[str, float],
    started_change: float,
) -> None:
    """Restart and gate on health after the change; when the host is not healthy, put the
    files that were live back (recorded as a revert that marks the target bad), restart on
    them, and raise GateFailed."""
    phases: list[dict[str, Any]] = [rollout.phase("change", started_change, "changed")]
    result["phases"] = phases
    cause = rollout.restart_and_gate(p["service"], p["health"], phases, result)
    if cause is None:
        return
    cause = cause.rstrip(". ")
    snapshot, failed_rid = result["snapshot"], result["after"]["revision"]
    started = time.monotonic()
    try:
        cr.apply(p["path"], live, cr.compare(target, live))
    except OSError as exc:
        phases.append(rollout.phase("revert", started, "failed", str(exc)))
        raise GateFailed(
            f"{cause}. Putting back revision {snapshot} failed as well: {exc}. "
            "The host needs attention.",
            result,
        ) from exc
    reverted = dict(p, reason=cause[:300])
    # Not bad until the evidence says so (below): a suspect stays a candidate target.
    store.record(
        timeline_entry(reverted, "revert", snapshot, **{"from": failed_rid, "suspect": failed_rid})
    )
    result["reverted"] = True
    result["after"] = {"revision": snapshot, "checksum": cr.checksum(live)}
    done, said = rollout.restart_back(p["service"], f"revision {snapshot} (the config it had)")
    phases.append(rollout.phase("revert", started, "changed" if done else "failed", said))
    timings["revert"] = phases[-1]["seconds"]
    had = rollout.recheck(p["service"], p["health"], phases) if done else None
    verdict = blame(result.get("failure"), had["healthy"] if had else None, False)
    if verdict["state"] == "bad":
        store.record(
            timeline_entry(reverted, "gate_failed", failed_rid, bad=failed_rid, why=verdict["why"])
        )
    result["had_health"] = had
    result["verdict"] = {"revision": failed_rid, "failure": result.get("failure"), **verdict}
    said += f" Revision {failed_rid} is marked {verdict['state']} on this host: {verdict['why']}."
    if verdict["state"] != "bad":
        said += " Next: fix the cause, then run the same level again."
    result["cause"], result["revert_msg"] = cause, said
    raise GateFailed(f"{cause}. {said}", result)


def execute(p: dict[str, Any], check_mode: bool) -> tuple[bool, dict[str, Any]]:
    """Carry out one call with validated parameters: (failed, result); a failed result has
    ``msg``. Shared by the module and the action plugin's stdlib-only path."""
    module = CheckMode(check_mode)
    p["path"] = os.path.normpath(p["path"])
    if p["keep"] < 2:
        return True, {"msg": "keep must be at least 2: the live revision and the one before it"}
    problems = rollout.spec_problems(p["service"], p["health"])
    if problems:
        return True, {"msg": "; ".join(problems) + ". Nothing was changed."}
    store = cr.Store(p["store_root"], p["path"])
    lock = applock.read_owner(p["lock_root"]) if p["lock_root"] else None
    try:
        live = cr.read_live(p["path"], p["files"], p["exclude"])
        if p["state"] == "inspect":
            result = do_inspect(p, store, live)
        elif p["state"] == "snapshot":
            result = do_snapshot(module, p, store, live)
        else:
            if p["state"] == "applied" and not p["content"]:
                raise ChangeError("state=applied needs content: {relative path: new content}")
            result = do_change(module, p, store, live)
    except GateFailed as exc:
        return True, {**exc.result, "msg": str(exc), "lock": lock, "store": store.path}
    except (ChangeError, OSError, ValueError) as exc:
        return True, {"msg": str(exc), "lock": lock, "store": store.path}
    return False, {**result, "lock": lock, "store": store.path}
