"""The demo app behaves like the real service the runbook acts on.

Builds the release history with make-repo, checks out every tag, builds it, migrates a
SQLite database up and down, and runs the app on 127.0.0.1 (no root) under Debian's
/usr/bin/python3, which has python3-sqlalchemy, python3-alembic and python3-psycopg2.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import release_ops
from tests.conftest import REPO
from tests.support.ports import free_port

FILES = REPO / "roles" / "demo_app" / "files"
SYSTEM_PYTHON = "/usr/bin/python3"
TAGS = ("v1.2.2-stable", "v1.2.3-stable", "v1.3.0")
SLOW_SECONDS = 0.2  # the test's [checkout] slow_seconds; its p95 threshold is half of it
P95_THRESHOLD = SLOW_SECONDS / 2


def _system_python_ready() -> bool:
    if not Path(SYSTEM_PYTHON).exists() or shutil.which("git") is None:
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sqlalchemy, alembic, psycopg2"], capture_output=True
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _system_python_ready(),
    reason="needs git and /usr/bin/python3 with python3-sqlalchemy, -alembic, -psycopg2",
)


def _load_loadgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("loadgen", FILES / "tools" / "loadgen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["loadgen"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


loadgen = _load_loadgen()


def run(*command: str | Path, cwd: Path | None = None, check: bool = True, **kw: Any):
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, **kw
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}):\n{result.stderr}")
    return result


def app_cli(release: Path, *arguments: str | Path, check: bool = True, **kw: Any):
    return run(SYSTEM_PYTHON, release / "bin" / "demo-app", *arguments, check=check, **kw)


def flags_document(state: str = "ENABLED", default: str = "on") -> dict[str, Any]:
    variants = {"on": True, "off": False}
    return {
        "flags": {"new_checkout": {"state": state, "variants": variants, "defaultVariant": default}}
    }


def write_config(folder: Path, port: int, **sections: dict[str, Any]) -> Path:
    """A config dir with app.ini (a SQLite db in folder) and flags.json (new_checkout on)."""
    folder.mkdir(parents=True, exist_ok=True)
    values: dict[str, dict[str, Any]] = {
        "app": {"environment": "test"},
        "server": {"bind": "127.0.0.1", "port": port},
        "database": {"url": f"sqlite:///{folder}/app.db", "pool_size": 5},
        "checkout": {"slow_seconds": SLOW_SECONDS, "error_rate": 0.3},
        "storage": {"uploads_dir": folder / "uploads"},
    }
    for section, keys in sections.items():
        values.setdefault(section, {}).update(keys)
    text = "".join(
        f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())
        for section, keys in values.items()
    )
    (folder / "app.ini").write_text(text)
    (folder / "flags.json").write_text(json.dumps(flags_document()))
    return folder


def http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=data)  # noqa: S310 (http://127.0.0.1)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def get_json(url: str) -> tuple[int, Any]:
    status, body = http(url)
    return status, json.loads(body)


@contextmanager
def serving(release: Path, config: Path, migrate: bool = True) -> Iterator[str]:
    """Run `demo-app serve` until the block ends; yields its base URL."""
    if migrate:
        app_cli(release, "migrate", "upgrade", "head", "--config-dir", config)
    port = int(
        next(
            line.split("=")[1]
            for line in (config / "app.ini").read_text().splitlines()
            if line.startswith("port")
        )
    )
    log = (config / "serve.log").open("w")
    process = subprocess.Popen(
        [SYSTEM_PYTHON, release / "bin" / "demo-app", "serve", "--config-dir", config],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, (config / "serve.log").read_text()
            try:
                http(base + "/version")
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not start listening"
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


# --- the release history ------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bundle") / "demo-app.bundle"
    result = run(SYSTEM_PYTHON, FILES / "make-repo", out, "--json")
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def releases(bundle: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each tag cloned from the bundle and built, like the release role does."""
    root = tmp_path_factory.mktemp("releases")
    built = {}
    for tag in TAGS:
        target = root / tag
        run("git", "clone", "-q", "--branch", tag, bundle["bundle"], target)
        run(target / "build", cwd=target)
        built[tag] = target
    return built


