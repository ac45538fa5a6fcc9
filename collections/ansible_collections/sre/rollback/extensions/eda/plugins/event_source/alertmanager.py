# GPL-3.0-or-later
"""Event source plugin: Alertmanager's webhook (payload version 4), one event per alert.

Alertmanager posts a notification per alert group; each alert in it becomes one event
``{"alert": {...}, "alertmanager": {...}}``, so a rulebook's condition reads one alert's
``status`` and ``labels`` (the rules ``rollbackctl triggers render`` writes label theirs
with ``source``, ``rule``, ``service``, ``severity``, ``rollback_level``...). Resolved alerts
are events too: deciding what they do is the rulebook's job, not this plugin's.

No ``meta.hosts`` is set: ansible-rulebook would turn it into the playbook's ``--limit``,
and a level rolls a service back on all of its hosts, not only on the instance that
alerted. The request headers are not put in the event either (they may carry the token).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

from aiohttp import web

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager's webhook notifications (version 4), one event per alert.
description:
  - An ansible-rulebook event source plugin that listens for Alertmanager's webhook
    notifications (C(webhook_configs), payload version 4) and puts one event per alert on
    the queue, firing and resolved alike, in the order of the payload.
  - 'Each event is C({"alert": ALERT, "alertmanager": {"receiver", "status", "groupKey",
    "externalURL", "truncatedAlerts"}, "meta": {"endpoint": PATH}}), where ALERT is the
    payload''s alert unchanged (C(status), C(labels), C(annotations), C(startsAt),
    C(endsAt), C(generatorURL), C(fingerprint)).'
  - A body that is not JSON, not version 4, or whose alerts are not objects with a
    C(status) and C(labels) is refused with HTTP 400 and puts nothing on the queue; a
    missing or wrong token gets 401. C(GET /) answers C(up) (a readiness probe).
  - No C(meta.hosts) is set, so a playbook the rulebook runs is not limited to the host
    that alerted, and request headers are not copied into events.
options:
  host:
    description:
      - The address to listen on. The default keeps the receiver on loopback; set a
        C(token) when it listens on other addresses.
    type: str
    default: "127.0.0.1"
  port:
    description:
      - The TCP port to listen on (C(rollbackctl triggers render) points Alertmanager's
        receiver at C(http://127.0.0.1:9095/alerts) by default).
    type: int
    default: 9095
  token:
    description:
      - 'When set, every POST must carry C(Authorization: Bearer TOKEN) (Alertmanager''s
        C(http_config.authorization.credentials)). Empty means no authentication.'
    type: str
    default: ""
"""

EXAMPLES = r"""
- sre.rollback.alertmanager:
    host: 127.0.0.1
    port: 9095

- sre.rollback.alertmanager:
    host: 0.0.0.0
    port: 9095
    token: "{{ alertmanager_token }}"
"""

PAYLOAD_VERSION = "4"
GROUP_FIELDS = ("receiver", "status", "groupKey", "externalURL", "truncatedAlerts")

logger = logging.getLogger(__name__)
queue_key = web.AppKey("queue", asyncio.Queue[Any])
token_key = web.AppKey("token", str)


class BadPayload(ValueError):
    """The body is not an Alertmanager version 4 notification."""


def alert_events(payload: Any, endpoint: str) -> list[dict[str, Any]]:
    """One event per alert of an Alertmanager v4 notification; raises BadPayload."""
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object")
    version = payload.get("version")
    if str(version) != PAYLOAD_VERSION:
        raise BadPayload(
            f"payload version {version!r}: this receiver reads Alertmanager's webhook "
            f"version {PAYLOAD_VERSION} (Alertmanager 0.x webhook_configs)"
        )
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadPayload("no 'alerts' list in the payload")
    for index, alert in enumerate(alerts):
        if not (
            isinstance(alert, dict)
            and isinstance(alert.get("status"), str)
            and isinstance(alert.get("labels"), dict)
        ):
            raise BadPayload(f"alerts[{index}] is not an alert with a status and labels")
    group = {name: payload.get(name) for name in GROUP_FIELDS}
    return [
        {"alert": alert, "alertmanager": group, "meta": {"endpoint": endpoint}} for alert in alerts
    ]


def authorized(request: web.Request, token: str) -> bool:
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


async def status(_request: web.Request) -> web.Response:
    return web.Response(text="up")


async def receive(request: web.Request) -> web.Response:
    if not authorized(request, request.app[token_key]):
        return web.Response(
            status=401, text="wrong or missing bearer token: set the receiver's authorization"
        )
    try:
        payload = json.loads(await request.read())
        events = alert_events(payload, request.match_info["endpoint"])
    except (ValueError, UnicodeDecodeError) as error:
        logger.warning("refused a notification from %s: %s", request.remote, error)
        return web.Response(status=400, text=f"refused: {error}")
    for event in events:
        await request.app[queue_key].put(event)
    return web.Response(status=202, text=f"queued {len(events)} alert(s)")


def make_app(queue: asyncio.Queue[Any], token: str) -> web.Application:
    app = web.Application()
    app[queue_key] = queue
    app[token_key] = token
    app.router.add_get("/", status)
    app.router.add_post("/{endpoint:.*}", receive)
    return app


async def main(queue: asyncio.Queue[Any], args: dict[str, Any]) -> None:
    """Serve Alertmanager's webhook until ansible-rulebook cancels the source."""
    host = str(args.get("host") or "127.0.0.1")
    port = int(args.get("port") or 9095)
    runner = web.AppRunner(make_app(queue, str(args.get("token") or "")))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info("Alertmanager receiver listening on %s:%d", host, port)
        await asyncio.Future()
    except asyncio.CancelledError:
        logger.info("Alertmanager receiver stopped")
    finally:
        await runner.cleanup()


if __name__ == "__main__":

    class PrintQueue(asyncio.Queue[Any]):
        async def put(self, event: Any) -> None:
            print(json.dumps(event))

    asyncio.run(main(PrintQueue(), {}))
