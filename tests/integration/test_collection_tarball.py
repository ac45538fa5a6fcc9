"""The collection as its users get it: the built tarball, installed into an empty directory,
rolls the rig back with ``ansible-playbook sre.rollback.rollback_l3`` (no project, no
ansible.cfg, no copy of the collection on the Python path)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import COLLECTION, VENV_BIN
from tests.integration.rig import app_hosts, current, deploy, prepared

# ~50 s on the rig: outside make test's budget, run by make test-collection.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("SRE_ROLLBACK_COLLECTION_TESTS") != "1",
        reason="make test-collection runs it (SRE_ROLLBACK_COLLECTION_TESTS=1)",
    ),
]

STABLE, BAD = "v1.2.3-stable", "v1.3.0"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_level_3_from_the_installed_tarball(testhosts: Any, tmp_path: Path) -> None:
    rig = prepared(testhosts)
    version = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())["version"]
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "ROLLBACKCTL_"))}
    env.update(
        PATH=f"{VENV_BIN}:{os.environ['PATH']}",
        ANSIBLE_COLLECTIONS_PATH=str(empty / "collections"),
        # The venv has the project's collection on the Python path (the wrapper's install):
        # only the tarball's copy may be found.
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
    )
    built = run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION),
         "--output-path", str(tmp_path)], empty, env,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = tmp_path / f"sre-rollback-{version}.tar.gz"
    installed = run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline", str(tarball),
         "-p", str(empty / "collections")], empty, env,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "list", "sre.rollback"], empty, env
    )
    assert str(empty / "collections") in listed.stdout and str(COLLECTION) not in listed.stdout

    deploy(rig, STABLE)
    deploy(rig, BAD)
    rolled = run(
        [str(VENV_BIN / "ansible-playbook"), "sre.rollback.rollback_l3", "-i", str(rig.inventory)],
        empty, env,
    )  # fmt: skip
    assert rolled.returncode == 0, rolled.stdout[-4000:] + rolled.stderr[-2000:]
    for host in app_hosts(rig):
        assert STABLE in current(rig, host), host
    assert not (empty / ".artifacts").exists()
