"""execution-environment.yml: ansible-builder (v3 schema) makes a build context offline from
it, with the collection's tarball, its Python requirements and its system packages; the
tarball installs from that context."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import COLLECTION, REPO, VENV_BIN


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_ansible_builder_creates_the_context_with_the_collection(tmp_path: Path) -> None:
    version = yaml.safe_load((COLLECTION / "galaxy.yml").read_text())["version"]
    shutil.copy(REPO / "execution-environment.yml", tmp_path)
    shutil.copytree(REPO / "ee", tmp_path / "ee", ignore=shutil.ignore_patterns("*.tar.gz"))
    run(
        str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION),
        "--output-path", str(tmp_path / "ee"), cwd=tmp_path,
    )  # fmt: skip
    tarball = f"sre-rollback-{version}.tar.gz"
    assert (tmp_path / "ee" / tarball).is_file()
    run(str(VENV_BIN / "ansible-builder"), "create", "--file", "execution-environment.yml",
        cwd=tmp_path)  # fmt: skip

    build = tmp_path / "context" / "_build"
    containerfile = (tmp_path / "context" / "Dockerfile").read_text()
    assert "quay.io/ansible/awx-ee:24.6.1" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    # The galaxy requirements name the tarball the build copies in, at this version.
    wanted = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert wanted == [{"name": f"/build/collections/{tarball}", "type": "file"}], (
        f"ee/requirements.yml must name the tarball of galaxy.yml's version {version}"
    )
    assert (build / "collections" / tarball).is_file()
    assert "PyYAML" in (build / "requirements.txt").read_text()
    assert "openssh-client" in (build / "bindep.txt").read_text()
    # What the image's galaxy stage does, offline: the tarball installs and has its playbooks,
    # roles and plugins.
    target = tmp_path / "installed"
    run(
        str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline",
        str(build / "collections" / tarball), "-p", str(target), cwd=tmp_path,
    )  # fmt: skip
    installed = target / "ansible_collections" / "sre" / "rollback"
    assert (installed / "roles" / "release" / "meta" / "argument_specs.yml").is_file()
    assert (installed / "plugins" / "callback" / "run_record.py").is_file()
    assert not (installed / "tests" / "output").exists()
