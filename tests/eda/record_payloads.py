"""Record the Alertmanager webhook payloads the Event-Driven Ansible test posts.

A real Alertmanager (Debian's prometheus-alertmanager) on loopback, routing the way
``rollbackctl triggers render`` renders it (grouped by rule and service, resolved alerts
sent), gets the alerts the rendered rules raise, labels and annotations taken from
``render_rules``; a recorder on loopback keeps each notification it posts. Every alert
group goes to the recorder, the ``info`` no-data notices included (the rendered route sends
them nowhere; the rulebook must ignore them wherever they come from).

    .venv/bin/python -m tests.eda.record_payloads      # rewrites tests/eda/payloads/*.json

Payloads (one file per notification, as Alertmanager sent it):
- error_rate_core_api_firing: error_rate fires for core_api (level 3)
- nodata_user_auth_info: error_rate's no-data notice for user_auth (severity info)
- health_core_api_h2_firing, health_core_api_h2_h3_firing: health failures on h2, then h3
  too (the group is sent again with h2 in it: a duplicate)
- db_pool_user_auth_firing: db_pool for user_auth (level 2)
- error_rate_analytics_level4_firing: a policy whose critical row is levels 4-5
- error_rate_user_auth_firing, error_rate_user_auth_resolved
"""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import yaml

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    DEFAULT_POLICY,
    Policy,
    validate_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import (
    build_rules,
    render_alertmanager,
    render_rules,
)
from tests.support.ports import free_port

PAYLOADS = Path(__file__).resolve().parent / "payloads"
JOB = "demo-app"


def policy_for(service: str, critical_levels: str = "3-5") -> Policy:
    matrix = copy.deepcopy(DEFAULT_POLICY["matrix"])
    for row in matrix:
        if row["severity"] == "critical":
            row["levels"] = critical_levels
    return validate_policy({"triggers": {"service": service}, "matrix": matrix})


def alert(policy: Policy, name: str, instance: str | None = None) -> dict[str, Any]:
    """The alert Prometheus sends for the rendered rule ``name`` of ``policy``."""
    rules = render_rules(policy, build_rules(policy))["groups"][0]["rules"]
    rule = next(item for item in rules if item["alert"] == name)
    labels = {"alertname": name, **rule["labels"]}
    if not name.endswith("NoData"):
        labels["job"] = JOB
    if instance:
        labels["instance"] = instance
    return {
        "labels": labels,
        "annotations": rule["annotations"],
        "startsAt": datetime.now(UTC).isoformat(),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }


class Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def alertmanager_config(webhook: str) -> dict[str, Any]:
    config = render_alertmanager(policy_for("core_api"), webhook)
    # Everything to the recorder, and at once: the route's own matchers stay, the root route
    # (where the no-data notices go) gets the same receiver and grouping.
    route = config["route"]
    route.update(receiver="sre-rollback", group_by=["rule", "service"], group_wait="0s")
    route.update(group_interval="1s")
    route["routes"][0]["group_interval"] = "1s"
    return config


def post(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        url + "/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()  # noqa: S310 (loopback)


def wait_for(count: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while len(Recorder.received) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"Alertmanager sent {len(Recorder.received)} of {count} payloads")
        time.sleep(0.1)
    return Recorder.received[count - 1]


def record(alertmanager_url: str) -> dict[str, dict[str, Any]]:
    core, user_auth, analytics = (
        policy_for("core_api"),
        policy_for("user_auth"),
        policy_for("analytics", critical_levels="4-5"),
    )
    health_h2 = alert(core, "RollbackHealthCheckFailures", "h2:8080")
    user_auth_errors = alert(user_auth, "RollbackErrorRate")
    steps: list[tuple[str, list[dict[str, Any]]]] = [
        ("error_rate_core_api_firing", [alert(core, "RollbackErrorRate")]),
        ("nodata_user_auth_info", [alert(user_auth, "RollbackErrorRateNoData")]),
        ("health_core_api_h2_firing", [health_h2]),
        (
            "health_core_api_h2_h3_firing",
            [health_h2, alert(core, "RollbackHealthCheckFailures", "h3:8080")],
        ),
        ("db_pool_user_auth_firing", [alert(user_auth, "RollbackDbPoolExhausted", "h2:8080")]),
        ("error_rate_analytics_level4_firing", [alert(analytics, "RollbackErrorRate")]),
        ("error_rate_user_auth_firing", [user_auth_errors]),
        (
            "error_rate_user_auth_resolved",
            [{**user_auth_errors, "endsAt": datetime.now(UTC).isoformat()}],
        ),
    ]
    recorded = {}
    for number, (name, alerts) in enumerate(steps, start=1):
        post(alertmanager_url, alerts)
        recorded[name] = wait_for(number)
    return recorded


def main() -> None:
    recorder = HTTPServer(("127.0.0.1", free_port()), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    webhook = f"http://127.0.0.1:{recorder.server_port}/alerts"
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "alertmanager.yml"
        config.write_text(yaml.safe_dump(alertmanager_config(webhook)))
        process = subprocess.Popen(
            [
                "prometheus-alertmanager",
                f"--config.file={config}",
                f"--storage.path={work}/data",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(url + "/-/ready", timeout=1).read()  # noqa: S310
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            recorded = record(url)
        finally:
            process.terminate()
            process.wait(timeout=10)
            recorder.shutdown()
    PAYLOADS.mkdir(exist_ok=True)
    for name, payload in recorded.items():
        (PAYLOADS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
        alerts = len(payload["alerts"])
        print(f"wrote {PAYLOADS / name}.json: {payload['status']}, {alerts} alert(s)")


if __name__ == "__main__":
    main()
