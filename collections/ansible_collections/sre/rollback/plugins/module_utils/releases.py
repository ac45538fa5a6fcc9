# GPL-3.0-or-later
"""Release ordering, release ids, the per-host release log and target selection.

Used on the hosts (by the ``release`` module) and on the controller (by the
``release_target`` filter), so it is stdlib-only and free of Ansible imports.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

LOG_NAME = "releases.log"
META_NAME = ".release.json"
MANIFEST_NAME = ".release-manifest.json"
DEFAULT_STABLE_PATTERN = r"-stable$"
# suspect: its health gate failed on a host, for a reason not proven to be the release's
# (the release the host had failed too, it was healthy on another host, the controller went
# away): still a candidate target, unlike bad.
STATES = ("current", "good", "bad", "suspect")
# What made a health gate fail, as the gate and the restart report it (module_utils health,
# rollout); the first three are the release's own behaviour, when the release the host had
# is healthy again after the switch back.
RELEASE_FAULTS = ("crashed", "restart_failed", "unhealthy", "no_answer", "timed_out")

_VERSION_RE = re.compile(r"^[^\d]*(\d+(?:\.\d+)*)(.*)$")


def version_key(tag: str) -> tuple[tuple[int, ...], int, str]:
    """Order tags by version, not by name or mtime: v1.10.0 > v1.9.2, and a plain release
    sorts after its pre-releases (v1.2.0-rc1 < v1.2.0) but `-stable` counts as plain."""
    match = _VERSION_RE.match(tag)
    if not match:
        return ((), 0, tag)
    numbers = tuple(int(part) for part in match.group(1).split("."))
    suffix = match.group(2)
    plain = 1 if suffix in ("", "-stable", "-final") else 0
    return (numbers, plain, suffix)


def release_id(tag: str, commit: str) -> str:
    """The id of a release: its tag and short commit, identical on every host."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit or ""):
        raise ValueError(f"not a git commit id: {commit!r}")
    safe_tag = re.sub(r"[^A-Za-z0-9._-]", "_", tag)
    return f"{safe_tag}-g{commit[:10]}"


def read_log(app_root: str) -> list[dict[str, Any]]:
    """All entries of the release log, oldest first; a damaged line is skipped, not fatal."""
    path = os.path.join(app_root, LOG_NAME)
    entries: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("release"):
                    entries.append(entry)
    except FileNotFoundError:
        pass
    return entries


