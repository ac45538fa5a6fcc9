"""The release module on a real git repository in a temporary folder (no hosts needed)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.module_utils import applock, releases
from ansible_collections.sre.rollback.plugins.module_utils import release_ops as mod
from tests.conftest import REPO, VENV_BIN
from tests.support.tools import git

BUILD = "python3 -c \"import os; open('BUILT','w').write(os.environ['RELEASE_TAG'])\""


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, Any]:
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q")
    commits = {}
    for tag in ("v1.2.2-stable", "v1.2.3-stable", "v1.3.0"):
        (src / "app.txt").write_text(tag)
        (src / "uploads").mkdir(exist_ok=True)
        (src / "uploads" / "README").write_text("replaced by a link to shared/")
        git(src, "add", "-A")
        git(src, "commit", "-qm", tag)
        git(src, "tag", tag)
        commits[tag] = git(src, "rev-parse", "HEAD")
    return {"path": str(src), "commits": commits, "root": str(tmp_path / "app")}


def params(repo: dict[str, Any], **over: Any) -> dict[str, Any]:
    p = {
        "app_root": repo["root"],
        "state": "switched",
        "release": None,
        "tag": None,
        "commit": None,
        "repo": repo["path"],
        "build_command": BUILD,
        "build_timeout": 60,
        "shared_paths": ["uploads"],
        "keep": 5,
        "previous_state": "good",
        "mark": None,
        "event": "deploy",
        "reason": None,
        "run_id": "run-1",
        "user": "tester",
        "controller": "ctl:1",
        "break_lock": False,
        "verify": "full",
        "tags_pattern": None,
    }
    p.update(over)
    return p


def switch(repo: dict[str, Any], tag: str, check: bool = False, **over: Any) -> dict[str, Any]:
    fake = SimpleNamespace(check_mode=check)
    p = params(repo, tag=tag, commit=repo["commits"][tag], **over)
    result = mod.do_switch(fake, p)  # type: ignore[arg-type]
    if not check:
        applock.release(repo["root"], p["run_id"])
    return result


def current(repo: dict[str, Any]) -> str:
    return os.readlink(os.path.join(repo["root"], "current"))


def test_deploy_builds_links_shared_and_records(repo: dict[str, Any]) -> None:
    result = switch(repo, "v1.2.3-stable")
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    assert result["path"] == "rebuild" and result["changed"]
    assert current(repo) == f"releases/{rid}"
    rel = Path(repo["root"], "releases", rid)
    assert (rel / "BUILT").read_text() == "v1.2.3-stable"
    assert os.path.islink(rel / "uploads")
    assert os.readlink(rel / "uploads") == os.path.join(repo["root"], "shared", "uploads")
    log = releases.read_log(repo["root"])
    assert log[-1]["release"] == rid and log[-1]["state"] == "current"
    assert log[-1]["commit"] == repo["commits"]["v1.2.3-stable"]


def test_second_identical_run_changes_nothing(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    again = switch(repo, "v1.2.3-stable")
    assert again["path"] == "none" and not again["changed"]
    assert len(releases.read_log(repo["root"])) == 1


def test_rollback_takes_fast_path_and_marks_bad(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    back = switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    assert back["path"] == "fast"
    assert back["before"]["tag"] == "v1.3.0" and back["after"]["tag"] == "v1.2.3-stable"
    states = releases.release_states(releases.read_log(repo["root"]))
    bad = releases.release_id("v1.3.0", repo["commits"]["v1.3.0"])
    assert states[bad]["state"] == "bad"
    assert Path(repo["root"], "releases", bad).is_dir(), "the bad release stays for investigation"


def test_damaged_release_is_rebuilt_and_kept_aside(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    Path(repo["root"], "releases", rid, "app.txt").write_text("tampered")
    back = switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    assert back["path"] == "rebuild"
    assert "app.txt" in back["reason_for_rebuild"]
    assert Path(repo["root"], "releases", rid, "app.txt").read_text() == "v1.2.3-stable"
    assert Path(back["damaged_copy"], "app.txt").read_text() == "tampered"


def test_check_mode_plans_and_changes_nothing(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    before = sorted(p.name for p in Path(repo["root"], "releases").iterdir())
    plan = switch(repo, "v1.3.0", check=True)
    assert plan["changed"] and plan["path"] == "rebuild"
    assert plan["diff"]["after"].endswith(plan["release"] + "\n")
    assert sorted(p.name for p in Path(repo["root"], "releases").iterdir()) == before
    assert "v1.2.3-stable" in current(repo)


def test_moved_tag_is_refused(repo: dict[str, Any]) -> None:
    with pytest.raises(mod.ReleaseError, match="the tag moved"):
        mod.do_switch(
            SimpleNamespace(check_mode=False),  # type: ignore[arg-type]
            params(repo, tag="v1.3.0", commit=repo["commits"]["v1.2.2-stable"]),
        )
    assert not os.path.lexists(os.path.join(repo["root"], "current"))


def test_failed_build_leaves_nothing_behind(repo: dict[str, Any]) -> None:
    with pytest.raises(mod.ReleaseError, match="exit 3"):
        switch(repo, "v1.2.3-stable", build_command="echo broken >&2; exit 3")
    assert os.listdir(os.path.join(repo["root"], "releases")) == []


def test_lock_refuses_a_second_run_and_names_the_owner(repo: dict[str, Any]) -> None:
    os.makedirs(repo["root"])
    applock.acquire(
        repo["root"],
        {"run_id": "other", "user": "alice", "host": "ops1", "pid": "42", "action": "rollback"},
    )
    with pytest.raises(mod.ReleaseError, match=r"locked by run other by alice@ops1 \(pid 42"):
        switch(repo, "v1.2.3-stable")
    result = switch(repo, "v1.2.3-stable", break_lock=True)
    assert result["lock_broken"]["run_id"] == "other"


def test_prune_keeps_current_last_good_and_bad(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.2-stable")
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    result = switch(repo, "v1.2.2-stable", keep=1, event="rollback")
    left = sorted(p.name for p in Path(repo["root"], "releases").iterdir())
    assert len(left) == 3, "current, the last good and the bad release stay"
    assert result["pruned"] == []


def test_target_selection_orders_by_version_and_skips_bad() -> None:
    tags = ["v1.2.2-stable", "v1.10.0-stable", "v1.9.0-stable", "v1.11.0"]
    choice = releases.select_target(tags, "v1.11.0", {"v1.10.0-stable"})
    assert choice["tag"] == "v1.9.0-stable"
    assert "skipping bad v1.10.0-stable" in choice["why"]
    assert releases.select_target(tags, "v1.11.0", set(), named="v1.10.0-stable")["ok"]
    unknown = releases.select_target(tags, "v1.11.0", set(), named="v9")
    assert not unknown["ok"] and "v1.2.2-stable" in unknown["msg"]


def test_plan_names_hosts_that_resolve_another_commit() -> None:
    good = {
        "repo_tags": {"v1.2.3-stable": "a" * 40, "v1.3.0": "b" * 40},
        "current": {"tag": "v1.3.0", "release": "x"},
        "releases": {},
    }
    odd = json.loads(json.dumps(good))
    odd["repo_tags"]["v1.2.3-stable"] = "c" * 40
    plan = releases.plan_target({"h2": good, "h3": good, "h4": odd})
    assert not plan["ok"] and "h4" in plan["msg"] and "h2" not in plan["msg"].split(":")[0]
    ok = releases.plan_target({"h2": good, "h3": good})
    assert ok["ok"] and ok["tag"] == "v1.2.3-stable" and ok["hosts"]["h2"]["path"] == "rebuild"


def test_module_runs_through_ansible(repo: dict[str, Any]) -> None:
    """The module as Ansible runs it (FQCN, argument spec, JSON result), in check mode."""
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"),
            "localhost",
            "-c",
            "local",
            "-i",
            "localhost,",
            "-o",
            "-m",
            "sre.rollback.release",
            "-a",
            f"app_root={repo['root']} repo={repo['path']} tags_pattern=stable",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split("=>", 1)[1])
    assert set(result["repo_tags"]) == {"v1.2.2-stable", "v1.2.3-stable"}


# The build compiles a module to a checked-hash .pyc, as the demo's ./build does.
COMPILE = (
    "python3 -c \"import pathlib, py_compile; pathlib.Path('m.py').write_text('VALUE = 1\\n'); "
    "py_compile.compile('m.py', doraise=True, "
    'invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)"'
)


def imported_value(release: Path) -> str:
    """What `import m` gives in the release, as the app's interpreter would load it."""
    return subprocess.run(
        ["python3", "-c", "import m; print(m.VALUE)"],
        cwd=release,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(release)),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def tamper_pyc(release: Path) -> Path:
    """Swap the code in m's .pyc and keep its header (the source hash), so the interpreter
    still takes it for the untouched m.py: what a tampered bytecode file looks like."""
    (pyc,) = (release / "__pycache__").glob("m.*.pyc")
    # By the interpreter that runs the release (marshal's format is per Python version).
    subprocess.run(
        [
            "python3",
            "-c",
            "import marshal, sys; p = sys.argv[1]; h = open(p, 'rb').read()[:16]; "
            "open(p, 'wb').write(h + marshal.dumps(compile('VALUE = 666', 'm.py', 'exec')))",
            str(pyc),
        ],
        check=True,
    )
    return pyc


