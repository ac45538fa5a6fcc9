# GPL-3.0-or-later
"""Configuration revisions for level 2: read a config directory, keep revisions of it with
checksums, read a revision from git, compare, stage, validate and apply a target.

A *tree* is the part of a config directory the role manages: ``{relative path: File}``
for the regular files that match the include globs and none of the exclude globs
(``.git`` is never part of it). Secrets and runtime state (a password file, a flags
file) stay out by being excluded.

The revision store of one config directory::

    <store_root>/<dir with / as __>/revisions/<id>/manifest.json   id, seq, created,
                                                                  checksum, files{path:
                                                                  sha256, size, mode,
                                                                  uid, gid}, who, why
    <store_root>/<...>/revisions/<id>/files/<path>                the content
    <store_root>/<...>/timeline.jsonl                              what became live when

Ids are ``r<seq>-<first 8 of the checksum>``. The same content is stored once. The
timeline says which revision was live after each snapshot, apply, rollback or revert;
"the previous revision" is read from it like ``HEAD~1`` and skips revisions that a
rollback or revert left behind (marked bad).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

from ansible_collections.sre.rollback.plugins.module_utils.hostchange import (
    ChangeError,
    append_jsonl,
    read_jsonl,
    sha256_bytes,
    sync_dir,
    utc_now,
    write_atomic,
)

MANIFEST = "manifest.json"
TIMELINE = "timeline.jsonl"
LIVE_EVENTS = ("snapshot", "apply", "rollback", "revert")
MAX_OUTPUT = 3000


@dataclass(frozen=True)
class File:
    data: bytes
    mode: int = 0o640
    uid: int | None = None
    gid: int | None = None

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.data)


Tree = dict[str, File]


# --- trees -----------------------------------------------------------------------------------


def managed(rel: str, include: list[str], exclude: list[str]) -> bool:
    if rel == ".git" or rel.startswith(".git/") or "/.git/" in f"/{rel}":
        return False
    if not any(fnmatch.fnmatchcase(rel, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatchcase(rel, pattern) for pattern in exclude)


def read_live(config_dir: str, include: list[str], exclude: list[str]) -> Tree:
    if not os.path.isdir(config_dir):
        raise ChangeError(f"config directory {config_dir} does not exist on this host")
    tree: Tree = {}
    for dirpath, dirnames, filenames in os.walk(config_dir):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, config_dir)
            info = os.lstat(full)
            if not stat.S_ISREG(info.st_mode) or not managed(rel, include, exclude):
                continue
            with open(full, "rb") as handle:
                tree[rel] = File(handle.read(), info.st_mode & 0o7777, info.st_uid, info.st_gid)
    return tree


def checksum(tree: Tree) -> str:
    lines = "".join(f"{rel}\0{tree[rel].sha256}\n" for rel in sorted(tree))
    return sha256_bytes(lines.encode())


def compare(live: Tree, target: Tree, modes: bool = True) -> dict[str, list[str]]:
    """Paths added, changed (content, or mode when ``modes``) and removed from live to target."""
    changed = [
        rel
        for rel in sorted(set(live) & set(target))
        if live[rel].data != target[rel].data or (modes and live[rel].mode != target[rel].mode)
    ]
    return {
        "added": sorted(set(target) - set(live)),
        "changed": changed,
        "removed": sorted(set(live) - set(target)),
    }


def has_changes(changes: dict[str, list[str]]) -> bool:
    return any(changes.values())


def text_of(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def unified_diff(live: Tree, target: Tree, changes: dict[str, list[str]]) -> str:
    """One unified diff of every changed file (binary files are named, not shown)."""
    out: list[str] = []
    for rel in sorted({p for paths in changes.values() for p in paths}):
        before = live[rel].data if rel in live else b""
        after = target[rel].data if rel in target else b""
        before_text, after_text = text_of(before), text_of(after)
        if before_text is None or after_text is None:
            out.append(f"Binary file {rel} differs\n")
            continue
        if before == after:
            out.append(f"mode of {rel}: {oct(live[rel].mode)} -> {oct(target[rel].mode)}\n")
            continue
        out.extend(
            difflib.unified_diff(
                before_text.splitlines(keepends=True),
                after_text.splitlines(keepends=True),
                fromfile=f"a/{rel}" if rel in live else "/dev/null",
                tofile=f"b/{rel}" if rel in target else "/dev/null",
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)


def with_live_owners(target: Tree, live: Tree, config_dir: str, new_mode: int = 0o640) -> Tree:
    """Content from the target; mode and owner from the live file, or for a new file the
    directory's group and ``new_mode`` (what git and given content do not carry)."""
    info = os.stat(config_dir)
    out: Tree = {}
    for rel, file in target.items():
        if rel in live:
            keep = live[rel]
            out[rel] = File(file.data, keep.mode, keep.uid, keep.gid)
        else:
            out[rel] = File(file.data, new_mode, info.st_uid, info.st_gid)
    return out


# --- the revision store ----------------------------------------------------------------------


