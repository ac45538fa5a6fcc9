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
attributes:
  check_mode:
    support: full
    description: The check is read-only, so it runs in check mode too (unless I(skip_in_check_mode)).
  diff_mode:
    support: none
    description: Read-only, so there is nothing to diff.
options:
  url:
    description: URL to poll.
    type: str
    required: true
  status:
    description: HTTP status codes that count as healthy.
    type: list
    elements: int
    default: [200]
  successes:
    description: Consecutive healthy answers needed.
    type: int
    default: 3
  interval:
    description: Seconds between attempts once the URL has answered well.
    type: float
    default: 0.5
  startup_interval:
    description:
      - Seconds between attempts until the first healthy answer (the service is still
        starting), so that a service up in 0.2 s is seen then, not at the next
        I(interval). The successes that confirm it are I(interval) apart.
    type: float
    default: 0.1
  failures:
    description:
      - Once the URL has answered well, this many failed answers in a row fail the gate
        at once instead of at I(deadline) (the runbook's trigger is more than 3
        consecutive failures). C(0) waits for the deadline.
    type: int
    default: 4
  timeout:
    description: Seconds one request may take.
    type: float
    default: 3
  deadline:
    description: Seconds after which the check fails.
    type: float
    default: 60
  json_expect:
    description: Keys of the JSON body and the values they must have.
    type: dict
    default: {}
  observe:
    description:
      - Seconds the gate watches at least before it passes, so that a service that dies every
        few seconds is seen dying (with O(unit)).
    type: float
    default: 0.0
  unit:
    description:
      - A systemd service to watch while polling; a restart (C(NRestarts) grows), a new main
        process or a failed unit fails the gate at once (C(failure=crashed)).
    type: str
  skip_in_check_mode:
    description: Do not poll in check mode (the service was not really restarted).
    type: bool
    default: true
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
  description: Seconds spent.
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


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **OPTIONS,
            "skip_in_check_mode": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    problem = check_url(p["url"])
    if problem:
        module.fail_json(msg=problem)
    if module.check_mode and p["skip_in_check_mode"]:
        module.exit_json(
            changed=False,
            skipped=True,
            healthy=None,
            attempts=0,
            elapsed=0.0,
            first_healthy=None,
            last_status=0,
            last_error="",
            msg="check mode: health check not run",
        )
    result = wait_healthy({key: p[key] for key in OPTIONS})
    if not result["healthy"]:
        module.fail_json(**result)
    result.pop("msg", None)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
