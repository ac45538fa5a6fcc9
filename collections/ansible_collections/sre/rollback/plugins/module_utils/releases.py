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
STATES = ("current", "good", "bad")

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
    """
    if not inspections:
        return {"ok": False, "msg": "no host was inspected: check the inventory and --limit"}
    tags: set[str] = set()
    for info in inspections.values():
        tags.update((info.get("repo_tags") or {}).keys())
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
        return choice
    tag = choice["tag"]
    commits = {host: (info.get("repo_tags") or {}).get(tag) for host, info in inspections.items()}
    distinct = {c for c in commits.values() if c}
    missing = sorted(h for h, c in commits.items() if not c)
    if missing or len(distinct) != 1:
        majority = (
            max(distinct, key=lambda c: list(commits.values()).count(c)) if distinct else None
        )
        differ = sorted(h for h, c in commits.items() if c != majority)
        return {
            "ok": False,
            "tag": tag,
            "commits": commits,
            "msg": f"hosts do not agree on tag {tag}: {', '.join(differ)} "
            f"resolve it to {', '.join(sorted({str(commits[h]) for h in differ}))} instead of "
            f"{majority}. Fix their repository (or mirror) first; nothing was changed.",
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
    return {
        "ok": True,
        "tag": tag,
        "commit": commit,
        "release": rid,
        "why": choice["why"],
        "from": ceiling,
        "bad": sorted(bad),
        "hosts": hosts,
    }


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
