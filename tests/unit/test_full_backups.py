"""Level 5's backup sets: tree digests, restore point resolution, retention (module_utils
full_backups, used by the file_tree module and the full_backup filters)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import full_backups as fb

T0 = 1_700_000_000.0


def make_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("hello")
    (root / "g.bin").write_bytes(b"\0" * 10)
    os.symlink("g.bin", root / "link")


def test_tree_digest_same_tree_same_digest(tmp_path: Path) -> None:
    make_tree(tmp_path / "x")
    make_tree(tmp_path / "y")
    x, y = fb.tree_digest(str(tmp_path / "x")), fb.tree_digest(str(tmp_path / "y"))
    assert x == y
    assert x["files"] == 2 and x["bytes"] == 15 and x["exists"]


@pytest.mark.parametrize("change", ["content", "mode", "new", "rename", "link"])
def test_tree_digest_sees_every_change(tmp_path: Path, change: str) -> None:
    root = tmp_path / "t"
    make_tree(root)
    before = fb.tree_digest(str(root))["sha256"]
    f = root / "a" / "b" / "f.txt"
    if change == "content":
        f.write_text("hellO")
    elif change == "mode":
        f.chmod(0o600)
    elif change == "new":
        (root / "a" / "empty").mkdir()
    elif change == "rename":
        f.rename(root / "a" / "b" / "g.txt")
    else:
        (root / "link").unlink()
        os.symlink("a", root / "link")
    assert fb.tree_digest(str(root))["sha256"] != before


def test_tree_digest_missing(tmp_path: Path) -> None:
    assert fb.tree_digest(str(tmp_path / "nope")) == {
        "exists": False,
        "files": 0,
        "bytes": 0,
        "sha256": None,
    }


def sets() -> list[dict[str, object]]:
    return [
        {"id": "s1", "finished_epoch": T0, "verified": True},
        {"id": "s2", "finished_epoch": T0 + 3600, "verified": True},
        {"id": "s3", "finished_epoch": T0 + 7200, "verified": False, "problem": "restic check"},
    ]


def test_latest_is_newest_verified() -> None:
    plan = fb.resolve_restore_point("latest", sets(), now=T0 + 9000)
    assert plan["set"]["id"] == "s2" and plan["db_type"] == "default"


def test_set_id_restores_its_restore_point() -> None:
    plan = fb.resolve_restore_point("s1", sets(), now=T0 + 9000)
    assert plan["set"]["id"] == "s1"
    assert (plan["db_type"], plan["db_target"]) == ("name", "sre-set-s1")


def test_unverified_set_refused() -> None:
    with pytest.raises(fb.SetError, match=r"never verified.*restic check"):
        fb.resolve_restore_point("s3", sets(), now=T0 + 9000)


def test_time_picks_set_before_it() -> None:
    point = fb.iso(T0 + 3000)
    plan = fb.resolve_restore_point(point, sets(), now=T0 + 9000)
    assert plan["set"]["id"] == "s1" and plan["db_type"] == "time"
    assert plan["db_target"] == "2023-11-14 23:03:20.000000+00"


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ("2099-01-01T00:00:00Z", "in the future"),
        ("2000-01-01T00:00:00Z", "no verified backup set finished at or before"),
        ("yesterday", "neither latest"),
        ("2024-13-01T00:00:00Z", "not a valid time"),
    ],
)
def test_bad_points_refused(point: str, message: str) -> None:
    with pytest.raises(fb.SetError, match=message):
        fb.resolve_restore_point(point, sets(), now=T0 + 9000)


def test_no_sets_says_what_to_run() -> None:
    with pytest.raises(fb.SetError, match=r"backup-full\.yml"):
        fb.resolve_restore_point("latest", [], now=T0)


def test_parse_time_offsets() -> None:
    assert fb.parse_time("2024-01-15T12:00:00+02:00") == fb.parse_time("2024-01-15T10:00:00Z")
    assert fb.parse_time("2024-01-15 10:00") == fb.parse_time("2024-01-15T10:00:00")
    assert fb.parse_time("2024-01-15T10:00:00.5Z") % 1 == 0.5


def test_retention_never_deletes_newest_verified() -> None:
    many = [{"id": f"s{i}", "finished_epoch": T0 + i, "verified": i == 2} for i in range(6)]
    kept = fb.retention(many, keep_last=1, keep_days=0, now=T0 + 10**6)
    # s2 is the newest verified; s3..s5 are newer (unverified, maybe in progress): kept
    assert kept["keep"] == ["s2", "s3", "s4", "s5"]
    assert kept["delete"] == ["s0", "s1"]


def test_retention_keep_last_days_and_protect() -> None:
    many = [{"id": f"s{i}", "finished_epoch": T0 + i * 86400, "verified": True} for i in range(6)]
    kept = fb.retention(many, keep_last=2, keep_days=3, now=T0 + 5 * 86400 + 1, protect=["s0"])
    assert kept["keep"] == ["s0", "s3", "s4", "s5"]


def test_pg_labels_to_expire_spares_references() -> None:
    info = [
        {
            "name": "demo",
            "backup": [
                {"label": "F1", "reference": None},
                {"label": "F1_I2", "reference": ["F1"]},
                {"label": "F3", "reference": None},
            ],
        }
    ]
    gone = [{"database": {"label": "F1"}}, {"database": {"label": "F3"}}]
    keep = [{"database": {"label": "F1_I2"}}]
    assert fb.pg_labels_to_expire(gone, keep, info) == ["F3"]
    assert fb.pg_stanza_problem(info, "demo") is None
    assert "no stanza other" in str(fb.pg_stanza_problem(info, "other"))


def test_host_parts_records_snapshots_and_trees() -> None:
    files = {"uploads": ["/u"], "config": ["/c", "/gone"]}
    snaps = [
        {"item": {"key": "uploads"}, "stdout_lines": ['{"snapshot_id": "ab12", "files_new": 3}']},
        {"item": {"key": "config"}, "stdout_lines": ['{"snapshot_id": "cd34"}']},
    ]
    digests = [
        {"item": [{"key": "uploads"}, "/u"], "exists": True, "files": 3, "bytes": 9, "sha256": "x"},
        {"item": [{"key": "config"}, "/c"], "exists": True, "files": 1, "bytes": 1, "sha256": "y"},
        {"item": [{"key": "config"}, "/gone"], "exists": False, "files": 0, "bytes": 0},
    ]
    parts = fb.host_parts(files, snaps, digests, verified=True)
    assert parts["uploads"]["snapshot"] == "ab12" and parts["uploads"]["verified"]
    assert parts["config"]["trees"]["/gone"]["exists"] is False
    assert parts["config"]["trees"]["/c"]["sha256"] == "y"


def a_plan(db_type: str = "default", target_epoch: float | None = None) -> dict[str, object]:
    the_set = {
        "id": "s2",
        "hosts": {
            "h2": {
                "parts": {
                    "uploads": {"snapshot": "ab12", "trees": {"/u": {"bytes": 1000}}},
                    "config": {"snapshot": "cd34", "trees": {"/c": {"bytes": 10}}},
                }
            }
        },
        "database": {"host": "h1", "label": "F1", "size": 5000},
    }
    plan: dict[str, object] = {"set": the_set, "db_type": db_type, "db_target": None}
    if target_epoch is not None:
        plan["target_epoch"] = target_epoch
    return plan


INFO = [{"name": "demo", "status": {"code": 0}, "backup": [{"label": "F1"}]}]
OK_CHECKS = {"restic": {"rc": 0}, "verify": {"rc": 0}, "pg_info": INFO, "stanza": "demo"}


def problems(**over: object) -> list[str]:
    args: dict[str, object] = {
        "plan": a_plan(),
        "app_hosts": ["h2"],
        "db_host": "h1",
        "snapshots": [{"short_id": "ab12"}, {"short_id": "cd34"}],
        "checks": OK_CHECKS,
        "free": {"h1": 10**9, "h2": 10**9},
        "locks": {"h2": ""},
    }
    args.update(over)
    return fb.preflight_problems(**args)  # type: ignore[arg-type]


def test_preflight_passes_when_everything_is_there() -> None:
    assert problems() == []


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"snapshots": [{"short_id": "ab12"}]}, "h2 config: restic snapshot cd34"),
        ({"checks": {**OK_CHECKS, "restic": {"rc": 1, "err": "pack 1f2e: damaged"}}}, "damaged"),
        ({"checks": {**OK_CHECKS, "pg_info": [{"name": "demo", "backup": []}]}}, "F1"),
        ({"checks": {**OK_CHECKS, "verify": {"rc": 1, "err": "bad checksum"}}}, "verify"),
        ({"checks": {**OK_CHECKS, "pg_backup_present": False}}, "F1 of set s2 is listed but"),
        ({"app_hosts": ["h2", "h9"]}, "h9 is not in backup set s2"),
        ({"free": {"h1": 100, "h2": 10**9}}, "h1: 100 bytes free"),
        ({"locks": {"h2": "run_id r9"}}, "h2 is locked by another run (run_id r9)"),
        (
            {"plan": a_plan("time", 2000.0), "checks": {**OK_CHECKS, "wal_newest": 1000.0}},
            "not covered by the archived WAL",
        ),
    ],
)
def test_preflight_names_each_problem(over: dict[str, object], says: str) -> None:
    found = problems(**over)
    assert len(found) == 1 and says in found[0], found


def test_needed_bytes_counts_parts_and_cluster() -> None:
    the_set = a_plan()["set"]
    assert fb.needed_bytes(the_set, "h2") == 1010  # type: ignore[arg-type]
    assert fb.needed_bytes(the_set, "h1") == 5000  # type: ignore[arg-type]


def test_a_completed_level_5_closes_the_journal() -> None:
    first = {"part": "database", "key": "s1|default|", "run": "r1"}
    again = {"part": "database", "key": "s1|default|", "run": "r3"}
    done = {"part": fb.COMPLETED, "run": "r1"}
    # an interrupted run's recovery is skipped by its re-run...
    assert fb.unfinished([first]) == [first]
    # ...but once a level 5 completed, a later one (a new disaster, same set and target)
    # recovers again
    assert fb.unfinished([first, done]) == []
    assert fb.unfinished([first, done, again]) == [again]
    assert fb.unfinished([]) == []
