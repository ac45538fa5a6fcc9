"""rollbackctl: run the sre.rollback runbook from CI pipelines and terminals."""

__version__ = "0.1.0"
