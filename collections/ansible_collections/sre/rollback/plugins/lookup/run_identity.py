# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's identity, once per run: ``lookup('sre.rollback.run_identity', run_id=...)``."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: run_identity
short_description: The identity of a rollback or deploy run (run id, user, controller process)
version_added: "0.2.0"
description:
  - Returns one mapping, C(run_id), C(user), C(controller) (C(host:pid) of the
    ansible-playbook process) and C(started) (epoch seconds), for a role to set once for all
    hosts (a C(run_once) C(set_fact)).
  - The run id is the given O(run_id), else the C(rollback_run_id) variable, else the one the
    C(sre.rollback.run_record) callback made for this run, else a new unique one (UTC time
    and 48 random bits).
  - The user is C(rollback_user), else AWX's C(awx_user_name), else C($SUDO_USER), else the
    login user.
options:
  run_id:
    description: The role's own run id (for example C(release_run_id)); empty picks as above.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Identify the run once for all hosts
  ansible.builtin.set_fact:
    __release_identity: "{{ lookup('sre.rollback.run_identity', run_id=release_run_id) }}"
  run_once: true
"""

RETURN = r"""
_raw:
  description: One mapping with run_id, user, controller and started.
  type: list
  elements: dict
"""

from typing import Any

from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.sre.rollback.plugins.plugin_utils.run_identity import (
    PLAY_VAR,
    run_identity,
)

NO_RECORD = (
    "The sre.rollback.run_record callback is not enabled: this run writes NO run record. "
    "ansible.cfg enables it only when ansible-playbook runs from the project root; from "
    "elsewhere set ANSIBLE_CONFIG=<project>/ansible.cfg (or "
    "ANSIBLE_CALLBACKS_ENABLED=sre.rollback.run_record), or use rollbackctl."
)


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(
        self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Any]:
        self.set_options(var_options=variables, direct=kwargs)
        if PLAY_VAR not in (variables or {}):
            # The callback hands every play the run id: without it there is no record.
            Display().warning(NO_RECORD)
        return [run_identity(variables or {}, str(self.get_option("run_id") or ""))]
