#!/usr/bin/env python3
"""A drill's load and its data evidence: place an order (POST /checkout) on the app hosts in
turn, every --interval seconds, and write one JSON line per request: when, which host, the
status and, when the service acknowledged the write (201), the order id. After the rollback,
the ids the database still holds tell which acknowledged writes were lost (the RPO).

    heartbeat.py --out FILE --pidfile FILE [--interval 0.2] URL [URL ...]

It detaches (double fork) and runs until SIGTERM. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STOP = False


def _stop(_signum: int, _frame: object) -> None:
    global STOP
    STOP = True


def beat(url: str, timeout: float) -> dict[str, object]:
    request = urllib.request.Request(
        f"{url}/checkout",
        data=json.dumps({"item": "1", "qty": 1}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    entry: dict[str, object] = {"at": time.time(), "url": url}
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            entry["status"] = answer.status
            body = json.loads(answer.read() or b"{}")
            if answer.status == 201 and "order_id" in body:
                entry["order_id"] = int(body["order_id"])
    except urllib.error.HTTPError as error:
        entry["status"] = error.code
    except (OSError, ValueError) as error:
        entry["status"] = 0
        entry["error"] = str(error)[:200]
    entry["seconds"] = round(time.time() - float(entry["at"]), 3)  # type: ignore[arg-type]
    return entry


def run(urls: list[str], out: Path, interval: float, timeout: float) -> None:
    signal.signal(signal.SIGTERM, _stop)
    with out.open("a", encoding="utf-8") as handle:
        turn = 0
        while not STOP:
            started = time.monotonic()
            handle.write(json.dumps(beat(urls[turn % len(urls)], timeout)) + "\n")
            handle.flush()
            turn += 1
            time.sleep(max(0.0, interval - (time.monotonic() - started)))


def detach(pidfile: Path) -> None:
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    pidfile.write_text(f"{os.getpid()}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    detach(args.pidfile)
    try:
        run(args.urls, args.out, args.interval, args.timeout)
    finally:
        args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
