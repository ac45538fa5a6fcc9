# GPL-3.0-or-later
"""Options of the one-call rollouts (release state=rolled_out, config_revision): the
service restart and the health gate, the same in both (module_utils/rollout.py)."""

from __future__ import annotations

import textwrap

from ansible_collections.sre.rollback.plugins.doc_fragments.health_gate import GATE_OPTIONS


class ModuleDocFragment:
    DOCUMENTATION = (
        r"""
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
"""
        + textwrap.indent(GATE_OPTIONS.strip("\n"), "      ")
        + "\n"
    )
