# GPL-3.0-or-later
"""Options of the one-call rollouts (release state=rolled_out, config_revision): the
service restart and the health gate, the same in both (module_utils/rollout.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  service:
    description:
      - How the service is restarted after the change (C(sre.rollback.release)
        C(state=rolled_out), C(sre.rollback.config_revision) C(state=restored) or
        C(applied)), in the same call and under the same lock, with the semantics of the
        C(sre.rollback.service) role for C(service_state=restarted).
    type: dict
    suboptions:
      manager:
        description:
          - C(systemd) (C(systemctl restart)) or C(command) (stop when the status command
            says it runs, then start).
        type: str
        choices: [systemd, command]
        default: systemd
      name:
        description: Service name (the systemd unit).
        type: str
      start_command:
        description: Start command (command manager).
        type: str
        default: ""
      stop_command:
        description: Stop command (command manager).
        type: str
        default: ""
      status_command:
        description: Status command, exit 0 when running (command manager).
        type: str
        default: ""
      command_timeout:
        description: Seconds a start, stop or status command may take (command manager).
        type: int
        default: 60
  health:
    description:
      - The health gate after the restart (the rules of M(sre.rollback.health_check)).
        When the host is not healthy before the deadline, what was running is put back
        (the release it had, the config it had), restarted, the target is recorded as
        bad, and the call fails naming the cause. Omit it for no gate.
    type: dict
    suboptions:
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
        description: Seconds after which the gate fails and what was running is put back.
        type: float
        default: 60
      json_expect:
        description: Keys of the JSON body and the values they must have.
        type: dict
        default: {}
      observe:
        description:
          - Seconds the gate watches at least before it passes; with a systemd service, a
            restart of the service or a new main process fails it at once (a crash loop
            answers between its deaths).
        type: float
        default: 0.0
      unit:
        description: The systemd unit to watch; default the restarted service's, with C(systemd).
        type: str
"""
