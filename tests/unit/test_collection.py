"""The collection is complete, builds, and agrees with the wrapper's version."""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

import yaml

from rollbackctl import __version__
from tests.conftest import COLLECTION, REPO, VENV_BIN


def galaxy() -> dict[str, object]:
    return yaml.safe_load((COLLECTION / "galaxy.yml").read_text())


def test_galaxy_metadata_is_complete() -> None:
    meta = galaxy()
    for key in (
        "namespace",
        "name",
        "version",
        "readme",
        "authors",
        "description",
        "license",
        "repository",
        "tags",
        "build_ignore",
    ):
        assert meta.get(key), f"galaxy.yml lacks {key}"
    assert (meta["namespace"], meta["name"]) == ("sre", "rollback")
    assert meta["version"] == __version__, "bump galaxy.yml and rollbackctl.__version__ together"


def test_runtime_requires_ansible_219() -> None:
    runtime = yaml.safe_load((COLLECTION / "meta" / "runtime.yml").read_text())
    assert runtime["requires_ansible"] == ">=2.19.0"


def test_collection_builds(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "build",
            str(COLLECTION),
            "--output-path",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    artifact = tmp_path / f"sre-rollback-{galaxy()['version']}.tar.gz"
    assert artifact.is_file(), result.stdout
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names
    assert "meta/runtime.yml" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".tar.gz")]


def test_ansible_cfg_uses_the_singular_collections_path() -> None:
    text = (REPO / "ansible.cfg").read_text()
    assert "collections_path = ./collections" in text
    assert not re.search(r"^collections_paths\s*=", text, re.MULTILINE)
