"""What every drill's verify shares (testinfra over SSH to the rig's hosts).

Molecule runs each verify as ``pytest tests/fault`` or ``pytest tests/recovered`` from the
scenario's folder; this conftest finds the drill's run in progress, gives the tests the
rig's hosts (testinfra, SSH with the rig's own ssh_config), the policy and the load, and at
the end of the session writes the verify's outcome to the drill's timeline
(``verified_fault`` / ``verified_recovered``, with every check and the evidence the tests
noted). After a recovered verify whose checks all passed it measures the RTO/RPO against
the policy and the runbook, and fails the verify, naming the numbers, when one is exceeded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import testinfra

from rollbackctl import drills
from rollbackctl.policy import load_policy

PROJECT = Path(__file__).resolve().parent.parent
LOADGEN = PROJECT / "roles" / "demo_app" / "files" / "tools" / "loadgen.py"
APP_ROOT = "/opt/demo-app"
CONFIG_DIR = "/etc/demo-app"
DEMO_APP = f"{APP_ROOT}/current/bin/demo-app"
PORT = 8080

CHECKS: list[dict[str, Any]] = []
NOTES: dict[str, Any] = {}


@dataclass
class Drill:
    """The drill run in progress and its rig."""

    spec: drills.DrillSpec
    run_dir: Path
    rig_dir: Path
    groups: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def inventory(self) -> Path:
        return self.rig_dir / "inventory.ini"

    def host(self, name: str) -> Any:
        return testinfra.get_host(f"ssh://{name}", ssh_config=str(self.rig_dir / "ssh_config"))

    @property
    def app(self) -> list[str]:
        return sorted(self.groups.get("app", {}))

    @property
    def db(self) -> str:
        return sorted(self.groups.get("db", {}))[0]

    def url(self, name: str) -> str:
        address = self.groups.get("app", {}).get(name) or self.groups["db"][name]
        return f"http://{address}:{PORT}"

    def events(self) -> list[dict[str, Any]]:
        return drills.events(self.run_dir)

    def baseline(self, key: str) -> Any:
        """What the fault verify noted (``key``), for the recovered verify to compare."""
        seen = [e for e in drills.events(self.run_dir) if e["event"] == "verified_fault"]
        if not seen or key not in (seen[-1].get("notes") or {}):
            pytest.fail(f"the fault verify noted no {key!r}: run the whole drill (molecule test)")
        return seen[-1]["notes"][key]


def _artifacts() -> Path:
    return Path(os.environ.get("ROLLBACKCTL_ARTIFACTS") or PROJECT / ".artifacts")


def _rig_dir() -> Path:
    instance = os.environ.get("TESTHOSTS_INSTANCE", "0") or "0"
    default = PROJECT / (".testhosts" if instance == "0" else f".testhosts-{instance}")
    return Path(os.environ.get("TESTHOSTS_DIR") or default)


def read_groups(inventory: Path) -> dict[str, dict[str, str]]:
    """``{group: {host: address}}`` from the rig's generated inventory."""
    groups: dict[str, dict[str, str]] = {}
    section = ""
    for line in inventory.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "ansible_host=" in line and section:
            name = line.split()[0]
            groups.setdefault(section, {})[name] = line.split("ansible_host=")[1].split()[0]
    return groups


@pytest.fixture(scope="session")
def drill() -> Drill:
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "")
    run_dir = drills.current(_artifacts(), scenario)
    if run_dir is None:
        pytest.exit(
            f"no drill {scenario!r} in progress: run it with molecule test -s {scenario}", 2
        )
    rig_dir = _rig_dir()
    return Drill(
        drills.spec_named(PROJECT, scenario),
        run_dir,
        rig_dir,
        read_groups(rig_dir / "inventory.ini"),
    )


@pytest.fixture(scope="session")
def policy() -> Any:
    return load_policy(str(PROJECT / "inventories" / "testhosts"))


@pytest.fixture(scope="session")
def note() -> Iterator[dict[str, Any]]:
    """Evidence a test wants in the drill record (``note[key] = value``)."""
    yield NOTES


# --------------------------------------------------------------------------------------------
# What the checks look at


