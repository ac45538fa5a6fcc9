#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Level 1's atomic step on a host: set flags to an explicit state and read them back."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: feature_flag
short_description: Set feature flags to an explicit state and verify it, in a flags file or a flag service
version_added: "0.1.0"
description:
  - Sets every flag of I(flags) to I(state) (C(disabled) or C(enabled); there is no toggle,
    so running it again changes nothing) and reads each one back from the backend.
  - C(backend=file) edits a flags file in the flagd JSON shape. The file is checked against
    the schema before and after the change, the previous content is kept in I(backup_dir),
    and the new content replaces the old with one atomic rename (mode and owner kept).
    After the write the file is read again from disk; if a flag does not read back as
    wanted, the previous content is put back and the module fails.
  - C(backend=http) drives a flag service's API (presets for Unleash's admin API and for
    reading state from an OFREP evaluation endpoint, or any API given as URL and body
    templates). The token is sent in a header and never shown.
  - Optionally, in the same call on the host, clears the application's caches after a
    change (I(clear)) and polls where the application evaluates the flags until they read
    as wanted (I(probe)), so that the kill switch costs one module call per host. The
    C(sre.rollback.flag_evaluation) module does the same on its own.
  - Unknown flags and an invalid file fail before anything changes.
  - Every change appends one JSON line per flag (time, who, run id, flag, before, after,
    reason, incident) to I(audit_log) and is returned in C(audit).
  - With I(lock_root) and I(run_id), the application lock shared with deploy and every
    rollback level is taken for the change and dropped afterwards (unless this run already
    held it); a lock held by another run fails the call with the owner's name.
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.flag_probe.feature_flag
  - sre.rollback.host_python
  - sre.rollback.direct_action
  - sre.rollback.app_lock
attributes:
  check_mode:
    support: full
    description: Reads the backend, fails on unknown flags or a bad file, reports the plan and changes nothing.
  diff_mode:
    support: full
    description: The flags file before and after (file), or each flag's state before and after (http).
