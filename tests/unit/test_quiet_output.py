"""No noise: a clean run says nothing a user cannot act on (#21). Third-party deprecation
warnings are filtered where we run Ansible, and only those; a webhook the environment does
not set is not wanted, not a warning."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from rollbackctl.runner import ANSIBLE_WARNING_FILTER, python_warnings
from tests.conftest import REPO, VENV_BIN
from tests.unit import test_run_cli
from tests.unit.test_run_cli import Fake, fake_args, invoke

fake_project = test_run_cli.fake  # test_run_cli's fake project, as a fixture here

pytestmark = [
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def test_the_makefile_filters_the_same_warning_as_the_wrapper() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert f"ANSIBLE_WARNING_FILTER := {ANSIBLE_WARNING_FILTER}\n" in makefile
    assert "| head" not in makefile, "head closes the pipe early: BrokenPipeError in ansible"


def test_the_filter_keeps_the_users_own_filters_which_win() -> None:
    assert python_warnings("") == ANSIBLE_WARNING_FILTER
    assert python_warnings("error") == f"{ANSIBLE_WARNING_FILTER},error"


def test_ansible_says_nothing_on_stderr_with_the_filter() -> None:
    env = dict(os.environ, PYTHONWARNINGS=python_warnings(""))
    proc = subprocess.run(
        [str(VENV_BIN / "ansible"), "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stderr == ""
    assert proc.stdout.startswith("ansible [core ")


def test_the_filter_is_only_that_warning() -> None:
    """Another deprecation warning, even from cryptography, still shows."""
    code = (
        "import warnings\n"
        "from cryptography.utils import CryptographyDeprecationWarning as W\n"
        "warnings.warn('DSA is deprecated', W)\n"
        "warnings.warn('something else is deprecated', W)\n"
    )
    env = dict(os.environ, PYTHONWARNINGS=python_warnings(""))
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert "DSA is deprecated" in proc.stderr, "raised from another module: not filtered"
    assert "something else is deprecated" in proc.stderr


@pytest.mark.slow
def test_a_clean_run_has_no_traceback_and_no_warning(fake_project: Fake, tmp_path: Path) -> None:
    """The fake policy names a webhook variable that is not set: no webhook is wanted."""
    artifacts = tmp_path / "a"
    env = {"FAKE_HOOK_URL": None, "PYTHONWARNINGS": None}
    result = invoke("run", "--level", "3", *fake_args(fake_project, artifacts), env=env)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert not re.search("warning", result.output, re.IGNORECASE), result.output
    stdout = next((artifacts / "rollbackctl").glob("*/stdout")).read_text()
    assert "Traceback" not in stdout and "DeprecationWarning" not in stdout, stdout
    record = next(p for p in (artifacts / "runs").glob("2*.json"))
    assert "$FAKE_HOOK_URL is not set, no webhook messages were sent" in record.read_text()
