# GPL-3.0-or-later
"""Action plugin of ``sre.rollback.feature_flag``: arguments validated on the controller,
the work (module_utils/flag_ops.py) run on the host without AnsibleModule; the usual
module path whenever that is not possible. See plugins/plugin_utils/stdlib_module.py."""

from __future__ import annotations

from ansible_collections.sre.rollback.plugins.plugin_utils.stdlib_module import (
    StdlibModuleAction,
)


class ActionModule(StdlibModuleAction):
    OPS = "flag_ops"