def test_make_repo_is_deterministic(bundle: dict[str, Any], tmp_path: Path) -> None:
    again = json.loads(run(SYSTEM_PYTHON, FILES / "make-repo", tmp_path / "b", "--json").stdout)
    assert again["refs"] == bundle["refs"] and again["tags"] == bundle["tags"]
    unchanged = json.loads(
        run(SYSTEM_PYTHON, FILES / "make-repo", bundle["bundle"], "--json").stdout
    )
    assert unchanged["changed"] is False
    repo = tmp_path / "repo"
    run(SYSTEM_PYTHON, FILES / "make-repo", "--repo", repo)
    commits = {
        tag: run("git", "-C", repo, "rev-parse", f"{tag}^{{commit}}").stdout.strip() for tag in TAGS
    }
    assert commits == bundle["tags"]


def test_tags_come_in_release_order(bundle: dict[str, Any], tmp_path: Path) -> None:
    run("git", "clone", "-q", "--bare", bundle["bundle"], tmp_path / "mirror")
    ordered = run("git", "-C", tmp_path / "mirror", "tag", "--sort=creatordate").stdout.split()
    assert tuple(ordered) == TAGS
    stable = run("git", "-C", tmp_path / "mirror", "tag", "-l", "*stable").stdout.split()
    assert stable == ["v1.2.2-stable", "v1.2.3-stable"]


def test_releases_differ_by_their_overlays(releases: dict[str, Path]) -> None:
    versions = {tag: (path / "VERSION").read_text().strip() for tag, path in releases.items()}
    assert versions == {"v1.2.2-stable": "1.2.2", "v1.2.3-stable": "1.2.3", "v1.3.0": "1.3.0"}
    assert not (releases["v1.2.2-stable"] / "demo_app" / "checkout_new.py").exists()
    migrations = sorted(
        p.name[:14] for p in (releases["v1.3.0"] / "migrations" / "versions").glob("2*.py")
    )
    assert migrations == [
        "20240101120000",
        "20240101120100",
        "20240115090000",
        "20240115093000",
        "20240201100000",
    ]


# --- build --------------------------------------------------------------------------------


def test_build_writes_a_manifest_that_verify_build_checks(
    releases: dict[str, Path], bundle: dict[str, Any], tmp_path: Path
) -> None:
    release = releases["v1.2.3-stable"]
    manifest = json.loads((release / "BUILD_MANIFEST.json").read_text())
    assert manifest["version"] == "1.2.3"
    assert manifest["commit"] == bundle["tags"]["v1.2.3-stable"]
    assert "demo_app/server.py" in manifest["files"] and len(manifest["files"]["VERSION"]) == 64
    assert app_cli(release, "verify-build").returncode == 0

    copy = tmp_path / "release"
    shutil.copytree(release, copy, ignore=shutil.ignore_patterns(".git"))
    run(copy / "build", "--commit", "abc123", cwd=copy)
    assert json.loads((copy / "BUILD_MANIFEST.json").read_text())["commit"] == "abc123"
    with (copy / "demo_app" / "store.py").open("a") as stream:
        stream.write("\n# edited on the host\n")
    failed = app_cli(copy, "verify-build", check=False)
    assert failed.returncode == 1 and "changed: demo_app/store.py" in failed.stderr


