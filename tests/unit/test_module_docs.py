"""Every module's DOCUMENTATION (with its doc fragments) says what its argument spec takes:
the same options, types, defaults, choices and suboptions, as ansible-test's
validate-modules checks; and every plugin's docs parse."""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils import basic

from tests.conftest import REPO, VENV_BIN

PLUGINS = (
    Path(__file__).resolve().parents[2] / "collections/ansible_collections/sre/rollback/plugins"
)
MODULES = sorted(p.stem for p in (PLUGINS / "modules").glob("*.py") if p.stem != "__init__")


@functools.cache
def ansible_doc(kind: str, names: tuple[str, ...]) -> dict[str, Any]:
    """ansible-doc's own reading of the docs (fragments merged), from the repo root."""
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-doc"),
            "--json",
            "-t",
            kind,
            *[f"sre.rollback.{n}" for n in names],
        ],
        cwd=REPO,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


class Captured(Exception):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__("captured")
        self.spec = spec


def argument_spec(name: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The spec the module hands AnsibleModule (its main() stops right there)."""

    def capture(self: Any, argument_spec: dict[str, Any], **_: Any) -> None:
        raise Captured(argument_spec)

    monkeypatch.setattr(basic.AnsibleModule, "__init__", capture)
    module = importlib.import_module(f"ansible_collections.sre.rollback.plugins.modules.{name}")
    with pytest.raises(Captured) as caught:
        module.main()
    return caught.value.spec


def differences(spec: dict[str, Any], docs: dict[str, Any], path: str = "") -> list[str]:
    found = []
    for name in sorted(set(spec) | set(docs)):
        where = f"{path}{name}"
        if name not in docs:
            found.append(f"{where}: in the argument spec, not documented")
            continue
        if name not in spec:
            found.append(f"{where}: documented, not in the argument spec")
            continue
        want, doc = spec[name], docs[name]
        if want.get("type", "str") != doc.get("type", "str"):
            found.append(f"{where}: type {want.get('type', 'str')} != documented {doc.get('type')}")
        if want.get("default") != doc.get("default") and not (
            want.get("default") in (None, [], {}) and doc.get("default") in (None, [], {})
        ):
            found.append(f"{where}: default {want.get('default')!r} != {doc.get('default')!r}")
        if sorted(map(str, want.get("choices") or [])) != sorted(
            map(str, doc.get("choices") or [])
        ):
            found.append(f"{where}: choices {want.get('choices')} != {doc.get('choices')}")
        if bool(want.get("required")) != bool(doc.get("required")):
            found.append(f"{where}: required differs")
        if want.get("options") or doc.get("suboptions"):
            found += differences(
                want.get("options") or {}, doc.get("suboptions") or {}, f"{where}."
            )
    return found


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_the_argument_spec(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = ansible_doc("module", tuple(MODULES))[f"sre.rollback.{name}"]
    doc = docs["doc"]
    assert docs["examples"] and docs["return"] is not None, f"{name}: EXAMPLES and RETURN"
    module = importlib.import_module(f"ansible_collections.sre.rollback.plugins.modules.{name}")
    if not hasattr(module, "main"):
        pytest.skip("action-only module: its action plugin checks its arguments")
    spec = argument_spec(name, monkeypatch)
    assert differences(spec, doc.get("options") or {}) == []


PLUGIN_KINDS = {"lookup": "lookup", "callback": "callback", "filter": "filter"}


@pytest.mark.parametrize("kind", sorted(PLUGIN_KINDS))
def test_plugin_documentation_parses(kind: str) -> None:
    names = tuple(
        sorted(p.stem for p in (PLUGINS / kind).glob("*.py") if "DOCUMENTATION" in p.read_text())
    )
    if not names:
        pytest.skip(f"no {kind} plugin documents itself in Python")
    docs = ansible_doc(PLUGIN_KINDS[kind], names)
    for name in names:
        assert docs[f"sre.rollback.{name}"]["doc"]["short_description"], name
