"""The build step and its manifest: which version, from which commit, with which files.

`./build` byte-compiles every Python source (a syntax error fails the build) and writes
BUILD_MANIFEST.json; `bin/demo-app verify-build` recomputes the digests and compares.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import py_compile
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from demo_app import read_version

MANIFEST = "BUILD_MANIFEST.json"
SKIPPED_DIRS = frozenset({".git", "__pycache__"})
PYTHON_SCRIPTS = frozenset({"build", "bin/demo-app"})  # Python sources without a .py suffix
REQUIRED_MODULES = {"sqlalchemy": "python3-sqlalchemy", "alembic": "python3-alembic"}
COMMIT_VARIABLE = "DEMO_APP_COMMIT"
# What a deploy tool adds to a release after ./build, which is not part of the build: the
# records sre.rollback's release module writes at the release's root (its own sha256
# manifest and metadata), and links to paths shared between releases (uploads), which
# point out of the release.
DEPLOY_RECORDS = frozenset({".release.json", ".release-manifest.json"})


def source_files(root: Path) -> list[str]:
    """Every file of the release relative to root, sorted; build outputs and what a deploy
    tool adds (DEPLOY_RECORDS, links out of the release) left out."""
    found: list[str] = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if name not in SKIPPED_DIRS)
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if relative == MANIFEST or relative in DEPLOY_RECORDS or name.endswith(".pyc"):
                continue
            if not _links_out(path, root):
                found.append(relative)
    return sorted(found)


def _links_out(path: Path, root: Path) -> bool:
    """A link whose target lies outside the release (a shared path the deploy linked in)."""
    if not path.is_symlink():
        return False
    target = (path.parent / os.readlink(path)).resolve()
    return not target.is_relative_to(root.resolve())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(root: Path) -> dict[str, str]:
    return {relative: file_sha256(root / relative) for relative in source_files(root)}


def compile_sources(root: Path) -> tuple[int, list[str]]:
    """Byte-compile the .py files and syntax-check the scripts; (count, errors)."""
    errors: list[str] = []
    count = 0
    for relative in source_files(root):
        path = root / relative
        try:
            if relative.endswith(".py"):
                py_compile.compile(
                    str(path),
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
                )
            elif relative in PYTHON_SCRIPTS:
                compile(path.read_bytes(), relative, "exec")
            else:
                continue
        except py_compile.PyCompileError as error:
            errors.append(" ".join(error.msg.split()))
        except SyntaxError as error:
            errors.append(f"{relative}:{error.lineno}: {error.msg}")
        count += 1
    return count, errors


def missing_modules() -> list[str]:
    return [
        f"{module} (Debian package {package})"
        for module, package in REQUIRED_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]


def resolve_commit(root: Path, explicit: str | None) -> str:
    """--commit, else $DEMO_APP_COMMIT, else `git rev-parse HEAD` in a checkout, else unknown."""
    if explicit:
        return explicit
    if os.environ.get(COMMIT_VARIABLE):
        return os.environ[COMMIT_VARIABLE]
    if (root / ".git").exists():
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout.strip()
    return "unknown"


def build_time() -> str:
    """Now, or $SOURCE_DATE_EPOCH for a reproducible manifest."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return moment.replace(microsecond=0).isoformat()


def make_manifest(root: Path, commit: str) -> dict[str, Any]:
    return {
        "name": "demo-app",
        "version": read_version(root),
        "commit": commit,
        "built_at": build_time(),
        "python": platform.python_version(),
        "files": file_digests(root),
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(dir=root, prefix=".manifest-")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(manifest, stream, indent=2, sort_keys=True)
        stream.write("\n")
    Path(temporary).chmod(0o644)
    Path(temporary).replace(root / MANIFEST)


def read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest


def verify_build(root: Path) -> list[str]:
    """Differences between the release on disk and its manifest; empty when they agree."""
    manifest = read_manifest(root)
    if manifest is None or not isinstance(manifest.get("files"), dict):
        return [f"{root / MANIFEST}: missing or unreadable; run ./build in {root}"]
    recorded: dict[str, str] = manifest["files"]
    actual = file_digests(root)
    problems = [
        f"changed: {name}"
        for name in sorted(recorded)
        if name in actual and actual[name] != recorded[name]
    ]
    problems += [f"missing: {name}" for name in sorted(set(recorded) - set(actual))]
    problems += [f"not in the manifest: {name}" for name in sorted(set(actual) - set(recorded))]
    return problems


def build(root: Path, commit: str | None) -> int:
    missing = missing_modules()
    if missing:
        print(f"build failed: missing runtime modules: {', '.join(missing)}", file=sys.stderr)
        return 1
    count, errors = compile_sources(root)
    if errors:
        for error in errors:
            print(f"build failed: {error}", file=sys.stderr)
        return 1
    manifest = make_manifest(root, resolve_commit(root, commit))
    write_manifest(root, manifest)
    print(
        f"build: compiled {count} Python files; wrote {MANIFEST} (version {manifest['version']}, "
        f"commit {manifest['commit']}, {len(manifest['files'])} files)"
    )
    return 0


def main(root: Path, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./build", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--commit",
        help=f"the git commit built (default: ${COMMIT_VARIABLE}, "
        "else `git rev-parse HEAD` when the release is a checkout)",
    )
    arguments = parser.parse_args(argv)
    return build(root, arguments.commit)
