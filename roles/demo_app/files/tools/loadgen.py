#!/usr/bin/env python3
"""Load generator and metrics reader for the demo app (standard library only).

Load:   loadgen.py http://h2:8080 http://h3:8080 --requests 200 --concurrency 8 --path /checkout
        prints {"requests", "errors", "error_ratio", "p95_seconds", "by_status", ...}
Scrape: loadgen.py --scrape http://h2:8080 [--path /checkout] [--window 30]
        prints the error ratio and p95 that the app's /metrics show (over a window if given)

Errors are 5xx answers, timeouts and connection failures. Requests go round-robin over the
URLs; the run stops at --requests or after --max-seconds, whichever comes first.
The parsing functions (parse_metrics, error_ratio, histogram_quantile, summarize) are meant
to be imported by tests and trigger checks.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

DURATION = "demo_http_request_duration_seconds"
REQUESTS = "demo_http_requests_total"
SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: str, seconds: float) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(seconds)


# --- the Prometheus text format --------------------------------------------------------------


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def parse_metrics(text: str) -> list[Sample]:
    """Samples of a Prometheus text exposition; comments and blank lines are skipped."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        matched = SAMPLE_LINE.match(line.strip())
        if matched is None:
            raise ValueError(f"not a Prometheus sample line: {line!r}")
        name, labels, value = matched.groups()
        parsed = {key: _unescape(raw) for key, raw in LABEL.findall(labels or "")}
        samples.append(Sample(name, parsed, float(value)))
    return samples


def _matches(sample: Sample, path: str | None) -> bool:
    return path is None or sample.labels.get("path") == path


def error_ratio(samples: list[Sample], path: str | None = None) -> float | None:
    """5xx answers / all answers in demo_http_requests_total; None when there were none."""
    counted = [s for s in samples if s.name == REQUESTS and _matches(s, path)]
    total = sum(s.value for s in counted)
    if total == 0:
        return None
    return sum(s.value for s in counted if s.labels.get("status", "").startswith("5")) / total


def histogram_quantile(
    quantile: float, samples: list[Sample], path: str | None = None, metric: str = DURATION
) -> float | None:
    """Like PromQL's histogram_quantile over the buckets summed across paths (or one path)."""
    buckets: dict[float, float] = {}
    for sample in samples:
        if sample.name == f"{metric}_bucket" and _matches(sample, path):
            bound = float(sample.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    if not buckets or buckets.get(math.inf, 0.0) == 0:
        return None
    bounds = sorted(buckets)
    rank = quantile * buckets[math.inf]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def gauge(samples: list[Sample], name: str) -> float | None:
    values = [s.value for s in samples if s.name == name]
    return sum(values) if values else None


def subtract(after: list[Sample], before: list[Sample]) -> list[Sample]:
    """Counters and histogram buckets over a window: after - before; gauges as in `after`."""
    earlier = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in before}
    cumulative = ("_total", "_bucket", "_count", "_sum")
    return [
        Sample(
            s.name, s.labels, s.value - earlier.get((s.name, tuple(sorted(s.labels.items()))), 0)
        )
        if s.name.endswith(cumulative)
        else s
        for s in after
    ]


def summarize(samples: list[Sample], path: str | None = None) -> dict[str, Any]:
    """What the runbook's automatic triggers look at."""
    requests = sum(s.value for s in samples if s.name == REQUESTS and _matches(s, path))
    return {
        "requests": int(requests),
        "error_ratio": error_ratio(samples, path),
        "p95_seconds": histogram_quantile(0.95, samples, path),
        "memory_usage_ratio": gauge(samples, "demo_memory_usage_ratio"),
        "db_pool_in_use": gauge(samples, "demo_db_pool_in_use"),
        "db_pool_size": gauge(samples, "demo_db_pool_size"),
        "health_check_failures": gauge(samples, "demo_health_check_failures_total"),
    }


