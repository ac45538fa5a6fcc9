# GPL-3.0-or-later
"""What the ``sre.rollback.release`` module does on one host: inspect, build, switch,
roll out (switch, restart, health gate, switch back), mark, unlock.

Stdlib only (no ``ansible.module_utils.basic``): the module runs it under AnsibleModule,
and the collection's ``release`` action plugin ships it to the host on its own, with the
arguments validated on the controller, which saves the ~0.2 s of CPU that loading
AnsibleModule costs each call on every host (plugins/plugin_utils/stdlib_module.py).
:func:`execute` is the one entry point of both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils import (
    applock,
    controller_watch,
    rollout,
    services,
)
from ansible_collections.sre.rollback.plugins.module_utils.hostchange import CheckMode
from ansible_collections.sre.rollback.plugins.module_utils.hostio import run_command, sha256_file
from ansible_collections.sre.rollback.plugins.module_utils.releases import (
    MANIFEST_NAME,
    META_NAME,
    append_log,
    blame,
    log_entry,
    read_log,
    release_id,
    release_states,
)

# The module's options (plugins/modules/release.py documents them).
ARGUMENT_SPEC: dict[str, Any] = {
    "app_root": {"type": "path", "required": True},
    "state": {
        "type": "str",
        "default": "inspect",
        "choices": ["inspect", "present", "switched", "rolled_out", "marked", "unlocked"],
    },
    "release": {"type": "str"},
    "tag": {"type": "str"},
    "commit": {"type": "str"},
    "repo": {"type": "str"},
    "build_command": {"type": "str", "default": ""},
    "build_timeout": {"type": "int", "default": 600},
    "shared_paths": {"type": "list", "elements": "str", "default": []},
    "keep": {"type": "int", "default": 5},
    "previous_state": {"type": "str", "default": "good", "choices": ["good", "bad", "suspect"]},
    "mark": {"type": "str", "choices": ["good", "bad"]},
    "event": {"type": "str", "default": "deploy"},
    "reason": {"type": "str"},
    "run_id": {"type": "str"},
    "user": {"type": "str"},
    "controller": {"type": "str"},
    "break_lock": {"type": "bool", "default": False},
    "verify": {"type": "str", "default": "full", "choices": ["full", "commit"]},
    "tags_pattern": {"type": "str"},
    "service": rollout.SERVICE_SPEC,
    "health": rollout.HEALTH_SPEC,
    "keep_lock": {"type": "bool", "default": False},
    "proven_healthy": {"type": "bool", "default": False},
    "wait": {"type": "int", "default": 0},
}
REQUIRED_IF: list[tuple[str, str, list[str]]] = [
    ("state", "marked", ["mark"]),
    ("state", "rolled_out", ["service"]),
]


class ReleaseError(Exception):
    """A failure with a message that tells the user what to do."""


class RolloutFailed(ReleaseError):
    """state=rolled_out failed on this host; result says what was done about it."""

    def __init__(self, msg: str, result: dict[str, Any]) -> None:
        super().__init__(msg)
        self.result = result


def releases_dir(app_root: str) -> str:
    return os.path.join(app_root, "releases")


def current_release(app_root: str) -> str | None:
    link = os.path.join(app_root, "current")
    if not os.path.islink(link):
        return None
    return os.path.basename(os.readlink(link).rstrip("/"))


def read_meta(path: str) -> dict[str, Any]:
    try:
        with open(os.path.join(path, META_NAME), encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


# The build manifest covers every file of the release tree, bytecode included: whatever an
# interpreter may load from the tree (sources, __pycache__/*.pyc, .pth files, native
# extensions, scripts) was either written by the build from the verified commit or fails
# the verification. Nothing is exempted by name, because a directory the check skips is
# where tampering hides: a .pyc rewritten next to an untouched source runs (a checked-hash
# pyc is only compared with its source's hash in its own header, which a tamperer copies).
# So bytecode is written at build time (the demo's ./build compiles every source) and never
# afterwards: a cache an interpreter writes later (another Python version, a root process
# importing the code) is "not in the manifest", and the release is rebuilt, not trusted.
# Relying on "the app must not write bytecode" instead would trust every process that ever
# runs the code to have PYTHONDONTWRITEBYTECODE set; the demo's unit does set it, and its
# tree belongs to root, so the service itself can write nothing there.
MANIFEST_FORMAT = 2  # 1 (unversioned) left __pycache__, .git and the shared links out
MANIFEST_SKIP = frozenset({META_NAME, MANIFEST_NAME})  # the release's own records


def file_manifest(root: str, skip: frozenset[str] = MANIFEST_SKIP) -> dict[str, str]:
    """By relative path, the sha256 of every regular file below root (with its mode when it
    has an execute, setuid, setgid or sticky bit), the target of every link ("link:...",
    not followed) and the type of anything else ("special:...", never opened)."""
    manifest: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if d not in links]
        for name in filenames + links:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel not in skip:
                manifest[rel] = manifest_value(os.path.join(dirpath, name))
    return manifest


def manifest_value(path: str) -> str:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return "link:" + os.readlink(path)
    if not stat.S_ISREG(info.st_mode):
        return f"special:{stat.filemode(info.st_mode)[0]}"
    digest = sha256_file(path)
    mode = stat.S_IMODE(info.st_mode)
    return f"{digest} mode {mode:o}" if mode & 0o7111 else digest


def manifest_differences(actual: dict[str, str], recorded: dict[str, str]) -> list[str]:
    """Each path where the tree and its manifest differ, with how (changed, missing, new)."""
    differ = []
    for name in sorted(set(actual) | set(recorded)):
        if actual.get(name) == recorded.get(name):
            continue
        if name in actual and name in recorded:
            differ.append(f"{name} (changed)")
        else:
            differ.append(f"{name} ({'missing' if name in recorded else 'not in the manifest'})")
    return differ


def verify_release(path: str, commit: str | None, mode: str) -> str | None:
    """None when the release at path is intact, else why it is not."""
    if not os.path.isdir(path):
        return "not on disk"
    meta = read_meta(path)
    if not meta:
        return f"{META_NAME} missing or unreadable"
    if commit and meta.get("commit") != commit:
        return f"built from {meta.get('commit')}, not {commit}"
    if mode == "commit":
        return None
    if meta.get("manifest_format") != MANIFEST_FORMAT:
        return (
            f"its build manifest (format {meta.get('manifest_format', 1)}, from an older "
            "sre.rollback) does not cover every file, bytecode included: not trusted"
        )
    try:
        with open(os.path.join(path, MANIFEST_NAME), encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError):
        return f"{MANIFEST_NAME} missing or unreadable"
    differ = manifest_differences(file_manifest(path), recorded)
    if differ:
        return f"{len(differ)} file(s) differ from the build manifest: {', '.join(differ[:5])}"
    return None


def run(
    cmd: list[str] | str,
    cwd: str,
    env: dict[str, str] | None = None,
    timeout: int = 600,
    shell: bool = False,
) -> str:
    proc = run_command(cmd, timeout, cwd=cwd, env=env, shell=shell)
    if proc.rc is None:
        raise ReleaseError(f"{cmd!r} took longer than {timeout} s in {cwd}")
    if proc.rc != 0:
        raise ReleaseError(
            f"{cmd if isinstance(cmd, str) else ' '.join(cmd)} failed "
            f"(exit {proc.rc}) in {cwd}: {proc.output[-2000:]}"
        )
    return proc.stdout


# ls-remote only lists refs (a second on a working server): a server that hangs during an
# incident costs the plan this long before it falls back on the releases recorded on the hosts.
LS_REMOTE_TIMEOUT = 15


def resolve_tags(repo: str, pattern: str | None) -> dict[str, str]:
    """Tag -> commit (annotated tags peeled), as this host reaches the repository."""
    out = run(["git", "ls-remote", "--tags", repo], cwd="/", timeout=LS_REMOTE_TIMEOUT)
    tags: dict[str, str] = {}
    for line in out.splitlines():
        sha, _sep, ref = line.partition("\t")
        name = ref.removeprefix("refs/tags/")
        peeled = name.endswith("^{}")
        name = name.removesuffix("^{}")
        if pattern and not re.search(pattern, name):
            continue
        if peeled or name not in tags:
            tags[name] = sha
    return tags


def build_release(p: dict[str, Any], rid: str, timings: dict[str, float]) -> str | None:
    """Check the tag out into a temporary directory, build it, verify the commit, write the
    manifest, then move it into place with one rename. A (damaged) copy in its place is
    moved aside only then, so a build that fails (the repository is unreachable) leaves the
    host as it was; returns where the copy went, if there was one."""
    if not p["repo"] or not p["tag"]:
        raise ReleaseError(f"release {rid} must be rebuilt but repo and tag are not both given")
    rdir = releases_dir(p["app_root"])
    tmp = os.path.join(rdir, f".tmp-{rid}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        started = time.monotonic()
        run(["git", "init", "-q"], cwd=tmp)
        run(
            ["git", "fetch", "-q", "--depth", "1", p["repo"], f"refs/tags/{p['tag']}"],
            cwd=tmp,
            timeout=p["build_timeout"],
        )
        run(["git", "-c", "advice.detachedHead=false", "checkout", "-q", "FETCH_HEAD"], cwd=tmp)
        commit = run(["git", "rev-parse", "HEAD"], cwd=tmp).strip()
        if p["commit"] and commit != p["commit"]:
            raise ReleaseError(
                f"tag {p['tag']} is {commit} here but the run decided on "
                f"{p['commit']}: the tag moved or this host sees another repository"
            )
        timings["fetch"] = round(time.monotonic() - started, 3)
        started = time.monotonic()
        if p["build_command"]:
            env = dict(os.environ, RELEASE_ID=rid, RELEASE_TAG=p["tag"], RELEASE_COMMIT=commit)
            run(p["build_command"], cwd=tmp, env=env, timeout=p["build_timeout"], shell=True)  # noqa: S604 - the build command is a shell line by contract
        shutil.rmtree(os.path.join(tmp, ".git"))
        link_shared(p["app_root"], tmp, p["shared_paths"])
        timings["build"] = round(time.monotonic() - started, 3)
        manifest = file_manifest(tmp)
        write_json(os.path.join(tmp, MANIFEST_NAME), manifest)
        write_json(
            os.path.join(tmp, META_NAME),
            {
                "release": rid,
                "tag": p["tag"],
                "commit": commit,
                "files": len(manifest),
                "manifest_format": MANIFEST_FORMAT,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        final, aside = os.path.join(rdir, rid), None
        if os.path.lexists(final):
            aside = os.path.join(rdir, f".damaged-{rid}-{int(time.time())}")
            os.rename(final, aside)
        os.rename(tmp, final)
        return aside
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def link_shared(app_root: str, release_path: str, shared_paths: list[str]) -> None:
    for rel in shared_paths:
        target = os.path.join(app_root, "shared", rel)
        os.makedirs(target, exist_ok=True)
        inside = os.path.join(release_path, rel)
        if os.path.islink(inside) or os.path.isfile(inside):
            os.unlink(inside)
        elif os.path.isdir(inside):
            shutil.rmtree(inside)
        os.makedirs(os.path.dirname(inside), exist_ok=True)
        os.symlink(target, inside)


def write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True, indent=1)


def switch_current(app_root: str, rid: str) -> None:
    """Point current at the release with one rename(2): never a moment without current."""
    tmp_link = os.path.join(app_root, f".current-{os.getpid()}")
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(os.path.join("releases", rid), tmp_link)
    os.rename(tmp_link, os.path.join(app_root, "current"))


def describe_release(
    app_root: str, rid: str | None, states: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    if not rid:
        return {"release": None, "tag": None, "commit": None}
    meta = read_meta(os.path.join(releases_dir(app_root), rid))
    logged = states.get(rid, {})
    return {
        "release": rid,
        "tag": meta.get("tag") or logged.get("tag"),
        "commit": meta.get("commit") or logged.get("commit"),
    }


def prune(
    app_root: str, keep: int, protect: set[str], states: dict[str, dict[str, Any]]
) -> list[str]:
    """Remove the oldest releases beyond `keep`; never current, the last good one, or bad ones
    (kept for investigation)."""
    rdir = releases_dir(app_root)
    on_disk = [d for d in os.listdir(rdir) if not d.startswith(".")]
    order = {rid: i for i, rid in enumerate(states)}
    on_disk.sort(key=lambda rid: (order.get(rid, -1), rid))
    removable = [
        rid for rid in on_disk if rid not in protect and states.get(rid, {}).get("state") != "bad"
    ]
    excess = len(on_disk) - keep
    pruned: list[str] = []
    for rid in removable:
        if excess <= 0:
            break
        shutil.rmtree(os.path.join(rdir, rid))
        pruned.append(rid)
        excess -= 1
    return pruned


def last_good(states: dict[str, dict[str, Any]], exclude: set[str]) -> str | None:
    good = [
        rid
        for rid, e in states.items()
        if e.get("state") in ("good", "current") and rid not in exclude
    ]
    return good[-1] if good else None


def do_switch(
    module: CheckMode,
    p: dict[str, Any],
    switch: bool = True,
    trace: dict[str, Any] | None = None,
    watch: controller_watch.ControllerWatch | None = None,
) -> dict[str, Any]:
    """state=switched (or present, switch=False). trace, when given, receives the path and
    the timings as they are decided, so a caller can tell where a failure happened."""
    app_root = p["app_root"]
    timings: dict[str, float] = {}
    if trace is not None:
        trace["timings"] = timings
    if not p["release"] and not (p["tag"] and p["commit"]):
        raise ReleaseError("state=switched needs release, or tag and commit")
    rid = p["release"] or release_id(p["tag"], p["commit"])
    states = release_states(read_log(app_root))
    before_id = current_release(app_root)
    before = describe_release(app_root, before_id, states)
    if not p["tag"]:
        known = describe_release(app_root, rid, states)
        p["tag"], p["commit"] = known["tag"], p["commit"] or known["commit"]
    rpath = os.path.join(releases_dir(app_root), rid)

    started = time.monotonic()
    damage = verify_release(rpath, p["commit"], p["verify"])
    timings["verify"] = round(time.monotonic() - started, 3)
    path = "fast" if damage is None else "rebuild"
    if damage is None and (before_id == rid or not switch):
        path = "none"
    if trace is not None:
        trace["path"] = path
    after = {"release": rid, "tag": p["tag"], "commit": p["commit"]}
    result: dict[str, Any] = {
        "changed": path != "none",
        "before": before,
        "after": after,
        "path": path,
        "release": rid,
        "reason_for_rebuild": damage if path == "rebuild" else None,
        "diff": {
            "before": f"current -> releases/{before_id}\n",
            "after": f"current -> releases/{rid}\n",
        },
        "timings": timings,
        "pruned": [],
    }
    if module.check_mode:
        result["current"] = before
        return result
    os.makedirs(releases_dir(app_root), exist_ok=True)
    # The lock is bookkeeping, not a change of the host: taking it is never "changed".
    if p["run_id"]:
        started = time.monotonic()
        lock = applock.acquire(
            app_root,
            applock.owner(p["run_id"], p.get("user"), p.get("controller"), p["event"]),
            p["break_lock"],
            call_holds=p.get("state") == "rolled_out" and not p.get("keep_lock"),
        )
        timings["lock"] = round(time.monotonic() - started, 3)
        if not lock["acquired"]:
            raise ReleaseError(lock["msg"])
        result["lock"] = lock["owner"]
        result["lock_broken"] = lock["broken"]
    if path == "none":
        result["current"] = before
        return result

    if path == "rebuild":
        try:
            aside = build_release(p, rid, timings)
        except ReleaseError as exc:
            raise ReleaseError(
                f"release {rid} must be rebuilt on this host ({damage}), but the build failed: "
                f"{exc}. current was not switched; a copy on disk was left where it was"
            ) from exc
        if aside:
            result["damaged_copy"] = aside
    if not switch:
        result["current"] = before
        return result
    if watch is not None:
        watch.check("switch")  # the controller is gone: change nothing
    started = time.monotonic()
    switch_current(app_root, rid)
    timings["switch"] = round(time.monotonic() - started, 4)
    entries = []
    common = {"run_id": p["run_id"], "user": p["user"], "reason": p["reason"]}
    if before_id and before_id != rid:
        entries.append(
            log_entry(
                before_id,
                before["tag"] or "",
                before["commit"] or "",
                p["previous_state"],
                p["event"] + "_from",
                **common,
            )
        )
    entries.append(
        log_entry(
            rid,
            p["tag"] or "",
            p["commit"] or "",
            "current",
            p["event"],
            path=path,
            previous=before_id,
            **common,
        )
    )
    append_log(app_root, entries)
    states = release_states(read_log(app_root))
    started = time.monotonic()
    protect = {rid} | ({before_id} if before_id else set())
    good = last_good(states, {rid})
    if good:
        protect.add(good)
    result["pruned"] = prune(app_root, p["keep"], protect, states)
    timings["prune"] = round(time.monotonic() - started, 3)
    result["current"] = after
    return result


def no_health() -> dict[str, Any]:
    return {
        "healthy": None,
        "attempts": 0,
        "elapsed": None,
        "first_healthy": None,
        "last_status": 0,
        "last_error": "",
    }


def do_rollout(module: CheckMode, p: dict[str, Any]) -> dict[str, Any]:
    """state=rolled_out: switch, restart, health gate; on failure switch back and restart the
    release the host had. The lock (taken by the switch) is dropped on every path."""
    found = rollout.spec_problems(p["service"], p["health"])
    if found:
        raise ReleaseError(f"state=rolled_out: {'; '.join(found)}. Nothing was changed.")
    if module.check_mode:
        plan = do_switch(module, p)
        plan.update(
            health=no_health(),
            reverted=False,
            phases=[],
            restart=services.describe(p["service"]) if plan["changed"] else None,
            lock_released=False,
        )
        return plan
    result: dict[str, Any] = {"health": no_health(), "reverted": False, "phases": []}
    watch = controller_watch.ControllerWatch()
    try:
        roll_out(module, p, result, watch)
    except BaseException:
        result.setdefault("outcome", controller_watch.FAILED)
        raise
    finally:
        # The journal first: whoever finds the lock free can read how this call ended.
        if p["run_id"]:
            controller_watch.journal_call(p["app_root"], p["run_id"], result, watch)
        if p["run_id"] and not p["keep_lock"]:
            started = time.monotonic()
            applock.release(p["app_root"], p["run_id"])
            result["phases"].append(rollout.phase("unlock", started))
            result.setdefault("timings", {})["unlock"] = result["phases"][-1]["seconds"]
            result["lock_released"] = True
    result.setdefault("lock_released", False)
    if result.get("cause"):
        raise RolloutFailed(f"{result['cause']}. {result['revert_msg']}", result)
    return result


def roll_out(
    module: CheckMode,
    p: dict[str, Any],
    result: dict[str, Any],
    watch: controller_watch.ControllerWatch = controller_watch.NO_WATCH,
) -> None:
    """The steps of do_rollout; a failure is recorded in result (cause, revert_msg). When
    the controller goes away (module_utils controller_watch), a call that has not switched
    changes nothing, and one that switched but has not passed its gate switches back."""
    phases: list[dict[str, Any]] = result["phases"]
    trace: dict[str, Any] = {}
    started = time.monotonic()
    try:
        switched = do_switch(module, p, trace=trace, watch=watch)
    except controller_watch.ControllerLost as lost:
        phases.append(rollout.phase(lost.step, started, "canceled", str(lost)))
        result.update(
            cause=f"{lost} before the switch",
            revert_msg="Nothing was changed.",
            outcome=controller_watch.STOPPED,
            controller_lost=lost.step,
            current=describe_release(
                p["app_root"],
                current_release(p["app_root"]),
                release_states(read_log(p["app_root"])),
            ),
        )
        return
    except ReleaseError as exc:
        building = trace.get("path") == "rebuild" and "switch" not in trace.get("timings", {})
        phases.append(rollout.phase("build" if building else "switch", started, "failed", str(exc)))
        result.update(
            cause=str(exc),
            revert_msg="The host was left as it was.",
            path=trace.get("path"),
            timings=trace.get("timings", {}),
            current=describe_release(
                p["app_root"],
                current_release(p["app_root"]),
                release_states(read_log(p["app_root"])),
            ),
        )
        return
    result.update(switched)
    timings: dict[str, float] = switched["timings"]
    changed = "changed" if switched["changed"] else "ok"
    built = round(timings.get("fetch", 0.0) + timings.get("build", 0.0), 3)
    if switched["path"] == "rebuild":
        phases.append({"phase": "build", "status": "changed", "seconds": built})
    switch_phase = rollout.phase("switch", started, changed)
    switch_phase["seconds"] = round(max(switch_phase["seconds"] - built, 0.0), 3)
    phases.append(switch_phase)

    service = p["service"] if switched["changed"] else None  # already current: no restart
    mark = "suspect"  # until the evidence says more (judge_target)
    try:
        cause = rollout.restart_and_gate(service, p["health"], phases, result, watch)
    except controller_watch.ControllerLost as lost:
        # Switched, gate not passed: undone below, the target not marked bad (not proven).
        cause = f"{lost} during the {lost.step}: the step is undone"
        phases.append(rollout.phase(lost.step, time.monotonic(), "canceled", cause))
        result["controller_lost"] = lost.step
        mark = state_before(p["app_root"], switched["release"])
        if not switched["changed"]:
            result["outcome"] = controller_watch.UNCHANGED
    if cause is None:
        return
    result["cause"] = cause.rstrip(". ")
    before_id = switched["before"]["release"]
    if not switched["changed"]:
        result["revert_msg"] = "The host was left as it was."
    elif not before_id:
        result["revert_msg"] = (
            f"There was no release before it: current stays on {switched['release']}."
        )
    else:
        started = time.monotonic()
        done, result["revert_msg"] = switch_back(module, p, before_id, result, mark)
        phases.append(
            rollout.phase("revert", started, "changed" if done else "failed", result["revert_msg"])
        )
        timings["revert"] = phases[-1]["seconds"]
        if "controller_lost" not in result:
            judge_target(p, switched, result, done)


def judge_target(
    p: dict[str, Any], switched: dict[str, Any], result: dict[str, Any], reverted: bool
) -> None:
    """After a failed gate and a switch back: is the release the host left bad? Re-checks the
    release it had (rollout.recheck), marks the target bad only with evidence
    (releases.blame), and says why and what to run next in the result and the message."""
    had_healthy: bool | None = None
    if reverted:
        had = rollout.recheck(p["service"], p["health"], result["phases"])
        if had is not None:
            result["had_health"] = had
            had_healthy = bool(had["healthy"])
    rid, tag = switched["release"], switched.get("after", {}).get("tag") or switched["release"]
    verdict = blame(result.get("failure"), had_healthy, bool(p.get("proven_healthy")))
    if verdict["state"] == "bad":
        append_log(
            p["app_root"],
            [
                log_entry(
                    rid,
                    p["tag"] or "",
                    p["commit"] or "",
                    "bad",
                    "gate_failed",
                    run_id=p["run_id"],
                    user=p["user"],
                    reason=f"{verdict['why']}: {result['cause']}"[:300],
                )
            ],
        )
    result["verdict"] = {"release": rid, "failure": result.get("failure"), **verdict}
    result["next"] = next_step(verdict["state"], had_healthy, bool(p.get("proven_healthy")), rid, p)
    result["revert_msg"] += (
        f" {tag} is marked {verdict['state']} on this host: {verdict['why']}. {result['next']}"
    )


def next_step(
    state: str, had_healthy: bool | None, proven: bool, rid: str, p: dict[str, Any]
) -> str:
    """What an operator runs next after a failed gate, in words."""
    if state == "bad":
        return (
            "Next: roll back to a release that is not bad (level 3 skips bad ones), or fix "
            "this one; to clear the mark: ansible HOST -m sre.rollback.release -a "
            f"'app_root={p['app_root']} state=marked release={rid} mark=good'."
        )
    if had_healthy is False:
        return (
            "Next: fix what the release it had fails on too (its health answer above; a "
            "dependency?), then run the same level again."
        )
    if proven:
        return "Next: look at this host (service log, disk, network), then run again for it."
    return "Next: run the same level again once the cause is fixed."


def state_before(app_root: str, rid: str) -> str:
    """The state a release had before the switch to it (good when it had none)."""
    earlier = [e.get("state") for e in read_log(app_root) if e.get("release") == rid][:-1]
    return next((s for s in reversed(earlier) if s in ("good", "bad")), "good")


def switch_back(
    module: CheckMode, p: dict[str, Any], before_id: str, result: dict[str, Any], mark: str = "bad"
) -> tuple[bool, str]:
    """Switch current back to the release it had (the target is recorded as bad, with the
    cause as the reason) and restart it. Returns whether both worked, and what was done."""
    back = dict(
        p,
        release=before_id,
        tag=None,
        commit=None,
        previous_state=mark,
        event="revert",
        reason=result["cause"][:300],
        verify="commit",
    )
    try:
        reverted = do_switch(module, back)
    except ReleaseError as exc:
        return (
            False,
            f"Switching back to {before_id} failed as well: {exc}. The host needs attention.",
        )
    result["reverted"] = reverted["changed"]
    result["current"] = reverted["current"]
    result["revert"] = {k: reverted[k] for k in ("before", "after", "path", "timings", "pruned")}
    try:
        services.restart(p["service"])
    except services.ServiceError as exc:
        return False, f"Switched back to {before_id}, but restarting it failed: {exc}"
    return True, f"Switched back to {before_id} and restarted."


def do_inspect(p: dict[str, Any]) -> dict[str, Any]:
    app_root = p["app_root"]
    states = release_states(read_log(app_root))
    rdir = releases_dir(app_root)
    on_disk = set(os.listdir(rdir)) if os.path.isdir(rdir) else set()
    releases = {
        rid: {
            "tag": e.get("tag"),
            "commit": e.get("commit"),
            "state": e.get("state"),
            "time": e.get("time"),
            # Who set the state and why (a mark, a verdict after a failed gate).
            **{key: e.get(key) for key in ("event", "reason", "run_id", "user")},
            "on_disk": rid in on_disk,
        }
        for rid, e in states.items()
    }
    result: dict[str, Any] = {
        "changed": False,
        "app_root": app_root,
        "current": describe_release(app_root, current_release(app_root), states),
        "releases": releases,
        "lock": applock.read_owner(app_root),
        # How the last one-call rollout here ended (also one whose controller went away).
        "last_call": next(reversed(controller_watch.calls(app_root)), None),
    }
    if p["tags_pattern"] is not None and p["repo"]:
        # An unreachable repository does not fail the host: when the git server is down, a
        # rollback to releases on disk must still work, so the plan then decides from the
        # releases recorded on the hosts (releases.plan_target) and says so.
        try:
            result["repo_tags"] = resolve_tags(p["repo"], p["tags_pattern"])
        except ReleaseError as exc:
            result["repo_error"] = str(exc)
    return result


def do_mark(module: CheckMode, p: dict[str, Any]) -> dict[str, Any]:
    app_root = p["app_root"]
    states = release_states(read_log(app_root))
    rid = p["release"] or (release_id(p["tag"], p["commit"]) if p["tag"] and p["commit"] else None)
    if rid not in states:
        rid = _release_of_tag(states, p["release"] or p["tag"]) or rid
    if not rid or rid not in states:
        raise ReleaseError(
            f"release {rid!r} is not in {app_root}/releases.log; known: "
            f"{', '.join(states) or 'none'}"
        )
    entry = states[rid]
    changed = entry.get("state") != p["mark"]
    if changed and not module.check_mode:
        append_log(
            app_root,
            [
                log_entry(
                    rid,
                    entry.get("tag", ""),
                    entry.get("commit", ""),
                    p["mark"],
                    "marked",
                    run_id=p["run_id"],
                    user=p["user"],
                    reason=p["reason"],
                )
            ],
        )
    return {
        "changed": changed,
        "release": rid,
        "before": entry.get("state"),
        "after": p["mark"],
        "current": describe_release(app_root, current_release(app_root), states),
    }


def _release_of_tag(states: dict[str, dict[str, Any]], tag: str | None) -> str | None:
    """The one release the log knows for a tag (a mark may name the tag, not the id)."""
    found = [rid for rid, entry in states.items() if tag and entry.get("tag") == tag]
    if len(found) > 1:
        raise ReleaseError(f"tag {tag!r} names several releases here: {', '.join(found)}")
    return found[0] if found else None


def do_unlock(module: CheckMode, p: dict[str, Any]) -> dict[str, Any]:
    if not p["run_id"]:
        raise ReleaseError("state=unlocked needs run_id: only the run that holds a lock drops it")
    held = applock.read_owner(p["app_root"])
    mine = bool(held and held.get("run_id") == p["run_id"])
    if mine and not module.check_mode and p["wait"] > 0:
        # A call of this run may still be finishing or undoing its step: it drops the
        # lock itself; wait for it rather than release under it.
        controller_watch.wait_for_holder(held, p["wait"])
        held = applock.read_owner(p["app_root"])
        mine = bool(held and held.get("run_id") == p["run_id"])
    seen = {
        "calls": controller_watch.calls(p["app_root"], p["run_id"]),
        "current": current_release(p["app_root"]),
    }
    if module.check_mode or not mine:
        return {"changed": False, "lock": held, **seen}
    outcome = applock.release(p["app_root"], p["run_id"])
    if not outcome["released"]:
        return {"changed": False, "lock": held, "busy": outcome.get("busy"), **seen}
    return {"changed": False, "lock": None, "released": outcome["owner"], **seen}


def execute(p: dict[str, Any], check_mode: bool) -> tuple[bool, dict[str, Any]]:
    """Carry out one call with validated parameters: (failed, result); a failed result has
    ``msg``. Shared by the module and the action plugin's stdlib-only path."""
    mode = CheckMode(check_mode)
    if p["keep"] < 1:
        return True, {"msg": "keep must be at least 1: current is always kept"}
    try:
        if p["state"] == "inspect":
            result = do_inspect(p)
        elif p["state"] in ("present", "switched"):
            result = do_switch(mode, p, switch=p["state"] == "switched")
        elif p["state"] == "rolled_out":
            result = do_rollout(mode, p)
        elif p["state"] == "marked":
            result = do_mark(mode, p)
        else:
            result = do_unlock(mode, p)
        if p["state"] != "inspect":
            result.setdefault("lock", applock.read_owner(p["app_root"]))
    except RolloutFailed as exc:
        exc.result.setdefault("lock", applock.read_owner(p["app_root"]))
        return True, {**exc.result, "msg": str(exc)}
    except (ReleaseError, ValueError, OSError) as exc:
        return True, {"msg": str(exc), "current": current_release(p["app_root"])}
    return False, result
