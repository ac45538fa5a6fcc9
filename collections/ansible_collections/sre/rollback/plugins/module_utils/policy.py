# GPL-3.0-or-later
"""The policy moved to plugins/plugin_utils/policy/ (controller-only code, split by job:
shape, units, conditions, model, reader, decision). This name stays for imports written
before the move; new code imports it from
``ansible_collections.sre.rollback.plugins.plugin_utils.policy``."""

from __future__ import annotations

from ansible_collections.sre.rollback.plugins.plugin_utils.policy import *  # noqa: F403
from ansible_collections.sre.rollback.plugins.plugin_utils.policy import __all__ as __all__
