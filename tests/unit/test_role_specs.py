"""Every role declares each input in defaults/main.yml and types it in
meta/argument_specs.yml, and the two lists agree (STYLE.md rule 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import COLLECTION, REPO

ROLE_DIRS = sorted(
    p for p in [*(COLLECTION / "roles").glob("*"), *(REPO / "roles").glob("*")] if p.is_dir()
)


def load(path: Path) -> dict[str, object]:
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


def test_there_are_roles_to_check() -> None:
    assert ROLE_DIRS, "no roles found: the test would check nothing"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_defaults_and_argument_specs_agree(role: Path) -> None:
    defaults = load(role / "defaults" / "main.yml")
    specs = load(role / "meta" / "argument_specs.yml").get("argument_specs", {})
    assert isinstance(specs, dict) and "main" in specs, f"{role.name}: no main argument spec"
    options: dict[str, dict[str, object]] = specs["main"].get("options", {})  # type: ignore[index]
    required = {k for k, v in options.items() if v.get("required")}
    assert set(defaults) == set(options) - required, (
        f"{role.name}: only in defaults: {sorted(set(defaults) - set(options))}; "
        f"only in argument_specs: {sorted(set(options) - required - set(defaults))}"
    )
    for name, option in options.items():
        assert option.get("type"), f"{role.name}: {name} has no type"
        assert option.get("description"), f"{role.name}: {name} has no description"
        assert name.startswith(f"{role.name}_"), f"{role.name}: {name} lacks the role prefix"
