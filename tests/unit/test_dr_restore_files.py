"""Level 5's file restore (module dr_restore_files): staged, verified against the manifest,
swapped in, what was there kept aside; a directory renamed into place is the verified one
(inode checked), one copied across filesystems is digested again in place. restic itself is
the rig's (tests/integration/test_level5.py); here a stand-in writes the snapshot's files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import full_backups as fb
from ansible_collections.sre.rollback.plugins.modules import dr_restore_files as m


class Restic:
    """Stands in for `restic restore <snapshot> --verify --target <dir>`: the snapshot is a
    directory on disk, restored under the target with its absolute paths (as restic does)."""

    def __init__(self, snapshot: dict[str, Path]) -> None:
        self.snapshot = snapshot
        self.calls: list[list[str]] = []

    def run_command(self, argv: list[str], environ_update: dict[str, str]) -> tuple[int, str, str]:
        self.calls.append(argv)
        target = Path(argv[argv.index("--target") + 1])
        for path, source in self.snapshot.items():
            shutil.copytree(source, target / path.lstrip("/"), symlinks=True)
        return 0, "", ""


def tree(root: Path, text: str) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text(text)
    (root / "b.bin").write_bytes(b"\1" * 100)
    return root


def params(tmp_path: Path, trees: dict[str, Any]) -> dict[str, Any]:
    return {
        "part": "uploads",
        "snapshot": "4bd1c2a0",
        "trees": trees,
        "staging": str(tmp_path / "staging"),
        "aside_suffix": "pre-dr-1",
        "journal": str(tmp_path / "journal.jsonl"),
        "environment": {"RESTIC_PASSWORD_FILE": "/nonexistent"},
        "restic_options": [],
    }


@pytest.fixture
def backup(tmp_path: Path) -> tuple[Path, dict[str, Any], Restic]:
    """The backed-up uploads (its manifest digest) and a damaged live copy in place."""
    source = tree(tmp_path / "backup", "the backed-up content")
    live = tree(tmp_path / "live" / "uploads", "damaged")
    trees = {str(live): fb.tree_digest(str(source))}
    return live, trees, Restic({str(live): source})


def test_restores_keeps_what_was_there_and_the_rename_is_the_verified_tree(
    tmp_path: Path, backup: tuple[Path, dict[str, Any], Restic]
) -> None:
    live, trees, restic = backup
    result = m.restore(restic, params(tmp_path, trees), check_mode=False)  # type: ignore[arg-type]
    assert result["changed"] and result["restored"] == [str(live)]
    assert result["copied"] == []  # renamed on the same filesystem: not digested twice
    assert fb.tree_digest(str(live))["sha256"] == trees[str(live)]["sha256"]
    kept = Path(result["set_aside"][str(live)])
    assert (kept / "sub" / "a.txt").read_text() == "damaged"  # moved aside, not deleted
    assert "--verify" in restic.calls[0]
    # a second run finds every directory as the manifest says: nothing to do
    again = m.restore(restic, params(tmp_path, trees), check_mode=False)  # type: ignore[arg-type]
    assert again["already"] and not again["changed"] and len(restic.calls) == 1


def test_a_copy_across_filesystems_is_digested_again_in_place(
    tmp_path: Path, backup: tuple[Path, dict[str, Any], Restic], monkeypatch: pytest.MonkeyPatch
) -> None:
    live, trees, restic = backup
    corrupt = {"on": False}

    def move_by_copy(src: str, dst: str) -> str:  # shutil.move across devices: copy, delete
        shutil.copytree(src, dst, symlinks=True)
        shutil.rmtree(src)
        if corrupt["on"]:
            (Path(dst) / "b.bin").write_bytes(b"\2" * 100)
        return dst

    monkeypatch.setattr(m.shutil, "move", move_by_copy)
    result = m.restore(restic, params(tmp_path, trees), check_mode=False)  # type: ignore[arg-type]
    assert result["copied"] == [str(live)]
    assert fb.tree_digest(str(live))["sha256"] == trees[str(live)]["sha256"]

    shutil.rmtree(live)
    corrupt["on"] = True  # the copy goes wrong: the check in place says so
    with pytest.raises(m.RestoreError, match="in place, the files differ"):
        m.restore(restic, params(tmp_path, trees), check_mode=False)  # type: ignore[arg-type]


def test_a_restore_that_differs_from_the_manifest_swaps_nothing(
    tmp_path: Path, backup: tuple[Path, dict[str, Any], Restic]
) -> None:
    live, trees, restic = backup
    restic.snapshot[str(live)] = tree(tmp_path / "other", "not what the manifest says")
    with pytest.raises(m.RestoreError, match=r"differ from the manifest.*Nothing was swapped in"):
        m.restore(restic, params(tmp_path, trees), check_mode=False)  # type: ignore[arg-type]
    assert (live / "sub" / "a.txt").read_text() == "damaged"
    assert not list(live.parent.glob("uploads.pre-dr-*"))


def test_check_mode_plans_and_changes_nothing(
    tmp_path: Path, backup: tuple[Path, dict[str, Any], Restic]
) -> None:
    live, trees, restic = backup
    result = m.restore(restic, params(tmp_path, trees), check_mode=True)  # type: ignore[arg-type]
    assert result["restored"] == [str(live)]
    assert result["set_aside"] == {str(live): f"{live}.pre-dr-1"}
    assert not restic.calls and (live / "sub" / "a.txt").read_text() == "damaged"
