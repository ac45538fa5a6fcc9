# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only probes' check-mode option (health_check, flag_evaluation), written once;
module_utils/probe_check_mode.py is its argument spec and behaviour."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  skip_in_check_mode:
    description:
      - Do not poll in check mode, and say C(skipped). Nothing was changed, so the service
        was not really restarted nor the flag really turned off; there is nothing to wait for.
    type: bool
    default: true
"""
