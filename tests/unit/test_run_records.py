"""The run record has one writer (plugin_utils/run_records.py) and a published schema
(plugin_utils/run_record.schema.json); the wrapper adds to records only through
run_records.add."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ansible_collections.sre.rollback.plugins.plugin_utils import run_records
from rollbackctl import records
from rollbackctl.progress import RunState
from tests.conftest import COLLECTION, REPO

SOURCES = [
    *(REPO / "wrapper" / "rollbackctl").rglob("*.py"),
    *(COLLECTION / "plugins").rglob("*.py"),
]


def test_one_writer_of_run_records() -> None:
    """grep: only run_records writes a record (it derives the computed sections with
    finalize first); rollback.py and emergency.py set no section of a record themselves."""
    readers = {"run_metrics.py", "run_records.py", "report.py"}  # report renders, never writes
    writers = [p.name for p in SOURCES if "finalize(" in p.read_text() and p.name not in readers]
    assert writers == []
    for name in ("rollback.py", "emergency.py"):
        text = (REPO / "wrapper" / "rollbackctl" / name).read_text()
        assert not re.search(r"record\[\"[a-z_]+\"\]\s*=|json\.dump\(", text), name


def test_the_schema_is_published_with_the_collection() -> None:
    schema = json.loads(run_records.SCHEMA_FILE.read_text())
    assert run_records.SCHEMA_FILE.parent == COLLECTION / "plugins" / "plugin_utils"
    assert schema["properties"]["schema"] == {"const": run_records.SCHEMA_VERSION}
    assert schema["$schema"].endswith("2020-12/schema")


def test_a_record_the_callback_never_wrote_has_the_same_shape(tmp_path: Path) -> None:
    state = RunState()
    start = {"host": "h2", "task_tags": ["phase_plan"]}
    state.handle({"event": "runner_on_start", "event_data": start})
    record = records.fallback("r-1", Path("rollback-l3.yml"), 3, state, "failed", "why")
    path = tmp_path / "runs" / "r-1.json"
    records.add(path, record, notes=["after"])
    written = json.loads(path.read_text())
    assert run_records.problems(written) == []
    assert written["status"] == "failed" and written["notes"] == ["why", "after"]
    assert written["level_name"] == "code" and "plan" in written["hosts"]["h2"]["phases"]


def test_add_refuses_a_section_the_schema_does_not_declare(tmp_path: Path) -> None:
    record = run_records.new_record("deploy.yml", None, "r-2")
    with pytest.raises(ValueError, match="declare them in the schema first"):
        run_records.add(tmp_path / "r-2.json", record, surprise={"x": 1})
    assert not (tmp_path / "r-2.json").exists()


def test_the_schema_finds_a_wrong_record() -> None:
    record = run_records.new_record("rollback-l3.yml", 3, "r-3")
    record["status"] = "half done"
    record["hosts"] = {"h2": {"status": "ok"}}
    found = run_records.problems(record)
    assert any(line.startswith("status:") for line in found)
    assert any("'phases' is a required property" in line for line in found)
