#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Take, release or read the per-application lock (module_utils applock) on its own."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: app_lock
short_description: Take, release or read the per-application lock that deploys and every rollback level share
version_added: "0.1.0"
description:
  - The same lock file as C(sre.rollback.release) (C(<app_root>/.rollback.lock), module_utils
    C(applock)), for steps that hold the application without switching a release - the
    database level locks every application host while it works on the database.
  - C(state=locked) takes the lock for I(run_id) (re-entrant for that run), fails naming the
    owner when another run holds it, and breaks a stale lock only with I(break_lock).
    C(state=unlocked) drops it when this run holds it and never another run's lock.
    C(state=inspect) reports the holder.
  - Taking or dropping the lock is bookkeeping, not a change of the host - never C(changed).
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
attributes:
  check_mode:
    support: full
    description: Reports whether the lock could be taken; takes and drops nothing.
  diff_mode:
    support: none
    description: No diff, the lock file is internal state; the result shows it (I(lock)).
options:
  app_root:
    description: Root directory of the application (where deploys keep the lock).
    type: path
    required: true
  state:
    description: What to do.
    type: str
    choices: [locked, unlocked, inspect]
    default: inspect
  run_id:
    description: Id of the run that takes or drops the lock.
    type: str
  user:
    description: Who runs this (written to the lock).
    type: str
  controller:
    description: C(<host>:<pid>) of the controller, for the lock record.
    type: str
  action:
    description: What the run does (written to the lock).
    type: str
    default: rollback
  break_lock:
    description: Break a lock held by another run (only for a crashed run's stale lock).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Lock the application for this run
  sre.rollback.app_lock:
    app_root: /opt/demo-app
    state: locked
    run_id: "{{ rollback_run_id }}"
    action: rollback-l4

- name: Release it
  sre.rollback.app_lock:
    app_root: /opt/demo-app
    state: unlocked
    run_id: "{{ rollback_run_id }}"
"""

RETURN = r"""
lock:
  description: The owner record of the lock after the call (null when free).
  returned: always
  type: dict
acquired:
  description: Whether this run holds the lock (state=locked; in check mode, whether it could).
  returned: when state=locked
  type: bool
broken:
  description: The owner record of a stale lock that was broken.
  returned: when state=locked
  type: dict
released:
  description: Whether the lock of this run was dropped.
  returned: when state=unlocked
  type: bool
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils import applock


def lock(module: AnsibleModule, p: dict[str, Any]) -> dict[str, Any]:
    held = applock.read_owner(p["app_root"])
    if module.check_mode:
        free = held is None or held.get("run_id") == p["run_id"] or p["break_lock"]
        if not free and held is not None:
            module.fail_json(
                msg=f"{p['app_root']} is locked by {applock.describe(held)}; nothing was changed",
                lock=held,
            )
        return {"changed": False, "acquired": True, "lock": held, "broken": None}
    outcome = applock.acquire(
        p["app_root"],
        applock.owner(p["run_id"], p.get("user"), p.get("controller"), p["action"]),
        p["break_lock"],
    )
    if not outcome["acquired"]:
        module.fail_json(msg=outcome["msg"], lock=outcome["owner"])
    return {
        "changed": False,
        "acquired": True,
        "lock": outcome["owner"],
        "broken": outcome["broken"],
    }


def unlock(module: AnsibleModule, p: dict[str, Any]) -> dict[str, Any]:
    held = applock.read_owner(p["app_root"])
    if module.check_mode or not held or held.get("run_id") != p["run_id"]:
        return {"changed": False, "released": False, "lock": held}
    applock.release(p["app_root"], p["run_id"])
    return {"changed": False, "released": True, "lock": None}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "app_root": {"type": "path", "required": True},
            "state": {
                "type": "str",
                "default": "inspect",
                "choices": ["locked", "unlocked", "inspect"],
            },
            "run_id": {"type": "str"},
            "user": {"type": "str"},
            "controller": {"type": "str"},
            "action": {"type": "str", "default": "rollback"},
            "break_lock": {"type": "bool", "default": False},
        },
        required_if=[("state", "locked", ["run_id"]), ("state", "unlocked", ["run_id"])],
        supports_check_mode=True,
    )
    p = module.params
    if not os.path.isdir(p["app_root"]):
        module.fail_json(msg=f"{p['app_root']} does not exist on this host: wrong app_root?")
    if p["state"] == "locked":
        result = lock(module, p)
    elif p["state"] == "unlocked":
        result = unlock(module, p)
    else:
        result = {"changed": False, "lock": applock.read_owner(p["app_root"])}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