def test_verify_build_passes_on_a_release_the_rollback_tool_built(
    bundle: dict[str, Any], tmp_path: Path
) -> None:
    """sre.rollback's release module builds the tag with ./build, then adds its own records
    (.release.json, .release-manifest.json) and links the shared paths in: the app's own
    check knows them and still finds a file changed after the build."""
    app_root = tmp_path / "app"
    (app_root / "shared" / "uploads").mkdir(parents=True)
    (app_root / "releases").mkdir()
    p = {
        "app_root": str(app_root),
        "repo": bundle["bundle"],
        "tag": "v1.2.3-stable",
        "commit": bundle["tags"]["v1.2.3-stable"],
        "build_command": "./build",
        "build_timeout": 120,
        "shared_paths": ["uploads"],
    }
    release_ops.build_release(p, "r-test", {})
    release = app_root / "releases" / "r-test"
    assert (release / ".release-manifest.json").is_file() and (release / "uploads").is_symlink()
    verified = app_cli(release, "verify-build", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with (release / "demo_app" / "store.py").open("a") as stream:
        stream.write("\n# edited on the host\n")
    (release / "notes.txt").write_text("added after the build")
    failed = app_cli(release, "verify-build", check=False)
    assert failed.returncode == 1
    assert "changed: demo_app/store.py" in failed.stderr
    assert "not in the manifest: notes.txt" in failed.stderr


def test_a_broken_build_fails(releases: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "broken"
    shutil.copytree(releases["v1.3.0"], copy, ignore=shutil.ignore_patterns(".git"))
    (copy / "BUILD_MANIFEST.json").unlink()
    with (copy / "demo_app" / "checkout_new.py").open("a") as stream:
        stream.write("\ndef broken(:\n")
    result = run(copy / "build", check=False, cwd=copy)
    assert result.returncode != 0
    assert "checkout_new.py" in result.stderr
    assert not (copy / "BUILD_MANIFEST.json").exists()


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("database", "pool_size", "0", "[database] pool_size = '0' is invalid: must be from 1"),
        ("server", "port", "eighty", "[server] port = 'eighty' is invalid: must be a whole"),
        ("database", "pool_sise", "3", "unknown key 'pool_sise'. Did you mean 'pool_size'?"),
        ("checkout", "error_rate", "2", "[checkout] error_rate = '2' is invalid"),
    ],
)
def test_invalid_config_is_refused_with_a_clear_message(
    releases: dict[str, Path], tmp_path: Path, section: str, key: str, value: str, expected: str
) -> None:
    release = releases["v1.2.3-stable"]
    config = write_config(tmp_path / "config", free_port(), **{section: {key: value}})
    checked = app_cli(release, "check-config", "--config-dir", config, check=False)
    assert checked.returncode == 1
    assert f"{config}/app.ini: " in checked.stderr and expected in checked.stderr
    served = app_cli(release, "serve", "--config-dir", config, check=False, timeout=20)
    assert served.returncode == 78 and "refusing to start" in served.stderr
    assert expected in served.stderr


