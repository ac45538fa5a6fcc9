"""The collection's rulebook under the real ansible-rulebook, for the Event-Driven Ansible
tests: start it, wait until its Alertmanager source listens, POST payloads, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, VENV_BIN
from tests.support.ports import free_port
from tests.support.tools import require_tool

PAYLOADS = REPO / "tests" / "eda" / "payloads"
READY_TIMEOUT = 60


def payload_bytes(name: str) -> bytes:
    """A payload recorded from a real Alertmanager (tests/eda/record_payloads.py)."""
    return (PAYLOADS / f"{name}.json").read_bytes()


def first_alert(name: str) -> dict[str, Any]:
    alerts: list[dict[str, Any]] = json.loads(payload_bytes(name))["alerts"]
    return alerts[0]


def post(url: str, body: bytes) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Rulebook:
    """One ansible-rulebook process (its own session, so its children stop with it)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.process = process
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"ansible-rulebook exited {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the source did not listen in {READY_TIMEOUT}s:\n{self.output()}")
            time.sleep(0.2)

    def send(self, name: str) -> None:
        """POST a recorded payload as Alertmanager would; it must be queued whole."""
        body = payload_bytes(name)
        answer = post(self.url + "/alerts", body)
        assert answer == (202, f"queued {len(json.loads(body)['alerts'])} alert(s)"), name

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@contextmanager
def running_rulebook(
    work: Path,
    inventory: Path,
    variables: Mapping[str, Any],
    env: Mapping[str, str],
    cwd: Path,
    rulebook: str = "sre.rollback.alertmanager_rollback",
) -> Iterator[Rulebook]:
    """``ansible-rulebook -r RULEBOOK -i INVENTORY --vars ...`` from ``cwd``, its source on a
    free loopback port (``alertmanager_port``); ready when this yields, stopped after."""
    require_tool("java", "openjdk-17-jdk-headless")
    if not (VENV_BIN / "ansible-rulebook").exists():
        pytest.fail("ansible-rulebook is not in the venv: run `make venv` (the test extra has it)")
    port = free_port()
    given = work / "rulebook-vars.json"
    given.write_text(json.dumps({**variables, "alertmanager_port": port}))
    log = work / "ansible-rulebook.log"
    command = [
        str(VENV_BIN / "ansible-rulebook"),
        *("--rulebook", rulebook, "--inventory", str(inventory), "--vars", str(given), "-v"),
    ]
    full_env = {**env, "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Rulebook(process, log, port)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()
