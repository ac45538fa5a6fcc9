"""db_migration: adapters, plans and refusals, and real downgrades with the demo app's
Alembic migrations on SQLite (run by Debian's /usr/bin/python3, which has Alembic)."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sre.rollback.plugins.module_utils import db_migrations as mg
from ansible_collections.sre.rollback.plugins.modules import db_migration as mod
from tests.conftest import COLLECTION, REPO

FILES = REPO / "roles" / "demo_app" / "files"
SYSTEM_PYTHON = "/usr/bin/python3"
LAYERS = {
    "v1.2.2-stable": ["src"],
    "v1.2.3-stable": ["src", "changes/v1.2.3-stable"],
    "v1.3.0": ["src", "changes/v1.2.3-stable", "changes/v1.3.0"],
}


def system_python_has_alembic() -> bool:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import alembic"], capture_output=True)
    return probe.returncode == 0


needs_alembic = pytest.mark.skipif(
    not os.path.exists(SYSTEM_PYTHON) or not system_python_has_alembic(),
    reason="needs /usr/bin/python3 with python3-alembic",
)


class Failed(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["msg"])
        self.result = result


class FakeModule:
    def __init__(self, check_mode: bool = False) -> None:
        self.check_mode = check_mode

    def fail_json(self, **result: Any) -> None:
        raise Failed(result)


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each release's tree, as make-repo layers it (src, then each tag's changes)."""
    root = tmp_path_factory.mktemp("releases")
    trees = {}
    for tag, layers in LAYERS.items():
        target = root / tag
        for layer in layers:
            shutil.copytree(
                FILES / layer, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*")
            )
        trees[tag] = target
    return trees


def params(code_dir: Path, **over: Any) -> dict[str, Any]:
    p = {
        "state": "planned",
        "tool": "alembic",
        "commands": {},
        "code_dir": str(code_dir),
        "target": "",
        "from_revision": "",
        "run_as": "",
        "environment": {},
        "dialect": "sqlite",
        "sql_preview": False,
        "allow_irreversible": False,
        "backup_verified": False,
        "backup_name": "",
        "releases_dir": "",
        "timeout": 120,
    }
    p.update(over)
    return p


def plan_from(code_dir: Path, current: str, target: str, **over: Any) -> dict[str, Any]:
    p = params(code_dir, target=target, from_revision=current, **over)
    return mod.make_plan(p, mg.adapter_for(p["tool"], p["commands"]), executing=False)


# --- the code's migrations ------------------------------------------------------------------


def test_demo_migrations_in_order_with_the_irreversible_one(releases: dict[str, Path]) -> None:
    adapter = mg.adapter_for("alembic", {})
    found = mg.list_migrations(adapter, str(releases["v1.3.0"]))
    assert [m.revision for m in found] == [
        "20240101120000",
        "20240101120100",
        "20240115090000",
        "20240115093000",
        "20240201100000",
    ]
    assert [m.revision for m in found if m.irreversible] == ["20240115093000"]
    assert found[-1].description.startswith("items get a currency")
    assert found[-1].down_revision == "20240115093000"


def test_one_step_down_plan(releases: dict[str, Path]) -> None:
    plan = plan_from(releases["v1.3.0"], "20240201100000", "20240115093000")
    assert plan["direction"] == "down" and plan["known"]
    assert [m["revision"] for m in plan["path"]] == ["20240201100000"]
    assert plan["irreversible"] == [] and plan["refusals"] == []
    assert plan["commands"] == ["alembic downgrade 20240115093000"]


def test_irreversible_in_range_is_refused_unless_allowed_with_a_verified_backup(
    releases: dict[str, Path],
) -> None:
    refused = plan_from(releases["v1.3.0"], "20240201100000", "20240115090000")
    assert refused["irreversible"] == ["20240115093000"]
    assert (
        "Irreversible migration 20240115093000 (drop the legacy coupons table)"
        in (refused["refusals"][0])
    )
    allowed = plan_from(
        releases["v1.3.0"], "20240201100000", "20240115090000", allow_irreversible=True
    )
    assert allowed["refusals"] == [], "planning: the pre-rollback backup comes next"
    p = params(
        releases["v1.3.0"], target="20240115090000", allow_irreversible=True, from_revision=""
    )
    adapter = mg.adapter_for("alembic", {"current": "echo 20240201100000"})
    executing = mod.make_plan(p, adapter, executing=True)
    assert "only after a verified backup" in executing["refusals"][0]
    p["backup_verified"] = True
    assert mod.make_plan(p, adapter, executing=True)["refusals"] == []


def test_database_ahead_of_the_code_is_refused_naming_the_code_that_knows_it(
    releases: dict[str, Path],
) -> None:
    plan = plan_from(
        releases["v1.2.3-stable"],
        "20240201100000",
        "20240115093000",
        releases_dir=str(releases["v1.3.0"].parent),
    )
    assert not plan["known"] and plan["direction"] == "unknown"
    (message,) = plan["refusals"]
    assert "ahead of the code" in message and str(releases["v1.3.0"]) in message


