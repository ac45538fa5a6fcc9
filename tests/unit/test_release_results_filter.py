"""The release_results filter: one task per batch publishes what each host's own task did.

Every case checks the filter against the template the release role published per host
before (``__release_host_result`` in roles/release/vars/main.yml, kept here as the
reference), rendered by Ansible with the same host's variables as they were then.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.sre.rollback.plugins.filter.releases import (
    FilterModule,
    release_plan,
    release_results,
)

NOW = 1_800_000_100.0
STARTED = 1_800_000_000.0
RUN_ID = "20261129T050225Z-l3-7b0ee2"
BAD = {"release": "v1.3.0-g2b9cbdaa74", "tag": "v1.3.0", "commit": "2b9c" * 10}
GOOD = {"release": "v1.2.3-stable-g53b7de3f22", "tag": "v1.2.3-stable", "commit": "53b7" * 10}
SKIPPED = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}
OK_UNLOCK = {"changed": True, "released": True}

# What roles/release/vars/main.yml published per host before (its set_stats task ran in
# each host's `always` section, in that host's context).
OLD_VARS = {
    "__release_switched": (
        "{{ __release_rollout if __release_rollout is defined"
        " else (__release_switch | default({})) }}"
    ),
    "__release_gate": (
        "{{ (__release_rollout.health | default({})) if __release_rollout is defined"
        " else (__release_health | default({})) }}"
    ),
}
OLD_HOST_RESULT = {
    "action": "{{ release_action }}",
    "status": (
        "{{ 'failed' if ansible_failed_task is defined else"
        " ('ok' if __release_switched.changed | default(false) else 'unchanged') }}"
    ),
    "before": "{{ __release_switched.before | default(__release_inspect.current) }}",
    "after": (
        "{{ __release_revert.current if (__release_revert | default({})).changed"
        " | default(false) else __release_switched.current | default(__release_inspect.current) }}"
    ),
    "path": (
        "{{ 'rebuild' if (__release_build | default({})).path | default('none') == 'rebuild'"
        " else __release_switched.path | default('none') }}"
    ),
    "reverted": (
        "{{ ((__release_revert | default({})).changed | default(false))"
        " or (__release_switched.reverted | default(false)) }}"
    ),
    "timings": (
        "{{ ((__release_build | default({})).timings | default({}))"
        " | combine(__release_switched.timings | default({}), {"
        "'health': __release_gate.elapsed | default(none), 'total': total}) }}"
    ),
    "health": {
        "healthy": "{{ __release_gate.healthy | default(none) }}",
        "attempts": "{{ __release_gate.attempts | default(0) }}",
    },
    "run_id": "{{ __release_run_id }}",
    # Added since: the plan's choice (planned_target), none here where no plan is set.
    "target": None,
}


def trusted(value: Any) -> Any:
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value


def old_result(hostvars: dict[str, Any], failed: bool) -> dict[str, Any]:
    """What the per-host task published, from the variables the host had then, and
    ``ansible_failed_task`` when the host went through the rescue."""
    variables = {
        k: v for k, v in copy.deepcopy(hostvars).items() if not k.startswith("__release_published")
    }
    variables.update(trusted(OLD_VARS), release_action="rollback", total=NOW - STARTED)
    if failed:
        variables["ansible_failed_task"] = {"name": "the task that failed"}
    rendered: dict[str, Any] = Templar(loader=DataLoader(), variables=variables).template(
        trusted(OLD_HOST_RESULT)
    )
    return rendered


def host(**registered: Any) -> dict[str, Any]:
    """A host's variables after the plan play, plus what the rollout registered."""
    return {
        "__release_inspect": {"changed": False, "current": BAD, "releases": []},
        "__release_run_id": RUN_ID,
        "__release_started": str(STARTED),
        **registered,
    }


def results(hostvars: dict[str, Any], path: str = "one_call", **kwargs: Any) -> dict[str, Any]:
    published = "__release_published" if path == "one_call" else "__release_published_steps"
    return release_results(hostvars, list(hostvars), "rollback", path, published, NOW, **kwargs)


def rolled_out(**overrides: Any) -> dict[str, Any]:
    """A successful ``state=rolled_out`` result (fast path)."""
    return {
        "changed": True,
        "before": BAD,
        "after": GOOD,
        "current": GOOD,
        "path": "fast",
        "release": GOOD["release"],
        "reverted": False,
        "timings": {"verify": 0.002, "lock": 0.0, "switch": 0.0001, "prune": 0.0},
        "health": {"healthy": True, "attempts": 4, "elapsed": 1.549, "last_status": 200},
        "phases": [{"phase": "switch", "status": "changed", "seconds": 0.002}],
        "lock_released": True,
        **overrides,
    }


def switched(**overrides: Any) -> dict[str, Any]:
    """A successful ``state=switched`` result (the step-by-step path)."""
    return {
        "changed": True,
        "before": BAD,
        "current": GOOD,
        "path": "fast",
        "release": GOOD["release"],
        "timings": {"verify": 0.001, "lock": 0.0, "switch": 0.0001, "prune": 0.0},
        **overrides,
    }


