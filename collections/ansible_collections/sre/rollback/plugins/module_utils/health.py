# GPL-3.0-or-later
"""The health gate: poll a URL from the host until it answers well several times in a row.

Used by the ``health_check`` module and by the ``release`` module's one-call rollout
(``state=rolled_out``), so both gate on exactly the same rules. Stdlib only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

# The gate's argument_spec options: the health_check module's own, and the `health` option
# of the one-call rollouts (module_utils/rollout.py).
OPTIONS: dict[str, Any] = {
    "url": {"type": "str", "required": True},
    "status": {"type": "list", "elements": "int", "default": [200]},
    "successes": {"type": "int", "default": 3},
    "interval": {"type": "float", "default": 0.5},
    "startup_interval": {"type": "float", "default": 0.1},
    "failures": {"type": "int", "default": 4},
    "timeout": {"type": "float", "default": 3.0},
    "deadline": {"type": "float", "default": 60.0},
    "json_expect": {"type": "dict", "default": {}},
    "observe": {"type": "float", "default": 0.0},
    "unit": {"type": "str"},
}

# The same defaults, for callers that pass a partial gate (every option but the url).
DEFAULTS: dict[str, Any] = {
    key: spec["default"] for key, spec in OPTIONS.items() if "default" in spec
}


def check_url(url: str) -> str | None:
    """None when url may be polled, else what is wrong with it."""
    if not url.startswith(("http://", "https://")):
        return f"url must be http:// or https://, not {url!r}"
    return None


def probe(url: str, timeout: float) -> tuple[int, str]:
    """Status and body of one GET (status 0 and the error when the connection failed)."""
    # Imported here: the release module bundles this file but polls only with state=rolled_out,
    # and urllib.request (http.client, email) costs every other call ~40 ms of CPU.
    import urllib.error
    import urllib.request

    # check_url() admits only http(s) URLs, so no file: or custom scheme reaches urlopen.
    request = urllib.request.Request(url, headers={"User-Agent": "sre.rollback-health-check"})  # noqa: S310
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as answer:
            return answer.status, answer.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(65536).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def judge(status: int, body: str, gate: Mapping[str, Any]) -> str | None:
    """None when the answer is healthy, else what was wrong with it."""
    if status not in gate["status"]:
        return f"status {status}: {body.strip()[:200]}" if status else body
    if gate["json_expect"]:
        try:
            data = json.loads(body)
        except ValueError:
            return f"body is not JSON: {body.strip()[:200]}"
        if not isinstance(data, dict):
            return f"body is not a JSON object: {body.strip()[:200]}"
        for key, want in gate["json_expect"].items():
            if str(data.get(key)) != str(want):
                return f"{key} is {data.get(key)!r}, expected {want!r}"
    return None


def restart_seen(first: Mapping[str, Any] | None, now: Mapping[str, Any] | None) -> str | None:
    """What shows that the service died and came back (or died) since ``first``, else None."""
    if not first or not now:
        return None
    if now["restarts"] > first["restarts"]:
        return f"systemd restarted it {now['restarts'] - first['restarts']} time(s)"
    if first["main_pid"] and now["main_pid"] and now["main_pid"] != first["main_pid"]:
        return f"its main process changed ({first['main_pid']} -> {now['main_pid']})"
    if now["sub"] == "auto-restart":
        return "it died and systemd is about to restart it"
    if now["active"] in ("failed", "inactive", "deactivating"):
        return f"it is {now['active']} ({now['sub']})"
    return None


def wait_healthy(
    gate: Mapping[str, Any],
    probe_fn: Callable[[str, float], tuple[int, str]] = probe,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    state_fn: Callable[[], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Poll gate["url"] until it answered well gate["successes"] times in a row for at least
    gate["observe"] seconds, or failed.

    Until the first healthy answer (the service is still starting) it polls every
    ``startup_interval`` seconds, so a service that is up in 0.2 s is seen at 0.2 s, not at
    the next ``interval``; the successes that confirm it are ``interval`` apart. Once it has
    answered well, ``failures`` failed answers in a row (the runbook's trigger: more than 3
    consecutive health check failures; 0: never) fail the gate at once instead of at the
    ``deadline``.

    A crash-looping service answers between its deaths, so answers alone can pass it: with
    ``unit`` (a systemd service; ``state_fn`` in tests) every poll also reads the unit's
    restart count, main process and state, and a restart, a new main process or a failed
    unit fails the gate at once; and the gate passes no sooner than ``observe`` seconds after
    it started, so a service that dies every few seconds is seen dying.

    Returns {healthy, attempts, elapsed, first_healthy, last_status, last_error, failure,
    msg}; first_healthy is the seconds until the first healthy answer (None when there was
    none); failure says why it failed: ``crashed`` (restarted or died), ``unhealthy`` (it
    answered, badly), ``no_answer`` (nothing answered), ``timed_out`` (it answered, not well
    enough in a row before the deadline), None when healthy."""
    settings = {**DEFAULTS, **{k: v for k, v in gate.items() if v is not None}}
    if state_fn is None and settings.get("unit"):
        from ansible_collections.sre.rollback.plugins.module_utils import services

        unit = str(settings["unit"])

        def state_fn() -> dict[str, Any] | None:
            return services.systemd_state(unit)

    observe = float(settings.get("observe") or 0.0)
    # The deadline bounds the wait for a healthy service, not the watch after it: a gate that
    # must observe longer than its deadline gets the time to.
    deadline = max(float(settings["deadline"]), observe + float(settings["interval"]))
    started = clock()
    streak = failing = attempts = last_status = answered = 0
    first_healthy: float | None = None
    last_error = ""
    first_state = state_fn() if state_fn else None

    def verdict(
        healthy: bool, elapsed: float, msg: str = "", failure: str | None = None
    ) -> dict[str, Any]:
        return {
            "healthy": healthy,
            "attempts": attempts,
            "elapsed": round(elapsed, 3),
            "first_healthy": first_healthy,
            "last_status": last_status,
            "last_error": last_error,
            "failure": None if healthy else failure,
            "msg": msg,
        }

    while True:
        attempts += 1
        last_status, body = probe_fn(settings["url"], settings["timeout"])
        answered += 1 if last_status else 0
        problem = judge(last_status, body, settings)
        if state_fn:
            state = state_fn()
            if first_state is None or not first_state["main_pid"]:
                first_state = state  # the unit had not started its main process yet
            died = restart_seen(first_state, state)
            if died:
                last_error = problem or last_error
                return verdict(
                    False,
                    clock() - started,
                    f"the service crashed during the health gate: {died} ({attempts} "
                    f"attempts in {round(clock() - started, 1)} s). It is crash-looping or "
                    f"dying on start: look at its log on this host (journalctl -u "
                    f"{settings.get('unit') or 'UNIT'}).",
                    "crashed",
                )
        elapsed = clock() - started
        if problem is None:
            streak, failing = streak + 1, 0
            if first_healthy is None:
                first_healthy = round(elapsed, 3)
            if streak >= settings["successes"] and elapsed >= observe:
                return verdict(True, elapsed)
        else:
            streak, failing, last_error = 0, failing + 1, problem
            if first_healthy is not None and 0 < settings["failures"] <= failing:
                return verdict(
                    False,
                    elapsed,
                    f"{settings['url']} answered well after {first_healthy} s, then failed "
                    f"{failing} times in a row ({attempts} attempts; last: {last_error}). "
                    "Look at the service's log on this host.",
                    "unhealthy" if last_status else "no_answer",
                )
        pause = settings["interval"]
        if first_healthy is None:
            pause = min(pause, settings["startup_interval"])
        if elapsed + pause > deadline:
            return verdict(
                False,
                elapsed,
                f"{settings['url']} was not healthy {settings['successes']} times in a "
                f"row within {deadline:g} s ({attempts} attempts; last: {last_error}). "
                "Look at the service's log on this host.",
                ("unhealthy" if first_healthy is None else "timed_out")
                if answered
                else "no_answer",
            )
        sleep(pause)
