# GPL-3.0-or-later
"""The ``action`` attribute of the modules whose action plugin runs their work on the host
without AnsibleModule (plugin_utils/stdlib_module.py): release, config_revision,
feature_flag."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  action:
    support: full
    description: >-
      The action plugin of the same name checks the arguments on the controller and, when the
      connection pipelines, runs the work on the host without AnsibleModule (about 0.2 s of CPU
      less per host and call); otherwise, and with no_log options set, this module runs as usual.
"""
