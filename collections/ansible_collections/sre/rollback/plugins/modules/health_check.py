#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health gate: poll a URL from the host until it answers well several times in a row."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_check
short_description: Wait until a health endpoint succeeds several times in a row, before a deadline
version_added: "0.1.0"
description:
  - Polls I(url) from the managed host (so the check sees what the host sees, behind any
    load balancer) until it has answered I(status) I(successes) times in a row, or fails
    when I(deadline) seconds pass first. One module call, however many attempts.
  - Polls every I(startup_interval) seconds until the first healthy answer, then every
    I(interval) seconds; once it has answered well, I(failures) failed answers in a row fail
    the check without waiting for the deadline.
  - Optionally checks that a key of the JSON body has an expected value (for example the
    version the host should now run).
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
  - sre.rollback.health_gate
  - sre.rollback.probe_check_mode
attributes:
  check_mode:
    support: full
    description: The check is read-only, so it runs in check mode too (unless I(skip_in_check_mode)).
  diff_mode:
    support: none
    description: Read-only, so there is nothing to diff.
"""

EXAMPLES = r"""
- name: Wait for the application to be healthy on the release we switched to
  sre.rollback.health_check:
    url: http://127.0.0.1:8080/health
    successes: 3
    deadline: 60
    json_expect:
      version: v1.2.3-stable
"""

RETURN = r"""
healthy:
  description: Whether the check passed.
  returned: always
  type: bool
attempts:
  description: Requests made.
  returned: always
  type: int
elapsed:
  description: Seconds from the first request to the verdict.
  returned: always
  type: float
first_healthy:
  description: Seconds until the first healthy answer (how long the service took to come up); null when there was none.
  returned: always
  type: float
last_status:
  description: Status of the last answer (0 when the connection failed).
  returned: always
  type: int
last_error:
  description: What the last failed attempt saw.
  returned: always
  type: str
failure:
  description:
    - Why the gate failed, null when healthy. C(crashed) (the unit restarted or died),
      C(unhealthy) (it answered, badly), C(no_answer) (nothing answered), C(timed_out) (it
      answered well, not long enough in a row before the deadline).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils.health import (
    OPTIONS,
    check_url,
    wait_healthy,
)
from ansible_collections.sre.rollback.plugins.module_utils.probe_check_mode import (
    OPTION,
    exit_if_skipped,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **OPTIONS,
            **OPTION,
        },
        supports_check_mode=True,
    )
    p = module.params
    problem = check_url(p["url"])
    if problem:
        module.fail_json(msg=problem)
    exit_if_skipped(
        module,
        "check mode: health check not run",
        healthy=None,
        attempts=0,
        elapsed=0.0,
        first_healthy=None,
        last_status=0,
        last_error="",
    )
    result = wait_healthy({key: p[key] for key in OPTIONS})
    if not result["healthy"]:
        module.fail_json(**result)
    result.pop("msg", None)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
