"""sre.rollback.role_inputs: a role's argument spec and its own input checks in one task.
Real ansible-playbook runs on the local connection, against a small role written by the
test and against the release role itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import REPO, VENV_BIN

SPEC = """
argument_specs:
  main:
    options:
      demo_root: {type: path, required: true}
      demo_keep: {type: int, default: 3}
      demo_mode: {type: str, choices: [fast, slow], default: fast}
  other:
    options:
      demo_other: {type: str, required: true}
"""

TASKS = """
- name: Check the demo inputs
  sre.rollback.role_inputs:
    what: demo
    problems: >-
      {{ ([] if demo_root | default('/') is abs else ['demo_root must be absolute'])
         + ([] if demo_keep | int >= 1 else ['demo_keep must be at least 1.']) }}
- name: After the check
  ansible.builtin.debug:
    msg: went on
"""


def run_playbook(playbook: Path, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    """Exit status and, per task, its name and result (the default callback's one-line JSON)."""
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(playbook.parent / "roles"),
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_CALLBACK_FORMAT_PRETTY="false",
        ANSIBLE_NOCOLOR="1",
        SRE_ROLLBACK_RECORD_DIR=str(playbook.parent / "runs"),
    )
    command = [str(VENV_BIN / "ansible-playbook"), "-v", "-i", "localhost,", "-c", "local"]
    command += ["-e", "ansible_python_interpreter=/usr/bin/python3"]
    proc = subprocess.run(
        [*command, str(playbook), *extra],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    tasks: list[dict[str, Any]] = []
    for line in proc.stdout.splitlines():
        if line.startswith("TASK ["):
            name = line[len("TASK [") : line.rindex("]")]
            tasks.append({"name": name.split(" : ", 1)[-1]})
        elif line.startswith(
            (
                "ok: [localhost] => {",
                "changed: [localhost] => {",
                "fatal: [localhost]: FAILED! => {",
            )
        ):
            status = "failed" if line.startswith("fatal") else "ok"
            tasks[-1].update(json.loads(line[line.index("{") :]), status=status)
    return proc.returncode, tasks


def play(
    tmp_path: Path, role_line: str, *extra: str, tasks: str = TASKS
) -> tuple[int, list[dict[str, Any]]]:
    """Run a one-play playbook that imports the test's role; exit status and tasks."""
    role = tmp_path / "roles" / "demo"
    (role / "meta").mkdir(parents=True, exist_ok=True)
    (role / "tasks").mkdir(parents=True, exist_ok=True)
    (role / "defaults").mkdir(parents=True, exist_ok=True)
    (role / "meta" / "argument_specs.yml").write_text(SPEC)
    (role / "defaults" / "main.yml").write_text("demo_keep: 3\ndemo_mode: fast\n")
    (role / "tasks" / "main.yml").write_text(tasks)
    (role / "tasks" / "other.yml").write_text(TASKS.replace("    what: demo\n", ""))
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.import_role:\n{role_line}"
    )
    return run_playbook(playbook, *extra)


MAIN = "        name: demo\n        rolespec_validate: false\n"


def test_spec_errors_and_own_problems_fail_together_before_anything_else(tmp_path: Path) -> None:
    status, tasks = play(tmp_path, MAIN, "-e", "demo_keep=zero", "-e", "demo_mode=warp")
    assert status != 0
    assert [t["name"] for t in tasks] == ["Check the demo inputs"]
    failed = tasks[0]
    assert failed["status"] == "failed"
    assert failed["argument_errors"] == [
        "missing required arguments: demo_root",
        "argument 'demo_keep' is of type str and we were unable to convert to int: "
        "\"'zero'\" cannot be converted to an int",
        "value of demo_mode must be one of: fast, slow, got: warp",
    ]
    assert failed["problems"] == ["demo_keep must be at least 1."]
    assert failed["msg"].startswith("Bad demo inputs: missing required arguments: demo_root. ")
    assert failed["msg"].endswith("demo_keep must be at least 1. Nothing was changed.")


