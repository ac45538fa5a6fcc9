# GPL-3.0-or-later
"""The module side of the collection's stdlib-only work files (``release_ops``,
``config_ops``, ``flag_ops``): AnsibleModule validates the arguments against the work's
own spec, then ``execute`` runs. The action plugins of the same modules usually run the
work without this (plugin_utils/stdlib_module.py); this is their fallback path."""

from __future__ import annotations

from types import ModuleType

from ansible.module_utils.basic import AnsibleModule


def run(ops: ModuleType) -> None:
    """Run one call of ``ops`` (ARGUMENT_SPEC, REQUIRED_IF, execute) as a module."""
    module = AnsibleModule(
        argument_spec=ops.ARGUMENT_SPEC,
        required_if=ops.REQUIRED_IF,
        supports_check_mode=True,
    )
    failed, result = ops.execute(dict(module.params), module.check_mode)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)