def test_manifest_covers_bytecode_so_a_tampered_pyc_is_rebuilt(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable", build_command=COMPILE)
    switch(repo, "v1.3.0", build_command=COMPILE)
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    release = Path(repo["root"], "releases", rid)
    manifest = json.loads((release / releases.MANIFEST_NAME).read_text())
    assert any(name.startswith("__pycache__/m.") for name in manifest), manifest
    pyc = tamper_pyc(release)
    assert imported_value(release) == "666", "the tampered bytecode is what would run"
    back = switch(
        repo, "v1.2.3-stable", build_command=COMPILE, previous_state="bad", event="rollback"
    )
    assert back["path"] == "rebuild", "a tampered .pyc fails verify=full"
    assert f"__pycache__/{pyc.name} (changed)" in back["reason_for_rebuild"]
    assert imported_value(release) == "1", "the rebuilt tree runs the commit's code"
    assert imported_value(Path(back["damaged_copy"])) == "666", "the damaged tree is kept aside"
    assert rid in current(repo)


@pytest.mark.parametrize(
    ("change", "how"),
    [
        ("touch evil.pth", "evil.pth (not in the manifest)"),
        ("mkdir -p __pycache__ && touch __pycache__/app.cpython-399.pyc", "(not in the manifest)"),
        ("rm app.txt", "app.txt (missing)"),
        ("chmod +x app.txt", "app.txt (changed)"),
        ("rm uploads && mkdir uploads && touch uploads/x.py", "uploads (missing)"),
    ],
)
def test_any_new_removed_or_changed_file_fails_full_verification(
    repo: dict[str, Any], change: str, how: str
) -> None:
    switch(repo, "v1.2.3-stable")
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    release = Path(repo["root"], "releases", rid)
    commit = repo["commits"]["v1.2.3-stable"]
    assert mod.verify_release(str(release), commit, "full") is None
    subprocess.run(["sh", "-c", change], cwd=release, check=True)
    damage = mod.verify_release(str(release), commit, "full")
    assert damage is not None and how in damage, damage
    assert mod.verify_release(str(release), commit, "commit") is None, "commit trusts the record"


def test_a_manifest_that_left_bytecode_out_is_not_trusted(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    meta_file = Path(repo["root"], "releases", rid, releases.META_NAME)
    meta = json.loads(meta_file.read_text())
    del meta["manifest_format"]  # as the module wrote it before the manifest covered bytecode
    meta_file.write_text(json.dumps(meta))
    back = switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    assert back["path"] == "rebuild"
    assert "format 1" in back["reason_for_rebuild"]


def test_inspect_reports_an_unreachable_repository_instead_of_failing(
    repo: dict[str, Any],
) -> None:
    switch(repo, "v1.2.3-stable")
    os.rename(repo["path"], repo["path"] + ".down")
    failed, result = mod.execute(params(repo, state="inspect", tags_pattern="stable"), False)
    assert not failed, result
    assert "repo_tags" not in result and "ls-remote" in result["repo_error"]
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    assert result["releases"][rid]["on_disk"] and result["current"]["release"] == rid


def test_fast_path_needs_no_repository(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    os.rename(repo["path"], repo["path"] + ".down")
    back = switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    assert back["path"] == "fast" and "v1.2.3-stable" in current(repo)


def test_rebuild_without_the_repository_leaves_the_host_as_it_was(repo: dict[str, Any]) -> None:
    switch(repo, "v1.2.3-stable")
    switch(repo, "v1.3.0")
    rid = releases.release_id("v1.2.3-stable", repo["commits"]["v1.2.3-stable"])
    Path(repo["root"], "releases", rid, "app.txt").write_text("tampered")
    os.rename(repo["path"], repo["path"] + ".down")
    log_before = releases.read_log(repo["root"])
    with pytest.raises(mod.ReleaseError, match=rf"release {rid} must be rebuilt.*app.txt"):
        switch(repo, "v1.2.3-stable", previous_state="bad", event="rollback")
    applock.release(repo["root"], "run-1")
    assert "v1.3.0" in current(repo)
    assert Path(repo["root"], "releases", rid, "app.txt").read_text() == "tampered"
    assert not [n for n in os.listdir(Path(repo["root"], "releases")) if n.startswith(".")]
    assert releases.read_log(repo["root"]) == log_before


def inspection(current_tag: str, *records: tuple[str, str, bool, str], **extra: Any) -> Any:
    """A host's inspection: current release, releases (tag, commit, on disk, state)."""
    rels = {
        releases.release_id(tag, commit): {
            "tag": tag,
            "commit": commit,
            "on_disk": on_disk,
            "state": state,
        }
        for tag, commit, on_disk, state in records
    }
    cur = next(r for r, v in rels.items() if v["tag"] == current_tag)
    return {"current": {"tag": current_tag, "release": cur}, "releases": rels, **extra}


A, B, C, D = "a" * 40, "b" * 40, "c" * 40, "d" * 40
DOWN = {"repo_error": "git ls-remote --tags /srv/git/app.git failed (exit 128) in /: fatal"}
ON_HOSTS = [
    ("v1.2.2-stable", D, True, "good"),
    ("v1.2.3-stable", A, True, "good"),
    ("v1.3.0", B, True, "current"),
]


def test_plan_without_the_repository_uses_the_releases_recorded_on_the_hosts() -> None:
    hosts = {h: inspection("v1.3.0", *ON_HOSTS, **DOWN) for h in ("h2", "h3")}
    plan = releases.plan_target(hosts)
    assert plan["ok"], plan
    assert plan["tag"] == "v1.2.3-stable" and plan["commit"] == A
    assert {h["path"] for h in plan["hosts"].values()} == {"fast"}
    assert plan["verify"] == "full" and set(plan["repo_unreachable"]) == {"h2", "h3"}
    assert "unreachable from h2, h3" in plan["why"]
    assert "chosen among the releases recorded on the hosts" in plan["why"]
    assert "releases.log" in plan["why"]
    named = releases.plan_target(hosts, named="v1.2.2-stable")
    assert named["ok"] and named["commit"] == D


def test_plan_without_the_repository_refuses_hosts_whose_records_disagree() -> None:
    odd = [("v1.2.3-stable", C, True, "good"), ("v1.3.0", B, True, "current")]
    hosts = {
        "h2": inspection("v1.3.0", *ON_HOSTS, **DOWN),
        "h3": inspection("v1.3.0", *ON_HOSTS, **DOWN),
        "h4": inspection("v1.3.0", *odd, **DOWN),
    }
    plan = releases.plan_target(hosts)
    assert not plan["ok"] and plan["msg"].startswith("hosts do not agree on tag v1.2.3-stable: h4")
    assert "their release logs record" in plan["msg"]


def test_plan_refuses_a_rebuild_that_needs_the_unreachable_repository() -> None:
    pruned = [("v1.2.3-stable", A, False, "good"), *ON_HOSTS[::2]]
    hosts = {
        "h2": inspection("v1.3.0", *ON_HOSTS, **DOWN),
        "h3": inspection("v1.3.0", *pruned, **DOWN),
    }
    plan = releases.plan_target(hosts)
    assert not plan["ok"] and plan["hosts"]["h3"]["path"] == "rebuild"
    assert plan["msg"].startswith("h3 would have to rebuild v1.2.3-stable")
    assert "unreachable from h2, h3" in plan["msg"]
    assert "-e release_target=TAG (v1.2.2-stable)" in plan["msg"], "what every host has"
    unknown = releases.plan_target(hosts, named="v9.9.9")
    assert not unknown["ok"]
    assert "looked for among the releases recorded on the hosts" in unknown["msg"]


def test_plan_checks_an_unreachable_hosts_record_against_the_repository() -> None:
    remote = {"repo_tags": {"v1.2.3-stable": A, "v1.3.0": B}}
    hosts = {
        "h2": inspection("v1.3.0", *ON_HOSTS, **remote),
        "h3": inspection("v1.3.0", *ON_HOSTS, **DOWN),
    }
    plan = releases.plan_target(hosts)
    assert plan["ok"] and plan["commit"] == A and plan["repo_unreachable"].keys() == {"h3"}
    assert "the commit of v1.2.3-stable on h3 is the one recorded" in plan["why"]
    hosts["h2"]["repo_tags"]["v1.2.3-stable"] = C  # the tag moved since h3 built it
    moved = releases.plan_target(hosts)
    assert not moved["ok"] and "do not agree on tag v1.2.3-stable" in moved["msg"]
