"""``rollbackctl validate``: is the system as it should be (read-only)?"""

from __future__ import annotations

from rollbackctl import next_step
from rollbackctl.commands.read_only import Shown, read_only_command
from rollbackctl.project import Project
from rollbackctl.validate import problems, run_validate, validate_table


@read_only_command(
    "validate",
    "validation",
    {
        0: "valid: same release everywhere, healthy, configuration and database valid",
        1: "invalid: a check failed or a host was unreachable",
    },
)
def validate_command(
    project: Project, inventory: str, limit: str | None, hosts: str | None
) -> Shown:
    """Run playbooks/validate.yml (read-only, the runbook's system:validate): every app
    host runs the same release, answers its health check, passes the configuration check
    (validate_config_command), and the database passes validate-db.yml when the inventory
    has a `db` group."""
    outcome = run_validate(project, inventory, limit, hosts)
    return Shown(
        table=validate_table(outcome),
        lines=[*problems(outcome), outcome.note, "valid" if outcome.exit_code == 0 else "INVALID"],
        data=outcome.as_dict(),
        closing=next_step.for_validate(outcome, inventory),
        exit_code=outcome.exit_code,
    )
