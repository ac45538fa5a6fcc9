# GPL-3.0-or-later
"""The evaluation probe's options, written once: the options of sre.rollback.flag_evaluation,
and the ``probe`` suboptions of sre.rollback.feature_flag (``flag_probe.feature_flag``);
module_utils/feature_flags.py polls."""

from __future__ import annotations

import textwrap

PROBE_OPTIONS = r"""
  method:
    description: HTTP method (C(POST) for OFREP).
    type: str
    default: GET
  body:
    description: "JSON body of each request (OFREP: C({\"context\": {}}))."
    type: raw
  headers:
    description: Request headers (never logged).
    type: dict
    default: {}
  off_values:
    description: Evaluated values that mean off.
    type: list
    elements: raw
    default: [false]
  not_found_is_off:
    description: Take C(FLAG_NOT_FOUND) as off (systems that hide disabled flags as missing).
    type: bool
    default: false
  interval:
    description: Seconds between rounds.
    type: float
    default: 0.25
  timeout:
    description: Seconds one request may take.
    type: float
    default: 3
  deadline:
    description: Seconds after which the probe fails.
    type: float
    default: 20
"""

PROBE = r"""
  probe:
    description:
      - Poll an evaluation endpoint from the host until every flag evaluates to I(state)
        (both ways flag systems say "disabled" count as off), or fail after I(deadline) s.
        Not in check mode. Empty for no probe.
    type: dict
    default: {}
    suboptions:
      url:
        description: Evaluation URL with C({flag}) (C(http://127.0.0.1:8080/flags/{flag})).
        type: str
"""


class ModuleDocFragment:
    DOCUMENTATION = "options:" + PROBE_OPTIONS
    FEATURE_FLAG = "options:" + PROBE + textwrap.indent(PROBE_OPTIONS.strip("\n"), "    ") + "\n"
