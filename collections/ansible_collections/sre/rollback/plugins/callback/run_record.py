# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
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
    its phase, result and timing, per host and phase the result and timings, the per-host
    results the roles publish with C(set_stats) (any C(*_results) key), and the status
    (C(running), C(ok), C(failed), C(canceled), C(empty) when no host matched), into
    C(<dir>/<run_id>.json); C(<dir>/latest.json) links to the newest.
  - Adds the runbook's rollback metrics (time to detection, decision, rollback, total
    downtime, users affected, data loss, revenue impact), each policy service's RTO/RPO
    against them, and the runbook's pre/during/post checklists filled from what happened
    (module_utils C(run_metrics), shared with the C(rollbackctl) wrapper).
  - The run id is C(rollback_run_id) when given, else a new unique one (UTC time and 48
    random bits, plugin_utils C(run_identity)); every play gets it as the variable
    C(sre_rollback_run_id), so the roles lock and record under the same id.
  - Operator facts come from extra vars, all optional
    C(rollback_run_id), C(rollback_reason), C(rollback_incident), C(rollback_level),
    C(rollback_incident_started_at), C(rollback_detected_at), C(rollback_decided_at)
    (ISO 8601, epoch seconds, C(15m ago)), C(rollback_started_at) (start of a rollback
    that spans several runs), C(rollback_users_affected), C(rollback_data_loss),
    C(rollback_services), C(rollback_decision) (the C(sre.rollback.rollback_decision)
    result, as AWX workflows pass it on), C(rollback_notified_at), C(rollback_user).
  - Under AWX / Automation Controller, the job's ids and names from the extra vars AWX
    sets (C(awx_job_id), C(awx_job_template_name), C(awx_workflow_job_id)...) as C(awx),
    with C(sliced_job_id) when the job is a slice of a sliced job (plugin_utils
    C(awx_job)), so that the report merges the slices of one sliced job.
  - The policy (revenue per minute, services' RTO/RPO) is read from
    C(rollback_policy_file), else the inventory's C(rollback_policy) variable, else the
    runbook's defaults.
  - The record is rewritten at most once a second while the run goes on, so a watcher
    sees progress, and once more at the end. On SIGINT or SIGTERM it is written with
    status C(canceled) before Ansible stops.
  - The directory is created 0700 and the record 0600. Only chosen fields are recorded;
    values of keys that look like secrets are replaced by C(********), and so are the
    values of secret-looking extra vars and environment variables wherever they appear.
requirements:
  - enable in ansible.cfg (C(callbacks_enabled = sre.rollback.run_record))
options:
  record_dir:
    description:
      - Directory of the run records.
      - A relative path is relative to the project of the playbook (the nearest directory
        above the playbook with an C(ansible.cfg)), not to the working directory, so a run
        started from elsewhere writes its record in the same place; without such a project,
        relative to C($XDG_STATE_HOME/sre-rollback) (C(~/.local/state/sre-rollback)).
    type: str
    default: .artifacts/runs
    env:
      - name: SRE_ROLLBACK_RECORD_DIR
    ini:
      - section: sre_rollback
        key: record_dir
"""

import json
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from ansible.plugins.callback import CallbackBase

from ansible_collections.sre.rollback.plugins.plugin_utils.awx_job import awx_job
from ansible_collections.sre.rollback.plugins.plugin_utils.levels import (
    level_of_playbook,
    recorded_target_vars,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.phases import (
    is_loader,
    publish,
    refused_inputs,
    short_action,
    task_phase,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import (
    LEVEL_NAMES,
    PolicyError,
    default_policy,
    validate_policy,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.redaction import (
    Redactor,
    secret_values,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.run_identity import (
    PLAY_VAR,
    new_run_id,
    real_user,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import (
    FAILED_STATUSES,
    iso,
    parse_time,
    policy_snapshot,
    utcnow,
)
from ansible_collections.sre.rollback.plugins.plugin_utils.run_records import new_record
from ansible_collections.sre.rollback.plugins.plugin_utils.run_records import (
    write as write_record,
)

WRITE_INTERVAL = 1.0
# Extra vars that name what a run goes to: each level's (the level registry's), and the
# generic rollback_target.
TARGET_VARS = recorded_target_vars()
GIVEN_TIMES = {
    "incident_started": "rollback_incident_started_at",
    "detected": "rollback_detected_at",
    "decided": "rollback_decided_at",
    "procedure_started": "rollback_started_at",
    "notified": "rollback_notified_at",
}
GIVEN_VALUES = {
    "users_affected": "rollback_users_affected",
    "data_loss": "rollback_data_loss",
    "services": "rollback_services",
    "severity": "rollback_severity",
}
FAILED = FAILED_STATUSES


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def plain(value: Any) -> Any:
    """Ansible's tagged values as JSON-able plain data."""
    return json.loads(json.dumps(value, default=str))


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "sre.rollback.run_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.record: dict[str, Any] = {}
        # (host, task uuid) -> (monotonic start, epoch start, phase) of the tasks in flight
        self.started: dict[tuple[str, str], tuple[float, float, str]] = {}
        self.t0 = time.monotonic()
        self.extra: dict[str, Any] = {}
        self.redactor = Redactor(secret_values(os.environ))
        self.lock = threading.RLock()
        self.last_write = 0.0
        self.done = False
        self.identified = False
        self.playbook_dir = ""

    # -- playbook ---------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook: Any) -> None:
        name = os.path.basename(playbook._file_name)
        self.playbook_dir = os.path.dirname(os.path.abspath(playbook._file_name))
        self.record = new_record(name, level_of_playbook(name))
        self._hook_interrupts()

    def v2_playbook_on_play_start(self, play: Any) -> None:
        with self.lock:
            if self.record.get("run_id"):
                # Every play's roles name the run as the record does (extra vars win over
                # play vars, and the roles take rollback_run_id first when it is given).
                play.vars[PLAY_VAR] = self.record["run_id"]
            if not self.record or self.identified:
                return  # the first play has filled in the run's identity
            self.identified = True
            manager = play.get_variable_manager()
            self.extra = plain(dict(getattr(manager, "extra_vars", {}) or {}))
            self.redactor.add(secret_values(self.extra))
            inventory = getattr(manager, "_inventory", None)
            self.record.update(self._identity(play, inventory))
            play.vars[PLAY_VAR] = self.record["run_id"]
            self.record["policy"] = self._policy(inventory)
            self.write()

    def _identity(self, play: Any, inventory: Any) -> dict[str, Any]:
        extra = self.extra
        level = extra.get("rollback_level", self.record.get("level"))
        try:
            level = int(level) if level not in (None, "") else None
        except (TypeError, ValueError):
            level = self.record.get("level")
        sources = getattr(inventory, "_sources", None) if inventory else None
        job = awx_job(extra)  # under AWX: the job, and the sliced job it is a slice of
        return {
            **({"awx": job} if job else {}),
            "run_id": str(extra.get("rollback_run_id") or "").strip() or new_run_id(),
            "level": level,
            "level_name": LEVEL_NAMES.get(level) if level else None,
            "reason": _text(extra.get("rollback_reason")),
            "incident": _text(extra.get("rollback_incident")),
            "who": real_user(extra),
            "check_mode": bool(play.check_mode),
            "inventory": [str(source) for source in sources or []],
            "limit": _limit(),
            "target": {k: extra[k] for k in TARGET_VARS if extra.get(k) not in (None, "")},
            "given": self._given(),
            "decision": extra.get("rollback_decision") or None,
        }

    def _given(self) -> dict[str, Any]:
        given: dict[str, Any] = {}
        for key, variable in GIVEN_TIMES.items():
            value = self.extra.get(variable)
            try:
                given[key] = iso(parse_time(value, utcnow()))
            except ValueError:
                given[key] = None
                self.record["notes"].append(f"{variable}={value!r} is not a time: ignored")
        for key, variable in GIVEN_VALUES.items():
            given[key] = self.extra.get(variable)
        return given

    def _policy(self, inventory: Any) -> dict[str, Any]:
        path = self.extra.get("rollback_policy_file")
        try:
            if path:
                import yaml  # ansible-core depends on PyYAML

                with open(os.path.expanduser(str(path)), encoding="utf-8") as handle:
                    return policy_snapshot(validate_policy(yaml.safe_load(handle), str(path)))
            group = inventory.groups.get("all") if inventory else None
            data = group.get_vars().get("rollback_policy") if group else None
            if data:
                return policy_snapshot(validate_policy(plain(data), "inventory rollback_policy"))
        except (OSError, ValueError, PolicyError) as error:
            self.record["notes"].append(f"policy not used ({error}): the runbook's defaults")
        return policy_snapshot(default_policy())

    # -- tasks ------------------------------------------------------------------------
    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        publish(task_phase(task))  # the live view (rollbackctl) reads this decision

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        publish(task_phase(task))

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        with self.lock:
            self.started[(host.get_name(), task._uuid)] = (
                time.monotonic(),
                time.time(),
                task_phase(task),
            )

    def _task_done(self, result: Any, status: str) -> None:
        with self.lock:
            if not self.record:
                return  # an ad-hoc command, not a playbook: no record
            host = result._host.get_name()
            task = result._task
            began, began_epoch, _phase = self.started.pop(
                (host, task._uuid), (None, time.time(), "")
            )
            began_at = at(began_epoch)
            res = result._result
            entry: dict[str, Any] = {
                "host": host,
                "task": task.get_name(),
                "phase": "preflight"
                if refused_inputs(task.action, res, status in FAILED)
                else task_phase(task),
                "status": status,
                "changed": bool(res.get("changed")),
                "duration": round(time.monotonic() - began, 3) if began else None,
                "at": now(),
            }
            if status in FAILED:
                entry["msg"] = str(res.get("msg", ""))[:2000]
            self.record["tasks"].append(entry)
            steps = sub_phases(res)
            if steps:
                self._host_steps(host, entry, steps, began_epoch)
            elif not (is_loader(task.action) and status not in FAILED):
                # Loading a role or a tasks file is not work on the host: no phase of its
                # own (a failed include still fails the host).
                self._host_phase(host, entry, began_at, verdict=short_action(task.action) == "fail")
                # A run_once task that publishes results for a batch (set_stats of
                # release_results) did that phase for every host it names.
                for other in sorted(published_hosts(res, self.record["hosts"]) - {host}):
                    self._host_phase(other, {**entry, "host": other}, began_at)
            for where, owner in broken_locks(host, res):
                self._lock_broken(where, owner, entry)
            if time.monotonic() - self.last_write >= WRITE_INTERVAL:
                self.write()

    def _lock_broken(self, host: str, owner: Mapping[str, Any], entry: dict[str, Any]) -> None:
        """A stale lock this run broke (rollback_break_lock): whose it was, in the record."""
        broken = {
            "host": host,
            "task": entry["task"],
            "at": entry["at"],
            "owner": {k: owner.get(k) for k in LOCK_OWNER_KEYS if owner.get(k) is not None},
        }
        self.record.setdefault("locks_broken", []).append(broken)
        self.record.setdefault("notes", []).append(
            f"{host}: broke the stale lock of run {owner.get('run_id', '?')} "
            f"({owner.get('user', '?')}@{owner.get('host', '?')}, pid {owner.get('pid', '?')}, "
            f"{owner.get('action', '?')} since {owner.get('time', '?')})"
        )

    def _host_phase(
        self, host: str, entry: dict[str, Any], began_at: str, verdict: bool = False
    ) -> None:
        """Add a task to its phase of the host. A failing ``fail`` task after an earlier
        failure of the host (a rescue's "stop the rollout here") is the verdict: it carries
        the host's message, but the failed phase stays the one where it went wrong."""
        host_rec = self.record["hosts"].setdefault(host, {"status": "ok", "phases": {}})
        earlier = host_rec.get("failed_phase")
        if verdict and entry["status"] in FAILED and earlier and earlier != entry["phase"]:
            host_rec["status"] = entry["status"]
            host_rec["msg"] = entry["msg"]
            host_rec["phases"][earlier]["msg"] = entry["msg"]
            return
        phase = host_rec["phases"].setdefault(
            entry["phase"],
            {"status": "ok", "started": began_at, "finished": None, "duration": 0.0, "tasks": 0},
        )
        phase["duration"] = round(phase["duration"] + (entry["duration"] or 0.0), 3)
        phase["finished"] = entry["at"]
        phase["tasks"] += 1
        phase["changed"] = phase.get("changed", False) or entry["changed"]
        if entry["status"] in FAILED:
            phase["status"] = entry["status"]
            phase["msg"] = entry["msg"]
            host_rec["status"] = entry["status"]
            host_rec["msg"] = entry["msg"]
            host_rec["failed_phase"] = entry["phase"]

    def _host_steps(
        self, host: str, entry: dict[str, Any], steps: list[dict[str, Any]], began: float
    ) -> None:
        """A task that did several phases in one module call (the release module's
        ``state=rolled_out`` returns them as ``phases``): each is a phase of the host."""
        offset = 0.0
        for step in steps:
            status = "failed" if step["status"] == "failed" else "ok"
            if entry["status"] not in FAILED and status == "failed":
                status = "ok"  # the call recovered (it switched back): not a failed phase
            sub = {
                **entry,
                "phase": step["phase"],
                "status": status,
                "changed": step["status"] == "changed",
                "duration": step["seconds"],
                "at": at(began + offset + step["seconds"]),
            }
            if status == "failed":
                sub["msg"] = step.get("msg") or entry.get("msg", "")
            self._host_phase(host, sub, at(began + offset))
            offset += step["seconds"]
        if entry["status"] in FAILED and not any(s["status"] == "failed" for s in steps):
            self._host_phase(host, entry, at(began + offset))

    def v2_runner_on_ok(self, result: Any) -> None:
        self._task_done(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._task_done(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._task_done(result, "unreachable")

    def v2_runner_on_skipped(self, result: Any) -> None:
        with self.lock:
            self.started.pop((result._host.get_name(), result._task._uuid), None)

    def v2_playbook_on_no_hosts_matched(self) -> None:
        with self.lock:
            self.record.setdefault("notes", []).append("a play matched no host")
            self.record["no_hosts_matched"] = True

    # -- end --------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats: Any) -> None:
        with self.lock:
            custom = plain((getattr(stats, "custom", {}) or {}).get("_run", {}))
            self._merge_results(custom)
            if not self.record.get("decision") and isinstance(
                custom.get("rollback_decision"), Mapping
            ):
                self.record["decision"] = custom["rollback_decision"]
            self.record["status"] = self._final_status(stats)
            self._finish()

    def _merge_results(self, custom: Mapping[str, Any]) -> None:
        """Per-host results published with set_stats as ``<name>_results`` (the release
        role's ``release_results`` first), merged into ``hosts.<host>.result``."""
        names = sorted(k for k in custom if k.endswith("_results"))
        names.sort(key=lambda name: name != "release_results")
        for name in names:
            results = custom[name]
            if not isinstance(results, Mapping):
                continue
            for host, summary in results.items():
                if not isinstance(summary, Mapping):
                    continue
                host_rec = self.record["hosts"].setdefault(host, {"status": "ok", "phases": {}})
                host_rec.setdefault("result", {})
                host_rec["result"] = {**summary, **host_rec["result"]}

    def _final_status(self, stats: Any) -> str:
        hosts = self.record["hosts"].values()
        if any(h.get("status") in FAILED for h in hosts):
            return "failed"
        if any(getattr(stats, "failures", {}).values()) or any(getattr(stats, "dark", {}).values()):
            return "failed"
        if not self.record["hosts"] and self.record.get("no_hosts_matched"):
            return "empty"
        return "ok"

    def _finish(self) -> None:
        self.record["finished"] = now()
        self.record["duration"] = round(time.monotonic() - self.t0, 3)
        self.done = True
        self.write()

    # -- cancel -----------------------------------------------------------------------
    def _hook_interrupts(self) -> None:
        """Ansible stops at once on SIGINT/SIGTERM (no always blocks, no stats): write the
        record as canceled first, then let Ansible's own handler run."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous = signal.getsignal(signum)
                signal.signal(signum, self._interrupt_handler(previous))
            except (ValueError, OSError):  # not the main thread: nothing to hook
                return

    def _interrupt_handler(self, previous: Any) -> Any:
        def handler(signum: int, frame: Any) -> None:
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            self.interrupted(signum)
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signum)

        return handler

    def interrupted(self, signum: int) -> None:
        with self.lock:
            if self.done or not self.record:
                return
            self.record["status"] = "canceled"
            for (host, _task), (_began, began_epoch, phase) in self.started.items():
                host_rec = self.record["hosts"].setdefault(host, {"status": "ok", "phases": {}})
                host_rec["phases"].setdefault(
                    phase,
                    {"started": at(began_epoch), "duration": 0.0, "tasks": 0, "changed": False},
                ).update({"status": "canceled", "finished": now(), "msg": "canceled here"})
                host_rec.update({"status": "canceled", "failed_phase": phase})
            self.record.setdefault("notes", []).append(
                f"canceled by {signal.Signals(signum).name}: Ansible stopped where it was; "
                "always/rescue blocks did not run"
            )
            self._finish()

    # -- writing ----------------------------------------------------------------------
    def write(self) -> None:
        with self.lock:
            if not self.record:
                return
            if not self.record.get("run_id"):
                self.record["run_id"] = new_run_id()
            directory = record_dir(self.get_option("record_dir"), self.playbook_dir)
            path = os.path.join(directory, f"{self.record['run_id']}.json")
            write_record(path, self.record, masked=self.redacted)
            self._link_latest(directory, path)
            self.last_write = time.monotonic()
            if self.done:
                self._display.display(f"run record: {path}", screen_only=True)

    def redacted(self, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """Inputs are masked by key name (target, results, decision), everything by value."""
        record = dict(self.record if record is None else record)
        for key in ("target", "decision", "given"):
            record[key] = self.redactor.data(record.get(key))
        record["hosts"] = {
            host: {**data, "result": self.redactor.data(data["result"])}
            if "result" in data
            else data
            for host, data in record["hosts"].items()
        }
        redacted: dict[str, Any] = self.redactor.data(record, by_name=False)
        return redacted

    @staticmethod
    def _link_latest(directory: str, path: str) -> None:
        latest = os.path.join(directory, "latest.json")
        tmp = os.path.join(directory, f".latest-{os.getpid()}")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.basename(path), tmp)
        os.replace(tmp, latest)


def _text(value: Any) -> str | None:
    """Text the operator typed, as text: AWX sends survey answers ``!unsafe``, and
    ansible-core (2.19 and later) reads a quoted ``!unsafe`` scalar as if it were plain, so
    an incident id of digits arrives as a number."""
    return None if value is None else str(value)


def _limit() -> str | None:
    try:
        from ansible import context

        subset = context.CLIARGS.get("subset")
    except (ImportError, AttributeError):
        return None
    return str(subset) if subset else None


def record_dir(configured: str, playbook_dir: str) -> str:
    """Where the records go: ``configured`` when absolute; else relative to the playbook's
    project (the nearest directory above it with an ansible.cfg), else to the state
    directory, never to the working directory of whoever started the run."""
    configured = os.path.expanduser(str(configured or ".artifacts/runs"))
    if os.path.isabs(configured):
        return configured
    directory = playbook_dir
    while directory:
        if os.path.isfile(os.path.join(directory, "ansible.cfg")):
            return os.path.join(directory, configured)
        parent = os.path.dirname(directory)
        directory = "" if parent == directory else parent
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(state, "sre-rollback", configured)


LOCK_OWNER_KEYS = ("run_id", "user", "host", "pid", "action", "time")


def broken_locks(host: str, res: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(host, former owner) of each stale lock a result says it broke: the release module's
    ``lock_broken``, sre.rollback.app_lock's ``broken``, per loop item too (level 4 locks the
    app hosts with a delegated loop: the item is the host)."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for owner in (res.get("lock_broken"), res.get("broken")):
        if isinstance(owner, Mapping) and owner.get("run_id"):
            found.append((host, owner))
    for item in res.get("results") or []:
        if isinstance(item, Mapping):
            where = str(item["item"]) if isinstance(item.get("item"), str) else host
            found += [
                (where, owner) for _lock, owner in broken_locks(host, {**item, "results": []})
            ]
    return found


def at(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def sub_phases(res: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``phases`` a module reported ({phase, status, seconds, msg}), well-formed ones only."""
    steps = res.get("phases")
    if not isinstance(steps, list):
        return []
    return [
        {
            "phase": str(step["phase"]),
            "status": str(step.get("status") or "ok"),
            "seconds": float(step.get("seconds") or 0.0),
            "msg": str(step.get("msg") or ""),
        }
        for step in steps
        if isinstance(step, Mapping) and step.get("phase")
    ]


def published_hosts(res: Mapping[str, Any], known: Mapping[str, Any]) -> set[str]:
    """Hosts (already in the record) whose results a ``set_stats`` result publishes, as
    ``{name: {host: result}}`` (the release role publishes a whole batch in one task)."""
    data = (res.get("ansible_stats") or {}).get("data") or {}
    return {
        host
        for value in data.values()
        if isinstance(value, Mapping)
        for host in value
        if host in known
    }
