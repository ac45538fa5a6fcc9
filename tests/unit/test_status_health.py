"""`rollbackctl status` shows each host's application health and exits 1 when an
application is down (#21): an on-call engineer must not read exit 0 as "all is well" while
a host's app is stopped. Real ansible-playbook runs of playbooks/status.yml on localhost."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.unit.test_run_cli import invoke

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def healthy_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health"
    server.shutdown()
    server.server_close()


def inventory_with(tmp_path: Path, health_url: str) -> Path:
    app = tmp_path / "app"
    (app / "releases" / "v1.2.3-stable-gabc").mkdir(parents=True)
    (app / "current").symlink_to("releases/v1.2.3-stable-gabc")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[app]\nlocalhost ansible_connection=local "
        "ansible_python_interpreter='{{ ansible_playbook_python }}' "
        f"release_app_root={app} release_health_url={health_url} status_health_deadline=1\n"
    )
    return inventory


def test_a_healthy_application_is_shown_and_exits_0(tmp_path: Path, healthy_url: str) -> None:
    inventory = inventory_with(tmp_path, healthy_url)
    result = invoke("status", "-i", str(inventory), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["hosts"]
    assert (row["health"], row["health_url"]) == ("ok", healthy_url)
    table = invoke("status", "-i", str(inventory), "--project-dir", str(REPO))
    assert table.exit_code == 0 and "health" in table.output


def test_an_application_that_is_down_exits_1_and_says_where(tmp_path: Path) -> None:
    url = "http://127.0.0.1:1/health"  # nothing listens there
    inventory = inventory_with(tmp_path, url)
    result = invoke("status", "-i", str(inventory), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 1, result.output
    (row,) = json.loads(result.stdout)["hosts"]
    assert row["reachable"] is True and row["health"] == "down" and row["health_msg"]
    table = invoke("status", "-i", str(inventory), "--project-dir", str(REPO))
    assert table.exit_code == 1
    assert "down" in table.output
    assert f"localhost: the application is down at {url}: " in table.output


def test_without_a_health_url_health_is_not_checked(tmp_path: Path) -> None:
    inventory = inventory_with(tmp_path, "''")
    result = invoke("status", "-i", str(inventory), "--project-dir", str(REPO), "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["hosts"]
    assert row["health"] is None
