"""The slices of one sliced AWX job, merged into one record for the report.

AWX runs a sliced job (``job_slice_count`` > 1) as one job per slice, each with its share
of the inventory's hosts, at the same time, on whichever execution node takes it: each
slice is an ansible-playbook run of its own, with its own run id, locks and run record.
The run record callback keeps what AWX says about the job (``awx``; plugin_utils
``awx_job``): the slices of one sliced job share ``awx.sliced_job_id``. The report of any
slice is the report of the whole job: every slice's hosts, tasks and notes, the worst
status, from the first start to the last end, and one ``slices`` entry per slice.
The merged record is never written back: each slice's record stays as its callback wrote it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ansible_collections.sre.rollback.plugins.plugin_utils.run_metrics import iso, parse_time
from rollbackctl import records

# The worst status of the slices is the job's (a slice still running keeps it running).
STATUS_ORDER = ("killed", "canceled", "failed", "running", "ok", "empty")
DERIVED = ("timeline", "metrics", "recovery_objectives", "checklist")


def sliced_job_id(record: dict[str, Any]) -> Any:
    return (record.get("awx") or {}).get("sliced_job_id")


def slices_of(directory: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every record in ``directory`` of the sliced job ``record`` is a slice of (itself
    included), in the order they started; ``[record]`` when it is not a slice."""
    job = sliced_job_id(record)
    if job is None:
        return [record]
    found = {record.get("run_id"): record}
    for path in records.record_files(directory):
        try:
            other = records.load(path)
        except records.RecordNotFound:
            continue
        if sliced_job_id(other) == job:
            found.setdefault(other.get("run_id"), other)
    return sorted(found.values(), key=_order)


def _order(record: dict[str, Any]) -> tuple[str, str, str]:
    """Started first (to the second), then AWX's job id (slices start in the same second)."""
    job = str((record.get("awx") or {}).get("job_id") or "")
    return (str(record.get("started") or ""), job.zfill(20), str(record["run_id"]))


def merge(slices: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One record of a sliced job from its slices' records (a single record as it is)."""
    if len(slices) < 2:
        return dict(slices[0])
    merged = copy.deepcopy(dict(slices[0]))
    for key in (*DERIVED, "messages", "locks_broken"):
        merged.pop(key, None)
    job = sliced_job_id(merged)
    merged["hosts"], merged["tasks"], merged["inventory"] = {}, [], []
    merged["notes"] = [
        f"AWX sliced job {job}: {len(slices)} slices merged "
        f"({', '.join(str(r['run_id']) for r in slices)})"
    ]
    for record in slices:
        label = f"slice {(record.get('awx') or {}).get('job_id')} ({record['run_id']})"
        for host, data in (record.get("hosts") or {}).items():
            if host in merged["hosts"]:
                merged["notes"].append(f"{host} is in more than one slice: {label} kept")
            merged["hosts"][host] = data
        merged["tasks"].extend(record.get("tasks") or [])
        merged["notes"].extend(f"{label}: {note}" for note in record.get("notes") or [])
        merged["inventory"].extend(
            s for s in record.get("inventory") or [] if s not in merged["inventory"]
        )
        for key in ("messages", "locks_broken"):
            if record.get(key):
                merged.setdefault(key, []).extend(record[key])
    merged["tasks"].sort(key=lambda task: str(task.get("at") or ""))
    statuses = [str(r.get("status")) for r in slices]
    merged["status"] = min(
        statuses, key=lambda s: STATUS_ORDER.index(s) if s in STATUS_ORDER else 0
    )
    starts = [str(r["started"]) for r in slices if r.get("started")]
    ends = [str(r.get("finished") or "") for r in slices]
    if starts:
        merged["started"] = min(starts, key=_moment)
    merged.pop("finished", None)
    merged.pop("duration", None)
    if starts and all(ends):
        merged["finished"] = max(ends, key=_moment)
        merged["duration"] = round(
            (_moment(merged["finished"]) - _moment(merged["started"])).total_seconds(), 3
        )
        merged["finished"] = iso(_moment(merged["finished"]))
    merged["slices"] = [
        {
            "run_id": str(r["run_id"]),
            "job_id": (r.get("awx") or {}).get("job_id"),
            "hosts": sorted(r.get("hosts") or {}),
            "status": str(r.get("status")),
            "started": r.get("started"),
            "finished": r.get("finished"),
        }
        for r in slices
    ]
    return merged


def _moment(value: str) -> Any:
    moment = parse_time(value)
    if moment is None:
        raise ValueError(f"not a time: {value!r}")
    return moment
