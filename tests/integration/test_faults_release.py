"""Level 3 under faults, on real hosts over SSH: the git server is down, a release on disk
was tampered with (its bytecode), or both.

The git server of the rig is a bare mirror on each host (/srv/git/demo-app.git, the
inventory's release_repo): moving it aside is the server going away with the inventory
unchanged, so `git ls-remote` and `git fetch` fail on the host as they would in the
incident. Each test asserts the end state on the hosts (current, releases.log, the lock,
the running app), the exit code and the run record, then that the next run does the right
thing. The tests run in order on one rig.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.integration.rig import (
    APP_ROOT,
    Run,
    app_hosts,
    current,
    deploy,
    health,
    lock_free,
    on,
    playbook,
    prepared,
    release_log,
)

pytestmark = pytest.mark.integration

STABLE, BAD = "v1.2.3-stable", "v1.3.0"
REPO = "/srv/git/demo-app.git"

# Swap the code in demo_app/__init__'s bytecode and keep its header (the checked source
# hash), so the interpreter still takes it for the untouched source: read_version() then
# says TAMPERED, which the app's /health reports as its version.
TAMPER = """
import glob, marshal, sys
rel = sys.argv[1]
(pyc,) = glob.glob(rel + "/demo_app/__pycache__/__init__.cpython-*.pyc")
source = open(rel + "/demo_app/__init__.py").read()
source += "\\ndef read_version(root=APP_ROOT):\\n    return 'TAMPERED'\\n"
header = open(pyc, "rb").read()[:16]
code = compile(source, rel + "/demo_app/__init__.py", "exec")
open(pyc, "wb").write(header + marshal.dumps(code))
print(pyc)
"""


@pytest.fixture(scope="module")
def rig(testhosts: Any) -> Any:
    deploy(prepared(testhosts), STABLE)
    return testhosts


def rollback(rig: Any, *extra: str) -> Run:
    return playbook(rig.inventory, "rollback-l3.yml", *extra)


@contextmanager
def git_server_down(rig: Any) -> Iterator[None]:
    """The repository is gone for every app host while the block runs."""
    hosts = app_hosts(rig)
    for host in hosts:
        on(rig, host, f"mv {REPO} {REPO}.down")
    try:
        yield
    finally:
        for host in hosts:
            on(rig, host, f"mv {REPO}.down {REPO}")


def states(rig: Any, host: str) -> dict[str, str]:
    """Tag -> its latest state in the host's releases.log."""
    return {e["tag"]: e["state"] for e in release_log(rig, host)}


def release_dir(rig: Any, host: str, tag: str) -> str:
    return on(rig, host, f"ls -d {APP_ROOT}/releases/{tag}-g*")


def tamper(rig: Any, host: str, tag: str) -> str:
    """Tamper with the release's bytecode; proves the interpreter would run it."""
    rel = release_dir(rig, host, tag)
    pyc = on(rig, host, f"python3 - {rel} <<'EOF'\n{TAMPER}\nEOF")
    loaded = on(
        rig,
        host,
        f"cd / && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={rel} "
        "python3 -c 'import demo_app; print(demo_app.read_version())'",
    )
    assert loaded == "TAMPERED", "the tampered bytecode is what the app would run"
    return pyc


def outcome(run: Run, host: str) -> dict[str, Any]:
    return dict(run.record["hosts"][host])


def test_fast_path_rolls_back_with_the_git_server_down(rig: Any) -> None:
    deploy(rig, BAD)
    with git_server_down(rig):
        run = rollback(rig)
        assert run.rc == 0, run.out[-4000:]
        timings = {h: r["timings"] for h, r in run.host_results().items()}
        print(f"\nlevel 3, fast path, git server down: {run.seconds:.2f} s; {timings}")
        assert f"the repository was unreachable from {', '.join(app_hosts(rig))}" in run.out
        assert "the target was chosen among the releases recorded on the hosts" in run.out
        assert "recorded in its releases.log" in run.out
        for host in app_hosts(rig):
            assert STABLE in current(rig, host)
            code, body = health(rig, host)
            assert code == 200 and body["release"].startswith(STABLE), body
            assert states(rig, host)[BAD] == "bad" and states(rig, host)[STABLE] == "current"
            assert lock_free(rig, host)
            result = run.host_results()[host]
            assert result["path"] == "fast" and result["status"] == "ok", result
            assert outcome(run, host)["status"] == "ok", outcome(run, host)
        # The next run, still without the server: already there, nothing to do.
        again = rollback(rig, "-e", f"release_target={STABLE}")
        assert again.rc == 0, again.out[-4000:]
        assert {r["path"] for r in again.host_results().values()} == {"none"}
        # And nothing older is on disk to roll back to: refused, saying why.
        older = rollback(rig)
        assert older.rc != 0
        assert "looked for among the releases recorded on the hosts" in older.out
        assert all(STABLE in current(rig, h) and lock_free(rig, h) for h in app_hosts(rig))


