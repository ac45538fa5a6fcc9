# GPL-3.0-or-later
"""Options of the modules that take the per-application lock shared by deploy and every
rollback level (module_utils/applock.py) and record who changed what."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  run_id:
    description: Id of the run (the module's records, the lock owner).
    type: str
  user:
    description: Who runs this (the module's records, the lock owner).
    type: str
  controller:
    description: C(host:pid) of the controller, for the lock owner record.
    type: str
  lock_root:
    description: Application root that holds the lock (C(.rollback.lock)); empty for no lock.
    type: path
  break_lock:
    description: Break a lock held by another run (a crashed run's stale lock).
    type: bool
    default: false
"""
