"""A job as AWX / Automation Controller runs it, reproduced from AWX's source (24.6.x), for
the tests of the AWX runtime conventions. No AWX server runs here; what a job gets from AWX
is rebuilt step by step, each step citing the AWX code it follows:

* the inventory: an inventory update imports the source with ``ansible-inventory --list
  --export`` (awx/main/tasks/jobs.py ``RunInventoryUpdate.build_args``); a job gets it back
  as a script that prints JSON (``BaseTask.write_inventory_file``), built by
  ``Inventory.get_script_data`` (awx/main/models/inventory.py): enabled hosts ordered by
  name, a slice's share ``hosts[slice_number - 1::slice_count]`` (``get_sliced_hosts``),
  groups cut down to the slice's hosts, ``remote_tower_*``/``remote_host_*`` host vars;
* extra vars: the launch's (survey answers among them) overridden by ``awx_meta_vars``
  (``RunJob.build_extra_vars_file``), written to ``env/extravars`` with every string marked
  ``!unsafe`` (awx/main/utils/safe_yaml.py ``safe_dump``);
* the environment: AWX's ``ANSIBLE_*`` settings (awx/settings/defaults.py), ``JOB_ID``,
  ``INVENTORY_ID``, ``PROJECT_REVISION``, ``MAX_EVENT_RES``, ``AWX_HOST``, a control path
  directory per job, the collection and role paths with the project's ``ansible.cfg`` values
  (``RunJob.build_env``); ansible-runner then sets ``ANSIBLE_STDOUT_CALLBACK=awx_display``
  and adds its callback directory to ``ANSIBLE_CALLBACK_PLUGINS``;
* the run: ``ansible_runner.interface.run`` with the job's id as ``ident``, the project
  copied into ``<private data dir>/project`` (the working directory, so the project's
  ``ansible.cfg`` applies), an event handler, ``suppress_ansible_output`` (``BaseTask.run``);
  AWX's job artifacts are the ``artifact_data`` of the ``playbook_on_stats`` event
  (ansible-runner's ``awx_display`` callback: ``stats.custom['_run']``).

What differs, on purpose: no container (the execution environment's image is not pulled
here; runner runs ansible-playbook from the venv), and the SSH key stays in the rig's
inventory instead of a Machine credential's ssh-agent.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from tests.conftest import REPO, VENV_BIN

# What AWX copies of the project (its SCM checkout) into the job's private data directory.
PROJECT_PARTS = ("ansible.cfg", "collections", "playbooks", "roles", "inventories")
PROJECT_REVISION = "5f0c6e1d9a7b3c2e4f8a1b6d0c9e7f2a3b4c5d6e"  # the project update's commit
# awx/settings/defaults.py: the ANSIBLE_* settings every job's environment gets.
AWX_ANSIBLE_SETTINGS = {
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_PARAMIKO_RECORD_HOST_KEYS": "False",
    "ANSIBLE_FORCE_COLOR": "True",
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
}


class _UnsafeDumper(yaml.SafeDumper):
    """awx/main/utils/safe_yaml.py SafeStringDumper: every string ``!unsafe``."""

    def represent_data(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.represent_scalar("!unsafe", data)
        return super().represent_data(data)


def safe_dump(extra_vars: Mapping[str, Any]) -> str:
    """``safe_dump(vars, safe_dict)`` with an empty safe dict: the job template itself sets
    no extra vars here, so every key and value is ``!unsafe``."""
    return "".join(
        yaml.dump_all([{key: value}], None, Dumper=_UnsafeDumper, default_flow_style=False)
        for key, value in extra_vars.items()
    )


def imported_inventory(source: Path) -> dict[str, Any]:
    """What an inventory update imports: ``ansible-inventory --list --export``."""
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list", "--export"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=REPO,
    )
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def script_data(
    imported: Mapping[str, Any], slice_number: int = 1, slice_count: int = 1
) -> dict[str, Any]:
    """``Inventory.get_script_data(hostvars=True, towervars=True, slice_number, slice_count)``
    over the imported inventory (host ids: the hosts' order by name, from 1)."""
    hostvars = imported.get("_meta", {}).get("hostvars", {})
    groups = {k: v for k, v in imported.items() if k not in ("_meta", "all", "ungrouped")}
    names = sorted(
        set(hostvars)
        | {h for g in imported.values() if isinstance(g, dict) for h in g.get("hosts", [])}
    )
    ids = {name: index for index, name in enumerate(names, start=1)}
    if slice_count > 1 and slice_number > 0:  # get_sliced_hosts
        names = names[slice_number - 1 :: slice_count]
    in_slice = set(names)
    data: dict[str, Any] = {"all": {}}
    all_vars = imported.get("all", {}).get("vars")
    if all_vars:
        data["all"]["vars"] = all_vars
    grouped = {h for g in groups.values() for h in g.get("hosts", []) if h in in_slice}
    data["all"]["hosts"] = [h for h in names if h not in grouped]
    for name, group in groups.items():
        info: dict[str, Any] = {}
        members = [h for h in group.get("hosts", []) if h in in_slice]
        if members:
            info["hosts"] = members
        if group.get("children"):
            info["children"] = list(group["children"])
        if group.get("vars"):
            info["vars"] = group["vars"]
        if info:
            data[name] = info
    if groups:
        data["all"]["children"] = list(groups)
    data["_meta"] = {
        "hostvars": {
            host: {
                **hostvars.get(host, {}),
                **{
                    f"remote_{prefix}_{key}": value
                    for prefix in ("host", "tower")
                    for key, value in (("enabled", "true"), ("id", ids[host]))
                },
            }
            for host in names
        }
    }
    return data


@dataclass
class AwxJob:
    """One job as AWX launches it; ``workflow_job`` is (id, name) of the workflow job it
    runs in (for a slice: the sliced job, named after the template)."""

    job_id: int
    template_id: int
    template: str
    playbook: str
    inventory: dict[str, Any]
    extra_vars: dict[str, Any] = field(default_factory=dict)
    workflow_job: tuple[int, str] | None = None
    inventory_id: int = 1
    inventory_name: str = "sre.rollback rig"
    user: str = "oncall"
    limit: str = ""
    task_env: dict[str, str] = field(default_factory=dict)  # settings.AWX_TASK_ENV

    def meta_vars(self) -> dict[str, Any]:
        """UnifiedJob.awx_meta_vars + Job.awx_meta_vars (launched by a user, so no schedule)."""
        meta: dict[str, Any] = {}
        for prefix in ("awx", "tower"):
            meta[f"{prefix}_job_id"] = self.job_id
            meta[f"{prefix}_job_launch_type"] = "workflow" if self.workflow_job else "manual"
            if self.workflow_job:
                meta[f"{prefix}_workflow_job_id"] = self.workflow_job[0]
                meta[f"{prefix}_workflow_job_name"] = self.workflow_job[1]
                meta[f"{prefix}_workflow_job_launch_type"] = "manual"
            meta[f"{prefix}_user_id"] = 1
            meta[f"{prefix}_user_name"] = self.user
            meta[f"{prefix}_user_email"] = f"{self.user}@example.com"
            meta[f"{prefix}_user_first_name"] = ""
            meta[f"{prefix}_user_last_name"] = ""
            meta[f"{prefix}_inventory_id"] = self.inventory_id
            meta[f"{prefix}_inventory_name"] = self.inventory_name
            meta[f"{prefix}_project_revision"] = PROJECT_REVISION
            meta[f"{prefix}_project_scm_branch"] = "main"
            meta[f"{prefix}_job_template_id"] = self.template_id
            meta[f"{prefix}_job_template_name"] = self.template
            meta[f"{prefix}_execution_node"] = "localhost"
        return meta


@dataclass
class JobResult:
    status: str
    rc: int
    events: list[dict[str, Any]]
    private_data_dir: Path

    @property
    def artifacts(self) -> dict[str, Any]:
        """The job's artifacts as AWX stores them: the stats event's ``artifact_data``."""
        for event in self.events:
            if event.get("event") == "playbook_on_stats":
                data: dict[str, Any] = event["event_data"].get("artifact_data") or {}
                return data
        return {}

    @property
    def stdout(self) -> str:
        return "\n".join(str(e.get("stdout", "")) for e in self.events if e.get("stdout"))


def private_data_dir(job: AwxJob, base: Path) -> Path:
    """The job's private data directory as BaseTask.run fills it."""
    root = base / f"awx_{job.job_id}_job"
    project = root / "project"
    project.mkdir(parents=True)
    root.chmod(0o700)
    for part in PROJECT_PARTS:  # RunProjectUpdate.make_local_copy: the checkout's files
        source = REPO / part
        if source.is_dir():
            shutil.copytree(
                source, project / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(source, project / part)
    for sub in ("inventory", "env", "cp"):
        (root / sub).mkdir(mode=0o700, exist_ok=True)
    script = root / "inventory" / "hosts"
    script.write_text(
        f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(job.inventory)!r})\n"
    )
    script.chmod(0o700)
    extra = {**job.extra_vars, **job.meta_vars()}  # meta vars override the launch's
    (root / "env" / "extravars").write_text(safe_dump(extra))
    (root / "env" / "extravars").chmod(0o600)
    return root


