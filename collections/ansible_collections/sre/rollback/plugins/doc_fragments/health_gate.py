# GPL-3.0-or-later
"""The health gate's options, written once: the options of sre.rollback.health_check, and
the ``health`` suboptions of the one-call rollouts (doc_fragments/rollout.py indents the
same text); module_utils/health.py is the gate itself."""

from __future__ import annotations

GATE_OPTIONS = r"""
  url:
    description: URL polled from the host.
    type: str
    required: true
  status:
    description: HTTP status codes that count as healthy.
    type: list
    elements: int
    default: [200]
  successes:
    description: Consecutive healthy answers needed.
    type: int
    default: 3
  interval:
    description: Seconds between attempts once the URL has answered well.
    type: float
    default: 0.5
  startup_interval:
    description:
      - Seconds between attempts until the first healthy answer (the service is still
        starting), so that a service up in 0.2 s is seen then, not at the next
        I(interval). The successes that confirm it are I(interval) apart.
    type: float
    default: 0.1
  failures:
    description:
      - Once the URL has answered well, this many failed answers in a row fail the gate
        at once instead of at I(deadline) (the runbook's trigger is more than 3
        consecutive failures). C(0) waits for the deadline.
    type: int
    default: 4
  timeout:
    description: Seconds one request may take.
    type: float
    default: 3
  deadline:
    description:
      - Seconds after which the gate fails (in a one-call rollout, what was running is then
        put back).
    type: float
    default: 60
  json_expect:
    description: Keys of the JSON body and the values they must have.
    type: dict
    default: {}
  observe:
    description:
      - Seconds the gate watches at least before it passes, so that a service that dies every
        few seconds is seen dying (with the unit option).
    type: float
    default: 0.0
  unit:
    description:
      - A systemd service to watch while polling; a restart (C(NRestarts) grows), a new main
        process or a failed unit fails the gate at once (C(failure=crashed)).
      - In a one-call rollout the default is the restarted service's unit (with C(systemd)).
    type: str
"""


class ModuleDocFragment:
    DOCUMENTATION = "options:" + GATE_OPTIONS
