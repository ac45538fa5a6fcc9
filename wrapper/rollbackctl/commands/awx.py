"""``rollbackctl awx validate|export``: the AWX definition (awx/controller.yml), offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from rollbackctl import awx
from rollbackctl.exits import exit_codes_help
from rollbackctl.project import find_project

DEFINITION = Path("awx/controller.yml")
AWX_CONFIGURE = Path("playbooks/awx-configure.yml")
AWX_COLLECTIONS = Path(".collections-awx")
"""Where `make awx-collection` puts awx.awx, apart from the venv's ansible-core."""


class BadInputError(click.ClickException):
    exit_code = 2


def _model(definition: Path | None, project_dir: Path | None) -> tuple[dict[str, Any], Path]:
    root = find_project(project_dir).root
    path = definition or root / DEFINITION
    try:
        return awx.build(awx.load_source(path), root), root
    except awx.AwxDefinitionError as error:
        raise BadInputError(f"{error}: fix {path}") from None


def lint_problems(root: Path) -> list[awx.Problem]:
    """ansible-lint (its argument checks against awx.awx's modules) on the configure playbook."""
    where = str(AWX_CONFIGURE)
    collection = root / AWX_COLLECTIONS / "ansible_collections" / "awx" / "awx"
    if not collection.is_dir():
        return [awx.Problem(where, f"awx.awx is not in {AWX_COLLECTIONS}: run make awx-collection")]
    # The venv's tools first: ansible-lint calls ansible-playbook and ansible-galaxy.
    tools = Path(sys.executable).parent
    env = dict(
        os.environ,
        PATH=f"{tools}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_COLLECTIONS_PATH=f"{root / AWX_COLLECTIONS}:{root / 'collections'}",
    )
    # Its own configuration: the project's excludes this playbook (awx.awx is not on the
    # default path there); the same production profile.
    with tempfile.NamedTemporaryFile("w", suffix=".yml", prefix="ansible-lint-awx-") as config:
        config.write("profile: production\noffline: true\nwarn_list: []\n")
        config.flush()
        proc = subprocess.run(
            [str(tools / "ansible-lint"), "-q", "--nocolor", "-c", config.name, str(AWX_CONFIGURE)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    problems = awx.module_argument_problems(root / AWX_CONFIGURE, root / AWX_COLLECTIONS)
    if proc.returncode == 0:
        return problems
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return problems + [awx.Problem(where, "ansible-lint: " + line) for line in lines[-20:]]


@click.group(name="awx")
def awx_group() -> None:
    """The AWX / Automation Controller objects of awx/controller.yml (no server needed)."""


definition_option = click.option(
    "--definition",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The definition file (default: the project's awx/controller.yml).",
)
project_option = click.option(
    "--project-dir", type=click.Path(file_okay=False, path_type=Path), help="The project root."
)


@awx_group.command(
    name="validate",
    epilog=exit_codes_help({0: "valid", 1: "problems (each names its object)", 2: "bad input"}),
)
@definition_option
@project_option
@click.option("--no-lint", is_flag=True, help="Skip ansible-lint on playbooks/awx-configure.yml.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
def awx_validate(
    definition: Path | None, project_dir: Path | None, no_lint: bool, as_json: bool
) -> None:
    """Check the definition as AWX would, offline: survey specs by AWX's rules (types,
    choices, min/max, required), every survey variable an input of the template's playbook,
    the workflow graph (unique identifiers, links, no cycle, templates, approval before
    levels 4 and 5), and ansible-lint on the awx.awx playbook."""
    model, root = _model(definition, project_dir)
    problems = awx.validate(model, root) + ([] if no_lint else lint_problems(root))
    if as_json:
        click.echo(json.dumps([{"where": p.where, "problem": p.what} for p in problems], indent=2))
    else:
        for problem in problems:
            click.echo(str(problem))
        click.echo(
            f"{len(problems)} problem(s): fix each where it says ({definition or DEFINITION}, "
            f"{AWX_CONFIGURE} or the roles' argument specs), then run this again."
            if problems
            else f"Valid: {len(model['job_templates'])} job templates, "
            f"{len(model['workflow_nodes'])} workflow nodes."
        )
    raise SystemExit(1 if problems else 0)


@awx_group.command(name="export")
@definition_option
@project_option
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
def awx_export(definition: Path | None, project_dir: Path | None, out: Path | None) -> None:
    """Write the objects in awxkit's `awx import` JSON format (no secrets)."""
    model, _root = _model(definition, project_dir)
    text = json.dumps(awx.export(model), indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)