def job_env(job: AwxJob, root: Path) -> dict[str, str]:
    """BaseTask.build_env + RunJob.build_env (outside a container)."""
    env = {**AWX_ANSIBLE_SETTINGS, **job.task_env}
    env.update(
        AWX_PRIVATE_DATA_DIR=str(root),
        JOB_ID=str(job.job_id),
        INVENTORY_ID=str(job.inventory_id),
        PROJECT_REVISION=PROJECT_REVISION,
        ANSIBLE_RETRY_FILES_ENABLED="False",
        MAX_EVENT_RES="700000",
        AWX_HOST="https://awx.invalid",
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(root / "cp"),  # /runner/cp in the container
        PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    )
    config = configparser.ConfigParser()  # awx/main/utils/common.py read_ansible_config
    config.read(root / "project" / "ansible.cfg")
    for key, setting, folder, default in (
        (
            "ANSIBLE_COLLECTIONS_PATHS",
            "collections_paths",
            "requirements_collections",
            "~/.ansible/collections:/usr/share/ansible/collections",
        ),
        (
            "ANSIBLE_ROLES_PATH",
            "roles_path",
            "requirements_roles",
            "~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles",
        ),
        (
            "ANSIBLE_COLLECTIONS_PATH",
            "collections_path",
            "requirements_collections",
            "~/.ansible/collections:/usr/share/ansible/collections",
        ),
    ):
        paths = default.split(":")
        value = config.get("defaults", setting, fallback="")
        if value:
            paths = [value, *paths]
        env[key] = os.pathsep.join([str(root / folder), *paths])
    return env


