"""The HTTP service: routes, JSON responses, metrics for every request."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from demo_app import APP_ROOT, buildinfo, checkout, read_version, store
from demo_app.config import Settings
from demo_app.db import Database, DatabaseUnavailable, PoolExhausted
from demo_app.flags import FlagStore
from demo_app.heartbeat import Heartbeat
from demo_app.metrics import CONTENT_TYPE, RequestMetrics, family, memory_figures
from demo_app.uploads import UploadError, Uploads

log = logging.getLogger("demo_app.http")
JSON = "application/json"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    body: bytes
    route: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            payload = json.loads(self.body)
        except ValueError:
            raise HttpError(400, {"error": "the body is not valid JSON"}) from None
        if not isinstance(payload, dict):
            raise HttpError(400, {"error": "the body must be a JSON object"})
        return payload


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON


def json_response(status: int, payload: Any) -> Response:
    return Response(status, (json.dumps(payload, sort_keys=True) + "\n").encode())


class HttpError(Exception):
    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("error", status))
        self.status = status
        self.payload = payload


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", "index"),
    Route("GET", "/health", "health"),
    Route("GET", "/metrics", "prometheus"),
    Route("GET", "/version", "version"),
    Route("GET", "/config", "config"),
    Route("GET", "/flags", "flag_list"),
    Route("GET", "/flags/{name}", "flag"),
    Route("GET", "/items", "items"),
    Route("GET", "/orders", "orders"),
    Route("GET", "/checkout", "checkout_quote"),
    Route("POST", "/checkout", "checkout_order"),
    Route("GET", "/uploads", "upload_list"),
    Route("GET", "/uploads/{name}", "upload_get"),
    Route("POST", "/uploads/{name}", "upload_put"),
    Route("POST", "/cache/clear", "cache_clear"),
)


@dataclass(frozen=True)
class BuildInfo:
    version: str
    release: str
    commit: str
    built_at: str

    @classmethod
    def of_this_release(cls) -> BuildInfo:
        manifest = buildinfo.read_manifest(APP_ROOT) or {}
        return cls(
            version=read_version(),
            release=APP_ROOT.name,
            commit=str(manifest.get("commit", "unbuilt")),
            built_at=str(manifest.get("built_at", "")),
        )


class DemoApp:
    """Everything a request needs; handlers are methods named in ROUTES."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.build = BuildInfo.of_this_release()
        self.db = Database(settings)
        self.heartbeat = Heartbeat(settings)
        self.flags = FlagStore(settings.flags_path)
        self.uploads = Uploads(settings.storage_uploads_dir, settings.storage_max_upload_bytes)
        self.metrics = RequestMetrics()
        self.started = time.time()
        self.health_failures = 0
        self._items_cache: tuple[float, list[dict[str, Any]]] | None = None
        self._lock = threading.Lock()

    def dispatch(self, method: str, target: str, body: bytes) -> tuple[str, Response]:
        """Serve one request; returns the route template (the metrics label) and the response."""
        parts = urlsplit(target)
        allowed = []
        for route in ROUTES:
            matched = route.pattern.match(parts.path)
            if matched is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            request = Request(
                method, parts.path, dict(parse_qsl(parts.query)), body, matched.groupdict()
            )
            return route.template, self._call(route, request)
        if allowed:
            return "other", json_response(405, {"error": f"use {' or '.join(allowed)}"})
        return "other", json_response(404, {"error": f"no such endpoint: {parts.path}"})

    def _call(self, route: Route, request: Request) -> Response:
        try:
            result: Response = getattr(self, route.handler)(request)
        except HttpError as error:
            return json_response(error.status, error.payload)
        except (store.NotFound, FileNotFoundError) as error:
            return json_response(404, {"error": str(error) or "not found"})
        except (checkout.BadRequest, UploadError) as error:
            return json_response(400, {"error": str(error)})
        except PoolExhausted as error:
            return json_response(503, {"error": "pool exhausted", "detail": str(error)})
        except DatabaseUnavailable as error:
            return json_response(503, {"error": "database unavailable", "detail": str(error)})
        except Exception as error:
            log.error(
                "%s %s failed: %s: %s", request.method, request.path, type(error).__name__, error
            )
            return json_response(500, {"error": "internal error", "detail": type(error).__name__})
        return result

    # --- handlers ---------------------------------------------------------------------

    def index(self, _request: Request) -> Response:
        return json_response(
            200,
            {
                "app": "demo-app",
                "version": self.build.version,
                "endpoints": [f"{r.method} {r.template}" for r in ROUTES],
            },
        )

    def health(self, _request: Request) -> Response:
        database = self.db.health()
        payload = {
            "status": "ok" if database.ok else "fail",
            "version": self.build.version,
            "release": self.build.release,
            "commit": self.build.commit,
            "db": database.status,
            "schema": database.revision,
            "environment": self.settings.app_environment,
        }
        if not database.ok:
            with self._lock:
                self.health_failures += 1
        return json_response(200 if database.ok else 503, payload)

    def version(self, _request: Request) -> Response:
        return json_response(200, self.build.__dict__)

    def config(self, _request: Request) -> Response:
        return json_response(200, self.settings.public())

    def flag_list(self, _request: Request) -> Response:
        evaluations = [self.flags.evaluate(name) for name in sorted(self.flags.flags())]
        return json_response(200, {"flags": [e.as_ofrep() for e in evaluations if e]})

    def flag(self, request: Request) -> Response:
        name = request.route["name"]
        evaluation = self.flags.evaluate(name)
        if evaluation is None:
            return json_response(
                404,
                {
                    "key": name,
                    "errorCode": "FLAG_NOT_FOUND",
                    "errorDetails": f"flag {name!r} is not in the flags file",
                },
            )
        return json_response(400 if evaluation.error_code else 200, evaluation.as_ofrep())

    def items(self, _request: Request) -> Response:
        with self._lock:
            cached = self._items_cache
        if cached and time.monotonic() - cached[0] < self.settings.cache_ttl_seconds:
            return json_response(200, {"items": cached[1], "cached": True})
        with self.db.connect() as connection:
            listed = [item.as_dict() for item in store.list_items(connection)]
        with self._lock:
            self._items_cache = (time.monotonic(), listed)
        return json_response(200, {"items": listed, "cached": False})

    def orders(self, request: Request) -> Response:
        limit = checkout.parse_quantity(request.params.get("limit", "20"))
        with self.db.connect() as connection:
            return json_response(200, {"orders": store.list_orders(connection, limit)})

    def checkout_quote(self, request: Request) -> Response:
        quantity = checkout.parse_quantity(request.params.get("qty", "1"))
        flow = checkout.choose_flow(self.flags)
        with self.db.connect() as connection:
            priced = checkout.quote(
                connection, flow, request.params.get("item", "1"), quantity, self.settings
            )
        return json_response(200, priced)

    def checkout_order(self, request: Request) -> Response:
        payload = {**request.params, **request.json()}
        quantity = checkout.parse_quantity(payload.get("qty", 1))
        flow = checkout.choose_flow(self.flags)
        with self.db.connect() as connection:
            order = checkout.place_order(
                connection, flow, str(payload.get("item", "1")), quantity, self.settings
            )
        return json_response(201, order)

    def upload_list(self, _request: Request) -> Response:
        return json_response(200, {"uploads": self.uploads.list()})

    def upload_get(self, request: Request) -> Response:
        return Response(200, self.uploads.load(request.route["name"]), "application/octet-stream")

    def upload_put(self, request: Request) -> Response:
        return json_response(201, self.uploads.save(request.route["name"], request.body))

    def cache_clear(self, _request: Request) -> Response:
        self.clear_caches()
        return json_response(200, {"cleared": ["flags", "items"]})

    def prometheus(self, _request: Request) -> Response:
        return Response(200, ("\n".join(self.metric_lines()) + "\n").encode(), CONTENT_TYPE)

    # --- helpers ----------------------------------------------------------------------

    def clear_caches(self) -> None:
        self.flags.clear()
        with self._lock:
            self._items_cache = None
        log.info("caches cleared")

    def metric_lines(self) -> list[str]:
        memory = memory_figures()
        info = {
            "version": self.build.version,
            "release": self.build.release,
            "commit": self.build.commit,
        }
        flag_values = [
            ({"flag": name}, int(self.flags.is_on(name))) for name in sorted(self.flags.flags())
        ]
        return [
            *self.metrics.render(),
            *family("demo_app_info", "gauge", "The running release.", [(info, 1)]),
            *family(
                "process_start_time_seconds",
                "gauge",
                "Start time (Unix time).",
                [({}, self.started)],
            ),
            *family(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of the process.",
                [({}, memory["rss_bytes"])],
            ),
            *family(
                "demo_memory_limit_bytes",
                "gauge",
                "Memory the process may use: its cgroup's memory.max, else host MemTotal.",
                [({}, memory["limit_bytes"])],
            ),
            *family(
                "demo_memory_usage_ratio",
                "gauge",
                "Resident memory / host MemTotal.",
                [({}, memory["process_ratio"])],
            ),
            *family(
                "demo_host_memory_usage_ratio",
                "gauge",
                "1 - MemAvailable / MemTotal of the host.",
                [({}, memory["host_ratio"])],
            ),
            *family(
                "demo_db_pool_size",
                "gauge",
                "Connections the pool may open.",
                [({}, self.db.pool_size)],
            ),
            *family(
                "demo_db_pool_in_use",
                "gauge",
                "Connections checked out of the pool.",
                [({}, self.db.in_use())],
            ),
            *family(
                "demo_db_pool_timeouts_total",
                "counter",
                "Requests that found no free connection (pool exhausted).",
                [({}, self.db.pool_timeouts)],
            ),
            *family(
                "demo_health_ok",
                "gauge",
                "1 when the app's own health check passes now (checked on every scrape).",
                [({}, int(self.healthy_now()))],
            ),
            *family(
                "demo_health_check_failures_total",
                "counter",
                "GET /health answers that were not 200.",
                [({}, self.health_failures)],
            ),
            *family(
                "demo_heartbeat_writes_total",
                "counter",
                "Heartbeat rows written (one every [database] heartbeat_seconds).",
                [({}, self.heartbeat.written)],
            ),
            *family(
                "demo_heartbeat_failures_total",
                "counter",
                "Heartbeat rows that could not be written.",
                [({}, self.heartbeat.failures)],
            ),
            *family(
                "demo_heartbeat_last_write_seconds",
                "gauge",
                "When the newest heartbeat row was written (Unix time; 0: none yet).",
                [({}, self.heartbeat.last_written)],
            ),
            *family(
                "demo_feature_flag_enabled",
                "gauge",
                "1 when the flag evaluates to true inside the app.",
                flag_values,
            ),
            *family(
                "demo_flags_reload_errors_total",
                "counter",
                "Changes of the flags file that could not be read.",
                [({}, self.flags.reload_errors)],
            ),
        ]

    def healthy_now(self) -> bool:
        """What GET /health would answer, without waiting for a connection when the pool is
        exhausted (a scrape must stay fast)."""
        if self.db.in_use() >= self.db.pool_size:
            return False
        return self.db.health().ok

    def close(self) -> None:
        self.heartbeat.close()
        self.db.close()


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-app"
    app: ClassVar[DemoApp]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.app.settings.storage_max_upload_bytes:
            raise HttpError(413, {"error": "request body too large"})
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        label = "other"
        try:
            label, response = self.app.dispatch(method, self.path, self._read_body())
        except HttpError as error:
            response = json_response(error.status, error.payload)
        except ValueError:
            response = json_response(400, {"error": "bad Content-Length"})
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except OSError as error:
            log.info("client went away: %s", error)
        elapsed = time.monotonic() - started
        self.app.metrics.observe(label, response.status, elapsed)
        log.info("%s %s %d %.3fs", method, self.path, response.status, elapsed)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


class DemoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def bind(settings: Settings) -> DemoHTTPServer:
    """Listen on the configured address; the app is attached later (after a daemon fork)."""
    return DemoHTTPServer((settings.server_bind, settings.server_port), Handler)


def attach(server: DemoHTTPServer, app: DemoApp) -> None:
    server.RequestHandlerClass = type("DemoHandler", (Handler,), {"app": app})
