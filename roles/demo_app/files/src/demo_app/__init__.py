"""demo-app: the small web service that the rollback runbook acts on."""

from __future__ import annotations

from pathlib import Path

APP_ROOT = Path(__file__).resolve().parent.parent


def read_version(root: Path = APP_ROOT) -> str:
    """The release's version, from the VERSION file at the top of the checkout."""
    return (root / "VERSION").read_text(encoding="utf-8").strip()
