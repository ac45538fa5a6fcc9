#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The atomic release step on one host: inspect, build, switch, record, lock."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release
short_description: Inspect, build, switch and record application releases atomically
version_added: "0.1.0"
description:
  - Manages the release layout of one application on a host
    (C(<app_root>/releases/<id>/), C(<app_root>/shared/), the C(current) symlink and the
    release log C(<app_root>/releases.log), JSON lines).
  - C(state=inspect) reports the current release, every known release with its state
    (current, good, bad) and whether it is on disk, the lock holder, and the commits of the
    repository's tags as this host sees them.
  - C(state=switched) takes the application lock, makes sure the release is on disk and
    intact (its recorded commit and file manifest match; the fast path), otherwise builds it
    from the git tag (the rebuild path; a damaged copy is moved aside, never deleted, once
    the new build is ready, so a failed build leaves the host as it was),
    switches C(current) with an atomic rename, records the change in the release log and
    prunes old releases. All of it is one module call, so a rollback costs one task per host.
  - C(state=rolled_out) is the whole rollout of one host in one call, C(state=switched) then
    a restart of the service (I(service)) then the health gate (I(health)). When the restart
    or the health gate fails, it switches back to the release C(current) had, restarts the
    service on it and fails with a message that says so. The target is recorded as bad only
    with evidence against it (see I(proven_healthy)), else as C(suspect). The lock is released before it returns, on every path (unless I(keep_lock)).
  - C(state=present) does the same without switching (to run hooks against the built release).
  - C(state=marked) records a release as good or bad. C(state=unlocked) releases the lock
    held by a run, never while the host-side call that holds it still runs (see I(wait)).
  - C(state=rolled_out) watches its controller (module_utils C(controller_watch)). When the
    controller's connection goes away before the switch, it changes nothing; after the
    switch and before the health gate passed, it switches back and restarts without marking
    the target bad. It writes how it ended to C(<app_root>/.rollback.calls.jsonl) before it
    drops the lock, and records itself in the lock as its holder.
author:
  - SRE rollback team (@sre-rollback)
extends_documentation_fragment:
  - sre.rollback.host_python
  - sre.rollback.direct_action
  - sre.rollback.rollout
attributes:
  check_mode:
    support: full
    description: Reports the plan (before, after, fast or rebuild) and changes nothing.
  diff_mode:
    support: full
    description: Shows where C(current) points before and after.