def test_valid_config_passes_check_config(releases: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", free_port())
    result = app_cli(releases["v1.2.2-stable"], "check-config", "--config-dir", config, "--json")
    assert json.loads(result.stdout)["ok"] is True


def test_a_broken_flags_file_fails_check_config(releases: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", free_port())
    (config / "flags.json").write_text('{"flags": {"new_checkout": {"state": "ON"}}}')
    result = app_cli(releases["v1.3.0"], "check-config", "--config-dir", config, check=False)
    assert result.returncode == 1 and "state must be ENABLED or DISABLED" in result.stderr


# --- migrations ---------------------------------------------------------------------------


def migrate(release: Path, config: Path, *arguments: str, check: bool = True):
    return app_cli(release, "migrate", *arguments, "--config-dir", config, check=check)


def test_migrations_go_up_and_down_on_sqlite(releases: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", free_port())
    old, new = releases["v1.2.3-stable"], releases["v1.3.0"]
    assert migrate(old, config, "current").stdout.strip() == "base"
    migrate(old, config, "upgrade", "20240115090000")
    migrate(old, config, "downgrade", "base")
    migrate(new, config, "upgrade", "head")
    state = json.loads(migrate(new, config, "current", "--json").stdout)
    assert state["current"] == "20240201100000" and state["pending"] == []
    assert state["irreversible"] == ["20240115093000"]
    info = json.loads(app_cli(new, "db", "info", "--config-dir", config).stdout)
    assert info["meta"]["environment"] == "test" and info["counts"]["items"] == 5

    # 1.3.0's migration rounds the prices: the integrity check sees the orders disagree.
    damaged = app_cli(new, "db", "validate", "--config-dir", config, check=False)
    assert damaged.returncode == 1
    assert "8 orders whose total" in damaged.stdout

    # The code of 1.2.3 does not know 1.3.0's revision: it says which release can go down.
    unknown = migrate(old, config, "downgrade", "20240115093000", check=False)
    assert unknown.returncode == 1 and "does not know" in unknown.stderr
    migrate(new, config, "downgrade", "20240115093000")
    assert migrate(old, config, "current").stdout.strip() == "20240115093000"

    refused = migrate(old, config, "downgrade", "20240101120000", check=False)
    assert refused.returncode == 1
    assert "irreversible migration 20240115093000" in refused.stderr
    assert "Nothing was changed" in refused.stderr
    assert migrate(old, config, "current").stdout.strip() == "20240115093000"


def test_history_marks_the_irreversible_migration(releases: dict[str, Path]) -> None:
    history = json.loads(app_cli(releases["v1.3.0"], "migrate", "history", "--json").stdout)
    assert [row["revision"] for row in history if row["irreversible"]] == ["20240115093000"]
    source = next((releases["v1.3.0"] / "migrations" / "versions").glob("20240115093000_*.py"))
    assert "# irreversible" in source.read_text().splitlines()
    assert "irreversible = True" in source.read_text()


# --- the running app ----------------------------------------------------------------------


def test_bad_release_fails_with_the_flag_on_and_recovers_with_it_off(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config", free_port())
    with serving(releases["v1.3.0"], config) as base:
        status, health = get_json(base + "/health")
        assert status == 200
        assert health | {"release": "v1.3.0", "commit": "x"} == {
            "status": "ok",
            "version": "1.3.0",
            "release": "v1.3.0",
            "commit": "x",
            "db": "ok",
            "schema": "20240201100000",
            "environment": "test",
        }
        assert get_json(base + "/flags/new_checkout") == (
            200,
            {
                "key": "new_checkout",
                "value": True,
                "reason": "STATIC",
                "variant": "on",
                "metadata": {},
            },
        )
        assert get_json(base + "/flags/nope")[1]["errorCode"] == "FLAG_NOT_FOUND"
        assert get_json(base + "/flags/nope")[0] == 404

        bad = loadgen.run_load([base], requests=40, concurrency=5, timeout=10)
        assert bad["error_ratio"] > 0.10, bad
        assert bad["by_status"].get("500", 0) > 0
        assert bad["p95_seconds"] >= SLOW_SECONDS
        metrics = loadgen.parse_metrics(http(base + "/metrics")[1].decode())
        assert loadgen.error_ratio(metrics, "/checkout") > 0.10
        assert loadgen.histogram_quantile(0.95, metrics, "/checkout") > P95_THRESHOLD

        # Level 1: turn the flag off in the file; the app re-reads it without a restart.
        (config / "flags.json").write_text(json.dumps(flags_document("DISABLED")))
        assert get_json(base + "/flags/new_checkout")[1] | {"metadata": {}} == {
            "key": "new_checkout",
            "value": False,
            "reason": "DISABLED",
            "variant": None,
            "metadata": {},
        }
        before = loadgen.parse_metrics(http(base + "/metrics")[1].decode())
        good = loadgen.run_load([base], requests=40, concurrency=5, timeout=10)
        assert good["error_ratio"] < 0.10 and good["p95_seconds"] < P95_THRESHOLD, good
        window = loadgen.subtract(
            loadgen.parse_metrics(http(base + "/metrics")[1].decode()), before
        )
        assert loadgen.error_ratio(window, "/checkout") == 0
        assert loadgen.histogram_quantile(0.95, window, "/checkout") < P95_THRESHOLD
        assert get_json(base + "/checkout")[1]["flow"] == "classic"


def test_stable_releases_are_good_with_the_flag_on(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    for tag, flow in (("v1.2.3-stable", "new"), ("v1.2.2-stable", "classic")):
        config = write_config(tmp_path / tag, free_port())
        with serving(releases[tag], config) as base:
            quoted = get_json(base + "/checkout?item=SKU-1004&qty=2")[1]
            assert quoted["flow"] == flow and quoted["total_cents"] == 2 * 8999
            result = loadgen.run_load([base], requests=30, concurrency=5, timeout=10)
            assert result["error_ratio"] == 0 and result["p95_seconds"] < P95_THRESHOLD, result


def test_metrics_are_prometheus_text(releases: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", free_port())
    with serving(releases["v1.2.3-stable"], config) as base:
        http(base + "/checkout")
        http(base + "/nowhere")
        status, body = http(base + "/metrics")
    text = body.decode()
    assert status == 200
    samples = loadgen.parse_metrics(text)
    names = {sample.name for sample in samples}
    for name in (
        "demo_http_requests_total",
        "demo_http_request_duration_seconds_bucket",
        "demo_http_request_duration_seconds_sum",
        "demo_http_request_duration_seconds_count",
        "process_resident_memory_bytes",
        "demo_memory_usage_ratio",
        "demo_db_pool_in_use",
        "demo_db_pool_size",
        "demo_app_info",
        "demo_health_check_failures_total",
    ):
        assert name in names, name
    assert "# TYPE demo_http_request_duration_seconds histogram" in text
    bounds = {s.labels["le"] for s in samples if s.name.endswith("_bucket")}
    assert {"0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"} <= bounds
    info = next(s for s in samples if s.name == "demo_app_info")
    assert info.labels["version"] == "1.2.3" and info.value == 1
    requests = {
        (s.labels["path"], s.labels["status"]): s.value
        for s in samples
        if s.name == "demo_http_requests_total"
    }
    assert requests[("/checkout", "200")] == 1 and requests[("other", "404")] == 1
    assert 0 < next(s.value for s in samples if s.name == "demo_memory_usage_ratio") < 1


def test_a_config_that_holds_the_pool_exhausts_it(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "config",
        free_port(),
        database={"pool_size": 2, "hold_connections": 2, "pool_timeout": 0.2},
    )
    checked = app_cli(releases["v1.2.3-stable"], "check-config", "--config-dir", config)
    assert "requests will find no free database connection" in checked.stderr
    with serving(releases["v1.2.3-stable"], config) as base:
        time.sleep(0.3)  # the report job takes its connections
        status, body = get_json(base + "/checkout")
        assert (status, body["error"]) == (503, "pool exhausted")
        assert get_json(base + "/health")[0] == 503
        summary = loadgen.summarize(loadgen.scrape(base))
    assert summary["db_pool_in_use"] == summary["db_pool_size"] == 2
    assert summary["health_check_failures"] == 1


def test_health_is_503_when_the_database_is_unreachable(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    unreachable = f"postgresql://demo@127.0.0.1:{free_port()}/demo"
    config = write_config(tmp_path / "config", free_port(), database={"url": unreachable})
    with serving(releases["v1.2.3-stable"], config, migrate=False) as base:
        status, health = get_json(base + "/health")
    assert status == 503 and health["status"] == "fail"
    assert health["db"].startswith("unreachable")


def test_the_app_writes_a_heartbeat_row_a_second(releases: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", free_port(), database={"heartbeat_seconds": 0.2})
    with serving(releases["v1.2.2-stable"], config) as base:
        time.sleep(1.5)
        # the pool is the requests' own: the heartbeat has its own connection
        get_json(base + "/health")
        summary = {s.name: s.value for s in loadgen.scrape(base)}
    with sqlite3.connect(config / "app.db") as db:
        rows = db.execute(
            "SELECT count(*), count(DISTINCT host), max(at) FROM heartbeat"
        ).fetchone()
    assert rows[0] >= 4 and rows[1] == 1, rows
    newest = datetime.fromisoformat(rows[2]).replace(tzinfo=UTC).timestamp()
    assert abs(time.time() - newest) < 30, rows  # UTC, written just now
    assert summary["demo_heartbeat_writes_total"] >= rows[0] - 1
    assert summary["demo_heartbeat_failures_total"] == 0
    assert summary["demo_db_pool_timeouts_total"] == 0
    # below the heartbeat's revision the table is gone: writes fail, the app serves on
    app_cli(
        releases["v1.2.2-stable"], "migrate", "downgrade", "20240101120000", "--config-dir", config
    )
    with serving(releases["v1.2.2-stable"], config, migrate=False) as base:
        time.sleep(1)
        assert get_json(base + "/health")[0] == 200
        failures = next(
            s.value for s in loadgen.scrape(base) if s.name == "demo_heartbeat_failures_total"
        )
    assert failures >= 2


def test_uploads_are_stored_in_the_shared_directory(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config", free_port())
    with serving(releases["v1.2.2-stable"], config) as base:
        assert http(base + "/uploads/report.pdf", "POST", b"%PDF-1.4 demo")[0] == 201
        assert http(base + "/uploads/report.pdf") == (200, b"%PDF-1.4 demo")
        assert http(base + "/uploads/..secret", "POST", b"x")[0] == 400
        assert http(base + "/uploads/missing.txt")[0] == 404
    assert (config / "uploads" / "report.pdf").read_bytes() == b"%PDF-1.4 demo"


def test_daemon_mode_for_hosts_without_systemd(releases: dict[str, Path], tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", free_port())
    release = releases["v1.2.3-stable"]
    migrate(release, config, "upgrade", "head")
    pidfile, log = tmp_path / "run" / "demo-app.pid", tmp_path / "log" / "demo-app.log"
    started = app_cli(
        release,
        "serve",
        "--daemon",
        "--pidfile",
        pidfile,
        "--log-file",
        log,
        "--config-dir",
        config,
    )
    try:
        assert "started" in started.stdout and pidfile.exists()
        assert app_cli(release, "status", "--pidfile", pidfile).returncode == 0
    finally:
        stopped = app_cli(release, "stop", "--pidfile", pidfile)
    assert "stopped" in stopped.stdout
    assert app_cli(release, "status", "--pidfile", pidfile, check=False).returncode == 3
    assert "listening on 127.0.0.1" in log.read_text()


# --- loadgen ------------------------------------------------------------------------------

SAMPLE_METRICS = """\
# TYPE demo_http_requests_total counter
demo_http_requests_total{path="/checkout",status="200"} 80
demo_http_requests_total{path="/checkout",status="500"} 20
demo_http_requests_total{path="/health",status="200"} 100
# TYPE demo_http_request_duration_seconds histogram
demo_http_request_duration_seconds_bucket{path="/checkout",le="0.1"} 50
demo_http_request_duration_seconds_bucket{path="/checkout",le="5.0"} 90
demo_http_request_duration_seconds_bucket{path="/checkout",le="10.0"} 100
demo_http_request_duration_seconds_bucket{path="/checkout",le="+Inf"} 100
demo_http_request_duration_seconds_count{path="/checkout"} 100
"""


def test_loadgen_reads_error_ratio_and_p95_from_metrics() -> None:
    samples = loadgen.parse_metrics(SAMPLE_METRICS)
    assert loadgen.error_ratio(samples, "/checkout") == 0.2
    assert loadgen.error_ratio(samples) == 0.1
    assert loadgen.histogram_quantile(0.95, samples, "/checkout") == pytest.approx(7.5)
    assert loadgen.histogram_quantile(0.5, samples) == pytest.approx(0.1)
    assert loadgen.error_ratio(loadgen.subtract(samples, samples)) is None


def test_loadgen_is_bounded_and_counts_connection_errors() -> None:
    result = loadgen.run_load(
        [f"http://127.0.0.1:{free_port()}"], requests=5, concurrency=2, timeout=1
    )
    assert result["requests"] == 5 and result["by_status"] == {"connection_error": 5}
    assert result["error_ratio"] == 1.0
    cli = run(
        SYSTEM_PYTHON,
        FILES / "tools" / "loadgen.py",
        f"http://127.0.0.1:{free_port()}",
        "--requests",
        "3",
        "--max-seconds",
        "5",
    )
    assert json.loads(cli.stdout)["errors"] == 3
