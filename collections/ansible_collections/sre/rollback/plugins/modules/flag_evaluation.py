#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Level 1's second check: where the application evaluates the flags, they read as wanted."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: flag_evaluation
short_description: Clear the app's caches, then poll an evaluation endpoint until every flag evaluates as wanted
version_added: "0.1.0"
description:
  - First, when asked, makes the application drop its caches (an HTTP request such as
    C(POST /cache/clear), or a command such as C(systemctl reload app)), so that it
    evaluates the new state now. It changes no data, but it is reported as C(changed).
  - Then asks an evaluation endpoint (the application's own, like the demo app's
    C(GET /flags/<name>), or an OFREP endpoint C(POST /ofrep/v1/evaluate/flags/<name>)) from
    the managed host, for every flag, until all of them answer I(expect) in the same round,
    or fails when I(deadline) seconds pass first. One module call, however many rounds.
  - Both ways flag systems say "disabled" count as off, an error code
    (C(FLAG_DISABLED), or C(FLAG_NOT_FOUND) whose details say the flag is disabled) and a
    successful answer with reason C(DISABLED) and the default value, as does a value
    listed in I(off_values).
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
  - sre.rollback.flag_probe
  - sre.rollback.probe_check_mode
attributes:
  check_mode:
    support: full
    description: Skipped in check mode unless I(skip_in_check_mode=false) (nothing was changed to wait for); caches are never cleared in check mode.
  diff_mode:
    support: none
    description: Read-only probe; a cache clear has no before and after to show.
options:
  url:
    description: Evaluation URL; C({flag}) is replaced by each flag's name. Empty to only clear caches.
    type: str
    default: ""
  clear_url:
    description: URL requested on the host before polling, to clear the app's caches (a 2xx answer is expected).
    type: str
  clear_method:
    description: Method of the cache-clear request.
    type: str
    default: POST
  clear_command:
    description: Shell command run on the host before polling, to clear caches (exit 0 expected).
    type: str
  flags:
    description: Flags to evaluate.
    type: list
    elements: str
    required: true
  expect:
    description: The state every flag must evaluate to.
    type: str
    choices: [disabled, enabled]
    default: disabled
"""

EXAMPLES = r"""
- name: Clear the app's caches, then wait until it evaluates new_checkout off
  sre.rollback.flag_evaluation:
    clear_url: http://127.0.0.1:8080/cache/clear
    url: http://127.0.0.1:8080/flags/{flag}
    flags: [new_checkout]

- name: The app evaluates new_checkout off
  sre.rollback.flag_evaluation:
    url: http://127.0.0.1:8080/flags/{flag}
    flags: [new_checkout]
    deadline: 20

- name: An OFREP endpoint evaluates it off
  sre.rollback.flag_evaluation:
    url: http://flagd.internal:8016/ofrep/v1/evaluate/flags/{flag}
    method: POST
    body: {context: {}}
    flags: [new_checkout]
"""

RETURN = r"""
cleared:
  description: How caches were cleared (C(url) and C(status), or C(command) and C(rc)); null when not asked.
  returned: always
  type: dict
ok:
  description: Every flag evaluated as expected within the deadline.
  returned: always
  type: bool
evaluations:
  description: Per flag, the state read last (disabled, enabled, error) and a summary of the answer.
  returned: always
  type: dict
  sample: {new_checkout: {state: disabled, answer: "status 200, reason DISABLED, value false"}}
rounds:
  description: Rounds of requests made.
  returned: always
  type: int
elapsed:
  description: Seconds spent clearing the caches and polling, until every flag read as wanted or the deadline.
  returned: always
  type: float
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils.feature_flags import (
    FlagError,
    clear_caches,
    poll_evaluations,
)
from ansible_collections.sre.rollback.plugins.module_utils.probe_check_mode import (
    OPTION,
    exit_if_skipped,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "default": ""},
            "clear_url": {"type": "str"},
            "clear_method": {"type": "str", "default": "POST"},
            "clear_command": {"type": "str"},
            "flags": {"type": "list", "elements": "str", "required": True},
            "expect": {"type": "str", "default": "disabled", "choices": ["disabled", "enabled"]},
            "method": {"type": "str", "default": "GET"},
            "body": {"type": "raw"},
            "headers": {"type": "dict", "default": {}, "no_log": True},
            "off_values": {"type": "list", "elements": "raw", "default": [False]},
            "not_found_is_off": {"type": "bool", "default": False},
            "interval": {"type": "float", "default": 0.25},
            "timeout": {"type": "float", "default": 3.0},
            "deadline": {"type": "float", "default": 20.0},
            **OPTION,
        },
        supports_check_mode=True,
    )
    p: dict[str, Any] = module.params
    for key in ("url", "clear_url"):
        if p[key] and not p[key].startswith(("http://", "https://")):
            module.fail_json(msg=f"{key} must be http:// or https://, not {p[key]!r}")
    empty: dict[str, Any] = {
        "ok": None,
        "cleared": None,
        "evaluations": {},
        "rounds": 0,
        "elapsed": 0.0,
    }
    exit_if_skipped(
        module,
        "check mode: nothing was changed, so caches were not cleared nor the evaluation polled",
        **empty,
    )
    try:
        clear = {"url": p["clear_url"], "method": p["clear_method"], "command": p["clear_command"]}
        cleared = None if module.check_mode else clear_caches(clear, p["deadline"])
        if not p["url"]:
            module.exit_json(changed=cleared is not None, **{**empty, "cleared": cleared})
        polled = poll_evaluations(p, p["flags"], p["expect"])
    except FlagError as exc:
        module.fail_json(msg=str(exc), **empty)
    if not polled["ok"]:
        module.fail_json(cleared=cleared, **polled)
    module.exit_json(changed=cleared is not None, cleared=cleared, **polled)


if __name__ == "__main__":
    main()
