"""Every run gets an identity of its own, and a lock held by another run is never entered."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

from ansible_collections.sre.rollback.plugins.module_utils import applock
from ansible_collections.sre.rollback.plugins.plugin_utils import run_identity


def test_run_ids_made_in_the_same_second_differ() -> None:
    ids = {run_identity.new_run_id() for _ in range(20000)}
    assert len(ids) == 20000
    assert re.fullmatch(r"\d{8}T\d{6}Z-l3-[0-9a-f]{12}", run_identity.new_run_id("l3"))


def _made_in_child(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(run_identity.run_identity({})["run_id"])


def test_without_a_given_id_one_process_names_one_run_and_forks_do_not_inherit_it() -> None:
    first = run_identity.run_identity({})["run_id"]
    assert run_identity.run_identity({})["run_id"] == first, "one set_fact templates one id"
    queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()  # type: ignore[type-arg]
    child = multiprocessing.get_context("fork").Process(target=_made_in_child, args=(queue,))
    child.start()
    child.join(10)
    assert queue.get(timeout=5) != first, "a forked worker of another run makes its own"


def test_the_id_given_wins_then_the_operators_then_the_callbacks() -> None:
    made = {run_identity.PLAY_VAR: "from-callback"}
    assert run_identity.run_identity(made)["run_id"] == "from-callback"
    assert run_identity.run_identity({**made, "rollback_run_id": "op"})["run_id"] == "op"
    assert run_identity.run_identity({**made, "rollback_run_id": " "})["run_id"] == "from-callback"
    assert run_identity.run_identity(made, run_id="role")["run_id"] == "role"


def test_the_real_user_behind_sudo_and_awx() -> None:
    assert run_identity.real_user({"rollback_user": "alice"}, {"SUDO_USER": "bob"}) == "alice"
    assert run_identity.real_user({"awx_user_name": "carol"}, {"SUDO_USER": "bob"}) == "carol"
    assert run_identity.real_user({}, {"SUDO_USER": "bob", "USER": "root"}) == "bob"
    assert run_identity.real_user({}, {"SUDO_USER": "root"})  # root's sudo: the login user


def test_controller_process_is_the_playbook_process_from_a_worker() -> None:
    host, _, pid = run_identity.controller_process().partition(":")
    assert host and int(pid) > 0


def owner(run_id: str, pid: str) -> dict[str, str]:
    return applock.owner(run_id, "alice", f"ops1:{pid}", "rollback")


def test_the_same_run_reenters_its_lock(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert applock.acquire(root, owner("run-a", "100"))["changed"]
    again = applock.acquire(root, owner("run-a", "100"))
    assert again["acquired"] and not again["changed"]


def test_another_process_with_the_same_run_id_is_refused(tmp_path: Path) -> None:
    """Two runs given the same id (an AWX relaunch, a copied command line) still exclude."""
    root = str(tmp_path)
    assert applock.acquire(root, owner("run-a", "100"))["acquired"]
    refused = applock.acquire(root, owner("run-a", "200"))
    assert not refused["acquired"]
    assert "same run id" in refused["msg"] and "leave rollback_run_id unset" in refused["msg"]
    assert applock.read_owner(root)["pid"] == "100", "the holder keeps its lock"


def test_an_old_lock_without_a_pid_is_reentered_by_its_run(tmp_path: Path) -> None:
    root = str(tmp_path)
    applock.acquire(root, {"run_id": "run-a"})
    assert applock.acquire(root, owner("run-a", "100"))["acquired"]
    assert not applock.acquire(root, owner("run-b", "100"))["acquired"]
