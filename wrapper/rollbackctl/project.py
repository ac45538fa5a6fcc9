"""Where the playbooks, ansible.cfg and the artifacts of runs are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.sre.rollback.plugins.plugin_utils import levels

PROJECT_ENV = "ROLLBACKCTL_PROJECT_DIR"
ARTIFACTS_ENV = "ROLLBACKCTL_ARTIFACTS"
LEVELS = tuple(levels.LEVELS)


class ProjectError(Exception):
    """The project (playbooks, ansible.cfg) cannot be found; the message says what to do."""


@dataclass(frozen=True)
class Project:
    """A checkout of the rollback project: ``ansible.cfg`` and ``playbooks/`` at its root."""

    root: Path

    @property
    def ansible_cfg(self) -> Path:
        return self.root / "ansible.cfg"

    def playbook(self, name: str) -> Path | None:
        """``playbooks/<name>``, or None when it does not exist (yet)."""
        path = self.root / "playbooks" / name
        return path if path.is_file() else None

    def level_playbook(self, level: int) -> Path | None:
        known = levels.LEVELS.get(level)
        return self.playbook(known.playbook) if known else None

    def available_levels(self) -> list[int]:
        return [level for level in LEVELS if self.level_playbook(level) is not None]

    def missing_level_message(self, level: int) -> str:
        available = self.available_levels()
        which = ", ".join(str(n) for n in available) if available else "none"
        return (
            f"level {level} playbook not implemented yet: {self.root}/playbooks/"
            f"{levels.LEVELS[level].playbook} does not exist. Levels that exist: {which}."
        )


def is_project(path: Path) -> bool:
    return (path / "ansible.cfg").is_file() and (path / "playbooks").is_dir()


def find_project(explicit: Path | None = None) -> Project:
    """The project given (option or $ROLLBACKCTL_PROJECT_DIR), else the working directory
    or one of its parents, else the source tree this package was installed from."""
    given = explicit or (Path(os.environ[PROJECT_ENV]) if os.environ.get(PROJECT_ENV) else None)
    if given is not None:
        if not is_project(given):
            raise ProjectError(
                f"{given} is not a rollback project: it needs ansible.cfg and playbooks/"
            )
        return Project(given.resolve())
    here = Path.cwd().resolve()
    source_tree = Path(__file__).resolve().parents[2]
    for candidate in (here, *here.parents, source_tree):
        if is_project(candidate):
            return Project(candidate)
    raise ProjectError(
        "cannot find the rollback project (ansible.cfg and playbooks/): run rollbackctl from "
        f"its checkout, or give --project-dir / ${PROJECT_ENV}"
    )


def artifacts_dir(project: Project, explicit: Path | None = None) -> Path:
    """Where runs leave their records (``runs/``) and ansible-runner artifacts
    (``rollbackctl/<run id>/``): the option, $ROLLBACKCTL_ARTIFACTS, or
    ``<project>/.artifacts`` (where the callback writes records of plain runs too)."""
    if explicit is not None:
        return explicit.resolve()
    if os.environ.get(ARTIFACTS_ENV):
        return Path(os.environ[ARTIFACTS_ENV]).resolve()
    return project.root / ".artifacts"


def records_dir(artifacts: Path) -> Path:
    return artifacts / "runs"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path
