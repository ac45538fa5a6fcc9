#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Level 2's atomic step on a host: snapshot, validate and restore configuration revisions."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: config_revision
short_description: Snapshot a config directory into revisions with checksums, and restore or apply one after validating it
version_added: "0.1.0"
description:
  - Manages the files of a configuration directory that match I(files) and not I(exclude)
    (keep secrets and runtime state, such as a password file or a flags file, out).
  - C(state=snapshot) records the live files as a revision in the revision store
    (content, mode, owner and a sha256 of each file, and of the whole), once per content.
  - C(state=restored) puts a target back. C(source=store) restores a revision of the
    store (I(target) empty means the revision live before the current one, skipping
    revisions that a rollback left behind); every checksum is verified first.
    C(source=git) reads the target from the git repository the directory is part of
    (I(target) default C(HEAD~1), as in C(git checkout HEAD~1 -- config/)); the working
    tree is changed, not the history.
  - C(state=applied) writes new content for some files (I(content)).
  - Before anything is written, the whole directory is staged next to itself with the
    target in place and I(validate) runs against the staged copy (C({dir})); if it fails,
    nothing is changed and the module fails with the validator's output. Then the live
    files are snapshot (so that the change can be undone), each changed file is replaced
    with one atomic rename, and the timeline records what became live.
  - With I(lock_root) and I(run_id), the application lock shared with deploy and every
    rollback level is taken (kept afterwards with I(keep_lock), for a restart and health
    check under the same lock).
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
  - sre.rollback.direct_action
  - sre.rollback.app_lock
  - sre.rollback.rollout
attributes:
  check_mode:
    support: full
    description: Resolves the target, validates it in a staged copy, reports the plan and the diff, and changes nothing.
  diff_mode:
    support: full
    description: A unified diff of every managed file between the live config and the target.
options:
  path:
    description: The configuration directory.
    type: path
    required: true
  state:
    description: What to do.
    type: str
    choices: [inspect, snapshot, restored, applied]
    default: inspect
  source:
    description: Where C(state=restored) takes the target from.
    type: str
    choices: [store, git]
    default: store
  target:
    description:
      - C(source=store) a revision id (C(r0003-1a2b3c4d)); empty for the previous revision.
        C(source=git) any revision git understands; empty for C(HEAD~1).
    type: str
    default: ""
  content:
    description: C(state=applied) new content by relative path (other files are left as they are).
    type: dict
    default: {}
  files:
    description: Globs (relative to I(path), C(*) crosses directories) of the managed files.
    type: list
    elements: str
    default: ["*"]
  exclude:
    description: Globs of files never snapshot, diffed or restored.
    type: list
    elements: str
    default: []
  store_root:
    description: Root of the revision stores (one sub-directory per config directory), mode 0700.
    type: path
    default: /var/lib/sre-rollback/config
  keep:
    description: Revisions kept in the store (the live one and those of this change are never pruned).
    type: int
    default: 20
  validate:
    description:
      - Shell command that exits 0 when a config is valid. C({dir}) is replaced by the
        directory to check (the staged copy). Without C({dir}) it runs after the change
        against the live files, and a failure puts the previous files back. Empty for none.
    type: str
    default: ""
  validate_timeout:
    description: Seconds the validator may take.
    type: int
    default: 60
  event:
    description:
      - Name of the change in the timeline. After C(rollback) and C(revert), the revision
        that was live before is marked bad (never picked as "previous" again).
    type: str
    choices: [rollback, apply, revert, snapshot]
  reason:
    description: Why (timeline).
    type: str
  incident:
    description: Incident id (timeline).
    type: str
  keep_lock:
    description:
      - Keep the lock after the call (the caller drops it, for example with
        C(sre.rollback.release) C(state=unlocked)). Without it, the lock this run holds is
        dropped at the end of the call, also when the call fails.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Restore the previous revision of the app's config, validated first
  sre.rollback.config_revision:
    path: /etc/demo-app
    state: restored
    exclude: [flags.json, db-password]
    validate: /opt/demo-app/current/bin/demo-app check-config --config-dir {dir}
    event: rollback
    run_id: "{{ rollback_run_id }}"
    lock_root: /opt/demo-app
    keep_lock: true

- name: Go back one commit in the config repository (git checkout HEAD~1 -- .)
  sre.rollback.config_revision:
    path: /srv/app/config
    state: restored
    source: git
    target: HEAD~1
    validate: nginx -t -p {dir} -c {dir}/nginx.conf

- name: Apply a new app.ini through the revision store
  sre.rollback.config_revision:
    path: /etc/demo-app
    state: applied
    content:
      app.ini: "{{ lookup('ansible.builtin.template', 'app.ini.j2') }}"
    exclude: [flags.json, db-password]
    validate: /opt/demo-app/current/bin/demo-app check-config --config-dir {dir}
"""

RETURN = r"""
before:
  description: The live config before the call (revision id when it matches one, checksum).
  returned: always
  type: dict
  sample: {revision: r0004-9f8e7d6c, checksum: 9f8e7d6c...}
after:
  description: The live config after the call (the planned one in check mode).
  returned: when state is restored, applied or snapshot
  type: dict
target:
  description: What was restored (revision id, or git commit and subject) and why it was picked.
  returned: when state=restored
  type: dict
files:
  description: Paths added, changed and removed.
  returned: when state is restored or applied
  type: dict
  sample: {added: [], changed: [app.ini], removed: []}
snapshot:
  description: The revision that holds the config as it was before the change (to undo it).
  returned: when something changed
  type: str
validation:
  description: Whether the validator ran, its verdict and its output.
  returned: when state is restored or applied
  type: dict
revisions:
  description: The revisions of the store, oldest first, with their state (live, bad).
  returned: when state=inspect
  type: list
previous:
  description: The revision that C(target="") would restore, and why.
  returned: when state=inspect
  type: dict
lock:
  description: The lock holder seen before the call (null when free).
  returned: always
  type: dict
store:
  description: Directory of this config directory's revision store.
  returned: always
  type: str
"""

from ansible_collections.sre.rollback.plugins.module_utils import config_ops, ops_module


def main() -> None:
    # The work is in module_utils/config_ops.py; the collection's action plugin of the same name
    # usually runs it without AnsibleModule (see there), this is the fallback path.
    ops_module.run(config_ops)


if __name__ == "__main__":
    main()