def loadgen() -> ModuleType:
    """The demo app's load generator and /metrics reader."""
    spec = importlib.util.spec_from_file_location("loadgen", LOADGEN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadgen"] = module
    spec.loader.exec_module(module)
    return module


def traffic(urls: list[str], requests: int = 80) -> dict[str, Any]:
    """Send bounded load to GET /checkout and read the error ratio and p95 from the hosts'
    /metrics over that window: what the runbook's automatic triggers look at."""
    lg = loadgen()
    before = {url: lg.scrape(url) for url in urls}
    subprocess.run(
        [sys.executable, str(LOADGEN), *urls, "--requests", str(requests), "--concurrency", "8",
         "--path", "/checkout", "--timeout", "10"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    window: list[Any] = []
    for url in urls:
        window += lg.subtract(lg.scrape(url), before[url])
    seen = lg.summarize(window, "/checkout")
    return {
        "requests": seen.get("requests"),
        "error_ratio": float(seen.get("error_ratio") or 0.0),
        "p95_seconds": float(seen.get("p95_seconds") or 0.0),
    }


def check_error_ratio(
    drill: Drill, policy: Any, note: dict[str, Any], fault: bool, requests: int = 0
) -> None:
    """The error ratio under load (``traffic``, ``requests`` of them) is above the policy's
    error-rate trigger while the fault is there (``fault``), at or under it once the level
    ran."""
    seen = traffic([drill.url(name) for name in drill.app], requests or (80 if fault else 40))
    note["error_ratio"], note["p95_seconds"] = seen["error_ratio"], seen["p95_seconds"]
    trigger = policy.triggers.error_rate.above / 100
    if fault:
        assert seen["error_ratio"] > trigger, (
            f"{seen['error_ratio']:.1%} is not above {trigger:.0%}"
        )
    else:
        assert seen["error_ratio"] <= trigger, f"{seen['error_ratio']:.1%} is above {trigger:.0%}"


def check_serving(drill: Drill, version: str | None = None, release: str | None = None) -> None:
    """Every app host answers /health with 200 (and runs ``version``, from ``release``)."""
    for name in drill.app:
        host = drill.host(name)
        if release:
            assert release in host.file(f"{APP_ROOT}/current").linked_to, name
        code, body = health(host)
        assert code == 200, f"{name}: /health {code} {body}"
        assert version is None or body.get("version") == version, f"{name}: {body}"


def check_writes(drill: Drill, note: dict[str, Any], restored: bool) -> None:
    """Every write the service acknowledged is still there, or, after a restore from a
    backup (``restored``), the data lost is measured (the record judges it against the RPO)."""
    loss = heartbeat_evidence(drill)
    note["data_loss"] = loss
    assert loss["acknowledged"] > 0, loss
    if restored:
        assert loss["seconds"] is not None, loss
    else:
        assert loss["lost"] == 0, loss["note"]


def run_json(host: Any, command: str) -> Any:
    result = host.run(command)
    assert result.rc == 0, f"{command}: exit {result.rc}: {result.stderr or result.stdout}"
    return json.loads(result.stdout)


def health(host: Any) -> tuple[int, dict[str, Any]]:
    result = host.run(
        f"curl -s -o /tmp/drill-health.json -w '%{{http_code}}' http://127.0.0.1:{PORT}/health"
        " && echo && cat /tmp/drill-health.json"
    )
    code, _, body = result.stdout.partition("\n")
    try:
        return int(code or 0), json.loads(body or "{}")
    except ValueError:
        return int(code or 0), {"raw": body}


def flag(host: Any, name: str) -> dict[str, Any]:
    """How the app evaluates flag ``name`` (GET /flags/<name>, OFREP shape)."""
    result = host.run(f"curl -s http://127.0.0.1:{PORT}/flags/{name}")
    assert result.rc == 0, f"GET /flags/{name}: {result.stderr}"
    return dict(json.loads(result.stdout or "{}"))


def db_ids(drill: Drill) -> list[int]:
    """Every order id in the database (PostgreSQL on the db host)."""
    result = drill.host(drill.db).run(
        "cd / && runuser -u postgres -- psql -d demo_app -Atc 'select id from orders'"
    )
    assert result.rc == 0, f"cannot read the orders on {drill.db}: {result.stderr}"
    return [int(line) for line in result.stdout.split()]


def heartbeat_evidence(drill: Drill) -> dict[str, Any]:
    """Stop the load, then compare every write it got acknowledged with the database:
    the RPO evidence, also written to the drill's timeline."""
    drills.stop_process(drill.run_dir / drills.HEARTBEAT_PID)
    log = drill.run_dir / "heartbeat.jsonl"
    beats = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    loss = drills.data_loss(beats, db_ids(drill))
    loss["requests"] = len(beats)
    loss["failed_requests"] = sum(1 for b in beats if b.get("status") not in (200, 201))
    drills.mark(drill.run_dir, "rpo_evidence", data_loss=loss)
    return loss


# --------------------------------------------------------------------------------------------
# The verify's outcome on the timeline


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.failed:
        CHECKS.append(
            {
                "name": report.nodeid.split("::")[-1],
                "seconds": round(report.duration, 3),
                "failure": str(report.longrepr)[-800:] if report.failed else None,
            }
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "")
    run_dir = drills.current(_artifacts(), scenario)
    args = " ".join(str(a) for a in session.config.args)
    which = "recovered" if "recovered" in args else "fault" if "fault" in args else None
    if run_dir is None or which is None:
        return
    failed = [c["name"] for c in CHECKS if c["failure"]] or ([] if CHECKS else ["no check ran"])
    drills.mark(
        run_dir, f"verified_{which}", failed="; ".join(failed) or None, checks=CHECKS, notes=NOTES
    )
    if which != "recovered" or failed:
        return
    spec = drills.spec_named(PROJECT, scenario)
    record = drills.build_record(
        spec, run_dir, load_policy(str(PROJECT / "inventories" / "testhosts"))
    )
    writer = session.config.get_terminal_writer()
    for line in drills.summary_lines(record)[1:]:
        writer.line(line, red="NOT MET" in line or "exceeded" in line, green=" met " in line)
    if record["violations"]:
        writer.line(
            f"{scenario}: everything is back, but too slowly or with data lost: "
            + "; ".join(record["violations"]),
            red=True,
            bold=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
