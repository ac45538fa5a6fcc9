# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which of the named variables were given as extra vars, but empty."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: blank_extra_vars
short_description: The named variables that were given as extra vars with an empty value
version_added: "0.2.0"
description:
  - Returns, of the variable names given as terms, those passed as extra vars (C(-e), an
    C(@file), AWX extra vars) with an empty value (C(""), only blanks, C(null), an empty list).
  - A role default and a variable left out cannot be told apart from an empty extra var in a
    template (C(-e release_target=) with an unset shell variable gives C("")), so the roles
    ask here to refuse a target that was given empty instead of silently picking the default.
options:
  _terms:
    description: Variable names.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse an empty named target
  ansible.builtin.assert:
    that: query('sre.rollback.blank_extra_vars', 'release_target') | length == 0
    fail_msg: release_target was given empty; leave it out to pick the last stable release.
"""

RETURN = r"""
_raw:
  description: The names, of those given, that were given as empty extra vars.
  type: list
  elements: str
"""

from typing import Any

from ansible.plugins.lookup import LookupBase
from ansible.utils.vars import load_extra_vars

from ansible_collections.sre.rollback.plugins.plugin_utils.inputs import blank_names


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(
        self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Any]:
        # Parsed once per run in the main process (VariableManager) and cached by Ansible.
        return blank_names([str(term) for term in terms], load_extra_vars(self._loader))