def scrape(base_url: str, timeout: float = 5.0) -> list[Sample]:
    with _open(base_url.rstrip("/") + "/metrics", timeout) as response:
        return parse_metrics(response.read().decode("utf-8"))


# --- load -------------------------------------------------------------------------------------


def _open(url: str, timeout: float, method: str = "GET") -> Any:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    body = b"" if method == "POST" else None
    request = urllib.request.Request(url, method=method, data=body)  # noqa: S310 (checked above)
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (checked above)


def _one_request(url: str, timeout: float, method: str) -> str:
    try:
        with _open(url, timeout, method) as response:
            response.read()
            return str(response.status)
    except urllib.error.HTTPError as error:
        error.read()
        return str(error.code)
    except urllib.error.URLError as error:
        return "timeout" if isinstance(error.reason, socket.timeout) else "connection_error"
    except OSError as error:  # socket.timeout is an OSError on every Python 3
        return "timeout" if isinstance(error, socket.timeout) else "connection_error"


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def run_load(
    urls: list[str],
    requests: int,
    concurrency: int,
    timeout: float,
    path: str = "/checkout",
    method: str = "GET",
    max_seconds: float = 120.0,
) -> dict[str, Any]:
    """Send up to `requests` requests (stopping after max_seconds); return the summary."""
    targets = [url.rstrip("/") + path for url in urls]
    result = LoadResult()
    counter = iter(range(requests))
    counter_lock = threading.Lock()
    started = time.monotonic()
    deadline = started + max_seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            with counter_lock:
                index = next(counter, None)
            if index is None:
                return
            sent = time.monotonic()
            status = _one_request(targets[index % len(targets)], timeout, method)
            result.record(status, time.monotonic() - sent)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for _ in range(max(1, concurrency)):
            pool.submit(worker)
    done = sum(result.statuses.values())
    errors = sum(n for s, n in result.statuses.items() if not s.isdigit() or s.startswith("5"))
    return {
        "requests": done,
        "errors": errors,
        "error_ratio": errors / done if done else None,
        "p95_seconds": percentile(result.latencies, 0.95),
        "by_status": dict(sorted(result.statuses.items())),
        "elapsed_seconds": round(time.monotonic() - started, 3),
        "stopped_by_time_limit": done < requests,
    }


def _scrape_report(
    urls: list[str], path: str | None, window: float, timeout: float
) -> dict[str, Any]:
    before = {url: scrape(url, timeout) for url in urls} if window > 0 else {}
    if window > 0:
        time.sleep(window)
    hosts: dict[str, Any] = {}
    combined: list[Sample] = []
    for url in urls:
        samples = scrape(url, timeout)
        if url in before:
            samples = subtract(samples, before[url])
        hosts[url] = summarize(samples, path)
        combined += samples
    return {
        "path": path,
        "window_seconds": window,
        "hosts": hosts,
        "all": summarize(combined, path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+", help="base URLs, e.g. http://172.30.99.12:8080")
    parser.add_argument("--requests", type=int, default=100, help="requests to send (default 100)")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel clients (default 4)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop after this long")
    parser.add_argument("--path", default=None, help="request path (default /checkout)")
    parser.add_argument("--method", default="GET", choices=["GET", "POST"])
    parser.add_argument("--scrape", action="store_true", help="read /metrics instead of loading")
    parser.add_argument(
        "--window",
        type=float,
        default=0.0,
        help="with --scrape: seconds between "
        "two scrapes; counters are reported for that window only",
    )
    arguments = parser.parse_args(argv)
    if arguments.requests < 0 or arguments.concurrency < 1:
        parser.error("--requests must be >= 0 and --concurrency >= 1")
    if arguments.scrape:
        report = _scrape_report(arguments.urls, arguments.path, arguments.window, arguments.timeout)
    else:
        report = run_load(
            arguments.urls,
            arguments.requests,
            arguments.concurrency,
            arguments.timeout,
            arguments.path or "/checkout",
            arguments.method,
            arguments.max_seconds,
        )
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