options:
  app_root:
    description: Root directory of the application on the host.
    type: path
    required: true
  state:
    description: What to do.
    type: str
    choices: [inspect, present, switched, rolled_out, marked, unlocked]
    default: inspect
  release:
    description:
      - Release id to switch to or mark (C(<tag>-g<short commit>)). Derived from I(tag) and
        I(commit) when omitted.
      - With C(state=marked), a tag names the one release the release log knows for it.
    type: str
  tag:
    description: Git tag of the release.
    type: str
  commit:
    description: Full commit id the tag must resolve to (guards against moved tags).
    type: str
  repo:
    description: Git repository (path or URL) the release is built from.
    type: str
  build_command:
    description:
      - Shell command run in the new release directory to build it, with C(RELEASE_ID),
        C(RELEASE_TAG) and C(RELEASE_COMMIT) in its environment. Empty means no build.
    type: str
    default: ""
  build_timeout:
    description: Seconds the build may take.
    type: int
    default: 600
  shared_paths:
    description: Paths inside a release that are links into C(<app_root>/shared/).
    type: list
    elements: str
    default: []
  keep:
    description: Releases to keep on disk (current, the last good one and bad ones are kept too).
    type: int
    default: 5
  previous_state:
    description:
      - State recorded for the release that C(current) pointed at before the switch.
      - C(suspect) (a switch back after a failed gate without evidence against the release)
        keeps it a candidate target, unlike C(bad).
    type: str
    choices: [good, bad, suspect]
    default: good
  mark:
    description: State to record with C(state=marked).
    type: str
    choices: [good, bad]
  event:
    description: Event name written to the release log (deploy, rollback, revert...).
    type: str
    default: deploy
  reason:
    description: Why; written to the release log.
    type: str
  run_id:
    description: Id of the run; takes the application lock with it when set.
    type: str
  user:
    description: Who runs this (written to the lock and the release log).
    type: str
  controller:
    description: Host and pid of the controller, for the lock owner record.
    type: str
  break_lock:
    description: Break a lock held by another run (use only for a crashed run's stale lock).
    type: bool
    default: false
  verify:
    description:
      - Re-hash every file of an existing release before trusting it (C(full)) or trust its recorded commit (C(commit)).
      - The build manifest covers every file of the release, bytecode (C(__pycache__)) and
        file modes with an execute bit included; a file added, removed or changed after the
        build, or a manifest written before it covered bytecode, fails C(full).
    type: str
    choices: [full, commit]
    default: full
  tags_pattern:
    description: With C(state=inspect), report the repository tags matching this regex.
    type: str
  proven_healthy:
    description:
      - With C(state=rolled_out), the release already passed its health gate on another host
        of this run; a failed gate here is then this host's problem, and the release is not
        marked bad (C(verdict)).
      - Otherwise, after a failed gate and the switch back, the release the host had is
        re-checked with the same gate (15 s at most); the release is marked bad only when it
        failed by its own behaviour (crashed, failed to start, answered unhealthy or not at
        all) while the release the host had is healthy again, else C(suspect).
    type: bool
    default: false
  keep_lock:
    description:
      - With C(state=rolled_out), keep the lock after the call, for tasks that must run
        under it (an after-health hook); the caller drops it with C(state=unlocked).
    type: bool
    default: false
  wait:
    description:
      - With C(state=unlocked), seconds to wait for a call of this run that still holds the
        lock on the host (finishing or undoing its step) to end first. The lock is never
        released while that call runs.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Switch to the last stable release (fast path when it is still on disk)
  sre.rollback.release:
    app_root: /opt/demo-app
    state: switched
    tag: v1.2.3-stable
    commit: 5f2c0d1e8a9b7c6d5e4f3a2b1c0d9e8f7a6b5c4d
    repo: /srv/git/demo-app.git
    build_command: ./build
    shared_paths: [uploads]
    previous_state: bad
    event: rollback
    run_id: "{{ rollback_run_id }}"

- name: Switch, restart and health-check in one call; switch back when unhealthy
  sre.rollback.release:
    app_root: /opt/demo-app
    state: rolled_out
    tag: v1.2.3-stable
    commit: 5f2c0d1e8a9b7c6d5e4f3a2b1c0d9e8f7a6b5c4d
    repo: /srv/git/demo-app.git
    previous_state: bad
    event: rollback
    run_id: "{{ rollback_run_id }}"
    service:
      manager: systemd
      name: demo-app
    health:
      url: http://127.0.0.1:8080/health
      successes: 3
      deadline: 60

- name: What is on this host
  sre.rollback.release:
    app_root: /opt/demo-app
    repo: /srv/git/demo-app.git
    tags_pattern: "-stable$"
  register: releases
"""

RETURN = r"""
current:
  description: The release C(current) points at after the call (before, in check mode).
  returned: always
  type: dict
  sample: {release: v1.2.3-stable-g5f2c0d1e8a, tag: v1.2.3-stable, commit: 5f2c0d1e...}
before:
  description: The release C(current) pointed at before the call.
  returned: when state=switched or state=rolled_out
  type: dict
after:
  description: The release the call switched to (the target).
  returned: when state=switched or state=rolled_out
  type: dict
path:
  description: C(none) (already current), C(fast) (switched to an intact release on disk) or C(rebuild).
  returned: when state=switched or state=rolled_out
  type: str
timings:
  description:
    - Seconds spent in each phase (lock, verify, fetch, build, switch, prune; with
      C(state=rolled_out) also restart, health, revert, unlock).
  returned: when state=switched or state=rolled_out
  type: dict
health:
  description: The health gate's result (healthy is null when no gate ran).
  returned: when state=rolled_out
  type: dict
  sample: {healthy: true, attempts: 4, elapsed: 1.22, first_healthy: 0.2, last_status: 200, last_error: ""}
reverted:
  description: Whether the host was switched back to the release it had.
  returned: when state=rolled_out
  type: bool
cause:
  description: Why the rollout of this host failed (without what was done about it).
  returned: when state=rolled_out failed
  type: str
revert_msg:
  description: What was done about a failure (switched back and restarted, or left as it was).
  returned: when state=rolled_out failed
  type: str
failure:
  description:
    - What kind of failure stopped the rollout of this host; C(restart_failed), or the
      gate's (C(crashed), C(unhealthy), C(no_answer), C(timed_out)).
  returned: when state=rolled_out failed in its restart or health gate
  type: str
verdict:
  description:
    - After a failed gate and a switch back, whether the release is marked C(bad) on this
      host or left C(suspect), and why (C(release), C(failure), C(state), C(why)).
  returned: when state=rolled_out switched back after a failed restart or gate
  type: dict
  sample: {release: v1.3.0-g0a1b2c3d4e, failure: crashed, state: bad, why: it crashed while the release the host had is healthy again}
next:
  description: What an operator runs next, in words (also at the end of C(msg)).
  returned: when verdict is returned
  type: str
had_health:
  description: The re-check of the release the host had, after the switch back (healthy, attempts, last_error).
  returned: when verdict is returned and a health gate is set
  type: dict
phases:
  description:
    - The phases of the call in order (build, switch, restart, health, revert, unlock), each
      with status (ok, changed, failed), seconds and msg; the run record shows them per host.
  returned: when state=rolled_out
  type: list
  elements: dict
lock_released:
  description: Whether the call dropped this run's lock before returning.
  returned: when state=rolled_out
  type: bool
releases:
  description:
    - Every known release with tag, commit, state, on_disk, and the time, event, reason,
      run_id and user of the release log entry that set its state (a mark, a verdict).
  returned: when state=inspect
  type: dict
app_root:
  description: The application root inspected (for messages that name it).
  returned: when state=inspect
  type: str
repo_tags:
  description: Tag to commit, as this host's view of the repository resolves them.
  returned: when state=inspect and tags_pattern is set, and the repository answered
  type: dict
repo_error:
  description:
    - Why C(git ls-remote) failed (the repository is unreachable from this host). The
      inspection does not fail then; the plan falls back on the releases recorded on the hosts.
  returned: when state=inspect and tags_pattern is set, and the repository did not answer
  type: str
lock:
  description: The lock owner record (or null).
  returned: always
  type: dict
pruned:
  description: Release directories removed by retention.
  returned: when state=switched
  type: list
outcome:
  description:
    - How the call ended when it did not simply complete (C(stopped before switch),
      C(unchanged)); the host's journal has it for every call.
  returned: when state=rolled_out and the controller went away
  type: str
controller_lost:
  description: The step the call was in when its controller went away (C(switch), C(restart), C(health)).
  returned: when state=rolled_out and the controller went away
  type: str
last_call:
  description: How the last one-call rollout on this host ended, from its journal (see I(calls)).
  returned: when state=inspect
  type: dict
calls:
  description: This run's calls as the host's journal has them (run_id, outcome, controller_lost, before, target, current, msg, time, pid).
  returned: when state=unlocked
  type: list
busy:
  description: The live host-side process that holds the lock, when it was therefore left in place.
  returned: when state=unlocked and a call of this run still runs
  type: dict
"""

from ansible_collections.sre.rollback.plugins.module_utils import ops_module, release_ops


def main() -> None:
    # The work is in module_utils/release_ops.py; the collection's action plugin of the same name
    # usually runs it without AnsibleModule (see there), this is the fallback path.
    ops_module.run(release_ops)


if __name__ == "__main__":
    main()
