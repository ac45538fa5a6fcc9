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


def wait_healthy(
    gate: Mapping[str, Any],
    probe_fn: Callable[[str, float], tuple[int, str]] = probe,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll gate["url"] until it answered well gate["successes"] times in a row, or failed.

    Until the first healthy answer (the service is still starting) it polls every
    ``startup_interval`` seconds, so a service that is up in 0.2 s is seen at 0.2 s, not at
    the next ``interval``; the successes that confirm it are ``interval`` apart. Once it has
    answered well, ``failures`` failed answers in a row (the runbook's trigger: more than 3
    consecutive health check failures; 0: never) fail the gate at once instead of at the
    ``deadline``. Returns {healthy, attempts, elapsed, first_healthy, last_status,
    last_error, msg}; first_healthy is the seconds until the first healthy answer (None when
    there was none)."""
    settings = {**DEFAULTS, **{k: v for k, v in gate.items() if v is not None}}
    started = clock()
    streak = failing = attempts = last_status = 0
    first_healthy: float | None = None
    last_error = ""

    def verdict(healthy: bool, elapsed: float, msg: str = "") -> dict[str, Any]:
        return {
            "healthy": healthy,
            "attempts": attempts,
            "elapsed": round(elapsed, 3),
            "first_healthy": first_healthy,
            "last_status": last_status,
            "last_error": last_error,
            "msg": msg,
        }

    while True:
        attempts += 1
        last_status, body = probe_fn(settings["url"], settings["timeout"])
        problem = judge(last_status, body, settings)
        elapsed = clock() - started
        if problem is None:
            streak, failing = streak + 1, 0
            if first_healthy is None:
                first_healthy = round(elapsed, 3)
            if streak >= settings["successes"]:
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
                )
        pause = settings["interval"]
        if first_healthy is None:
            pause = min(pause, settings["startup_interval"])
        if elapsed + pause > settings["deadline"]:
            return verdict(
                False,
                elapsed,
                f"{settings['url']} was not healthy {settings['successes']} times in a "
                f"row within {settings['deadline']} s ({attempts} attempts; last: {last_error}). "
                "Look at the service's log on this host.",
            )
        sleep(pause)
