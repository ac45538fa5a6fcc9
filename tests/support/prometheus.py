"""A real Prometheus for the trigger tests (Debian's ``prometheus`` binary, on a loopback
port with its own data directory, stopped and removed after), and a stand-in exporter that
serves demo-app-shaped metrics text whose conditions the test sets (error share, failing
health, pool in use, memory) for as many targets as it likes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.ports import free_port
from tests.support.tools import require_tool

LONG_ENV = "SRE_ROLLBACK_TRIGGER_SCENARIOS"
long_scenario = pytest.mark.skipif(
    os.environ.get(LONG_ENV) != "1",
    reason=f"a long trigger scenario: `make test-triggers` runs it ({LONG_ENV}=1)",
)
"""The trigger scenarios that do not fit in ``make test``'s time (``make test-triggers``)."""


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    data: Path
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def query(self, expr: str) -> list[dict[str, Any]]:
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(address, timeout=10) as response:  # noqa: S310
            return list(json.load(response)["data"]["result"])

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Until ``expr`` has a result (the targets were scraped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"no result for {expr} within {timeout}s; log: {self.log}")


@contextmanager
def prometheus(
    targets: list[str], interval: int, job: str = "demo-app", rule_files: list[Path] | None = None
) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` (host:port) every ``interval`` seconds (and evaluating
    ``rule_files`` as often), until the block ends."""
    binary = require_tool("prometheus", "prometheus")
    work = Path(tempfile.mkdtemp(prefix="sre-rollback-prometheus-"))
    port = free_port()
    config = {
        "global": {"scrape_interval": f"{interval}s", "evaluation_interval": f"{interval}s",
                   "scrape_timeout": f"{interval}s"},
        "rule_files": [str(path) for path in rule_files or []],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
    }  # fmt: skip
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = work / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Prometheus(f"http://127.0.0.1:{port}", process, work / "data", log)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def _wait_ready(server: Prometheus, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {server.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus not ready in {timeout}s: {server.log.read_text()[-2000:]}")


# --------------------------------------------------------------------------------------------
# A stand-in exporter: demo-app-shaped /metrics for many targets on one port each


@dataclass
class Conditions:
    requests_per_second: float = 20.0
    error_share: float = 0.0
    healthy: bool = True
    pool_in_use: int = 1
    pool_size: int = 5
    memory_share: float = 0.3


@dataclass
class Target:
    conditions: Conditions = field(default_factory=Conditions)
    requests: float = 0.0
    errors: float = 0.0
    last: float = field(default_factory=time.monotonic)

    def text(self) -> str:
        now = time.monotonic()
        rate = self.conditions.requests_per_second * (now - self.last)
        self.last = now
        self.errors += rate * self.conditions.error_share
        self.requests += rate * (1 - self.conditions.error_share)
        c = self.conditions
        limit = 1 << 30
        lines = [
            "# TYPE demo_http_requests_total counter",
            f'demo_http_requests_total{{path="/checkout",status="200"}} {self.requests:.3f}',
            f'demo_http_requests_total{{path="/checkout",status="500"}} {self.errors:.3f}',
            "# TYPE demo_http_request_duration_seconds histogram",
        ]
        total = self.requests + self.errors
        for le in ("0.1", "0.5", "1.0", "5.0", "+Inf"):
            lines.append(
                f'demo_http_request_duration_seconds_bucket{{path="/checkout",le="{le}"}} '
                f"{total:.3f}"
            )
        lines += [
            f"demo_health_ok {1 if c.healthy else 0}",
            f"demo_db_pool_in_use {c.pool_in_use}",
            f"demo_db_pool_size {c.pool_size}",
            f"process_resident_memory_bytes {int(limit * c.memory_share)}",
            f"demo_memory_limit_bytes {limit}",
        ]
        return "\n".join(lines) + "\n"


class Exporter:
    """``count`` targets on loopback, each its own port; ``targets[i].conditions`` is what
    the next scrape of target i shows."""

    def __init__(self, count: int) -> None:
        self.targets = [Target() for _ in range(count)]
        self.servers = [self._serve(target) for target in self.targets]

    def _serve(self, target: Target) -> ThreadingHTTPServer:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{server.server_port}" for server in self.servers]

    def set(self, **changes: Any) -> None:
        for target in self.targets:
            for key, value in changes.items():
                setattr(target.conditions, key, value)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