def test_upward_and_unknown_targets_are_refused(releases: dict[str, Path]) -> None:
    up = plan_from(releases["v1.3.0"], "20240115090000", "20240201100000")
    assert "only migrates down" in up["refusals"][0]
    unknown = plan_from(releases["v1.3.0"], "20240201100000", "20230101000000")
    assert "is not a migration of the code" in unknown["refusals"][0]


def test_target_equal_to_current_changes_nothing(releases: dict[str, Path]) -> None:
    p = params(releases["v1.3.0"], target="20240201100000", state="downgraded")
    adapter = mg.adapter_for("alembic", {"current": "echo 20240201100000"})
    result = mod.downgrade(FakeModule(), p, adapter)  # type: ignore[arg-type]
    assert result["changed"] is False and result["commands"] == []


# --- SQL preview (Alembic offline mode, rendered by the host's python) ---------------------


@needs_alembic
def test_alembic_sql_preview_of_the_demo_downgrade(releases: dict[str, Path]) -> None:
    script = (
        "import json, sys\n"
        "from ansible_collections.sre.rollback.plugins.module_utils import db_migrations as mg\n"
        "print(json.dumps(mg.alembic_offline_sql(sys.argv[1], 'postgresql', "
        "[('20240201100000', '20240115093000'), ('20240115093000', '20240115090000')])))\n"
    )
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", script, str(releases["v1.3.0"])],
        env=dict(os.environ, PYTHONPATH=str(COLLECTION.parents[2])),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    first, second = json.loads(out)
    assert "ALTER TABLE items DROP COLUMN currency" in first["sql"]
    assert "UPDATE alembic_version SET version_num='20240115093000'" in first["sql"]
    assert second["sql"] is None and "irreversible" in second["error"]


# --- real downgrades with the demo app's CLI (SQLite) ----------------------------------------


@pytest.fixture
def demo_db(releases: dict[str, Path], tmp_path: Path) -> dict[str, Any]:
    config = tmp_path / "config"
    config.mkdir()
    db = tmp_path / "app.db"
    (config / "app.ini").write_text(
        f"[app]\nenvironment = unit\n[database]\nurl = sqlite:///{db}\n"
        f"[storage]\nuploads_dir = {tmp_path / 'uploads'}\n"
    )
    (config / "flags.json").write_text(json.dumps({"flags": {}}))
    subprocess.run(
        [SYSTEM_PYTHON, "bin/demo-app", "migrate", "upgrade", "head", "--config-dir", str(config)],
        cwd=releases["v1.3.0"],
        check=True,
        capture_output=True,
    )
    commands = {
        "current": f"{SYSTEM_PYTHON} bin/demo-app migrate current --json --config-dir {config}",
        "current_json_key": "current",
        "downgrade": (
            f"{SYSTEM_PYTHON} bin/demo-app migrate downgrade {{target}} --config-dir {config}"
        ),
    }
    return {"db": db, "commands": commands}


def columns(db: Path, table: str) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
    finally:
        con.close()


@needs_alembic
def test_demo_downgrade_one_step_with_the_newer_code(
    releases: dict[str, Path], demo_db: dict[str, Any]
) -> None:
    assert "currency" in columns(demo_db["db"], "items")
    p = params(
        releases["v1.3.0"],
        state="downgraded",
        target="20240115093000",
        commands=demo_db["commands"],
    )
    result = mod.downgrade(FakeModule(), p, mg.adapter_for("alembic", p["commands"]))  # type: ignore[arg-type]
    assert result["changed"] and result["after"] == "20240115093000"
    assert result["diff"]["before"] == "revision: 20240201100000\n"
    assert "currency" not in columns(demo_db["db"], "items")
    again = mod.downgrade(FakeModule(), p, mg.adapter_for("alembic", p["commands"]))  # type: ignore[arg-type]
    assert again["changed"] is False


@needs_alembic
def test_demo_tool_failure_is_reported_with_where_the_database_stands(
    releases: dict[str, Path], demo_db: dict[str, Any]
) -> None:
    p = params(
        releases["v1.3.0"],
        state="downgraded",
        target="20240115090000",
        commands=demo_db["commands"],
        allow_irreversible=True,
        backup_verified=True,
    )
    with pytest.raises(Failed) as failure:
        mod.downgrade(FakeModule(), p, mg.adapter_for("alembic", p["commands"]))  # type: ignore[arg-type]
    assert "the migration tool failed" in str(failure.value)
    assert failure.value.result["after"] == "20240201100000", "the demo refuses up front"


