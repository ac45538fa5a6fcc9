"""``rollbackctl status``: what is on the hosts now (read-only)."""

from __future__ import annotations

from rollbackctl import next_step
from rollbackctl.commands.read_only import Shown, read_only_command
from rollbackctl.project import Project
from rollbackctl.status import problems, run_status, status_table


@read_only_command(
    "status",
    "status",
    {
        0: "every host answered and every application checked is healthy",
        1: "a host was unreachable, a probe failed, or a host's application is down",
    },
)
def status_command(project: Project, inventory: str, limit: str | None, hosts: str | None) -> Shown:
    """Run playbooks/status.yml (read-only): per host the current release, the
    application's health (release_health_url), the lock holder, the last rollback, and
    flags, configuration checksum and database revision where the inventory says where
    they are."""
    outcome = run_status(project, inventory, limit, hosts)
    return Shown(
        table=status_table(outcome),
        lines=[*problems(outcome), outcome.note],
        data={"hosts": [row.as_dict() for row in outcome.hosts]},
        closing=next_step.for_status(
            outcome.hosts, outcome.exit_code, problems(outcome), inventory
        ),
        exit_code=outcome.exit_code,
    )
