#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the role_inputs action (it runs on the controller only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: role_inputs
short_description: Check a role's inputs in one task, its argument spec and its own checks
version_added: "0.1.0"
description:
  - Validates the role's variables as the task sees them against the role's argument spec
    for I(entry_point) (C(meta/argument_specs.yml), the same validator as
    M(ansible.builtin.validate_argument_spec)), and fails with every problem at once, the
    spec's and the ones the role computed in I(problems), ending with C(Nothing was changed.)
  - One controller task per host instead of two (Ansible's own spec validation, then an assert
    task); the playbook imports the role with C(rolespec_validate=false) so that the spec
    is not checked twice.
  - Runs on the controller only; it must run inside a role.
author:
  - SRE rollback team (@sre-rollback)
attributes:
  check_mode:
    support: full
    description: Nothing is changed; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
  action:
    support: full
    description: Action plugin only, no module runs on the host.
  platform:
    support: full
    platforms: all
    description: Runs on the controller, whatever the host's platform.
options:
  entry_point:
    description:
      - The argument spec to validate against. Default the role's entry point
        (C(tasks_from) of the import, else C(main)), as Ansible picks it.
    type: str
  problems:
    description:
      - Messages of the role's own checks across inputs; any message fails the task.
    type: list
    elements: str
    default: []
  what:
    description: Names the inputs in the message (C(Bad <what> inputs:)). Default the role's name.
    type: str
  then:
    description:
      - One action or module and its options, run in the same task once the inputs are good
        (same host, connection, check mode and environment); the task's result is then that
        action's, with I(inputs) added. Bad inputs fail the task before it runs, so the host
        is not contacted. Saves a task per host where a role's first task follows its check
        (the release plan's inspection).
    type: dict
  values:
    description:
      - Values the role works out on each host from its inputs, returned as I(values) in the
        result (also with I(then)) when the inputs are good, so that a task that runs once
        for all hosts can read them from C(hostvars) without a C(set_fact) task per host
        (the release plan says whether the host rolls out in one call or step by step).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Check the release inputs
  sre.rollback.role_inputs:
    what: release
    problems: >-
      {{ ([] if release_app_root is abs else ['release_app_root must be an absolute path.'])
         + ([] if release_keep | int >= 1 else ['release_keep must be at least 1.']) }}

- name: Check the release inputs, then inspect the releases on each host
  sre.rollback.role_inputs:
    what: release
    then:
      sre.rollback.release:
        app_root: "{{ release_app_root }}"
    values:
      step_by_step: "{{ release_before_switch_tasks | length > 0 }}"
  register: releases
"""

RETURN = r"""
argument_errors:
  description: What the argument spec found wrong.
  returned: without then, or when the inputs are bad
  type: list
  elements: str
problems:
  description: The role's own problems, as given.
  returned: without then, or when the inputs are bad
  type: list
  elements: str
inputs:
  description: With I(then), the inputs' verdict; the rest of the result is the action's.
  returned: when then ran
  type: str
values:
  description: I(values), as templated on this host.
  returned: when values are given and the inputs are good
  type: dict
"""
