#!/usr/bin/python
# Copyright: contributors to the sre.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Digest a directory tree (read-only): files, bytes and one sha256 over every entry."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_tree
short_description: Digest a directory tree (files, bytes, one sha256 over paths, modes and contents)
version_added: "0.1.0"
description:
  - Read-only. Walks I(path) and returns the number of files, their total size and one
    sha256 over every entry in path order (relative path, kind, mode, and the content's
    sha256 or a link's target). Two trees with the same digest hold the same files.
  - Level 5 records it per part in a full backup set's manifest and checks a restored
    tree against it before the tree is swapped in.
author:
  - SRE rollback team (@sre-rollback)
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Read-only, there is nothing to diff.
options:
  path:
    description: The directory to digest. A missing directory gives C(exists=false).
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Digest the uploads
  sre.rollback.file_tree:
    path: /opt/demo-app/shared/uploads
  register: uploads
"""

RETURN = r"""
exists:
  description: Whether I(path) is a directory.
  returned: always
  type: bool
files:
  description: Regular files below I(path).
  returned: always
  type: int
bytes:
  description: Their total size.
  returned: always
  type: int
sha256:
  description: The tree's digest (null when I(path) does not exist).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.rollback.plugins.module_utils.full_backups import tree_digest


def main() -> None:
    module = AnsibleModule(
        argument_spec={"path": {"type": "path", "required": True}},
        supports_check_mode=True,
    )
    try:
        result = tree_digest(module.params["path"])
    except OSError as error:
        module.fail_json(msg=f"cannot read {module.params['path']}: {error}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
