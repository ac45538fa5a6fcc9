"""Bad input and leaks on real hosts (reliability issue #15, items 4, 8 and 9): an empty
target at every level, credentials inside URLs, a --limit that matches nothing, a database
that is down, refusals that are bad input (exit 2), a run started from another directory,
a broken stale lock in the run record.

Each test asserts the end state on the hosts (the release each runs, the locks), the exit
code and the run record. The tests run in order on one rig: v1.3.0 (bad) deployed on the
app hosts, PostgreSQL on h1.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rollbackctl.cli import main
from tests.conftest import REPO, VENV_BIN
from tests.integration.rig import APP_ROOT, Run, current, health, on, playbook, wrapper_args

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

STABLE, BAD = "v1.2.3-stable", "v1.3.0"
PLANTED = "planted-S3cret"  # planted on purpose, then hunted for
BEFORE_BAD = "20240101120000"


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    """The demo app with v1.3.0 deployed over v1.2.3-stable, no lock, a clean history."""
    for host in testhosts.hosts:
        testhosts.exec(host, "rm", "-f", f"{APP_ROOT}/releases.log", f"{APP_ROOT}/.rollback.lock")
    ok(playbook(testhosts.inventory, "demo-app.yml"))
    for tag in (STABLE, BAD):
        ok(playbook(testhosts.inventory, "deploy.yml", "-e", f"release_tag={tag}"))
    return testhosts


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The policy's file channel is relative to where the run starts: keep it in tmp."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ok(run: Run) -> Run:
    assert run.rc == 0, run.out[-4000:]
    return run


def flat(text: str) -> str:
    return " ".join(text.replace("''", "'").split())


def app_hosts(rig: Any) -> list[str]:
    return [h for h in rig.hosts if h != "h1"]


def releases(rig: Any) -> dict[str, str]:
    return {host: current(rig, host).rsplit("/", 1)[-1] for host in app_hosts(rig)}


def locks_free(rig: Any) -> None:
    for host in app_hosts(rig):
        held = on(rig, host, f"test -e {APP_ROOT}/.rollback.lock && echo held || echo free")
        assert held == "free", host


def at_bad(rig: Any) -> dict[str, str]:
    """Every app host on v1.3.0 (deployed again when a test rolled it back), no lock."""
    if not all(BAD in release for release in releases(rig).values()):
        ok(playbook(rig.inventory, "deploy.yml", "-e", f"release_tag={BAD}"))
    locks_free(rig)
    return releases(rig)


def unchanged(rig: Any, before: dict[str, str]) -> None:
    """Nothing changed: every app host runs what it ran, healthy, and holds no lock."""
    assert releases(rig) == before
    for host in app_hosts(rig):
        assert health(rig, host)[0] == 200, host
    locks_free(rig)


def rollbackctl(rig: Any, artifacts: Path, *args: str) -> Result:
    command, *rest = args
    return CliRunner().invoke(
        main, [command, *rest, *wrapper_args(rig, artifacts)], catch_exceptions=False
    )


def only_record(artifacts: Path) -> dict[str, Any]:
    found = [p for p in (artifacts / "runs").glob("*.json") if not p.is_symlink()]
    assert len(found) == 1, found
    return dict(json.loads(found[0].read_text()))


def test_an_empty_target_is_refused_at_every_level(rig: Any, workdir: Path) -> None:
    before = at_bad(rig)
    assert all(BAD in release for release in before.values())
    # The wrapper: --target "" (an unset shell variable) and -e TARGET= are bad input.
    for args in (
        ("run", "--level", "3", "--target", ""),
        ("run", "--level", "3", "-e", "release_target= "),
        ("run", "--level", "4", "-e", "database_restore_backup="),
        ("emergency", "-s", "critical", "--impact", "all", "-t", "2h", "--target", ""),
    ):
        artifacts = workdir / f"artifacts-{len(args)}-{args[2]}"
        result = rollbackctl(rig, artifacts, *args)
        assert result.exit_code == 2, result.output
        assert "is empty (an unset shell variable?)" in result.output
        assert not artifacts.exists(), "refused before anything ran"
    # Plain ansible-playbook: each level's target variable given empty is refused in its
    # preflight, saying what to pass, and the default target is not picked.
    refusals = {
        "rollback-l1.yml": ("feature_flag_names=", "Name the flags to set"),
        "rollback-l2.yml": ("config_target=", "config_target was given empty"),
        "rollback-l3.yml": ("release_target=", "release_target was given empty"),
        "rollback-l4.yml": ("database_target_revision=", "database_target_revision was given"),
    }
    for name, (given, said) in refusals.items():
        extra = ["-e", f"database_restore_backup={BEFORE_BAD}"] if "l4" in name else []
        run = playbook(rig.inventory, name, "-e", given, *extra)
        assert run.rc != 0, run.out[-3000:]
        assert said in flat(run.out), run.out[-3000:]
        assert "leave" in flat(run.out) or "l1" in name
        assert run.record["status"] == "failed"
        failed = {h: v for h, v in run.record["hosts"].items() if v["status"] == "failed"}
        assert failed and {v["failed_phase"] for v in failed.values()} == {"preflight"}
        assert not any(task["changed"] for task in run.record["tasks"])
    unchanged(rig, before)


def test_url_credentials_never_reach_output_records_or_artifacts(rig: Any, workdir: Path) -> None:
    before = at_bad(rig)
    repo = f"-e release_repo=http://deploy:{PLANTED}@127.0.0.1:9/demo-app.git"
    health_url = f"http://probe:{PLANTED}@127.0.0.1:8080/health?token={PLANTED}"
    # A health URL with credentials (and a repository URL with them: the target is on disk,
    # so it is not fetched): the canary fails its gate quoting the URL, is switched back,
    # and the rollout stops.
    artifacts = workdir / "artifacts"
    failed = rollbackctl(
        rig,
        artifacts,
        "run",
        "--level",
        "3",
        "-e",
        f"release_health_url={health_url}",
        "-e",
        repo.split(" ", 1)[1],
    )
    assert failed.exit_code == 1, failed.output
    assert "********" in failed.output
    unchanged(rig, before)
    # Plain ansible-playbook: Ansible's own output (verbose) and the callback's record.
    records = workdir / "records"
    plain = playbook(
        rig.inventory,
        "rollback-l3.yml",
        "-e",
        f"release_health_url={health_url}",
        "-e",
        repo.split(" ", 1)[1],
        "-v",
        records=records,
    )
    assert plain.rc != 0
    assert "********" in plain.out
    unchanged(rig, before)
    for text in (failed.output, plain.out):
        assert PLANTED not in text
    files = [p for d in (artifacts, records) for p in d.rglob("*") if p.is_file()]
    assert any("job_events" in str(p) for p in files) and any(p.suffix == ".json" for p in files)
    for path in files:
        assert PLANTED not in path.read_text(errors="replace"), path


def test_a_limit_that_matches_no_host_is_bad_input(rig: Any, workdir: Path) -> None:
    before = at_bad(rig)
    artifacts = workdir / "artifacts"
    result = rollbackctl(rig, artifacts, "run", "--level", "3", "--limit", "h9")
    assert result.exit_code == 2, result.output
    assert "--limit 'h9' matches no host of the inventory" in flat(result.output)
    assert not artifacts.exists()
    # A limit that matches hosts, none of them the level's (h1 is the database host).
    result = rollbackctl(rig, artifacts, "run", "--level", "3", "--limit", "h1")
    assert result.exit_code == 2, result.output
    assert "No host of the inventory matched" in flat(result.output)
    unchanged(rig, before)


def test_a_database_that_is_down_is_said_plainly(rig: Any, workdir: Path) -> None:
    before = at_bad(rig)
    down = ["-e", "database_login_host=127.0.0.1", "-e", "database_login_port=1"]
    artifacts = workdir / "artifacts"
    result = rollbackctl(rig, artifacts, "run", "--level", "4", "--target", BEFORE_BAD, *down)
    assert result.exit_code == 1, result.output
    said = "The PostgreSQL database at 127.0.0.1:1 is not reachable"
    assert said in flat(result.output)
    record = only_record(artifacts)
    assert (
        said in record["hosts"]["h1"]["msg"]
        and "database_login_port" in record["hosts"]["h1"]["msg"]
    )
    assert "psql: error" not in record["hosts"]["h1"]["msg"]
    validation = playbook(rig.inventory, "validate-db.yml", *down)
    assert validation.rc != 0 and said in flat(validation.out), validation.out[-3000:]
    unchanged(rig, before)


def test_refusals_of_levels_3_and_4_exit_2(rig: Any, workdir: Path) -> None:
    before = at_bad(rig)
    level3 = workdir / "l3"
    result = rollbackctl(rig, level3, "run", "--level", "3", "--target", "v9.9.9")
    assert result.exit_code == 2, result.output
    assert "'v9.9.9' is not a tag of the repository" in flat(result.output)
    record = only_record(level3)
    assert record["status"] == "failed"
    assert {v.get("failed_phase") for v in record["hosts"].values() if v["status"] == "failed"} == {
        "preflight"
    }
    level4 = workdir / "l4"
    result = rollbackctl(rig, level4, "run", "--level", "4")
    assert result.exit_code == 2, result.output
    assert "Say what to do" in flat(result.output)
    assert only_record(level4)["hosts"]["h1"]["failed_phase"] == "preflight"
    # emergency stops at a refusal: no escalation to level 4, exit 2.
    emergency = workdir / "emergency"
    result = rollbackctl(
        rig, emergency, "emergency", "-s", "critical", "--impact", "all", "-t", "2h",
        "--target", "v9.9.9",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert [
        r["level"]
        for r in map(json.loads, map(Path.read_text, (emergency / "runs").glob("2*.json")))
    ] == [3]
    unchanged(rig, before)


def test_a_run_from_another_directory_still_writes_its_record(rig: Any, tmp_path: Path) -> None:
    before = at_bad(rig)
    run_id = f"test-elsewhere-{time.time_ns()}"
    record = REPO / ".artifacts" / "runs" / f"{run_id}.json"
    command = [
        str(VENV_BIN / "ansible-playbook"),
        "-i",
        str(rig.inventory),
        str(REPO / "playbooks" / "rollback-l3.yml"),
        "--check",
        "-e",
        f"rollback_run_id={run_id}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SRE_"))}
    try:
        with_cfg = subprocess.run(
            command,
            cwd=tmp_path,
            env={**env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert with_cfg.returncode == 0, with_cfg.stdout[-3000:] + with_cfg.stderr[-2000:]
        assert json.loads(record.read_text())["status"] == "ok"
        assert not (tmp_path / ".artifacts").exists(), "not relative to the working directory"
    finally:
        record.unlink(missing_ok=True)
    # Without the project's ansible.cfg the callback is not enabled: said loudly.
    without = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert "writes NO run record" in flat(without.stdout + without.stderr)
    assert not record.exists()
    unchanged(rig, before)


def test_a_broken_stale_lock_is_in_the_record(rig: Any) -> None:
    at_bad(rig)
    host = app_hosts(rig)[0]
    stale = {
        "run_id": "crashed-run-1",
        "user": "alice",
        "host": "old-controller",
        "pid": "999999",
        "action": "rollback",
        "time": "2024-01-15T12:00:00Z",
    }
    on(rig, host, f"echo '{json.dumps(stale)}' > {APP_ROOT}/.rollback.lock")
    refused = playbook(rig.inventory, "rollback-l3.yml", "-e", f"release_target={STABLE}")
    assert refused.rc != 0 and "crashed-run-1" in flat(refused.out)
    assert all(BAD in release for release in releases(rig).values())
    run = ok(
        playbook(
            rig.inventory,
            "rollback-l3.yml",
            "-e",
            f"release_target={STABLE}",
            "-e",
            "rollback_break_lock=true",
        )
    )
    assert all(STABLE in release for release in releases(rig).values())
    locks_free(rig)
    broken = run.record["locks_broken"]
    assert [(b["host"], b["owner"]["run_id"], b["owner"]["user"]) for b in broken] == [
        (host, "crashed-run-1", "alice")
    ]
    assert any("broke the stale lock of run crashed-run-1" in n for n in run.record["notes"])
