"""Shared test helpers: where the repository and its tools are."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTION = REPO / "collections" / "ansible_collections" / "sre" / "rollback"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def collection_dir() -> Path:
    return COLLECTION


# --------------------------------------------------------------------------------------------
# Every run record the suite writes (in this process or in the ansible-playbook and
# rollbackctl processes it starts) is validated against the collection's published schema:
# the writer logs each write to $SRE_ROLLBACK_RECORD_CHECK, and the session fails at its end
# when one was invalid.

RECORD_LOG = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    from ansible_collections.sre.rollback.plugins.plugin_utils import run_records

    if getattr(config, "workerinput", None) is None and not os.environ.get(run_records.CHECK_ENV):
        handle, log = tempfile.mkstemp(prefix="run-records-", suffix=".log")
        os.close(handle)
        os.environ[run_records.CHECK_ENV] = log
        config.stash[RECORD_LOG] = Path(log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    log = session.config.stash.get(RECORD_LOG, None)
    if log is None:
        return
    invalid = invalid_records(log)
    log.unlink(missing_ok=True)
    if invalid:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"{len(invalid)} run record(s) do not match the run record schema:", *invalid]
        if reporter is not None:
            reporter.write_sep("=", "run record schema", red=True)
            reporter.write_line("\n".join(lines[:50]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def invalid_records(log: Path) -> list[str]:
    """``path: problem`` of every record logged invalid when written, or invalid now."""
    from ansible_collections.sre.rollback.plugins.plugin_utils import run_records

    found: dict[str, None] = {}
    paths: dict[str, None] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.startswith("INVALID\t"):
            _, path, problem = line.split("\t", 2)
            found[f"{path}: {problem}"] = None
        elif line:
            paths[line] = None
    for path in paths:
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # gone with its test's temporary directory: checked when written
        for problem in run_records.problems(record):
            found[f"{path}: {problem}"] = None
    return list(found)