def release_states(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest known entry of each release (its state is that entry's state)."""
    latest: dict[str, dict[str, Any]] = {}
    for entry in entries:
        latest[entry["release"]] = entry
    return latest


def log_entry(
    release: str, tag: str, commit: str, state: str, event: str, **extra: Any
) -> dict[str, Any]:
    if state not in STATES:
        raise ValueError(f"release state must be one of {STATES}, not {state!r}")
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "release": release,
        "tag": tag,
        "commit": commit,
        "state": state,
        "event": event,
    }
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def append_log(app_root: str, entries: list[dict[str, Any]]) -> None:
    """Append entries with one write and an fsync: a crash never leaves half a line."""
    if not entries:
        return
    data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    fd = os.open(os.path.join(app_root, LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def blame(failure: str | None, had_healthy: bool | None, proven_elsewhere: bool) -> dict[str, str]:
    """Whether a failed gate proves the release bad: {state: bad|suspect, why}.

    A release is marked bad only with evidence against it: it failed by its own behaviour
    (crashed, failed to start, answered unhealthy or not at all) while the release the host
    had is healthy again after the switch back. Counter-evidence keeps it a suspect: it is
    healthy on another host of this run (a problem of this host), or the release the host had
    fails too (a dependency is down: not the release's fault). When the release it had
    could not be checked (no health gate for it, step-by-step rollouts), only a crash counts.
    """
    if proven_elsewhere:
        return {
            "state": "suspect",
            "why": "it passed its health gate on another host of this run: the fault is this "
            "host's, not the release's",
        }
    if failure not in RELEASE_FAULTS:
        return {
            "state": "suspect",
            "why": f"the gate did not fail by the change's own behaviour ({failure or 'unknown'})",
        }
    if had_healthy is False:
        return {
            "state": "suspect",
            "why": "what the host had before fails its health gate too: the fault is outside "
            "the change (a dependency down, the host unwell)",
        }
    if had_healthy is None and failure not in ("crashed", "restart_failed"):
        return {
            "state": "suspect",
            "why": f"{failure.replace('_', ' ')}, and what the host had before was not "
            "re-checked: not proven to be the change's fault",
        }
    evidence = {
        "crashed": "it crashed",
        "restart_failed": "it failed to start",
        "unhealthy": "it answered unhealthy",
        "no_answer": "it did not answer",
        "timed_out": "it was not healthy long enough",
    }[failure]
    tail = " while what the host had before is healthy again" if had_healthy else ""
    return {"state": "bad", "why": f"{evidence}{tail}"}


def bad_tags(hosts_releases: list[dict[str, Any]]) -> set[str]:
    """Tags marked bad on any host: a release bad somewhere is bad everywhere."""
    bad: set[str] = set()
    for releases in hosts_releases:
        for info in (releases or {}).values():
            if info.get("state") == "bad":
                bad.add(info.get("tag", ""))
    return bad


def select_target(
    tags: list[str],
    current_tag: str | None,
    bad: set[str],
    pattern: str = DEFAULT_STABLE_PATTERN,
    named: str | None = None,
) -> dict[str, Any]:
    """Pick the release to roll back to.

    A named target (tag) wins, even when it is marked bad: naming it is explicit. Otherwise
    the newest tag that matches the stable pattern, is not bad, is not the current release
    and is older than the current release (a rollback never rolls forward).
    """
    if named:
        if named not in tags:
            return {
                "ok": False,
                "msg": f"target {named!r} is not a tag of the repository; "
                f"known tags: {', '.join(sorted(tags, key=version_key)) or 'none'}",
            }
        return {"ok": True, "tag": named, "why": "named explicitly"}
    regex = re.compile(pattern)
    ceiling = version_key(current_tag) if current_tag else None
    candidates = [
        tag
        for tag in tags
        if regex.search(tag)
        and tag not in bad
        and tag != current_tag
        and (ceiling is None or version_key(tag) < ceiling)
    ]
    if not candidates:
        return {
            "ok": False,
            "msg": f"no stable release older than {current_tag or 'nothing'} "
            f"matches {pattern!r} outside the bad ones ({', '.join(sorted(bad)) or 'none'}); "
            "name one with release_target",
        }
    best = max(candidates, key=version_key)
    skipped = sorted(t for t in bad if regex.search(t))
    why = f"newest tag matching {pattern!r} older than {current_tag}"
    if skipped:
        why += f", skipping bad {', '.join(skipped)}"
    return {"ok": True, "tag": best, "why": why}


def plan_target(
    inspections: dict[str, dict[str, Any]],
    pattern: str = DEFAULT_STABLE_PATTERN,
    named: str | None = None,
) -> dict[str, Any]:
    """Decide the target once for all hosts, from each host's ``release`` inspection.

    Fails (ok=False, msg naming the hosts) when a host cannot resolve the target tag or
    resolves it to another commit than the others: nothing is switched anywhere then.

    A host that could not reach the repository (its inspection has ``repo_error``) vouches
    for the tag with the commit its release log records for it (the commit the release on
    its disk was built and verified from); when no host reached the repository, the target
    is chosen among the tags recorded on the hosts too. Such a host must have the target on
    disk, as it cannot rebuild it: otherwise the plan refuses, saying what to do. A plan
    that used the records says so in ``why`` and ``repo_unreachable``, and asks for the
    full verification of the release's files (``verify``) before the switch.
    """
    if not inspections:
        return {"ok": False, "msg": "no host was inspected: check the inventory and --limit"}
    unreachable = {
        host: str(info["repo_error"])
        for host, info in sorted(inspections.items())
        if info.get("repo_error")
    }
    reached = [info for host, info in inspections.items() if host not in unreachable]
    tags: set[str] = set()
    for info in reached:
        tags.update((info.get("repo_tags") or {}).keys())
    if not reached:
        tags = {tag for info in inspections.values() for tag in _recorded(info)}
    by_release = {
        rid: rel.get("tag")
        for info in inspections.values()
        for rid, rel in (info.get("releases") or {}).items()
    }
    if named and named not in tags and named in by_release:
        named = by_release[named]
    current_tags = sorted(
        {(info.get("current") or {}).get("tag") or "" for info in inspections.values()} - {""},
        key=version_key,
    )
    ceiling = current_tags[-1] if current_tags else None
    bad = bad_tags([info.get("releases") or {} for info in inspections.values()])
    choice = select_target(sorted(tags), ceiling, bad, pattern, named)
    if not choice["ok"]:
        if unreachable and not reached:
            choice["msg"] = (
                f"{_unreachable_note(unreachable)}, so the target was looked for among the "
                f"releases recorded on the hosts: {choice['msg']}"
            )
        return choice
    tag = choice["tag"]
    commits = {
        host: _recorded(info).get(tag)
        if host in unreachable
        else (info.get("repo_tags") or {}).get(tag)
        for host, info in inspections.items()
    }
    distinct = {c for c in commits.values() if c}
    # A host without the repository and without a record of the tag cannot rebuild it: it
    # is refused below, with what to do, rather than as a disagreement.
    missing = sorted(h for h, c in commits.items() if not c and h not in unreachable)
    if missing or len(distinct) != 1:
        majority = (
            max(distinct, key=lambda c: list(commits.values()).count(c)) if distinct else None
        )
        differ = sorted(h for h, c in commits.items() if c != majority)
        records = (
            f" ({_unreachable_note(unreachable)}: the commits of {', '.join(unreachable)} "
            "are the ones their release logs record.)"
            if unreachable
            else ""
        )
        return {
            "ok": False,
            "tag": tag,
            "commits": commits,
            "msg": f"hosts do not agree on tag {tag}: {', '.join(differ)} "
            f"resolve it to {', '.join(sorted({str(commits[h]) for h in differ}))} instead of "
            f"{majority}. Fix their repository (or mirror) first; nothing was changed.{records}",
        }
    commit = distinct.pop()
    rid = release_id(tag, commit)
    hosts = {
        host: {
            "current": (info.get("current") or {}).get("release"),
            "path": "none"
            if (info.get("current") or {}).get("release") == rid
            else "fast"
            if (info.get("releases") or {}).get(rid, {}).get("on_disk")
            else "rebuild",
        }
        for host, info in inspections.items()
    }
    plan: dict[str, Any] = {
        "ok": True,
        "tag": tag,
        "commit": commit,
        "release": rid,
        "why": choice["why"],
        "from": ceiling,
        "bad": sorted(bad),
        "hosts": hosts,
    }
    if not unreachable:
        return plan
    stranded = sorted(h for h in unreachable if hosts[h]["path"] == "rebuild")
    if stranded:
        on_every_host = _on_disk_everywhere(inspections, bad) - {tag, *current_tags}
        return {
            **plan,
            "ok": False,
            "repo_unreachable": unreachable,
            "msg": f"{', '.join(stranded)} would have to rebuild {tag} ({commit[:12]}), which "
            f"is not on disk there, but {_unreachable_note(unreachable)}. Restore access to "
            "the repository (or point release_repo at a reachable mirror), or name a release "
            "that every host has on disk with -e release_target=TAG ("
            f"{', '.join(sorted(on_every_host, key=version_key, reverse=True)) or _NONE_ON_DISK}).",
        }
    chosen = "" if reached else "the target was chosen among the releases recorded on the hosts, "
    plan.update(
        repo_unreachable=unreachable,
        verify="full",
        why=f"{choice['why']}; {_unreachable_note(unreachable)}: {chosen}the commit of {tag} "
        f"on {'every host' if not reached else ', '.join(unreachable)} is the one recorded "
        f"in its releases.log ({commit[:12]}), and every host agrees on it; each host "
        "verifies the release's files against its build manifest before the switch",
    )
    return plan


_NONE_ON_DISK = "there is none: no other release is on disk on every host"


def _recorded(info: dict[str, Any]) -> dict[str, str]:
    """Tag -> commit as a host's release log records them; a tag recorded with several
    commits (the tag moved) gives them all, joined, so that it never agrees with anything.
    Releases on disk win over pruned ones."""
    anywhere: dict[str, set[str]] = {}
    on_disk: dict[str, set[str]] = {}
    for rel in (info.get("releases") or {}).values():
        tag, commit = rel.get("tag"), rel.get("commit")
        if tag and commit:
            anywhere.setdefault(tag, set()).add(commit)
            if rel.get("on_disk"):
                on_disk.setdefault(tag, set()).add(commit)
    return {tag: " or ".join(sorted(on_disk.get(tag) or c)) for tag, c in anywhere.items()}


def _on_disk_everywhere(inspections: dict[str, dict[str, Any]], bad: set[str]) -> set[str]:
    """The tags that every host has on disk, bad ones left out."""
    per_host = [
        {rel.get("tag") for rel in (info.get("releases") or {}).values() if rel.get("on_disk")}
        for info in inspections.values()
    ]
    return {t for t in set.intersection(*per_host) if t} - bad if per_host else set()


def _unreachable_note(unreachable: dict[str, str]) -> str:
    """The note "the repository was unreachable from h2, h3 (<the first error, shortened>)"."""
    error = " ".join(next(iter(unreachable.values())).split())
    return (
        f"the repository was unreachable from {', '.join(unreachable)} "
        f"({error[:160]}{'...' if len(error) > 160 else ''})"
    )


def lock_refusals(inspections: dict[str, dict[str, Any]], run_id: str) -> list[str]:
    """One sentence per host whose application lock another run holds, from each host's
    ``release`` inspection (which reports the lock owner and the app root)."""
    refusals = []
    for host, info in sorted(inspections.items()):
        owner = info.get("lock") or {}
        if not owner or owner.get("run_id", "") == run_id:
            continue
        refusals.append(
            f"{info.get('app_root') or 'the application'} on {host} is locked by run "
            f"{owner.get('run_id', '?')} ({owner.get('user', '?')}@{owner.get('host', '?')}, "
            f"pid {owner.get('pid', '?')}, {owner.get('action', '?')} since "
            f"{owner.get('time', '?')})."
        )
    return refusals