class Store:
    """The revisions of one config directory."""

    def __init__(self, store_root: str, config_dir: str) -> None:
        self.config_dir = config_dir
        self.path = os.path.join(store_root, config_dir.strip("/").replace("/", "__") or "root")
        self.revisions_dir = os.path.join(self.path, "revisions")

    def manifests(self) -> list[dict[str, Any]]:
        if not os.path.isdir(self.revisions_dir):
            return []
        found = []
        for rid in os.listdir(self.revisions_dir):
            try:
                with open(os.path.join(self.revisions_dir, rid, MANIFEST), encoding="utf-8") as fh:
                    manifest = json.load(fh)
            except (OSError, ValueError):
                continue
            if isinstance(manifest, dict) and manifest.get("id") == rid:
                found.append(manifest)
        return sorted(found, key=lambda m: int(m.get("seq", 0)))

    def timeline(self) -> list[dict[str, Any]]:
        return read_jsonl(os.path.join(self.path, TIMELINE))

    def bad(self) -> set[str]:
        return {str(e["bad"]) for e in self.timeline() if e.get("bad")}

    def by_checksum(self, wanted: str) -> str | None:
        for manifest in self.manifests():
            if manifest.get("checksum") == wanted:
                return str(manifest["id"])
        return None

    def save(self, tree: Tree, meta: dict[str, Any]) -> tuple[str, bool]:
        """Store the tree unless the same content is stored; (id, created)."""
        total = checksum(tree)
        known = self.by_checksum(total)
        if known:
            return known, False
        manifests = self.manifests()
        seq = int(manifests[-1]["seq"]) + 1 if manifests else 1
        rid = f"r{seq:04d}-{total[:8]}"
        os.makedirs(self.revisions_dir, mode=0o700, exist_ok=True)
        os.chmod(self.path, 0o700)
        tmp = tempfile.mkdtemp(prefix=f".{rid}.", dir=self.revisions_dir)
        try:
            for rel, file in tree.items():
                dest = os.path.join(tmp, "files", rel)
                os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
                write_atomic(dest, file.data, 0o600)
            manifest = {
                "id": rid,
                "seq": seq,
                "created": utc_now(),
                "config_dir": self.config_dir,
                "checksum": total,
                "files": {
                    rel: {
                        "sha256": f.sha256,
                        "size": len(f.data),
                        "mode": oct(f.mode),
                        "uid": f.uid,
                        "gid": f.gid,
                    }
                    for rel, f in sorted(tree.items())
                },
                **meta,
            }
            write_atomic(
                os.path.join(tmp, MANIFEST),
                json.dumps(manifest, indent=1, sort_keys=True).encode(),
                0o600,
            )
            os.rename(tmp, os.path.join(self.revisions_dir, rid))
            sync_dir(self.revisions_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return rid, True

    def load(self, rid: str) -> Tree:
        """The revision's files, every checksum verified; ChangeError when damaged."""
        manifest = next((m for m in self.manifests() if m["id"] == rid), None)
        if manifest is None:
            known = ", ".join(m["id"] for m in self.manifests()[-10:]) or "none"
            raise ChangeError(
                f"revision {rid!r} is not in the revision store {self.path} (latest: {known})"
            )
        tree: Tree = {}
        damaged = []
        for rel, entry in manifest.get("files", {}).items():
            try:
                with open(os.path.join(self.revisions_dir, rid, "files", rel), "rb") as fh:
                    data = fh.read()
            except OSError:
                damaged.append(f"{rel} (missing)")
                continue
            if sha256_bytes(data) != entry.get("sha256"):
                damaged.append(f"{rel} (checksum differs)")
                continue
            tree[rel] = File(
                data, int(str(entry.get("mode", "0o640")), 8), entry.get("uid"), entry.get("gid")
            )
        if not damaged and checksum(tree) != manifest.get("checksum"):
            damaged.append("the manifest's checksum")
        if damaged:
            raise ChangeError(
                f"revision {rid} in {self.path} is damaged: {', '.join(damaged)}. It is not "
                "restored; pick another revision."
            )
        return tree

    def record(self, entry: dict[str, Any]) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        append_jsonl(os.path.join(self.path, TIMELINE), [entry], mode=0o600)

    def live_history(self) -> list[str]:
        """Revisions that were live, oldest first, repeats collapsed."""
        history: list[str] = []
        for entry in self.timeline():
            rid = entry.get("revision")
            if entry.get("event") in LIVE_EVENTS and rid and (not history or history[-1] != rid):
                history.append(str(rid))
        return history

    def previous(self, live_id: str | None) -> tuple[str | None, str]:
        """The revision before the live one (HEAD~1 of the timeline), not bad; and why."""
        history = self.live_history()
        bad = self.bad()
        if live_id in history:
            start = len(history) - 1 - history[::-1].index(live_id)
            why = f"the revision live before {live_id}"
        else:
            start = len(history)
            why = "the latest recorded revision (the live config matches no revision)"
        for rid in reversed(history[:start]):
            if rid != live_id and rid not in bad:
                return rid, why
        return None, why

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        manifests = self.manifests()
        excess = len(manifests) - keep
        pruned = []
        for manifest in manifests:
            if excess <= 0:
                break
            if manifest["id"] in protect:
                continue
            shutil.rmtree(os.path.join(self.revisions_dir, manifest["id"]))
            pruned.append(str(manifest["id"]))
            excess -= 1
        return pruned


# --- git -------------------------------------------------------------------------------------


def git(config_dir: str, *args: str, binary: bool = False) -> Any:
    proc = subprocess.run(
        ["git", "-C", config_dir, *args], capture_output=True, check=False, timeout=60
    )
    if proc.returncode != 0:
        raise ChangeError(
            f"git {' '.join(args)} in {config_dir} failed: "
            f"{proc.stderr.decode('utf-8', 'replace').strip()[-500:]}"
        )
    return proc.stdout if binary else proc.stdout.decode("utf-8", "replace")


def git_check(config_dir: str) -> None:
    """ChangeError with what to do when the config directory is not in a git work tree."""
    try:
        git(config_dir, "rev-parse", "--is-inside-work-tree")
    except ChangeError as exc:
        raise ChangeError(
            f"{config_dir} is not in a git repository (source=git): put the config under git, "
            "or restore from the revision store (source=store)"
        ) from exc


def git_prefix(config_dir: str) -> str:
    """The config directory's path inside its repository ('' at the top)."""
    return str(git(config_dir, "rev-parse", "--show-prefix")).strip()


def git_resolve(config_dir: str, rev: str) -> str:
    try:
        return str(git(config_dir, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")).strip()
    except ChangeError as exc:
        recent = git(config_dir, "log", "--oneline", "-5", "--no-decorate").strip()
        raise ChangeError(
            f"{rev!r} is not a revision of the config repository at {config_dir}; recent "
            f"commits: {'; '.join(recent.splitlines()) or 'none'}"
        ) from exc


def git_tree(config_dir: str, commit: str, include: list[str], exclude: list[str]) -> Tree:
    """The managed files of the config directory as they are in a commit."""
    prefix = git_prefix(config_dir)
    listing = git(config_dir, "ls-tree", "-r", "-z", "--full-tree", commit, "--", prefix or ".")
    tree: Tree = {}
    for item in str(listing).split("\0"):
        if not item:
            continue
        meta, _sep, path = item.partition("\t")
        mode, kind, sha = meta.split()
        rel = path[len(prefix) :] if prefix else path
        if kind != "blob" or mode == "120000" or not managed(rel, include, exclude):
            continue
        data = git(config_dir, "cat-file", "blob", sha, binary=True)
        tree[rel] = File(bytes(data), 0o755 if mode == "100755" else 0o644)
    return tree


def git_tracked(config_dir: str) -> set[str]:
    """Paths (relative to the config dir) that git tracks at HEAD or in the index."""
    listing = str(git(config_dir, "ls-files", "-z"))
    return {p for p in listing.split("\0") if p}


def git_describe(config_dir: str, commit: str) -> dict[str, str]:
    line = str(git(config_dir, "log", "-1", "--format=%H%x00%s", commit)).strip()
    sha, _sep, subject = line.partition("\0")
    return {"commit": sha, "subject": subject}


# --- staging, validation, applying -----------------------------------------------------------


def stage(config_dir: str, target: Tree, removed: list[str]) -> str:
    """A copy of the whole config directory (unmanaged files too) with the target in place,
    beside it on the same filesystem, for the validator."""
    parent = os.path.dirname(config_dir.rstrip("/")) or "/"
    staging = tempfile.mkdtemp(
        prefix=f".{os.path.basename(config_dir.rstrip('/'))}.staging-", dir=parent
    )
    os.chmod(staging, 0o700)
    shutil.copytree(
        config_dir,
        staging,
        symlinks=True,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".git"),
    )
    for rel in removed:
        path = os.path.join(staging, rel)
        if os.path.lexists(path):
            os.unlink(path)
    for rel, file in target.items():
        path = os.path.join(staging, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        with open(path, "wb") as handle:
            handle.write(file.data)
        os.chmod(path, file.mode)
    return staging


def validate(
    command: str, directory: str, timeout: int, shown_as: str | None = None
) -> tuple[bool, str]:
    """Run the validator with ``{dir}`` replaced by the (quoted) directory; (ok, output).
    In the output, the staging directory is named ``shown_as``."""
    line = command.replace("{dir}", shlex.quote(directory))
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", line], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"{line} took longer than {timeout} s"
    output = (proc.stdout + proc.stderr).strip()
    if shown_as:
        output = output.replace(os.path.realpath(directory), shown_as).replace(directory, shown_as)
    return proc.returncode == 0, f"exit {proc.returncode}: {output[-MAX_OUTPUT:]}"


def apply(config_dir: str, target: Tree, changes: dict[str, list[str]]) -> None:
    """Write every added or changed file with one rename each, then remove the removed."""
    for rel in changes["added"] + changes["changed"]:
        file = target[rel]
        path = os.path.join(config_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, file.data, file.mode, file.uid, file.gid)
    for rel in changes["removed"]:
        path = os.path.join(config_dir, rel)
        if os.path.lexists(path):
            os.unlink(path)
    sync_dir(config_dir)