options:
  flags:
    description: Names of the flags to set.
    type: list
    elements: str
    required: true
  state:
    description: The state every flag must have afterwards.
    type: str
    choices: [disabled, enabled]
    default: disabled
  backend:
    description: Where the flags live.
    type: str
    choices: [file, http]
    default: file
  path:
    description: The flags file (C(backend=file)).
    type: path
  method:
    description:
      - How a flag of the file is switched. C(state) writes C(state) C(DISABLED) or C(ENABLED).
        C(variant) keeps the flag C(ENABLED) and points C(defaultVariant) at the off variant
        (I(off_variant), or the variant whose value is C(false)) or the on variant.
    type: str
    choices: [state, variant]
    default: state
  off_variant:
    description: Variant that means off, for C(method=variant) (default the one whose value is C(false)).
    type: str
  on_variant:
    description: Variant that means on, for C(method=variant) (default the one whose value is C(true)).
    type: str
  backup_dir:
    description: Directory that keeps the previous content of the flags file, one file per change.
    type: path
    default: /var/lib/sre-rollback/flag-backups
  backup_keep:
    description: Backups of one flags file kept in I(backup_dir).
    type: int
    default: 20
  http:
    description: The flag service (C(backend=http)). Templates may use C({base_url}), C({project}),
      C({environment}), C({flag}), C({state}) (disabled/enabled), C({STATE}), C({on_off}) and
      C({enabled}) (a body value that is exactly C({enabled}) becomes a JSON boolean).
    type: dict
    default: {}
    suboptions:
      preset:
        description: C(unleash) (admin API, one project and environment) or C(ofrep) (read the state from an OFREP evaluation).
        type: str
        choices: ["", unleash, ofrep]
        default: ""
      base_url:
        description: Base URL of the service.
        type: str
      token:
        description: API token, sent in I(token_header) with I(token_prefix). Never logged.
        type: str
      token_header:
        description: Header that carries the token.
        type: str
      token_prefix:
        description: Text before the token in its header (C(Bearer )).
        type: str
      headers:
        description: More request headers (never logged).
        type: dict
      set_method:
        description: HTTP method of the request that sets a flag.
        type: str
      set_url:
        description: URL template of the request that sets a flag.
        type: str
      set_body:
        description: JSON body template of the request that sets a flag.
        type: raw
      get_method:
        description: HTTP method of the request that reads a flag back.
        type: str
      get_url:
        description: URL template of the request that reads a flag back.
        type: str
      get_body:
        description: JSON body template of the read request.
        type: raw
      read:
        description: C(field) reads I(state_path) of the JSON answer; C(ofrep) reads an OFREP evaluation (empty, the preset's or C(field)).
        type: str
        choices: ["", field, ofrep]
      state_path:
        description: Dotted path of the field that holds the state (C(enabled), C(state), C(data.0.on)).
        type: str
      off_values:
        description: Values of that field (or OFREP values) that mean off.
        type: list
        elements: raw
      project:
        description: Project (C({project}), Unleash).
        type: str
      environment:
        description: Environment (C({environment}), Unleash).
        type: str
      not_found_is_off:
        description: With C(read=ofrep), take C(FLAG_NOT_FOUND) as off (services that hide disabled flags).
        type: bool
        default: false
      timeout:
        description: Seconds one request may take.
        type: float
        default: 10
      validate_certs:
        description: Check the service's TLS certificate.
        type: bool
        default: true
  clear:
    description: After a change, make the app drop its caches (not in check mode, not when nothing changed).
    type: dict
    default: {}
    suboptions:
      url:
        description: URL requested from the host (a 2xx answer is expected).
        type: str
      method:
        description: Method of that request.
        type: str
        default: POST
      command:
        description: Shell command run on the host instead (exit 0 expected).
        type: str
  audit_log:
    description: JSON-lines audit log on the host; empty for none.
    type: path
    default: /var/log/sre-rollback/feature-flags.jsonl
  reason:
    description: Why (audit log).
    type: str
  incident:
    description: Incident id (audit log).
    type: str
"""

EXAMPLES = r"""
- name: Kill switch for the new checkout in the app's flags file
  sre.rollback.feature_flag:
    flags: [new_checkout]
    state: disabled
    path: /etc/demo-app/flags.json
    lock_root: /opt/demo-app
    run_id: "{{ rollback_run_id }}"
    reason: checkout errors above 10 %
    incident: INC-1234

- name: The same flag in Unleash (production environment of the default project)
  sre.rollback.feature_flag:
    flags: [new_checkout]
    state: disabled
    backend: http
    http:
      preset: unleash
      base_url: https://unleash.example.com
      environment: production
      token: "{{ lookup('ansible.builtin.env', 'UNLEASH_ADMIN_TOKEN') }}"
"""

RETURN = r"""
flags:
  description: Per flag, its state before and after (C(disabled) or C(enabled)) and whether it changed.
  returned: always
  type: dict
  sample: {new_checkout: {before: enabled, after: disabled, changed: true}}
verified:
  description: Every flag read back from the backend in the wanted state (false in check mode).
  returned: always
  type: bool
cleared:
  description: How caches were cleared (url and status, or command and rc); null when not asked or nothing changed.
  returned: always
  type: dict
evaluation:
  description: The probe's verdict (ok, evaluations per flag, rounds, elapsed); null without a probe.
  returned: always
  type: dict
audit:
  description: The audit entries written (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
backup:
  description: File that keeps the previous content of the flags file.
  returned: when backend=file and the file changed
  type: str
lock:
  description: The lock holder seen before the change (null when free).
  returned: always
  type: dict
timings:
  description: Seconds spent reading, writing and verifying.
  returned: always
  type: dict
"""

from ansible_collections.sre.rollback.plugins.module_utils import flag_ops, ops_module


def main() -> None:
    # The work is in module_utils/flag_ops.py; the collection's action plugin of the same name
    # usually runs it without AnsibleModule (see there), this is the fallback path.
    ops_module.run(flag_ops)


if __name__ == "__main__":
    main()
