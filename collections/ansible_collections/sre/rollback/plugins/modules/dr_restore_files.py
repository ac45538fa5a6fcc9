#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore one part of a full backup set onto this host: staged, verified, swapped in."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dr_restore_files
short_description: Restore a part of a full backup set (restic) - staged, verified against the manifest, swapped in
version_added: "0.1.0"
description:
  - Level 5's file restore for one part (config, uploads...) of one host, in one call.
  - Nothing to do when every directory of the part already has the manifest's digest
    (idempotent, and how a resumed run skips parts already restored).
  - Otherwise restores the restic snapshot into a staging directory with C(restic restore
    --verify), checks every directory's digest against the manifest, and only then swaps
    each one in - what was there is renamed to C(<dir>.<aside_suffix>) beside it, never
    deleted. A directory renamed into place is the verified one itself (same device and
    inode, checked); one that had to be copied across filesystems is digested again in place.
  - restic reads its repository and password from I(environment) (C(RESTIC_REPOSITORY),
    C(RESTIC_PASSWORD_FILE)); the password is never on a command line.
author:
  - SRE rollback team (@sre-rollback)
attributes:
  check_mode:
    support: full
    description: Reports the plan (what would be restored, what would be set aside) and changes nothing.
  diff_mode:
    support: none
    description: Trees are compared by digest, not diffed.
options:
  part:
    description: Name of the part (for messages and the journal).
    type: str
    required: true
  snapshot:
    description: The restic snapshot of the part.
    type: str
    required: true
  trees:
    description: The manifest's digest of each directory of the part (C(exists), C(sha256), C(files), C(bytes)).
    type: dict
    required: true
  staging:
    description: Directory the snapshot is restored into first (emptied before use).
    type: path
    default: /var/lib/sre-rollback/dr/staging
  aside_suffix:
    description: Suffix of the name a replaced directory is kept under.
    type: str
    required: true
  journal:
    description: JSON-lines file each finished part is recorded in (empty for none).
    type: path
    default: ""
  environment:
    description: Environment of the restic calls (repository, password file, cache).
    type: dict
    default: {}
  restic_options:
    description: Extended options for restic (C(-o) values, such as C(sftp.command=...)).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Restore the uploads of this host from backup set 20240115T120000Z-1a2b
  sre.rollback.dr_restore_files:
    part: uploads
    snapshot: 4bd1c2a0
    trees: {/opt/demo-app/shared/uploads: {exists: true, sha256: 3a7b..., files: 120, bytes: 90210}}
    aside_suffix: pre-dr-20240115T130000Z
    environment:
      RESTIC_REPOSITORY: sftp:sre-backup@backup:/srv/sre-backup/restic
      RESTIC_PASSWORD_FILE: /etc/sre-rollback/backup/restic.pass
"""

RETURN = r"""
restored:
  description: Directories swapped in from the backup.
  returned: always
  type: list
  elements: str
set_aside:
  description: Where what was there before is kept ({directory - kept copy}).
  returned: always
  type: dict
already:
  description: True when every directory already matched the manifest (nothing done).
  returned: always
  type: bool
copied:
  description: Directories copied into place across filesystems (digested again there), not renamed.
  returned: when changed
  type: list
  elements: str
timings:
  description: Seconds spent restoring, verifying and swapping.
  returned: always
  type: dict
