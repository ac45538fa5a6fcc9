"""The report's incident picture (rollbackctl.timeline_svg): an inline SVG that parses as
XML, with the incident's moments, one lane per level and host with its phases, and the
error-ratio curve with the trigger's threshold where the record has samples."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # our own output, parsed back
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ansible_collections.sre.rollback.plugins.plugin_utils import run_records
from rollbackctl.cli import main
from rollbackctl.commands import report as report_command
from rollbackctl.report import render_report
from rollbackctl.timeline_svg import incident_svg
from tests.unit.test_report import make_record, write

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag == f"{SVG}svg"
    return root


def phases_of(root: ET.Element) -> list[tuple[str, str]]:
    """(lane label of the bar's row, phase) of every bar, from the bar's tooltip."""
    bars = root.iter(f"{SVG}rect")
    return [
        (" ".join(title.split()[:2]), bar.attrib["data-phase"])
        for bar in bars
        if (title := bar.findtext(f"{SVG}title") or "")
    ]


def with_observations(record: dict[str, Any]) -> dict[str, Any]:
    record["observations"] = {
        "error_ratio": [
            {"at": "2026-11-29T10:05:00Z", "value": 0.25},
            {"at": "2026-11-29T10:14:00Z", "value": 0.27},
            {"at": "2026-11-29T10:22:00Z", "value": 0.0},
        ],
        "error_ratio_trigger": 0.1,
    }
    return record


def test_the_picture_has_the_moments_and_each_hosts_phases() -> None:
    record = make_record(given={**make_record()["given"], "decided": "2026-11-29T10:12:00Z"})
    record["validation"] = {"status": "ok", "at": "2026-11-29T10:22:00Z"}
    root = parsed(incident_svg([record]))
    texts = [text.text for text in root.iter(f"{SVG}text")]
    for moment in ("incident started", "detected", "decided", "rollback started", "verified"):
        assert moment in texts
    assert "completed" not in texts, "the run failed: never completed"
    assert set(phases_of(root)) == {
        ("L3 h2", "plan"), ("L3 h2", "switch"), ("L3 h2", "health"),
        ("L3 h3", "plan"), ("L3 h3", "switch"), ("L3 h3", "health"), ("L3 h3", "revert"),
    }  # fmt: skip
    failed = [r for r in root.iter(f"{SVG}rect") if "failed" in (r.findtext(f"{SVG}title") or "")]
    assert [r.attrib["data-phase"] for r in failed] == ["health"]
    assert root.find(f"{SVG}polyline") is None, "no samples: no curve"


def test_the_error_ratio_curve_and_the_trigger_line() -> None:
    root = parsed(incident_svg([with_observations(make_record())]))
    (curve,) = root.iter(f"{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in curve.attrib["points"].split()]
    assert len(points) == 3
    assert points[0][0] < points[1][0] < points[2][0], "in time order"
    assert points[2][1] > points[1][1], "0 % is drawn lower than 27 %"
    threshold = next(line for line in root.iter(f"{SVG}line") if line.get("class") == "threshold")
    assert points[1][1] < float(threshold.attrib["y1"]) < points[2][1]
    assert "trigger 10%" in [text.text for text in root.iter(f"{SVG}text")]


def test_the_record_schema_declares_the_observations() -> None:
    """The samples go into a record through its one writer (run_records.add, as scripts/demo
    does), which takes only sections the published schema declares."""
    record = with_observations(make_record())
    assert not [p for p in run_records.problems(record) if "observations" in p]
    record["observations"]["error_ratio"].append({"at": "2026-11-29T10:23:00Z"})
    assert "observations/error_ratio/3: 'value' is a required property" in (
        run_records.problems(record)
    )


def test_markdown_and_html_reports_carry_the_picture(tmp_path: Path) -> None:
    text = render_report(with_observations(make_record()))
    start, end = text.index("<svg"), text.index("</svg>") + len("</svg>")
    block = text[start:end]
    assert "\n\n" not in block, "one HTML block for a Markdown parser"
    parsed(block)
    assert text.index("### Timeline") < start < text.index("### Impact")
    page = render_report(with_observations(make_record()), "html")
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    parsed(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])


def test_the_report_command_draws_the_levels_an_emergency_ran(tmp_path: Path) -> None:
    level3 = make_record("20261129T101500Z-l3-aaa")
    level4 = make_record(
        "20261129T102500Z-l4-bbb",
        level=4,
        started="2026-11-29T10:25:00Z",
        escalation=[
            {
                "level": 3,
                "outcome": "not verified",
                "run_id": "20261129T101500Z-l3-aaa",
                "note": "health failed",
            },
            {"level": 4, "outcome": "verified", "run_id": "20261129T102500Z-l4-bbb", "note": ""},
        ],
    )
    level4["hosts"]["h2"]["phases"] = {
        "restore": {"status": "ok", "started": "2026-11-29T10:26:00Z", "duration": 30.0}
    }
    write(tmp_path, level3)
    write(tmp_path, level4)
    result = CliRunner().invoke(
        main, ["report", "20261129T102500Z-l4", "--records", str(tmp_path), "-f", "html"]
    )
    assert result.exit_code == 0, result.output
    page = result.stdout
    root = parsed(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])
    lanes = {lane for lane, _phase in phases_of(root)}
    assert {"L3 h2", "L3 h3", "L4 h2", "L4 h3"} <= lanes
    assert ("L4 h2", "restore") in phases_of(root)


def test_on_a_terminal_the_report_says_how_to_draw_the_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    write(runs, with_observations(make_record()))
    hint = "- Picture: `rollbackctl report 20261129T101500Z-l3-abc123 -f html -o incident.html`"
    runner = CliRunner()
    piped = runner.invoke(main, ["report", "--records", str(runs)])
    assert "<svg" in piped.stdout and hint not in piped.stdout  # a file or a pipe: drawn
    monkeypatch.setattr(report_command, "to_terminal", lambda: True)
    shown = runner.invoke(main, ["report", "--records", str(runs)])
    assert shown.exit_code == 0 and "<svg" not in shown.stdout
    assert hint in shown.stdout and shown.stdout.index(hint) < shown.stdout.index("### Impact")
    forced = runner.invoke(main, ["report", "--records", str(runs), "--picture"])
    assert "<svg" in forced.stdout
    saved = tmp_path / "report.md"
    runner.invoke(main, ["report", "--records", str(runs), "-o", str(saved)])
    assert "<svg" in saved.read_text()  # written to a file: drawn
    runner.invoke(
        main, ["report", "--records", str(runs), "--no-picture", "-f", "html", "-o", str(saved)]
    )
    assert "<svg" in saved.read_text()  # a page always has it