def test_a_host_that_must_rebuild_is_refused_while_the_git_server_is_down(rig: Any) -> None:
    deploy(rig, BAD)
    victim = app_hosts(rig)[0]
    on(rig, victim, f"rm -rf {APP_ROOT}/releases/{STABLE}-g*")
    before = {h: (current(rig, h), len(release_log(rig, h))) for h in app_hosts(rig)}
    with git_server_down(rig):
        run = rollback(rig)
    assert run.rc != 0
    assert f"{victim} would have to rebuild {STABLE}" in run.out, run.out[-3000:]
    assert "Restore access to the repository" in run.out and "release_target=TAG" in run.out
    assert "Nothing was changed" in run.out
    assert {h: (current(rig, h), len(release_log(rig, h))) for h in app_hosts(rig)} == before
    for host in app_hosts(rig):
        assert BAD in current(rig, host) and health(rig, host)[0] == 200
        assert lock_free(rig, host)
        assert set(outcome(run, host)["phases"]) <= {"preflight", "plan"}, "none past the plan"
    assert run.record["status"] == "failed"
    # The refusal runs once, on the first host of the play: the record puts it there.
    refused = outcome(run, app_hosts(rig)[0])
    assert refused["failed_phase"] == "plan" and "would have to rebuild" in refused["msg"]
    # With the server back, the next run rebuilds where it must.
    again = rollback(rig)
    assert again.rc == 0, again.out[-4000:]
    paths = {h: r["path"] for h, r in again.host_results().items()}
    assert paths[victim] == "rebuild" and all(
        p == "fast" for h, p in paths.items() if h != victim
    ), paths
    for host in app_hosts(rig):
        assert STABLE in current(rig, host) and health(rig, host)[0] == 200
        assert states(rig, host)[BAD] == "bad" and lock_free(rig, host)


def test_tampered_bytecode_takes_the_rebuild_path(rig: Any) -> None:
    deploy(rig, BAD)
    victim = app_hosts(rig)[-1]
    pyc = tamper(rig, victim, STABLE)
    run = rollback(rig)
    assert run.rc == 0, run.out[-4000:]
    paths = {h: r["path"] for h, r in run.host_results().items()}
    assert paths[victim] == "rebuild", paths
    assert all(p == "fast" for h, p in paths.items() if h != victim), paths
    for host in app_hosts(rig):
        assert STABLE in current(rig, host)
        code, body = health(rig, host)
        assert code == 200 and body["version"] != "TAMPERED", body
        assert states(rig, host)[BAD] == "bad" and lock_free(rig, host)
    assert outcome(run, victim)["status"] == "ok", outcome(run, victim)
    # The damaged tree is kept aside with the tampered file in it.
    aside = on(rig, victim, f"ls -d {APP_ROOT}/releases/.damaged-{STABLE}-g*")
    name = pyc.removeprefix(release_dir(rig, victim, STABLE))
    assert on(rig, victim, f"test -f {aside}{name} && echo kept") == "kept"
    # The next run finds the rebuilt tree intact: nothing to do.
    again = rollback(rig, "-e", f"release_target={STABLE}")
    assert again.rc == 0, again.out[-4000:]
    assert {r["path"] for r in again.host_results().values()} == {"none"}


def test_tampered_bytecode_with_the_git_server_down_stops_at_the_canary(rig: Any) -> None:
    deploy(rig, BAD)
    canary, rest = app_hosts(rig)[0], app_hosts(rig)[1:]
    pyc = tamper(rig, canary, STABLE)
    with git_server_down(rig):
        run = rollback(rig)
    assert run.rc != 0
    assert "must be rebuilt on this host" in run.out and pyc.split("/")[-1] in run.out
    for host in app_hosts(rig):
        assert BAD in current(rig, host), "the canary was left as it was, the rest untouched"
        assert health(rig, host)[1].get("version") != "TAMPERED"
        assert states(rig, host)[BAD] == "current" and lock_free(rig, host)
    failed = outcome(run, canary)
    assert failed["failed_phase"] == "build", failed
    for host in rest:
        assert set(outcome(run, host)["phases"]) == {"plan"}, "later batches were not touched"
    # The tampered tree stays where it was (never switched to); nothing was set aside.
    assert on(rig, canary, f"ls -a {APP_ROOT}/releases | grep -c damaged || true") == "0"
    # The server back, the next run rebuilds the canary's copy and rolls every host back.
    again = rollback(rig)
    assert again.rc == 0, again.out[-4000:]
    paths = {h: r["path"] for h, r in again.host_results().items()}
    assert paths[canary] == "rebuild" and all(paths[h] == "fast" for h in rest), paths
    for host in app_hosts(rig):
        assert STABLE in current(rig, host) and health(rig, host)[0] == 200
        assert states(rig, host)[BAD] == "bad" and lock_free(rig, host)