"""

import json
import os
import shutil
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils.full_backups import tree_digest


class RestoreError(Exception):
    pass


def staged_path(staging: str, path: str) -> str:
    return os.path.join(staging, path.lstrip("/"))


def mismatches(trees: dict[str, Any], root: str = "") -> list[str]:
    """Directories whose digest (under root, or in place) differs from the manifest."""
    bad = []
    for path, want in trees.items():
        if not want.get("exists"):
            continue
        got = tree_digest(staged_path(root, path) if root else path)
        if got["sha256"] != want.get("sha256"):
            bad.append(
                f"{path}: {got['files']} files/{got['bytes']} bytes, sha256 {str(got['sha256'])[:12]}"
                f" (manifest: {want.get('files')} files/{want.get('bytes')} bytes,"
                f" {str(want.get('sha256'))[:12]})"
            )
    return bad


def aside_name(path: str, suffix: str) -> str:
    name, n = f"{path}.{suffix}", 1
    while os.path.lexists(name):
        n += 1
        name = f"{path}.{suffix}.{n}"
    return name


def restic_restore(module: AnsibleModule, p: dict[str, Any], target: str) -> None:
    argv = ["restic"]
    for option in p["restic_options"]:
        argv += ["-o", option]
    argv += ["restore", p["snapshot"], "--verify", "--target", target]
    env = {k: str(v) for k, v in p["environment"].items()}
    rc, _out, err = module.run_command(argv, environ_update=env)
    if rc != 0:
        raise RestoreError(
            f"restic restore of snapshot {p['snapshot']} ({p['part']}) failed "
            f"(exit {rc}): {err.strip()[-800:]}. Nothing was swapped in; "
            "check the repository (restic check --read-data) and run level 5 again."
        )


def restore(module: AnsibleModule, p: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    trees: dict[str, Any] = p["trees"]
    wanted = {path: t for path, t in trees.items() if t.get("exists")}
    timings: dict[str, float] = {}
    result: dict[str, Any] = {"changed": False, "restored": [], "set_aside": {}, "already": False}
    t0 = time.monotonic()
    if not mismatches(wanted):
        result.update(already=True, timings={"verify": round(time.monotonic() - t0, 3)})
        return result
    if check_mode:
        result["changed"] = True
        result["restored"] = list(wanted)
        result["set_aside"] = {
            path: aside_name(path, p["aside_suffix"]) for path in wanted if os.path.lexists(path)
        }
        return result
    stage = os.path.join(p["staging"], p["part"])
    if os.path.lexists(stage):
        shutil.rmtree(stage)
    os.makedirs(stage, mode=0o700)
    restic_restore(module, p, stage)
    timings["restore"] = round(time.monotonic() - t0, 3)
    t1 = time.monotonic()
    bad = mismatches(wanted, stage)
    if bad:
        raise RestoreError(
            f"part {p['part']}: the restored files differ from the manifest: {'; '.join(bad)}. "
            f"Nothing was swapped in (the staged copy is in {stage}); the backup set is damaged: "
            "restore another set (dr_restore_point=<set id>)."
        )
    timings["verify"] = round(time.monotonic() - t1, 3)
    t2 = time.monotonic()
    result["changed"] = True
    copied = {}
    for path in wanted:
        if os.path.lexists(path):
            kept = aside_name(path, p["aside_suffix"])
            os.rename(path, kept)
            result["set_aside"][path] = kept
        os.makedirs(os.path.dirname(path), exist_ok=True)
        verified = os.stat(staged_path(stage, path))
        shutil.move(staged_path(stage, path), path)
        result["restored"].append(path)
        # A rename keeps the verified directory itself (same device and inode): its digest
        # holds. shutil.move copies across filesystems: a copy is digested again in place.
        moved = os.stat(path)
        if (moved.st_dev, moved.st_ino) != (verified.st_dev, verified.st_ino):
            copied[path] = wanted[path]
    shutil.rmtree(stage)
    result["copied"] = sorted(copied)
    bad = mismatches(copied)
    if bad:
        raise RestoreError(f"part {p['part']}: in place, the files differ: {'; '.join(bad)}")
    timings["swap"] = round(time.monotonic() - t2, 3)
    result["timings"] = timings
    if p["journal"]:
        os.makedirs(os.path.dirname(p["journal"]), mode=0o700, exist_ok=True)
        entry = {"part": p["part"], "snapshot": p["snapshot"], "at": time.time(), **result}
        with open(p["journal"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "part": {"type": "str", "required": True},
            "snapshot": {"type": "str", "required": True},
            "trees": {"type": "dict", "required": True},
            "staging": {"type": "path", "default": "/var/lib/sre-rollback/dr/staging"},
            "aside_suffix": {"type": "str", "required": True},
            "journal": {"type": "path", "default": ""},
            "environment": {"type": "dict", "default": {}},
            "restic_options": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    try:
        result = restore(module, dict(module.params), module.check_mode)
    except (RestoreError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
