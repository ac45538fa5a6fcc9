"""A small, real HTTP flag service for the level 1 tests (standard library only).

It speaks two APIs over one in-memory flag table:

* the part of Unleash's admin API that a kill switch needs:
  ``GET  /api/admin/projects/{project}/features/{flag}/environments/{env}``
  (answers ``{"enabled": bool, ...}``),
  ``POST /api/admin/projects/{project}/features/{flag}/environments/{env}/on|off``
  (``Authorization: <token>``; 401 without it, 404 for an unknown flag);
* OFREP single-flag evaluation, ``POST /ofrep/v1/evaluate/flags/{flag}``: an enabled flag
  answers its value, a disabled one answers like flagd does (``disabled_style``:
  ``reason`` = 200 with reason DISABLED and no value; ``not_found`` = 404
  FLAG_NOT_FOUND "flag is disabled", as flagd's OFREP did before reason DISABLED).

Bind it only to 127.0.0.1 or a rig's bridge address (172.30.99.1, or 172.30.(99-N).1).
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Loopback, or a test rig's bridge (172.30.99.1; TESTHOSTS_INSTANCE=N uses 172.30.(99-N).1).
ALLOWED_BIND = re.compile(r"^(127\.0\.0\.1|172\.30\.9[0-9]\.1)$")
ADMIN = re.compile(
    r"^/api/admin/projects/(?P<project>[^/]+)/features/(?P<flag>[^/]+)/environments/"
    r"(?P<env>[^/]+)(?:/(?P<action>on|off))?$"
)
OFREP = re.compile(r"^/ofrep/v1/evaluate/flags/(?P<flag>[^/]+)$")


class FlagService:
    """``with FlagService(token=..., flags={"new_checkout": True}) as svc: svc.url``"""

    def __init__(
        self,
        bind: str = "127.0.0.1",
        port: int = 0,
        token: str = "",
        flags: dict[str, bool] | None = None,
        project: str = "default",
        environment: str = "production",
        disabled_style: str = "reason",
    ) -> None:
        if not ALLOWED_BIND.match(bind):
            raise ValueError(f"bind to 127.0.0.1 or a test rig's bridge (172.30.9N.1), not {bind}")
        self.token = token
        self.flags = dict(flags or {})
        self.project = project
        self.environment = environment
        self.disabled_style = disabled_style
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer((bind, port), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FlagService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, method: str, path: str, auth: str | None) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append({"method": method, "path": path, "authorized": auth == self.token})
            admin = ADMIN.match(path)
            if admin:
                return self._admin(method, admin.groupdict(), auth)
            ofrep = OFREP.match(path)
            if ofrep and method == "POST":
                return self._evaluate(ofrep["flag"])
            return 404, {"message": f"no route {method} {path}"}

    def _admin(
        self, method: str, m: dict[str, Any], auth: str | None
    ) -> tuple[int, dict[str, Any]]:
        if self.token and auth != self.token:
            return 401, {"message": "You must log in to use Unleash"}
        if (m["project"], m["env"]) != (self.project, self.environment):
            return 404, {"message": "no such project or environment"}
        if m["flag"] not in self.flags:
            return 404, {"message": f"Could not find feature flag {m['flag']}"}
        if m["action"] and method == "POST":
            self.flags[m["flag"]] = m["action"] == "on"
            return 200, {}
        if not m["action"] and method == "GET":
            return 200, {
                "name": m["env"],
                "featureName": m["flag"],
                "environment": m["env"],
                "enabled": self.flags[m["flag"]],
                "strategies": [],
            }
        return 405, {"message": "method not allowed"}

    def _evaluate(self, flag: str) -> tuple[int, dict[str, Any]]:
        if flag not in self.flags:
            return 404, {"key": flag, "errorCode": "FLAG_NOT_FOUND", "errorDetails": "not found"}
        if self.flags[flag]:
            return 200, {"key": flag, "value": True, "reason": "STATIC", "variant": "on"}
        if self.disabled_style == "not_found":
            details = f"flag `{flag}` is disabled"
            return 404, {"key": flag, "errorCode": "FLAG_NOT_FOUND", "errorDetails": details}
        return 200, {"key": flag, "reason": "DISABLED", "metadata": {}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, body = service.answer(
                    self.command, self.path, self.headers.get("Authorization")
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _reply

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1", help="127.0.0.1 or 172.30.9N.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="")
    parser.add_argument("--flag", action="append", default=[], help="NAME=on|off")
    args = parser.parse_args()
    flags = {f.split("=")[0]: f.split("=")[1] == "on" for f in args.flag}
    with FlagService(args.bind, args.port, args.token, flags) as service:
        print(service.url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
