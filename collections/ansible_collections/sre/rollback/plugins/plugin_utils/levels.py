# GPL-3.0-or-later
"""The registry of the runbook's five levels: the one place that knows, per level, its
playbook, the role variables that name its target, its lock, what a cancel must undo and
its time budget.

Readers (the only code outside the roles that may name a level's role variables): the
``rollbackctl`` wrapper (``--target``, empty-target checks, inputs a level cannot run
without, the settle step after a cancel), the ``sre.rollback.run_record`` callback (the
level of a playbook, the target variables it records), and the AWX definitions. A test
(tests/unit/test_levels.py) fails when a level's role variable appears in the wrapper.

API (stable; add fields, do not rename them):

* ``LEVELS``: ``{number: Level}``, levels 1 to 5 in order; ``level(n)`` raises KeyError.
* ``Level.playbook`` (``rollback-l3.yml``, under the project's ``playbooks/``),
  ``Level.name``, ``Level.budget`` (seconds), ``Level.built`` (False: planned, its
  playbook may not exist yet), ``Level.target`` (the variable ``--target`` sets),
  ``Level.targets`` (every input that names what it goes to, with what to give and what
  leaving it out does), ``Level.recorded`` (extra vars the run record keeps as the
  run's target), ``Level.lock`` (the variable holding the root its lock is taken under),
  ``Level.required`` (an input without which it cannot do anything), ``Level.cancel``.
* ``level_of_playbook(file_name)``: the level a playbook file runs, or None.
* ``target_inputs()``: every level's target inputs by variable name.
* ``recorded_target_vars()``: the extra vars a run record keeps under ``target``.
* ``settle_args(level, run_id, wait)``: the ``sre.rollback.release state=unlocked``
  arguments that settle a host after a cancel or a kill.

Controller only (not imported by modules); standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

GENERIC_TARGET_VAR = "rollback_target"
"""The wrapper's ``--target`` as given, whatever the level (recorded as the target)."""


@dataclass(frozen=True)
class TargetInput:
    """A variable that names what a level goes to."""

    var: str
    what: str
    """What to give, with an example: said when it is given empty."""
    left_out: str
    """What leaving it out does."""


@dataclass(frozen=True)
class Required:
    """An input without which a level cannot do anything: an emergency skips the level
    (and climbs on) rather than run it to fail."""

    var: str
    what: str
    example: str

    def skip_note(self, level: int) -> str:
        return (
            f"level {level} needs {self.what} (-e {self.var}={self.example}, or {self.var} in "
            "the inventory): skipped"
        )


@dataclass(frozen=True)
class CancelUndo:
    """What a cancel (or a kill) of a level's run must undo on each host it reached."""

    what: str
    module: str
    """The module called once per host (``rollbackctl``'s settle step)."""
    root_var: str
    """The variable holding the application root whose lock the settle call releases."""


@dataclass(frozen=True)
class Level:
    number: int
    name: str
    playbook: str
    budget: int
    """The runbook's time budget, in seconds."""
    targets: tuple[TargetInput, ...]
    """First: the input ``--target`` sets."""
    recorded: tuple[str, ...]
    lock: str
    cancel: CancelUndo
    required: Required | None = None
    built: bool = True

    @property
    def target(self) -> str:
        return self.targets[0].var

    @property
    def label(self) -> str:
        return f"level {self.number} ({self.name})"


# Every level's settle step today: the release module's state=unlocked under the release
# root, which waits for a call of the run still holding the lock, releases it only when no
# live process holds it, and reads the host's journal for the run.
_SETTLE = CancelUndo(
    what=(
        "release the application lock this run holds once no live call of the run holds "
        "it, and read what the host's journal says the run did"
    ),
    module="sre.rollback.release",
    root_var="release_app_root",
)

LEVELS: dict[int, Level] = {
    1: Level(
        number=1,
        name="feature flag",
        playbook="rollback-l1.yml",
        budget=60,
        targets=(
            TargetInput(
                "feature_flag_names",
                "the flag(s) to set (new_checkout or a,b)",
                "level 1 has no default: it needs the flags",
            ),
        ),
        recorded=("feature_flag_names", "feature_flag_state"),
        lock="feature_flag_lock_root",
        cancel=_SETTLE,
        required=Required("feature_flag_names", "the flags to turn off", "NAME[,NAME]"),
    ),
    2: Level(
        number=2,
        name="configuration",
        playbook="rollback-l2.yml",
        budget=300,
        targets=(
            TargetInput(
                "config_target",
                "a config revision (r0003-1a2b3c4d)",
                "leave it out to go back to the previous revision",
            ),
        ),
        recorded=("config_target", "config_source"),
        lock="config_lock_root",
        cancel=_SETTLE,
    ),
    3: Level(
        number=3,
        name="code",
        playbook="rollback-l3.yml",
        budget=900,
        targets=(
            TargetInput(
                "release_target",
                "a release tag or id (v1.2.3-stable)",
                "leave it out to roll back to the newest stable release older than the current one",
            ),
        ),
        # release_tag: what deploy.yml (the same release role) goes to.
        recorded=("release_tag", "release_target"),
        lock="release_app_root",
        cancel=_SETTLE,
    ),
    4: Level(
        number=4,
        name="database",
        playbook="rollback-l4.yml",
        budget=1800,
        targets=(
            TargetInput(
                "database_target_revision",
                "a database revision (20240101120000)",
                "leave it out to only restore database_restore_backup",
            ),
            TargetInput(
                "database_restore_backup",
                "a backup name (prod-2024-01-15)",
                "leave it out to only migrate down to database_target_revision",
            ),
        ),
        recorded=("database_target_revision", "database_restore_backup"),
        lock="database_app_root",
        cancel=_SETTLE,
    ),
    5: Level(
        number=5,
        name="full system",
        playbook="rollback-l5.yml",
        budget=3600,
        targets=(
            TargetInput(
                "dr_restore_point",
                "a restore point (latest, an ISO time, or a backup set id)",
                "leave it out to restore the latest full backup",
            ),
        ),
        recorded=("dr_restore_point",),
        lock="release_app_root",
        cancel=_SETTLE,
    ),
}

LEVEL_NAMES = {number: level.name for number, level in LEVELS.items()}
LEVEL_BUDGETS = {number: level.budget for number, level in LEVELS.items()}


def level(number: int) -> Level:
    return LEVELS[number]


def level_of_playbook(file_name: str) -> int | None:
    """The level a playbook file (a name or a path) runs, or None (deploy, validate...)."""
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if base.endswith((".yml", ".yaml")) else None
    # The collection's copy (sre.rollback.rollback_l3, playbooks/rollback_l3.yml) runs the same.
    stem = stem.replace("_", "-") if stem is not None else None
    for number, known in LEVELS.items():
        if stem is not None and stem == known.playbook.rsplit(".", 1)[0]:
            return number
    return None


def target_inputs() -> dict[str, TargetInput]:
    return {target.var: target for known in LEVELS.values() for target in known.targets}


def recorded_target_vars() -> tuple[str, ...]:
    names = [var for known in LEVELS.values() for var in known.recorded]
    return (*dict.fromkeys(names), GENERIC_TARGET_VAR)


def settle_args(number: int, run_id: str, wait: int) -> str:
    """The settle call's arguments for a run of level ``number`` (any other playbook: the
    release root, as for level 3)."""
    undo = LEVELS[number].cancel if number in LEVELS else _SETTLE
    return f"app_root={{{{ {undo.root_var} }}}} state=unlocked run_id={run_id} wait={wait}"
