"""Reliability issue #15, items 4, 8 and 9, without test hosts: empty targets, URL
credentials, --limit that matches nothing, an unreachable database, refusals that are bad
input, where the run record goes, a broken stale lock in the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ansible_collections.sre.rollback.plugins.callback.run_record import (
    broken_locks,
    record_dir,
)
from ansible_collections.sre.rollback.plugins.lookup.blank_extra_vars import blank_names
from ansible_collections.sre.rollback.plugins.module_utils.db_engines import PgConn
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import (
    MASK,
    Redactor,
    mask_urls,
)
from rollbackctl.cli import main
from rollbackctl.rollback import EXIT_BAD_INPUT, EXIT_FAILED, exit_code, refused_inputs
from tests.conftest import REPO

PLANTED = "planted-S3cret"  # planted on purpose, then hunted for


# --- item 8: credentials inside URLs ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"git fetch http://deploy:{PLANTED}@git.example.com/app.git failed",
        f"postgresql://app:{PLANTED}@db:5432/app",
        f"https://{PLANTED}@github.com/org/app.git",
        f"https://flags.example.com/api?x=1&token={PLANTED}",
        f"https://hooks.example.com/x?access_token={PLANTED}#top",
        f"https://h/x?api_key={PLANTED}&apikey={PLANTED}&key={PLANTED}",
        f"https://h/x?password={PLANTED}&secret={PLANTED}&auth={PLANTED}",
        f"https://bucket.s3/x?X-Amz-Signature={PLANTED}&sig={PLANTED}",
        f"health url='http://u:{PLANTED}@10.0.0.5:8080/health' did not answer",
    ],
)
def test_url_credentials_are_masked_in_any_text(text: str) -> None:
    masked = mask_urls(text)
    assert PLANTED not in masked
    assert MASK in masked
    assert Redactor().found_in(text)


def test_urls_without_credentials_are_left_alone() -> None:
    for text in (
        "http://172.30.99.12:8080/health?verbose=1",
        "mail ops@example.com about https://status.example.com/x?monkey=1",
        "git@github.com:org/app.git",
    ):
        assert mask_urls(text) == text
    assert mask_urls("https://h/x?key=abc&b=2") == f"https://h/x?key={MASK}&b=2"


def test_the_redactor_masks_urls_in_data_by_value() -> None:
    data = {"msg": f"cannot fetch https://u:{PLANTED}@h/r.git", "list": [f"x?token={PLANTED}"]}
    assert PLANTED not in str(Redactor().data(data, by_name=False))


# --- item 4: a target given empty --------------------------------------------------------


def test_blank_extra_vars_tells_given_empty_from_not_given() -> None:
    given = {"release_target": "", "config_target": "  ", "feature_flag_names": [""]}
    given |= {"database_restore_backup": None, "database_target_revision": "20240101"}
    names = [*given, "not_given"]
    assert blank_names(names, given) == [
        "release_target",
        "config_target",
        "feature_flag_names",
        "database_restore_backup",
    ]
    assert blank_names(["release_target"], {}) == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "--level", "3", "--target", ""], "--target is empty"),
        (["run", "--level", "3", "--target", "  "], "newest stable release"),
        (["run", "--level", "2", "--target", ""], "previous revision"),
        (["run", "--level", "3", "-e", "release_target="], "-e release_target is empty"),
        (["run", "--level", "4", "-e", "database_restore_backup="], "database_restore_backup"),
        (["run", "--level", "1", "-e", "feature_flag_names= "], "feature_flag_names is empty"),
        (
            ["emergency", "-s", "critical", "--impact", "all", "-t", "2h", "--target", ""],
            "--target is empty",
        ),
    ],
)
def test_the_cli_refuses_an_empty_target_before_anything_runs(
    tmp_path: Path, args: list[str], said: str
) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[app]\nh1 ansible_connection=local\n")
    artifacts = tmp_path / "artifacts"
    result = CliRunner().invoke(
        main,
        [*args, "-i", str(inventory), "--project-dir", str(REPO), "--artifacts", str(artifacts)],
    )
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert said in result.output
    assert "Nothing was changed" in result.output
    assert not artifacts.exists(), "nothing ran, nothing was recorded"


# --- item 9a: --limit matching no host ----------------------------------------------------


@pytest.mark.slow
def test_a_limit_that_matches_no_host_is_bad_input(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[app]\nh1 ansible_connection=local\n")
    artifacts = tmp_path / "artifacts"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--level",
            "3",
            "-i",
            str(inventory),
            "--limit",
            "h9",
            "--project-dir",
            str(REPO),
            "--artifacts",
            str(artifacts),
        ],
    )
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "--limit 'h9' matches no host" in result.output
    assert not artifacts.exists()


# --- item 9c: refusals are bad input ------------------------------------------------------


def record(phase: str, changed: bool = False) -> dict[str, Any]:
    return {
        "status": "failed",
        "hosts": {
            "h1": {"status": "failed", "failed_phase": phase, "msg": "Bad level 4 inputs: x"},
            "h2": {"status": "ok"},
        },
        "tasks": [{"host": "h1", "changed": changed}],
    }


def test_a_refusal_in_the_preflight_is_bad_input() -> None:
    assert refused_inputs(record("preflight"))
    assert exit_code("failed", None, record("preflight")) == EXIT_BAD_INPUT
    assert exit_code("failed", None, record("health")) == EXIT_FAILED
    assert exit_code("failed", None, record("preflight", changed=True)) == EXIT_FAILED


# --- item 9b: the database is down --------------------------------------------------------


def test_an_unreachable_database_is_said_plainly() -> None:
    conn = PgConn(host="10.0.0.9", port=5433)
    raw = (
        'psql: error: connection to server at "10.0.0.9", port 5433 failed: Connection '
        "refused\n\tIs the server running on that host and accepting TCP/IP connections?"
    )
    said = str(conn.failure("psql failed (exit 2)", raw))
    assert said.startswith("The PostgreSQL database at 10.0.0.9:5433 is not reachable")
    assert "systemctl status postgresql" in said and "database_login_port" in said
    socket = PgConn().failure("psql ended", "No such file or directory\n\tIs the server running")
    assert "at the local socket:5432 is not reachable" in str(socket)
    other = str(conn.failure("psql failed", 'ERROR:  relation "x" does not exist'))
    assert other == 'psql failed: ERROR:  relation "x" does not exist'


# --- item 9d: where the record goes -------------------------------------------------------


def test_a_relative_record_dir_is_the_playbooks_projects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert record_dir(".artifacts/runs", str(REPO / "playbooks")) == str(REPO / ".artifacts/runs")
    assert record_dir("/srv/runs", str(REPO / "playbooks")) == "/srv/runs"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert record_dir(".artifacts/runs", "/") == str(
        tmp_path / "state/sre-rollback/.artifacts/runs"
    )


# --- item 9e: a broken stale lock ---------------------------------------------------------


def test_broken_locks_are_found_in_results_and_loop_items() -> None:
    owner = {"run_id": "old", "user": "alice", "host": "ctl", "pid": 7}
    assert broken_locks("h2", {"lock_broken": owner}) == [("h2", owner)]
    assert broken_locks("h2", {"lock_broken": None, "broken": None}) == []
    looped = {"results": [{"item": "h3", "broken": owner}, {"item": "h4", "broken": None}]}
    assert broken_locks("h1", looped) == [("h3", owner)]
