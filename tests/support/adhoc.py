"""One real ad-hoc Ansible call of a collection module on the local connection (-vvv), as
the direct-path tests make it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO, VENV_BIN


def adhoc(
    where: Path,
    module: str,
    args: str,
    *flags: str,
    python: str = sys.executable,
    **env: str,
) -> tuple[dict[str, Any], str, int]:
    """``ansible local -m sre.rollback.<module> -a ARGS -vvv FLAGS`` with an inventory in
    ``where``: its result, its whole output and its exit status."""
    inventory = where / "inventory.ini"
    inventory.write_text(f"local ansible_connection=local ansible_python_interpreter={python}\n")
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            *("-i", str(inventory), "local", "-m", f"sre.rollback.{module}"),
            *("-a", args, "-vvv", *flags),
        ],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json", **env),
        capture_output=True,
        text=True,
        check=False,
    )
    text = proc.stdout
    start = text.index("{", text.index("local | "))
    result: dict[str, Any] = json.loads(text[start : text.rindex("}") + 1])
    return result, text, proc.returncode
