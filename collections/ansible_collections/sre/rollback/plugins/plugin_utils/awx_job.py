# GPL-3.0-or-later
"""What AWX / Automation Controller tells a job about itself, read from the extra vars it
sets on every job, for the run record (``awx``) and for the report that merges the slices
of one sliced job.

AWX adds these to every job's extra vars, under both prefixes of ``JOB_VARIABLE_PREFIXES``
(``awx_``, ``tower_``; awx/main/constants.py): ``UnifiedJob.awx_meta_vars``
(awx/main/models/unified_jobs.py: job id and launch type, the workflow job the job runs in,
the user, the inventory) and ``Job.awx_meta_vars`` (awx/main/models/jobs.py: job template,
project revision, execution node).

A sliced job (``job_slice_count`` > 1) is a workflow job that AWX makes from the job
template and names after it, with one job per slice as its root nodes
(``JobTemplate.create_unified_job``; awx/main/models/workflow.py ``get_job_kwargs`` gives
each its ``job_slice_number``). A slice learns neither its number nor the slice count: the
only difference AWX makes is the inventory, the slice's share of the hosts. What ties the
slices together is that workflow job: a job whose workflow job carries its own template's
name is a slice, and the workflow job's id is the sliced job's id. A job of the escalation
workflow (or any workflow template) runs in a workflow job named after that workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIXES = ("awx", "tower")
FIELDS = (
    "job_id",
    "job_launch_type",
    "job_template_id",
    "job_template_name",
    "workflow_job_id",
    "workflow_job_name",
    "project_revision",
    "inventory_id",
    "inventory_name",
    "execution_node",
    "user_name",
)


def awx_job(extra_vars: Mapping[str, Any]) -> dict[str, Any] | None:
    """The AWX job a run is (its ids and names, ``sliced_job_id``), or None outside AWX."""
    for prefix in PREFIXES:
        if extra_vars.get(f"{prefix}_job_id") not in (None, ""):
            job = {field: _plain(field, extra_vars.get(f"{prefix}_{field}")) for field in FIELDS}
            job["sliced_job_id"] = sliced_job_id(job)
            return job
    return None


def sliced_job_id(job: Mapping[str, Any]) -> int | str | None:
    """The id of the sliced job this job is a slice of, or None when it is not a slice."""
    workflow, template = job.get("workflow_job_name"), job.get("job_template_name")
    if job.get("workflow_job_id") in (None, "") or not template or workflow != template:
        return None
    value: int | str | None = job["workflow_job_id"]
    return value


def _plain(field: str, value: Any) -> Any:
    """Ids as AWX gives them (numbers), names and revisions as text: AWX writes every string
    ``!unsafe``, and ansible-core (2.19 and later) resolves a quoted ``!unsafe`` scalar as if
    it were plain, so a name of digits arrives as a number."""
    if value is None or field.endswith("_id"):
        return value
    return str(value)
