# GPL-3.0-or-later
"""Write a run record (JSON) for every playbook run: wrapper, plain ansible-playbook, AWX."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: run_record
type: notification
short_description: Write a JSON run record of every rollback or deploy run
version_added: "0.1.0"
description:
  - Records the run id, level, reason, incident, who, inventory, every task per host with
    its phase, result and duration, the per-host results the roles publish with
    C(set_stats), and the final status, into C(<dir>/<run_id>.json).
  - The directory is created 0700 and the record 0600. Only chosen fields are recorded;
    values of keys that look like secrets are replaced by C(********).
requirements:
  - enable in ansible.cfg (C(callbacks_enabled = sre.rollback.run_record))
options:
  record_dir:
    description: Directory of the run records.
    type: path
    default: .artifacts/runs
    env:
      - name: SRE_ROLLBACK_RECORD_DIR
    ini:
      - section: sre_rollback
        key: record_dir
"""

import getpass
import json
import os
import re
import socket
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

SECRET_KEY = re.compile(r"pass|secret|token|key|credential|authorization", re.IGNORECASE)
LEVEL_RE = re.compile(r"rollback-l([1-5])\.ya?ml$")


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "********" if SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "sre.rollback.run_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.record: dict[str, Any] = {}
        self.started: dict[tuple[str, str], float] = {}
        self.t0 = time.monotonic()
        self.extra: dict[str, Any] = {}

    # -- playbook ---------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook: Any) -> None:
        name = os.path.basename(playbook._file_name)
        level = LEVEL_RE.search(name)
        self.record = {
            "schema": 1,
            "playbook": name,
            "level": int(level.group(1)) if level else None,
            "who": getpass.getuser(),
            "controller": socket.gethostname(),
            "started": now(),
            "status": "running",
            "hosts": {},
            "tasks": [],
        }

    def v2_playbook_on_play_start(self, play: Any) -> None:
        manager = play.get_variable_manager()
        extra = dict(getattr(manager, "extra_vars", {}) or {})
        self.extra = extra
        inventory = getattr(manager, "_inventory", None)
        sources = getattr(inventory, "_sources", None) if inventory else None
        self.record.update(
            {
                "run_id": self.record.get("run_id") or extra.get("rollback_run_id"),
                "reason": extra.get("rollback_reason"),
                "incident": extra.get("rollback_incident"),
                "check_mode": bool(play.check_mode),
                "inventory": list(sources or []),
                "target": redact(
                    {
                        k: v
                        for k, v in extra.items()
                        if k in ("release_tag", "release_target", "rollback_level")
                    }
                ),
            }
        )

    # -- tasks ------------------------------------------------------------------------
    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self.started[(host.get_name(), task._uuid)] = time.monotonic()

    def _task_done(self, result: Any, status: str) -> None:
        host = result._host.get_name()
        task = result._task
        began = self.started.pop((host, task._uuid), None)
        res = result._result
        entry = {
            "host": host,
            "task": task.get_name(),
            "phase": phase_of(task),
            "status": status,
            "changed": bool(res.get("changed")),
            "duration": round(time.monotonic() - began, 3) if began else None,
            "at": now(),
        }
        if status in ("failed", "unreachable"):
            entry["msg"] = str(res.get("msg", ""))[:500]
        self.record["tasks"].append(entry)
        host_rec = self.record["hosts"].setdefault(host, {"status": "ok", "phases": {}})
        phase = host_rec["phases"].setdefault(entry["phase"], {"status": "ok", "duration": 0.0})
        phase["duration"] = round(phase["duration"] + (entry["duration"] or 0.0), 3)
        if status in ("failed", "unreachable"):
            phase["status"] = status
            host_rec["status"] = status
            host_rec["msg"] = entry["msg"]
        facts = res.get("ansible_facts") or {}
        if facts.get("__release_run_id") and not self.record.get("run_id"):
            self.record["run_id"] = facts["__release_run_id"]

    def v2_runner_on_ok(self, result: Any) -> None:
        self._task_done(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._task_done(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._task_done(result, "unreachable")

    def v2_runner_on_skipped(self, result: Any) -> None:
        self.started.pop((result._host.get_name(), result._task._uuid), None)

    # -- end --------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats: Any) -> None:
        custom = (getattr(stats, "custom", {}) or {}).get("_run", {})
        results = custom.get("release_results") or {}
        for host, summary in results.items():
            self.record["hosts"].setdefault(host, {"status": "ok", "phases": {}})["result"] = (
                summary
            )
            if summary.get("run_id") and not self.record.get("run_id"):
                self.record["run_id"] = summary["run_id"]
        failed = any(
            h.get("status") in ("failed", "unreachable") for h in self.record["hosts"].values()
        )
        self.record["status"] = "failed" if failed else "ok"
        self.record["finished"] = now()
        self.record["duration"] = round(time.monotonic() - self.t0, 3)
        self.write()

    def write(self) -> None:
        if not self.record.get("run_id"):
            self.record["run_id"] = (
                time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}"
            )
        directory = self.get_option("record_dir")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        path = os.path.join(directory, f"{self.record['run_id']}.json")
        tmp = f"{path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(redact(self.record), handle, indent=1, sort_keys=True, default=str)
        os.replace(tmp, path)
        latest = os.path.join(directory, "latest.json")
        if os.path.lexists(latest):
            os.unlink(latest)
        os.symlink(os.path.basename(path), latest)
        self._display.display(f"run record: {path}", screen_only=True)


def phase_of(task: Any) -> str:
    """The phase a task belongs to: its `phase_*` tag (the roles tag every task), else its role."""
    for tag in task.tags or []:
        if str(tag).startswith("phase_"):
            return str(tag)[len("phase_") :]
    role = getattr(task, "_role", None)
    return role.get_name() if role else "play"
