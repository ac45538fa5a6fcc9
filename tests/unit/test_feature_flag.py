"""The feature_flag and flag_evaluation modules on real files and a real HTTP flag service
(tests/support/flagservice.py on 127.0.0.1); no hosts needed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import applock
from ansible_collections.sre.rollback.plugins.module_utils import feature_flags as ff
from ansible_collections.sre.rollback.plugins.module_utils import flag_ops as mod
from tests.conftest import REPO, VENV_BIN
from tests.support.flagservice import FlagService

TOKEN = "s3cr3t-admin-token-4711"  # noqa: S105 - planted, to prove it never shows
FLAGS = {
    "flags": {
        "new_checkout": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
        "dark_mode": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "off",
        },
        "banner": {
            "state": "ENABLED",
            "variants": {"red": "#f00", "blue": "#00f"},
            "defaultVariant": "red",
        },
    }
}


@pytest.fixture
def flags_file(tmp_path: Path) -> Path:
    path = tmp_path / "etc" / "flags.json"
    path.parent.mkdir()
    path.write_text(json.dumps(FLAGS, indent=2) + "\n")
    path.chmod(0o640)
    (tmp_path / "app").mkdir()
    return path


def params(path: Path, **over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "flags": ["new_checkout"],
        "state": "disabled",
        "backend": "file",
        "path": str(path),
        "method": "state",
        "off_variant": None,
        "on_variant": None,
        "backup_dir": str(path.parent.parent / "backups"),
        "backup_keep": 3,
        "http": {},
        "audit_log": str(path.parent.parent / "audit.jsonl"),
        "reason": "checkout errors",
        "incident": "INC-42",
        "run_id": "run-1",
        "user": "alice",
        "controller": "ops1:99",
        "lock_root": str(path.parent.parent / "app"),
        "break_lock": False,
        "clear": {},
        "probe": {},
    }
    p.update(over)
    return p


def call(p: dict[str, Any], check: bool = False) -> dict[str, Any]:
    return mod.run(SimpleNamespace(check_mode=check), p)  # type: ignore[arg-type]


def audit(path: Path) -> list[dict[str, Any]]:
    log = path.parent.parent / "audit.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_disable_writes_atomically_keeps_a_backup_and_audits(flags_file: Path) -> None:
    inode = flags_file.stat().st_ino
    old = flags_file.read_text()
    result = call(params(flags_file))
    assert result["changed"] and result["verified"]
    assert result["flags"] == {
        "new_checkout": {"before": "enabled", "after": "disabled", "changed": True}
    }
    written = json.loads(flags_file.read_text())
    assert written["flags"]["new_checkout"]["state"] == "DISABLED"
    assert written["flags"]["dark_mode"] == FLAGS["flags"]["dark_mode"], "other flags untouched"
    assert flags_file.stat().st_ino != inode, "replaced by a rename, not rewritten in place"
    assert oct(flags_file.stat().st_mode & 0o777) == "0o640"
    assert Path(result["backup"]).read_text() == old
    entry = audit(flags_file)[-1]
    assert {
        k: entry[k] for k in ("flag", "before", "after", "reason", "incident", "who", "run_id")
    } == {
        "flag": "new_checkout",
        "before": "enabled",
        "after": "disabled",
        "reason": "checkout errors",
        "incident": "INC-42",
        "who": "alice",
        "run_id": "run-1",
    }
    assert entry["time"].endswith("Z")
    assert not (flags_file.parent.parent / "app" / ".rollback.lock").exists(), "lock dropped"


def test_second_run_changes_nothing(flags_file: Path) -> None:
    call(params(flags_file))
    text = flags_file.read_text()
    again = call(params(flags_file, run_id="run-2"))
    assert not again["changed"] and again["verified"]
    assert flags_file.read_text() == text
    assert len(audit(flags_file)) == 1


def test_unknown_flag_fails_before_any_change(flags_file: Path) -> None:
    text = flags_file.read_text()
    with pytest.raises(
        ff.FlagError, match=r"unknown flag 'new_chekout' \(did you mean 'new_checkout'\?\)"
    ):
        call(params(flags_file, flags=["new_checkout", "new_chekout"]))
    assert flags_file.read_text() == text
    assert audit(flags_file) == []


def test_invalid_file_is_refused(flags_file: Path) -> None:
    broken = json.loads(flags_file.read_text())
    broken["flags"]["new_checkout"]["defaultVariant"] = "maybe"
    flags_file.write_text(json.dumps(broken))
    with pytest.raises(ff.FlagError, match="defaultVariant 'maybe' is not one of the variants"):
        call(params(flags_file))
    flags_file.write_text("{not json")
    with pytest.raises(ff.FlagError, match="not valid JSON"):
        call(params(flags_file))


def test_variant_method_switches_the_default_variant(flags_file: Path) -> None:
    result = call(params(flags_file, method="variant"))
    flag = json.loads(flags_file.read_text())["flags"]["new_checkout"]
    assert result["changed"] and flag == {**FLAGS["flags"]["new_checkout"], "defaultVariant": "off"}
    on = call(params(flags_file, method="variant", state="enabled"))
    assert on["flags"]["new_checkout"]["after"] == "enabled"
    assert json.loads(flags_file.read_text())["flags"]["new_checkout"]["defaultVariant"] == "on"


def test_several_flags_at_once_and_explicit_states(flags_file: Path) -> None:
    result = call(params(flags_file, flags=["new_checkout", "dark_mode", "banner"]))
    assert result["flags"]["dark_mode"] == {
        "before": "disabled",
        "after": "disabled",
        "changed": False,
    }
    assert result["flags"]["banner"]["changed"]
    states = {n: f["state"] for n, f in json.loads(flags_file.read_text())["flags"].items()}
    assert states == {"new_checkout": "DISABLED", "dark_mode": "ENABLED", "banner": "DISABLED"}
    assert [e["flag"] for e in audit(flags_file)] == ["new_checkout", "banner"]


def test_enabling_by_state_a_flag_whose_default_is_off_says_what_to_do(flags_file: Path) -> None:
    with pytest.raises(ff.FlagError, match="use method=variant"):
        call(params(flags_file, flags=["dark_mode"], state="enabled"))


def test_check_mode_plans_with_a_diff_and_changes_nothing(flags_file: Path) -> None:
    text = flags_file.read_text()
    plan = call(params(flags_file), check=True)
    assert plan["changed"] and not plan["verified"]
    assert '"state": "DISABLED"' in plan["diff"]["after"] and plan["diff"]["before"] == text
    assert plan["audit"][0]["after"] == "disabled"
    assert flags_file.read_text() == text and audit(flags_file) == []


def test_a_lock_held_by_another_run_is_refused_and_can_be_broken(flags_file: Path) -> None:
    app = str(flags_file.parent.parent / "app")
    applock.acquire(
        app, {"run_id": "deploy-7", "user": "bob", "host": "ci", "pid": "1", "action": "deploy"}
    )
    text = flags_file.read_text()
    with pytest.raises(mod.ChangeError, match="locked by run deploy-7 by bob@ci"):
        call(params(flags_file))
    assert flags_file.read_text() == text
    assert call(params(flags_file, break_lock=True))["changed"]
    assert applock.read_owner(app) is None


def test_the_lock_of_the_same_run_is_kept(flags_file: Path) -> None:
    app = str(flags_file.parent.parent / "app")
    applock.acquire(app, {"run_id": "run-1", "user": "alice"})
    assert call(params(flags_file))["changed"]
    assert applock.read_owner(app)["run_id"] == "run-1", "a lock the run held before stays"


def test_backups_are_pruned(flags_file: Path) -> None:
    for i in range(5):
        call(params(flags_file, state="enabled" if i % 2 else "disabled", run_id=f"run-{i}"))
    assert len(list((flags_file.parent.parent / "backups").iterdir())) == 3


# --- evaluation answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "state"),
    [
        (200, {"key": "f", "value": False, "reason": "DISABLED"}, "disabled"),  # the demo app
        (200, {"key": "f", "reason": "DISABLED", "metadata": {}}, "disabled"),  # flagd today
        (
            404,
            {"key": "f", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "flag `f` is disabled"},
            "disabled",
        ),
        (200, {"key": "f", "errorCode": "FLAG_DISABLED"}, "disabled"),
        (200, {"key": "f", "value": False, "reason": "STATIC", "variant": "off"}, "disabled"),
        (200, {"key": "f", "value": True, "reason": "STATIC", "variant": "on"}, "enabled"),
        (200, {"key": "f", "value": 0, "reason": "STATIC"}, "enabled"),
        (404, {"key": "f", "errorCode": "FLAG_NOT_FOUND", "errorDetails": "not found"}, "error"),
        (400, {"key": "f", "errorCode": "PARSE_ERROR"}, "error"),
        (500, "oops", "error"),
    ],
)
def test_both_disabled_answers_count_as_off(status: int, body: Any, state: str) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    assert ff.judge_evaluation(status, text, [False])[0] == state


def test_not_found_is_off_only_when_asked() -> None:
    body = json.dumps({"key": "f", "errorCode": "FLAG_NOT_FOUND"})
    assert ff.judge_evaluation(404, body, [False], not_found_is_off=True)[0] == "disabled"


def load_demo_flags() -> Any:
    path = REPO / "roles" / "demo_app" / "files" / "src" / "demo_app" / "flags.py"
    spec = importlib.util.spec_from_file_location("demo_app_flags", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "flag",
    [
        {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
        {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"},
        {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"},
        {"state": "maybe", "variants": {"on": True}, "defaultVariant": "on"},
        {"state": "ENABLED", "variants": {}, "defaultVariant": "on"},
        {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on", "colour": 1},
    ],
)
def test_the_collection_reads_flags_like_the_demo_app(flag: dict[str, Any]) -> None:
    demo = load_demo_flags()
    document = {"flags": {"f": flag}}
    assert bool(ff.document_problems(document)) == bool(demo.validate_flags_document(document))
    if not ff.document_problems(document):
        app_off = demo.evaluate("f", document["flags"]).value is not True
        assert (ff.flag_state(flag) == "disabled") == app_off


# --- the http backend against a real flag service --------------------------------------------


def http_params(service: FlagService, **over: Any) -> dict[str, Any]:
    http = {  # as the role passes it: unset inputs are empty, so the preset's values apply
        "preset": "unleash",
        "base_url": service.url,
        "token": TOKEN,
        "read": "",
        "state_path": "",
        "off_values": [],
        "set_body": {},
        "get_body": {},
        "headers": {},
        "not_found_is_off": False,
        "timeout": 5.0,
        "validate_certs": True,
    }
    http.update(over.pop("http", {}))
    p = params(Path("/nonexistent/x/flags.json"), backend="http", http=http, lock_root=None, **over)
    p["path"] = None
    return p


def test_unleash_preset_disables_and_reads_back(tmp_path: Path) -> None:
    with FlagService(token=TOKEN, flags={"new_checkout": True, "other": True}) as service:
        p = http_params(service, audit_log=str(tmp_path / "audit.jsonl"))
        result = call(p)
        assert result["changed"] and result["verified"]
        assert service.flags == {"new_checkout": False, "other": True}
        assert all(r["authorized"] for r in service.requests)
        assert [
            r["path"].rsplit("/", 1)[-1] for r in service.requests if r["method"] == "POST"
        ] == ["off"]
        assert not call(p)["changed"], "second run: already off"
    assert json.loads((tmp_path / "audit.jsonl").read_text())["backend"] == "http"


def test_http_unknown_flag_and_bad_token_fail_before_any_change() -> None:
    with FlagService(token=TOKEN, flags={"new_checkout": True}) as service:
        with pytest.raises(ff.FlagError, match="unknown flag 'nope'"):
            call(http_params(service, flags=["new_checkout", "nope"]))
        with pytest.raises(ff.FlagError, match="answered 401") as refused:
            call(http_params(service, http={"token": "wrong-token-123"}))
        assert TOKEN not in str(refused.value)
        assert not [r for r in service.requests if r["method"] == "POST"]
        assert service.flags == {"new_checkout": True}


def test_generic_api_with_ofrep_read_back() -> None:
    with FlagService(flags={"new_checkout": True}, disabled_style="not_found") as service:
        http = {
            "preset": "ofrep",
            "set_method": "POST",
            "set_url": "{base_url}/api/admin/projects/default/features/{flag}"
            "/environments/production/{on_off}",
        }
        result = call(http_params(service, http={**http, "token": ""}))
        assert result["verified"] and service.flags == {"new_checkout": False}


# --- through Ansible -------------------------------------------------------------------------


def ansible(
    module: str, args: dict[str, Any], check: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-m",
            module,
            "-a",
            json.dumps(args),
            *(["--check"] if check else []),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3", ANSIBLE_NOCOLOR="1"),
    )


def test_modules_run_through_ansible_and_never_show_the_token(tmp_path: Path) -> None:
    with FlagService(token=TOKEN, flags={"new_checkout": True}) as service:
        args = {
            "flags": ["new_checkout"],
            "backend": "http",
            "http": {"preset": "unleash", "base_url": service.url, "token": TOKEN},
            "audit_log": str(tmp_path / "audit.jsonl"),
        }
        proc = ansible("sre.rollback.feature_flag", args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "CHANGED" in proc.stdout and TOKEN not in proc.stdout + proc.stderr
        probe = ansible(
            "sre.rollback.flag_evaluation",
            {
                "url": f"{service.url}/ofrep/v1/evaluate/flags/{{flag}}",
                "method": "POST",
                "body": {"context": {}},
                "flags": ["new_checkout"],
                "deadline": 5,
            },
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert "reason DISABLED" in probe.stdout
        service.flags["new_checkout"] = True
        late = ansible(
            "sre.rollback.flag_evaluation",
            {
                "url": f"{service.url}/ofrep/v1/evaluate/flags/{{flag}}",
                "method": "POST",
                "body": {"context": {}},
                "flags": ["new_checkout"],
                "deadline": 1,
            },
        )
        assert late.returncode != 0 and "did not evaluate disabled" in late.stdout


def test_cache_clear_before_the_probe_fails_loudly() -> None:
    assert ff.clear_caches({}, 5.0) is None
    assert ff.clear_caches({"command": "true"}, 5.0) == {"command": "true", "rc": 0}
    with pytest.raises(ff.FlagError, match=r"failed \(exit 3\): nope"):
        ff.clear_caches({"command": "echo nope; exit 3"}, 5.0)
    with FlagService() as service, pytest.raises(ff.FlagError, match="answered 404"):
        ff.clear_caches({"url": f"{service.url}/cache/clear"}, 5.0)


def ofrep_probe(service: FlagService, deadline: float = 2.0) -> dict[str, Any]:
    return {
        "url": f"{service.url}/ofrep/v1/evaluate/flags/{{flag}}",
        "method": "POST",
        "body": {"context": {}},
        "deadline": deadline,
        "interval": 0.1,
    }


def test_set_and_verify_where_evaluated_in_one_call(flags_file: Path) -> None:
    """The file changes, then the evaluation endpoint is polled in the same call."""
    with FlagService(flags={"new_checkout": False}) as service:
        result = call(params(flags_file, probe=ofrep_probe(service), clear={"command": "true"}))
        assert result["verified"] and result["evaluation"]["ok"]
        assert result["cleared"] == {"command": "true", "rc": 0}
        assert result["evaluation"]["evaluations"]["new_checkout"]["state"] == "disabled"
        again = call(params(flags_file, probe=ofrep_probe(service), clear={"command": "false"}))
        assert not again["changed"] and again["cleared"] is None, "no change: no cache clear"
        assert again["evaluation"]["ok"], "a second run still verifies where the app evaluates"
    assert [(ph["phase"], ph["status"]) for ph in mod.phases_of(result)] == [
        ("set", "changed"),
        ("verify", "ok"),
    ]
    assert [ph["status"] for ph in mod.phases_of(again)] == ["ok", "ok"]


def test_an_app_that_keeps_the_old_state_fails_the_probe_but_the_change_stays(
    flags_file: Path,
) -> None:
    with FlagService(flags={"new_checkout": True}) as service:
        result = call(params(flags_file, probe=ofrep_probe(service, deadline=0.5)))
    assert not result["evaluation"]["ok"]
    assert "did not evaluate disabled" in result["evaluation"]["msg"]
    assert json.loads(flags_file.read_text())["flags"]["new_checkout"]["state"] == "DISABLED"
    assert audit(flags_file)[-1]["after"] == "disabled", "the change is audited all the same"
    verify = mod.phases_of(result)[-1]
    assert verify["status"] == "failed" and "did not evaluate disabled" in verify["msg"]


@pytest.mark.parametrize(
    "module", ["feature_flag", "flag_evaluation", "config_revision", "release", "health_check"]
)
def test_module_documentation_renders(module: str) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "--json", f"sre.rollback.{module}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[f"sre.rollback.{module}"]
    assert doc["doc"]["options"] and doc["examples"] and doc["return"]
    if module in ("config_revision", "release"):  # the one-call rollout's doc fragment
        options = doc["doc"]["options"]
        assert {"manager", "start_command"} <= set(options["service"]["suboptions"])
        assert {"url", "successes", "deadline"} <= set(options["health"]["suboptions"])