def test_good_inputs_pass_and_the_role_goes_on(tmp_path: Path) -> None:
    status, tasks = play(tmp_path, MAIN, "-e", "demo_root=/srv/demo")
    assert status == 0
    assert [t["name"] for t in tasks] == ["Check the demo inputs", "After the check"]
    assert tasks[0]["msg"] == "The demo inputs are valid (argument spec 'main', own checks)."
    assert tasks[0]["changed"] is False


def test_the_entry_point_is_the_one_ansible_would_validate(tmp_path: Path) -> None:
    # tasks_from: other -> the `other` spec (demo_root is not required there), and the
    # message names the role when `what` is not given.
    line = "        name: demo\n        tasks_from: other\n        rolespec_validate: false\n"
    status, tasks = play(tmp_path, line, "-e", "demo_root=relative")
    assert status != 0
    assert tasks[0]["argument_errors"] == ["missing required arguments: demo_other"]
    assert tasks[0]["problems"] == ["demo_root must be absolute"]
    assert tasks[0]["msg"] == (
        "Bad demo inputs: missing required arguments: demo_other. demo_root must be "
        "absolute. Nothing was changed."
    )


def plan_playbook(tmp_path: Path, role: str) -> Path:
    """A playbook that runs the collection role's plan entry point, as the levels import it."""
    playbook = tmp_path / f"{role}.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.import_role:\n"
        f"        name: sre.rollback.{role}\n        tasks_from: plan\n"
        "        rolespec_validate: false\n"
    )
    return playbook


def test_the_release_role_refuses_bad_inputs_in_its_first_task(tmp_path: Path) -> None:
    playbook = plan_playbook(tmp_path, "release")
    status, tasks = run_playbook(
        playbook, "-e", "release_app_root=opt/app", "-e", "release_keep=0", "-e", "release_repo=/r"
    )
    assert status != 0
    assert [t["name"] for t in tasks] == [
        "Check the release inputs, then inspect the releases, the lock and the repository tags "
        "on each host"
    ]
    assert "current" not in tasks[0], "the inspection did not run"
    assert tasks[0]["msg"] == (
        "Bad release inputs: missing required arguments: release_service_name. "
        "Set release_health_url, or release_health_check=false to roll out without a health "
        "gate. release_keep and release_health_successes must be at least 1. "
        "release_app_root must be an absolute path. Nothing was changed."
    )


def test_the_release_plan_reports_missing_required_inputs_before_anything(tmp_path: Path) -> None:
    # The inspection's options are templated before the check runs: a missing required input
    # must still be reported by the check, with every other problem, not as a template error.
    playbook = plan_playbook(tmp_path, "release")
    status, tasks = run_playbook(playbook, "-e", "release_health_check=false")
    assert status != 0
    assert tasks[0]["msg"] == (
        "Bad release inputs: missing required arguments: release_app_root, release_repo, "
        "release_service_name. Nothing was changed."
    )
    assert "current" not in tasks[0], "the inspection did not run"


def test_the_config_plan_reports_bad_inputs_before_anything(tmp_path: Path) -> None:
    playbook = plan_playbook(tmp_path, "config")
    status, tasks = run_playbook(playbook, "-e", "config_action=bogus", "-e", "config_keep=1")
    assert status != 0
    assert [t["name"] for t in tasks] == ["Check the config inputs"], "nothing ran after it"
    checked = tasks[0]
    assert checked["msg"].startswith("Bad config inputs: missing required arguments: config_dir")
    assert "value of config_action must be one of" in checked["msg"]
    assert "config_keep must be at least 2" in checked["msg"]
    assert checked["msg"].endswith("Nothing was changed.")


THEN = """
- name: Check the demo inputs, then write the marker
  sre.rollback.role_inputs:
    what: demo
    problems: "{{ [] if demo_keep | int >= 1 else ['demo_keep must be at least 1.'] }}"
    then:
      ansible.builtin.command:
        cmd: "touch {{ demo_root }}/marker"
        creates: "{{ demo_root }}/marker"
  register: checked
- name: After the check
  ansible.builtin.debug:
    msg: "{{ checked.inputs }}"
"""