def run(job: AwxJob, base: Path, timeout: int = 600) -> JobResult:
    """Run the job through ansible-runner as BaseTask.run does; its status, rc, events."""
    root = private_data_dir(job, base)
    # Records of a job go where AWX_TASK_ENV says; by default next to the job, never to
    # the state directory of whoever runs the tests (a playbook outside a project).
    job.task_env.setdefault("SRE_ROLLBACK_RECORD_DIR", str(base / "records"))
    events: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> bool:
        with lock:
            events.append(event)
        return True

    runner = ansible_runner.interface.run(
        ident=str(job.job_id),
        private_data_dir=str(root),
        playbook=job.playbook,
        inventory=str(root / "inventory" / "hosts"),
        limit=job.limit or None,
        envvars=job_env(job, root),
        suppress_env_files=True,
        settings={"suppress_ansible_output": True, "suppress_output_file": False},
        event_handler=on_event,
        quiet=True,
        timeout=timeout,
    )
    return JobResult(str(runner.status), int(runner.rc), events, root)


def run_concurrently(jobs: Sequence[AwxJob], base: Path, timeout: int = 600) -> list[JobResult]:
    """Several jobs at once (the slices of a sliced job run in parallel, each in its own
    private data directory, on whichever execution node picks it up)."""
    results: list[JobResult | BaseException | None] = [None] * len(jobs)

    def one(index: int, job: AwxJob) -> None:
        try:
            results[index] = run(job, base, timeout)
        except BaseException as error:  # the caller reports it
            results[index] = error

    threads = [threading.Thread(target=one, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done: list[JobResult] = []
    for result in results:
        if not isinstance(result, JobResult):
            raise RuntimeError(f"an AWX job did not run: {result!r}")
        done.append(result)
    return done
