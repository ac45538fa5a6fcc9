"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Fine enough around the runbook's thresholds (p95 > 5 s) and around test-sized delays.
BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
)  # fmt: skip
Labels = dict[str, str]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _format_value(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return str(value) if isinstance(value, int) else repr(float(value))


def family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]
) -> list[str]:
    """One metric family: HELP and TYPE lines, then one line per sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines.extend(f"{name}{_format_labels(labels)} {_format_value(v)}" for labels, v in samples)
    return lines


class RequestMetrics:
    """Request counts by path and status, and a latency histogram by path."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._bucket_counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (path, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            counts = self._bucket_counts.setdefault(path, [0] * (len(self.buckets) + 1))
            for index, bound in enumerate(self.buckets):
                if seconds <= bound:
                    counts[index] += 1
            counts[-1] += 1
            self._sums[path] = self._sums.get(path, 0.0) + seconds

    def render(self) -> list[str]:
        with self._lock:
            requests = sorted(self._requests.items())
            histograms = {
                path: list(counts) for path, counts in sorted(self._bucket_counts.items())
            }
            sums = dict(self._sums)
        lines = family(
            "demo_http_requests_total",
            "counter",
            "HTTP requests served, by route and status code.",
            (({"path": path, "status": status}, count) for (path, status), count in requests),
        )
        name = "demo_http_request_duration_seconds"
        lines += [
            f"# HELP {name} Time to serve an HTTP request, by route.",
            f"# TYPE {name} histogram",
        ]
        bounds = [*(repr(bound) for bound in self.buckets), "+Inf"]
        for path, counts in histograms.items():
            for le, count in zip(bounds, counts, strict=True):
                lines.append(f"{name}_bucket{_format_labels({'path': path, 'le': le})} {count}")
            lines.append(f"{name}_sum{_format_labels({'path': path})} {sums[path]!r}")
            lines.append(f"{name}_count{_format_labels({'path': path})} {counts[-1]}")
        return lines


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) * 1024
    return values


def _cgroup_memory_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 ``memory.max``), None when unlimited."""
    try:
        entry = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()[0]
        group = entry.split(":", 2)[2]
        text = Path(f"/sys/fs/cgroup{group}/memory.max").read_text(encoding="ascii").strip()
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def memory_figures() -> dict[str, float]:
    """The process's resident memory, the limit it runs under (its cgroup's memory.max, else
    the host's MemTotal), and memory ratios of the process and of the host."""
    pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    rss = pages * os.sysconf("SC_PAGE_SIZE")
    meminfo = _meminfo()
    total = meminfo.get("MemTotal", 0) or 1
    available = meminfo.get("MemAvailable", total)
    return {
        "rss_bytes": rss,
        "limit_bytes": min(_cgroup_memory_limit() or total, total),
        "process_ratio": rss / total,
        "host_ratio": 1 - available / total,
    }
