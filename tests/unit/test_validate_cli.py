"""`rollbackctl validate` through real ansible-runner and ansible-playbook runs of the real
playbooks/validate.yml on this machine: two local "hosts" (connection local, each with its
own app root), a health endpoint served by the test, a configuration command."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rollbackctl import validate
from rollbackctl.cli import main
from tests.conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

STABLE, OLDER = "v1.2.3-stable-gabc", "v1.2.2-stable-gdef"


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/health" else 503
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def app_root(tmp_path: Path, name: str, release: str) -> Path:
    root = tmp_path / name
    (root / "releases" / release).mkdir(parents=True)
    (root / "current").symlink_to(f"releases/{release}")
    return root


def inventory(tmp_path: Path, releases: dict[str, str], url: str, config: str = "true") -> Path:
    lines = ["[app]"]
    for host, release in releases.items():
        lines.append(
            f"{host} ansible_connection=local "
            "ansible_python_interpreter='{{ ansible_playbook_python }}' "
            f"release_app_root={app_root(tmp_path, host, release)} "
            f"release_health_url={url} validate_config_command='{config}'"
        )
    path = tmp_path / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_documents_the_exit_codes() -> None:
    text = invoke("validate", "--help").output
    for line in ("0  valid", "1  invalid", "2  bad input", "--limit", "--json"):
        assert line in text
    assert "validate" in invoke("--help").output


def test_an_inventory_that_does_not_exist(tmp_path: Path) -> None:
    result = invoke("validate", "-i", str(tmp_path / "nope"), "--project-dir", str(REPO))
    assert result.exit_code == 2
    assert "inventory" in result.output and "not found" in result.output


def test_no_playbook_is_bad_input(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    (project / "ansible.cfg").write_text("[defaults]\n")
    inv = tmp_path / "inventory.ini"
    inv.write_text("[app]\nlocalhost ansible_connection=local\n")
    result = invoke("validate", "-i", str(inv), "--project-dir", str(project))
    assert result.exit_code == 2 and "validate.yml does not exist" in result.output


def test_no_host_matched_is_bad_input(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.ini"
    inv.write_text("[web]\nlocalhost ansible_connection=local\n")
    result = invoke("validate", "-i", str(inv), "--project-dir", str(REPO))
    assert result.exit_code == 2, result.output
    assert "no host matched" in result.output


def test_a_consistent_healthy_system_is_valid(tmp_path: Path, health_url: str) -> None:
    inv = inventory(tmp_path, {"a": STABLE, "b": STABLE}, health_url)
    result = invoke("validate", "-i", str(inv), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["release"] == STABLE
    rows = {row["host"]: row for row in report["hosts"]}
    assert set(rows) == {"a", "b"}
    for row in rows.values():
        assert row["release_consistent"] is True
        assert (row["health"], row["config"], row["database"]) == ("ok", "ok", "skipped")
    table = invoke("validate", "-i", str(inv), "--project-dir", str(REPO))
    assert table.exit_code == 0 and STABLE in table.output and "valid" in table.output


def test_a_host_on_another_release_is_named(tmp_path: Path, health_url: str) -> None:
    inv = inventory(tmp_path, {"a": STABLE, "b": STABLE, "c": OLDER}, health_url)
    result = invoke("validate", "-i", str(inv), "--project-dir", str(REPO))
    assert result.exit_code == 1, result.output
    assert "releases differ: c not on" in result.output
    report = json.loads(
        invoke("validate", "-i", str(inv), "--project-dir", str(REPO), "--json").stdout
    )
    rows = {row["host"]: row for row in report["hosts"]}
    assert rows["c"]["release_consistent"] is False and rows["c"]["valid"] is False
    assert rows["a"]["valid"] and rows["b"]["valid"]
    # --limit leaves the odd one out: valid again
    limited = invoke("validate", "-i", str(inv), "--project-dir", str(REPO), "--limit", "a,b")
    assert limited.exit_code == 0, limited.output


def test_failed_health_and_config_are_invalid(tmp_path: Path, health_url: str) -> None:
    inv = inventory(tmp_path, {"a": STABLE}, health_url.replace("/health", "/down"), "false")
    result = invoke("validate", "-i", str(inv), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 1, result.output
    (row,) = json.loads(result.stdout)["hosts"]
    assert row["health"] == "failed" and row["config"] == "failed" and not row["valid"]


def test_an_unreachable_host_is_invalid(tmp_path: Path) -> None:
    inv = tmp_path / "inventory.ini"
    inv.write_text("[app]\nbogus ansible_host=127.0.0.2 ansible_port=1 release_app_root=/x\n")
    result = invoke("validate", "-i", str(inv), "--project-dir", str(REPO))
    assert result.exit_code == 1, result.output
    assert "unreachable" in result.output and "bogus:" in result.output


def test_failed_database_checks_show_their_values() -> None:
    """The values validate-db.yml publishes (database_validate_results) reach the text and
    --json: what was expected, what was found."""
    checks = [
        {"name": "database", "ok": True, "detail": "demo_app: revision 20240201100000"},
        {
            "name": "revision",
            "ok": False,
            "expected": "a revision the running code knows (its head: 20240115093000)",
            "found": "20240201100000",
            "detail": "The database is at revision 20240201100000, which the code ...",
        },
        {
            "name": "app_data_check",
            "ok": "False",
            "expected": "bin/demo-app db validate exits 0",
            "found": "exit 1: 3 prices are not whole cents",
            "detail": "3 prices are not whole cents",
        },
    ]
    stats = {"database_validate_results": {"h1": {"validation": {"ok": False, "checks": checks}}}}
    database = validate._database(stats, True, [])
    assert database["status"] == "failed" and database["hosts"] == ["h1"]
    assert [c["name"] for c in database["failed_checks"]["h1"]] == ["revision", "app_data_check"]
    assert database["failed_checks"]["h1"][0]["found"] == "20240201100000"
    outcome = validate.ValidateOutcome(1, [], database=database)
    assert validate.problems(outcome) == [
        "database on h1: revision: expected a revision the running code knows (its head: "
        "20240115093000), found 20240201100000 (The database is at revision 20240201100000, "
        "which the code ...)",
        "database on h1: app_data_check: expected bin/demo-app db validate exits 0, found "
        "exit 1: 3 prices are not whole cents (3 prices are not whole cents)",
    ]
    as_json = json.loads(json.dumps(outcome.as_dict()))["database"]["failed_checks"]["h1"]
    assert as_json[1] == {k: checks[2][k] for k in ("name", "expected", "found", "detail")}