def test_then_runs_the_action_in_the_same_task_once_the_inputs_are_good(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    status, tasks = play(tmp_path, MAIN, "-e", f"demo_root={root}", tasks=THEN)
    assert status == 0, tasks
    assert [t["name"] for t in tasks] == [
        "Check the demo inputs, then write the marker",
        "After the check",
    ]
    assert (root / "marker").exists(), "the command ran on the host"
    assert tasks[0]["changed"] is True and tasks[0]["cmd"] == ["touch", f"{root}/marker"]
    assert tasks[1]["msg"] == "The demo inputs are valid (argument spec 'main', own checks)."
    # The action's own idempotence and check mode hold: creates= skips it the second time.
    status, tasks = play(tmp_path, MAIN, "-e", f"demo_root={root}", tasks=THEN)
    assert status == 0 and tasks[0]["changed"] is False


def test_then_does_not_run_when_the_inputs_are_bad(tmp_path: Path) -> None:
    root = tmp_path / "app"
    root.mkdir()
    status, tasks = play(tmp_path, MAIN, "-e", f"demo_root={root}", "-e", "demo_keep=0", tasks=THEN)
    assert status != 0
    assert tasks[0]["msg"] == "Bad demo inputs: demo_keep must be at least 1. Nothing was changed."
    assert not (root / "marker").exists(), "the host was not touched"
    records = list((tmp_path / "runs").glob("2*.json"))
    assert records, "the run record was written"
    host = json.loads(records[0].read_text())["hosts"]["localhost"]
    assert host["failed_phase"] == "preflight", "a refusal on the inputs is the preflight"


def test_then_takes_exactly_one_action(tmp_path: Path) -> None:
    bad = THEN.replace(
        "      ansible.builtin.command:", "      ansible.builtin.command: {}\n      other:"
    )
    status, tasks = play(tmp_path, MAIN, "-e", f"demo_root={tmp_path}", tasks=bad)
    assert status != 0
    assert tasks[0]["msg"].startswith("then takes one action and its options")


VALUES = """
- name: Check the demo inputs and work out the mode
  sre.rollback.role_inputs:
    what: demo
    problems: "{{ [] if demo_keep | int >= 1 else ['demo_keep must be at least 1.'] }}"
    values:
      slow: "{{ demo_mode == 'slow' }}"
      keep: "{{ demo_keep | int }}"
    then: "{{ {'ansible.builtin.command': {'cmd': 'true'}} if demo_root is abs else omit }}"
  register: checked
- name: After the check
  ansible.builtin.debug:
    msg: "{{ checked['values'] }}"
"""


def test_values_come_back_templated_with_and_without_then(tmp_path: Path) -> None:
    # With then (an absolute demo_root): the action's result carries them.
    status, tasks = play(
        tmp_path, MAIN, "-e", "demo_root=/srv/x", "-e", "demo_mode=slow", tasks=VALUES
    )
    assert status == 0, tasks
    assert tasks[0]["rc"] == 0, "then ran the command"
    assert tasks[0]["values"] == {"slow": True, "keep": 3}
    assert tasks[1]["msg"] == {"slow": True, "keep": 3}
    # Without then (a relative demo_root omits it): the check's own result carries them.
    status, tasks = play(tmp_path, MAIN, "-e", "demo_root=x", tasks=VALUES)
    assert status == 0 and "rc" not in tasks[0], tasks
    assert tasks[0]["values"] == {"slow": False, "keep": 3}
    # Bad inputs: no values, the task fails on its inputs alone.
    status, tasks = play(
        tmp_path, MAIN, "-e", "demo_root=/srv/x", "-e", "demo_keep=0", tasks=VALUES
    )
    assert status != 0 and "values" not in tasks[0]
    assert tasks[0]["msg"] == "Bad demo inputs: demo_keep must be at least 1. Nothing was changed."


def test_values_must_be_a_mapping(tmp_path: Path) -> None:
    bad = VALUES.replace(
        """    values:
      slow: "{{ demo_mode == 'slow' }}"
      keep: "{{ demo_keep | int }}"
""",
        "    values: [1]\n",
    )
    status, tasks = play(tmp_path, MAIN, "-e", "demo_root=/srv/x", tasks=bad)
    assert status != 0
    assert tasks[0]["msg"] == "values must be a mapping of names to values."