HEALTHY = {"changed": False, "healthy": True, "attempts": 3, "elapsed": 1.2}


def check(hostvars: dict[str, Any], path: str, failed: dict[str, bool]) -> dict[str, Any]:
    """The filter's results equal, host by host, what the per-host task published."""
    got = results(hostvars, path)
    for name, result in got.items():
        assert result == old_result(hostvars[name], failed[name]), name
    assert set(got) == set(failed)
    return got


def test_success_in_one_call() -> None:
    got = check({"h2": host(__release_rollout=rolled_out())}, "one_call", {"h2": False})
    assert got["h2"] == {
        "action": "rollback",
        "status": "ok",
        "before": BAD,
        "after": GOOD,
        "path": "fast",
        "reverted": False,
        "timings": {
            "verify": 0.002,
            "lock": 0.0,
            "switch": 0.0001,
            "prune": 0.0,
            "health": 1.549,
            "total": 100.0,
        },
        "health": {"healthy": True, "attempts": 4},
        "run_id": RUN_ID,
        "target": None,
    }


def test_unchanged_second_run() -> None:
    unchanged = rolled_out(changed=False, before=GOOD, after=GOOD, path="none")
    hostvars = {"h2": host(__release_rollout=unchanged)}
    hostvars["h2"]["__release_inspect"]["current"] = GOOD
    got = check(hostvars, "one_call", {"h2": False})
    assert got["h2"]["status"] == "unchanged" and got["h2"]["path"] == "none"


def test_failed_health_switched_back_by_the_module() -> None:
    failed = rolled_out(
        failed=True,
        msg="rollback to v1.2.3-stable failed",
        cause="not healthy 3 times in a row",
        revert_msg="Switched back to v1.3.0 and restarted.",
        current=BAD,
        reverted=True,
        health={"healthy": False, "attempts": 9, "elapsed": 4.01},
    )
    hostvars = {
        "h2": host(__release_rollout=failed, __release_unlock=SKIPPED),
        "h3": host(__release_rollout=rolled_out()),
    }
    got = check(hostvars, "one_call", {"h2": True, "h3": False})
    assert got["h2"]["status"] == "failed" and got["h2"]["reverted"] is True
    assert got["h2"]["after"] == BAD and got["h2"]["health"] == {"healthy": False, "attempts": 9}
    assert got["h3"]["status"] == "ok"


def test_failed_before_the_lock_in_one_call() -> None:
    refused = {"changed": False, "failed": True, "msg": "locked by run other"}
    got = check(
        {"h2": host(__release_rollout=refused, __release_unlock={"changed": False})},
        "one_call",
        {"h2": True},
    )
    assert got["h2"]["before"] == BAD and got["h2"]["after"] == BAD
    assert got["h2"]["path"] == "none" and got["h2"]["health"] == {"healthy": None, "attempts": 0}


def test_failed_hook_switched_back_by_the_rescue() -> None:
    # After-health hook failed: the rescue switched back and restarted; `always` unlocked.
    hostvars = {
        "h2": host(
            __release_build=SKIPPED,
            __release_switch=switched(),
            __release_health=HEALTHY,
            __release_revert={"changed": True, "current": BAD, "before": GOOD},
            __release_unlock=OK_UNLOCK,
        )
    }
    got = check(hostvars, "steps", {"h2": True})
    assert got["h2"]["status"] == "failed" and got["h2"]["reverted"] is True
    assert got["h2"]["before"] == BAD and got["h2"]["after"] == BAD


def test_failed_before_switch_hook_leaves_the_host_as_it_was() -> None:
    built = {"changed": True, "path": "fast", "timings": {"verify": 0.01}}
    hostvars = {
        "h2": host(
            __release_build=built,
            __release_revert=SKIPPED,
            __release_unlock=OK_UNLOCK,
        )
    }
    got = check(hostvars, "steps", {"h2": True})
    assert got["h2"]["status"] == "failed" and got["h2"]["reverted"] is False
    assert got["h2"]["after"] == BAD and got["h2"]["path"] == "none"


def test_failed_health_check_step_by_step() -> None:
    unhealthy = {"failed": True, "healthy": False, "attempts": 8, "elapsed": 4.0, "msg": "x"}
    hostvars = {
        "h2": host(
            __release_build=SKIPPED,
            __release_switch=switched(),
            __release_health=unhealthy,
            __release_revert={"changed": True, "current": BAD},
            __release_unlock=OK_UNLOCK,
        )
    }
    got = check(hostvars, "steps", {"h2": True})
    assert got["h2"]["health"] == {"healthy": False, "attempts": 8}
    assert got["h2"]["timings"]["health"] == 4.0


