"""Synthetic scrapes of the demo app for the trigger tests: what Prometheus would have stored
from two app instances whose conditions come and go (bad release, slow mode, failing health,
memory hog, pool hog), with flapping, failed scrapes (``up`` 0: stale series), Prometheus
itself down (plain gaps) and a restart (counters back to 0). Deterministic per seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ansible_collections.sre.rollback.plugins.plugin_utils.triggers import Labels

BUCKETS = ("0.1", "0.5", "1.0", "5.0", "7.5", "+Inf")
CONDITIONS = ("errors", "slow", "unhealthy", "memory", "pool")


def labels(name: str, **extra: str) -> Labels:
    return tuple(sorted({"__name__": name, **extra}.items()))


@dataclass
class Instance:
    name: str
    on: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(CONDITIONS, False))
    counters: dict[Labels, float] = field(default_factory=dict)

    def bump(self, key: Labels, amount: float) -> float:
        self.counters[key] = self.counters.get(key, 0.0) + amount
        return self.counters[key]


Rows = dict[Labels, list[tuple[float, float | None]]]


def scenario(seed: int, steps: int = 60, step: int = 15) -> Rows:
    """Samples at ``step`` seconds from time 0 for ``steps`` scrapes."""
    rng = random.Random(seed)
    instances = [Instance("a:8080"), Instance("b:8080")]
    rows: Rows = {}
    down_until = -1  # Prometheus down: nothing stored
    for index in range(steps):
        at = float(index * step)
        if index > down_until and rng.random() < 0.04:
            down_until = index + rng.randint(1, 4)
        for instance in instances:
            _change(rng, instance)
            if rng.random() < 0.01:
                instance.counters.clear()  # a restart
            if index <= down_until:
                continue
            target = {"job": "demo-app", "instance": instance.name}
            failed = rng.random() < 0.06
            rows.setdefault(labels("up", **target), []).append((at, 0.0 if failed else 1.0))
            if not failed:
                for key, value in _scrape(rng, instance, target).items():
                    rows.setdefault(key, []).append((at, value))
    return rows


def _change(rng: random.Random, instance: Instance) -> None:
    for condition in CONDITIONS:
        flip = 0.35 if rng.random() < 0.15 else 0.08  # sometimes a flapping stretch
        if rng.random() < flip:
            instance.on[condition] = not instance.on[condition]


def _scrape(rng: random.Random, instance: Instance, target: dict[str, str]) -> dict[Labels, float]:
    on = instance.on
    values: dict[Labels, float] = {}
    requests = rng.randint(17, 31)
    errors = rng.randint(7, 11) if on["errors"] else rng.randint(0, 1)
    for status, count in (("200", requests - errors), ("500", errors)):
        key = labels("demo_http_requests_total", path="/checkout", status=status, **target)
        values[key] = instance.bump(key, count)
    probes = labels("demo_http_requests_total", path="/metrics", status="200", **target)
    values[probes] = instance.bump(probes, 1)
    slow = rng.randint(3, 5) if on["slow"] else 0
    spread = {"0.1": requests - slow - 2, "0.5": 1, "1.0": 1, "5.0": 0, "7.5": slow, "+Inf": 0}
    cumulative = 0
    for bound in BUCKETS:
        cumulative += spread[bound]
        key = labels(
            "demo_http_request_duration_seconds_bucket", path="/checkout", le=bound, **target
        )
        values[key] = instance.bump(key, cumulative)
    values[labels("demo_health_ok", **target)] = 0.0 if on["unhealthy"] else 1.0
    limit = 1_000_000_000.0
    used = rng.uniform(0.96, 0.99) if on["memory"] else rng.uniform(0.2, 0.6)
    values[labels("process_resident_memory_bytes", **target)] = float(int(used * limit))
    values[labels("demo_memory_limit_bytes", **target)] = limit
    values[labels("demo_db_pool_size", **target)] = 5.0
    values[labels("demo_db_pool_in_use", **target)] = 5.0 if on["pool"] else rng.randint(0, 3)
    return values
