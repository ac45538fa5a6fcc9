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
    "timeout": {"type": "float", "default": 3.0},
    "deadline": {"type": "float", "default": 60.0},
    "json_expect": {"type": "dict", "default": {}},
}

DEFAULTS: dict[str, Any] = {
    "status": [200],
    "successes": 3,
    "interval": 0.5,
    "timeout": 3.0,
    "deadline": 60.0,
    "json_expect": {},
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
    """Poll gate["url"] until it answered well gate["successes"] times in a row, or the
    deadline passed. Returns {healthy, attempts, elapsed, last_status, last_error, msg}."""
    settings = {**DEFAULTS, **{k: v for k, v in gate.items() if v is not None}}
    started = clock()
    streak = attempts = last_status = 0
    last_error = ""
    while True:
        attempts += 1
        last_status, body = probe_fn(settings["url"], settings["timeout"])
        problem = judge(last_status, body, settings)
        if problem is None:
            streak += 1
            if streak >= settings["successes"]:
                return {
                    "healthy": True,
                    "attempts": attempts,
                    "elapsed": round(clock() - started, 3),
                    "last_status": last_status,
                    "last_error": last_error,
                    "msg": "",
                }
        else:
            streak, last_error = 0, problem
        elapsed = clock() - started
        if elapsed + settings["interval"] > settings["deadline"]:
            return {
                "healthy": False,
                "attempts": attempts,
                "elapsed": round(elapsed, 3),
                "last_status": last_status,
                "last_error": last_error,
                "msg": f"{settings['url']} was not healthy {settings['successes']} times in a "
                f"row within {settings['deadline']} s ({attempts} attempts; last: {last_error}). "
                "Look at the service's log on this host.",
            }
        sleep(settings["interval"])