def test_success_step_by_step_without_health_check() -> None:
    hostvars = {
        "h2": host(
            __release_build=SKIPPED,
            __release_switch=switched(),
            __release_health=SKIPPED,
            __release_unlock=OK_UNLOCK,
        )
    }
    got = check(hostvars, "steps", {"h2": False})
    assert got["h2"]["status"] == "ok"
    assert got["h2"]["health"] == {"healthy": None, "attempts": 0}


def test_rebuild_path() -> None:
    # One call that rebuilt the release, and a before-switch hook's build that rebuilt it
    # (the switch then finds it on disk: the result still says rebuild).
    rebuilt = rolled_out(path="rebuild", timings={"fetch": 0.5, "build": 2.0, "switch": 0.001})
    one_call = check({"h2": host(__release_rollout=rebuilt)}, "one_call", {"h2": False})
    assert one_call["h2"]["path"] == "rebuild"
    build = {"changed": True, "path": "rebuild", "timings": {"fetch": 0.4, "build": 1.9}}
    hostvars = {
        "h3": host(
            __release_build=build,
            __release_switch=switched(timings={"verify": 0.001, "switch": 0.0002}),
            __release_health=HEALTHY,
            __release_unlock=OK_UNLOCK,
        )
    }
    steps = check(hostvars, "steps", {"h3": False})
    assert steps["h3"]["path"] == "rebuild"
    assert list(steps["h3"]["timings"]) == ["fetch", "build", "verify", "switch", "health", "total"]


def test_hosts_that_did_not_roll_out_on_this_path_are_left_out() -> None:
    hostvars = {
        "never": host(),  # planned, but its batch never ran (or it was not in the play)
        "h2": host(__release_rollout=rolled_out()),
        "h3": host(
            __release_switch=switched(),
            __release_unlock=OK_UNLOCK,
        ),
    }
    assert list(results(hostvars, "one_call")) == ["h2"]
    assert list(results(hostvars, "steps")) == ["h3"]
    hostvars["h3"]["__release_unlock"] = {"failed": True, "msg": "unlock failed"}
    assert results(hostvars, "steps") == {}, "its always section stopped before publishing"
    assert release_results({}, ["gone"], "rollback") == {}


def test_unreachable_hosts_are_left_out_as_before() -> None:
    hostvars = {
        "h2": host(__release_rollout={"unreachable": True, "msg": "ssh: timed out"}),
        "h3": host(
            __release_rollout=rolled_out(failed=True, current=BAD, reverted=True),
            __release_unlock={"unreachable": True},
        ),
        "h4": host(__release_switch=switched()),  # no unlock
    }
    assert results(hostvars, "one_call") == {}
    assert results(hostvars, "steps") == {}


def test_an_earlier_batch_is_not_published_again() -> None:
    canary = host(__release_rollout=rolled_out())
    first = results({"h2": canary})
    canary["__release_published"] = {
        "changed": False,
        "ansible_stats": {"data": {"release_results": first}, "per_host": False},
    }
    rest = host(__release_rollout=rolled_out())
    later = release_results(
        {"h2": canary, "h3": rest},
        ["h2", "h3"],
        "rollback",
        "one_call",
        "__release_published",
        NOW + 30,
    )
    assert list(later) == ["h3"], "the canary keeps the total time it was published with"
    # The same variables from another run of the role in the same playbook: published.
    canary["__release_rollout"] = rolled_out(timings={"switch": 0.5})
    assert list(results({"h2": canary})) == ["h2"]


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters()["release_results"] is release_results


@pytest.mark.parametrize("started", [None, "not a time"])
def test_no_start_time_gives_no_total(started: Any) -> None:
    hostvars = {"h2": host(__release_rollout=rolled_out())}
    if started is None:
        del hostvars["h2"]["__release_started"]
    else:
        hostvars["h2"]["__release_started"] = started
    assert results(hostvars)["h2"]["timings"]["total"] is None


def test_the_plan_sorts_the_hosts_by_how_they_roll_out() -> None:
    # role_inputs returns values.step_by_step with each host's inspection; the plan hands
    # the two lists, in the play's order, to playbooks/release.yml's rollout plays.
    hostvars = {
        "h3": host(__release_inspect={"current": BAD, "values": {"step_by_step": True}}),
        "h1": host(__release_inspect={"current": BAD, "values": {"step_by_step": False}}),
        "h2": host(__release_inspect={"current": BAD}),
    }
    plan = release_plan(hostvars, ["h1", "h2", "h3"])
    assert plan["rollout"] == {"one_call": ["h1", "h2"], "steps": ["h3"]}


def test_the_target_is_the_plans_choice_also_in_check_mode() -> None:
    """In check mode the module changes nothing (`current` stays BAD): `after` is what the
    host runs, `target` what the plan chose for every host."""
    plan = {"ok": True, "release": GOOD["release"], "tag": GOOD["tag"], "commit": GOOD["commit"]}
    checked = rolled_out(changed=True, current=BAD)
    published = results({"h2": host(__release_rollout=checked, __release_plan=plan)})["h2"]
    assert published["after"] == BAD and published["target"] == GOOD