@needs_alembic
def test_check_mode_runs_nothing(releases: dict[str, Path], demo_db: dict[str, Any]) -> None:
    p = params(releases["v1.3.0"], state="downgraded", target="base", commands=demo_db["commands"])
    with pytest.raises(Failed, match="Irreversible"):
        mod.downgrade(FakeModule(check_mode=True), p, mg.adapter_for("alembic", p["commands"]))  # type: ignore[arg-type]
    p["target"] = "20240115093000"
    planned = mod.downgrade(
        FakeModule(check_mode=True), p, mg.adapter_for("alembic", p["commands"])
    )  # type: ignore[arg-type]
    assert planned["changed"] and "currency" in columns(demo_db["db"], "items")


# --- other tools through command templates -----------------------------------------------------

FAKE_TOOL = """#!/bin/sh
# A stand-in migration tool: the database is a file holding the applied versions.
state="$(dirname "$0")/applied"
case "$1" in
  current) tail -n 1 "$state" 2>/dev/null | sed 's/^/Current Version: /' ;;
  down) echo "down $(tail -n 1 "$state")" >> "$(dirname "$0")/log"; sed -i '$d' "$state" ;;
esac
"""


@pytest.fixture
def knex_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "migrations").mkdir(parents=True)
    for version, body in (
        ("20240101120000_create", "exports.up = () => {};"),
        ("20240115090000_note", "exports.up = () => {};"),
        ("20240115093000_drop_coupons", "// irreversible\nexports.down = () => { throw 1 };"),
        ("20240201100000_currency", "exports.up = () => {};"),
    ):
        (app / "migrations" / f"{version}.js").write_text(body)
    (app / "tool").write_text(FAKE_TOOL)
    (app / "tool").chmod(0o755)
    (app / "applied").write_text("20240101120000\n20240115090000\n20240115093000\n20240201100000\n")
    return app


def test_knex_preset_migrates_down_one_step_at_a_time(knex_app: Path) -> None:
    commands = {"current": "./tool current", "downgrade": "./tool down"}
    p = params(
        knex_app,
        tool="knex",
        state="downgraded",
        target="20240115090000",
        commands=commands,
        allow_irreversible=True,
        backup_verified=True,
    )
    result = mod.downgrade(FakeModule(), p, mg.adapter_for("knex", commands))  # type: ignore[arg-type]
    assert result["after"] == "20240115090000"
    assert result["irreversible"] == ["20240115093000"]
    assert (knex_app / "log").read_text().split("\n")[:2] == [
        "down 20240201100000",
        "down 20240115093000",
    ]


def test_rails_and_flyway_presets_find_irreversible_migrations(tmp_path: Path) -> None:
    rails = tmp_path / "rails" / "db" / "migrate"
    rails.mkdir(parents=True)
    (rails / "20240101120000_create_items.rb").write_text("def change; end")
    (rails / "20240115093000_drop_coupons.rb").write_text(
        "def down\n  raise ActiveRecord::IrreversibleMigration\nend"
    )
    found = mg.list_migrations(mg.adapter_for("rails", {}), str(tmp_path / "rails"))
    assert [(m.revision, m.irreversible) for m in found] == [
        ("20240101120000", False),
        ("20240115093000", True),
    ]
    plan = mg.plan(found, "20240115093000", "base")
    assert mg.downgrade_commands(mg.adapter_for("rails", {}), plan) == [
        "bin/rails db:migrate VERSION=0"
    ]
    flyway = tmp_path / "flyway" / "sql"
    flyway.mkdir(parents=True)
    for name in ("V1__init.sql", "V2__coupons.sql", "V10__currency.sql", "U10__currency.sql"):
        (flyway / name).write_text("--")
    found = mg.list_migrations(mg.adapter_for("flyway", {}), str(tmp_path / "flyway"))
    assert [(m.revision, m.irreversible) for m in found] == [
        ("1", True),
        ("2", True),
        ("10", False),
    ]
    assert mg.parse_current(mg.adapter_for("flyway", {}), '{"schemaVersion": "10"}') == "10"
    assert mg.parse_current(mg.adapter_for("flyway", {}), '{"schemaVersion": null}') == "base"


def test_templates_quote_their_values() -> None:
    assert (
        mg.render("tool down --to {target}", target="1; rm -rf /") == "tool down --to '1; rm -rf /'"
    )
    with pytest.raises(mg.MigrationError, match="unknown field"):
        mg.render("tool {nope}", target="1")


def test_module_never_prints_the_tool_environment(knex_app: Path) -> None:
    args = params(
        knex_app,
        tool="knex",
        commands={"current": "./tool current"},
        environment={"DATABASE_PASSWORD": "s3cr3t-pw"},
        target="20240115090000",
    )
    out = io.StringIO()
    with patch_module_args(args), redirect_stdout(out), pytest.raises(SystemExit):
        mod.main()
    printed = json.loads(out.getvalue())
    assert printed["current"] == "20240201100000"
    assert "s3cr3t-pw" not in out.getvalue()
    assert "Irreversible migration 20240115093000" in printed["refusals"][0]
