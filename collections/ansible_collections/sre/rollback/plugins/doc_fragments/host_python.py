# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Python floor of every module that runs on a managed host (tests/config.yml holds
the same floor for ansible-test; meta/runtime.yml says it to users)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
requirements:
  - Python 3.11 or newer on the managed host (the modules and their module_utils use 3.11's
    standard library, for example C(datetime.UTC)).
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the managed host, a POSIX system with Python 3.11 or newer.
"""
