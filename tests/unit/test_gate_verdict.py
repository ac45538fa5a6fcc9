"""The health gate sees a crash loop, says why it failed, and a failed gate marks a release
bad only with evidence against it (module_utils health, releases.blame)."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.sre.rollback.plugins.filter.releases import release_blame
from ansible_collections.sre.rollback.plugins.module_utils import health, releases


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def gate(
    answers: list[tuple[int, str]], states: list[dict[str, Any]] | None = None, **options: Any
) -> dict[str, Any]:
    """Run the gate over a scripted service: answers in turn (the last repeats), and the
    unit's state at each poll."""
    clock = Clock()
    calls = {"probe": 0, "state": 0}

    def probe(url: str, timeout: float) -> tuple[int, str]:
        calls["probe"] += 1
        return answers[min(calls["probe"] - 1, len(answers) - 1)]

    def state() -> dict[str, Any] | None:
        calls["state"] += 1
        assert states is not None
        return states[min(calls["state"] - 1, len(states) - 1)]

    settings = {"url": "http://127.0.0.1:8080/health", "interval": 0.5, "deadline": 20, **options}
    return health.wait_healthy(
        settings, probe, clock.sleep, clock, state_fn=state if states is not None else None
    )


def unit(pid: int, restarts: int = 0, active: str = "active") -> dict[str, Any]:
    return {"active": active, "sub": "running", "main_pid": pid, "restarts": restarts}


OK, DOWN, REFUSED = (200, "{}"), (503, '{"db": "unreachable"}'), (0, "Connection refused")


def test_a_crash_loop_that_answers_between_deaths_fails_the_gate() -> None:
    # Healthy answers throughout, but systemd restarts the service after ~2 s.
    states = [unit(100)] * 5 + [unit(101, restarts=1)]
    result = gate([OK], states, observe=10)
    assert result["healthy"] is False and result["failure"] == "crashed"
    assert "systemd restarted it 1 time(s)" in result["msg"]
    assert "journalctl" in result["msg"]


def test_a_new_main_process_is_a_crash_even_without_a_restart_count() -> None:
    states = [unit(0, active="activating"), unit(200)] + [unit(200)] * 3 + [unit(201)]
    result = gate([REFUSED, OK], states, observe=10)
    assert result["failure"] == "crashed" and "200 -> 201" in result["msg"]


def test_without_the_observation_window_three_answers_would_have_passed() -> None:
    states = [unit(100)] * 5 + [unit(101, restarts=1)]
    assert gate([OK], states)["healthy"] is True, "the old gate: 3 answers in ~1 s"
    watched = gate([OK], states, observe=5)
    assert watched["healthy"] is False


def test_a_stable_service_passes_after_the_window() -> None:
    result = gate([OK], [unit(100)], observe=3)
    assert result["healthy"] is True and result["failure"] is None
    assert result["elapsed"] >= 3


def test_the_window_may_be_longer_than_the_deadline() -> None:
    assert gate([OK], [unit(100)], observe=5, deadline=2)["healthy"] is True


@pytest.mark.parametrize(
    ("answers", "failure"),
    [
        ([DOWN], "unhealthy"),
        ([REFUSED], "no_answer"),
        ([OK, DOWN] * 40, "timed_out"),  # flapping: never 3 in a row
        ([OK, OK, REFUSED], "no_answer"),
        ([OK, OK, DOWN], "unhealthy"),
    ],
)
def test_the_gate_says_why_it_failed(answers: list[tuple[int, str]], failure: str) -> None:
    result = gate(answers, successes=3, failures=4, deadline=6)
    assert result["healthy"] is False and result["failure"] == failure, result


@pytest.mark.parametrize(
    ("failure", "had_healthy", "proven", "state"),
    [
        # Evidence: its own behaviour, and the release the host had is healthy again.
        ("crashed", True, False, "bad"),
        ("unhealthy", True, False, "bad"),
        ("no_answer", True, False, "bad"),
        ("restart_failed", None, False, "bad"),
        ("crashed", None, False, "bad"),
        # Counter-evidence or no evidence: a suspect, still a candidate target.
        ("unhealthy", False, False, "suspect"),  # the release it had fails too: dependency
        ("crashed", False, False, "suspect"),
        ("unhealthy", None, False, "suspect"),  # not re-checked
        ("crashed", True, True, "suspect"),  # healthy on another host of this run
        ("canceled", True, False, "suspect"),
        (None, True, False, "suspect"),
    ],
)
def test_blame_needs_evidence(
    failure: str | None, had_healthy: bool | None, proven: bool, state: str
) -> None:
    verdict = releases.blame(failure, had_healthy, proven)
    assert verdict["state"] == state, verdict
    assert verdict["why"]
    assert release_blame(failure, had_healthy, proven) == verdict


def test_a_suspect_release_stays_a_candidate_and_a_bad_one_does_not() -> None:
    inspections = {
        "h1": {"releases": {"v1-stable-g1": {"tag": "v1-stable", "state": "suspect"}}},
        "h2": {"releases": {"v0-stable-g0": {"tag": "v0-stable", "state": "bad"}}},
    }
    bad = releases.bad_tags([info["releases"] for info in inspections.values()])
    assert bad == {"v0-stable"}
    choice = releases.select_target(["v0-stable", "v1-stable", "v2"], "v2", bad)
    assert choice["tag"] == "v1-stable"
