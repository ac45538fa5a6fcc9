"""The three modules with a direct path (release, feature_flag, config_revision: their work
shipped to the host's Python without AnsibleModule, plugin_utils/stdlib_module.py) give the
same results on the direct path and on the usual module path: a change, check mode, diff
mode and a failure. Real ad-hoc Ansible calls on the local connection, each case on a fresh
copy of the same files; only the paths of those copies and the clock differ."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.adhoc import adhoc

USUAL = "the usual module path (pipelining is off"


def call(
    where: Path, module: str, args: dict[str, Any], *flags: str, pipelining: bool
) -> tuple[dict[str, Any], str]:
    """One ad-hoc call: its result (without ``invocation``, which only the usual path
    returns; ``rc`` the call's exit status) and its whole output."""
    result, text, rc = adhoc(
        where, module, json.dumps(args), *flags, ANSIBLE_PIPELINING=str(pipelining).lower()
    )
    result.pop("invocation", None)
    result["rc"] = rc
    return result, text


TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?|\d{8}T\d{6}Z?")
TIMED = frozenset({"seconds", "duration", "elapsed", "time", "at", "epoch", "pid", "timings"})
PID = re.compile(r"<time>\.\d+")


def same_shape(value: Any, root: Path) -> Any:
    """``value`` with this copy's directory as ``<root>``, times as ``<time>``, and the
    values of timing keys as ``<timed>`` (a backup's name ends with the time and the pid)."""
    if isinstance(value, dict):
        return {k: "<timed>" if k in TIMED else same_shape(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [same_shape(item, root) for item in value]
    if isinstance(value, str):
        # The revision store names a config directory by its path, "/" written "__".
        for form in (str(root), str(root).replace("/", "__").lstrip("_")):
            value = value.replace(form, "<root>")
        return PID.sub("<time>.<pid>", TIME.sub("<time>", value))
    return value


def both_paths(
    tmp_path: Path, setup: Any, module: str, args: Any, *flags: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same call on a fresh copy for each path: (direct result, usual result)."""
    results = []
    for pipelining in (True, False):
        root = tmp_path / ("direct" if pipelining else "usual")
        root.mkdir()
        setup(root)
        result, log = call(root, module, args(root), *flags, pipelining=pipelining)
        assert (USUAL in log) is not pipelining, log[-2000:]
        results.append(same_shape(result, root))
    return results[0], results[1]


# --------------------------------------------------------------------------------------------
# feature_flag

FLAGS = {
    "flags": {
        "new_checkout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        }
    }
}


def flags_file(root: Path) -> None:
    (root / "flags.json").write_text(json.dumps(FLAGS))


def flag_args(flag: str) -> Any:
    return lambda root: {
        "flags": [flag],
        "state": "disabled",
        "path": str(root / "flags.json"),
        "backup_dir": str(root / "backups"),
        "audit_log": str(root / "audit.jsonl"),
        "reason": "parity",
    }


@pytest.mark.parametrize(
    ("case", "flag", "flags"),
    [
        ("change and diff", "new_checkout", ("--diff",)),
        ("check mode and diff", "new_checkout", ("--check", "--diff")),
        ("failure: an unknown flag", "no_such_flag", ()),
    ],
)
def test_feature_flag_is_the_same_on_both_paths(
    tmp_path: Path, case: str, flag: str, flags: tuple[str, ...]
) -> None:
    direct, usual = both_paths(tmp_path, flags_file, "feature_flag", flag_args(flag), *flags)
    assert direct == usual
    if case.startswith("failure"):
        assert direct["rc"] != 0 and "no_such_flag" in direct["msg"]
    else:
        assert direct["rc"] == 0 and direct["changed"] is True and direct.get("diff"), direct


# --------------------------------------------------------------------------------------------
# config_revision


def config_dir(root: Path) -> None:
    (root / "etc").mkdir()
    (root / "etc" / "app.ini").write_text("[app]\nport = 8080\n")


def config_args(validate: str) -> Any:
    return lambda root: {
        "path": str(root / "etc"),
        "state": "applied",
        "content": {"app.ini": "[app]\nport = 8081\n"},
        "store_root": str(root / "store"),
        "validate": validate,
        "reason": "parity",
    }


@pytest.mark.parametrize(
    ("case", "validate", "flags"),
    [
        ("change and diff", "true {dir}", ("--diff",)),
        ("check mode and diff", "true {dir}", ("--check", "--diff")),
        ("failure: the validator refuses", "false {dir}", ()),
    ],
)
def test_config_revision_is_the_same_on_both_paths(
    tmp_path: Path, case: str, validate: str, flags: tuple[str, ...]
) -> None:
    direct, usual = both_paths(
        tmp_path, config_dir, "config_revision", config_args(validate), *flags
    )
    assert direct == usual
    if case.startswith("failure"):
        assert direct["rc"] != 0 and direct["changed"] is False
    else:
        assert direct["rc"] == 0 and direct["changed"] is True and direct.get("diff"), direct


# --------------------------------------------------------------------------------------------
# release


def releases(root: Path) -> None:
    (root / "app" / "releases").mkdir(parents=True)


@pytest.mark.parametrize(
    ("case", "state", "flags"),
    [
        ("inspect", "inspect", ()),
        ("check mode and diff: inspect", "inspect", ("--check", "--diff")),
        ("failure: no such release", "marked", ()),
    ],
)
def test_release_is_the_same_on_both_paths(
    tmp_path: Path, case: str, state: str, flags: tuple[str, ...]
) -> None:
    def args(root: Path) -> dict[str, Any]:
        given: dict[str, Any] = {"app_root": str(root / "app"), "state": state}
        if state == "marked":
            given.update(mark="bad", release="v9.9.9", reason="parity")
        return given

    direct, usual = both_paths(tmp_path, releases, "release", args, *flags)
    assert direct == usual
    if state == "inspect":
        assert direct["rc"] == 0 and direct["releases"] == {}
    else:
        assert direct["rc"] != 0 and "v9.9.9" in direct["msg"]
