"""The new checkout flow (1.3.0): prices converted with live exchange rates.

Behind the `new_checkout` flag. Each quote calls the rate service synchronously while it
holds its database connection, and the service sometimes answers without a rate: this
is the regression that rollbacks of 1.3.0 are about. [checkout] slow_seconds and
error_rate in app.ini say how slow the call is and how often it fails.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from demo_app import store
from demo_app.config import Settings


class RateUnavailable(RuntimeError):
    """The rate service answered without a rate."""


class RateService:
    """Stand-in for the remote rate service; fails a steady share of the calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failure_debt = 0.0

    def eur_rate(self, settings: Settings) -> Decimal:
        time.sleep(settings.checkout_slow_seconds)
        with self._lock:
            self._failure_debt += settings.checkout_error_rate
            if self._failure_debt >= 1:
                self._failure_debt -= 1
                raise RateUnavailable("rate service returned no EUR rate")
        return Decimal(1)


RATES = RateService()


def quote(
    connection: Connection, item_ref: str, quantity: int, settings: Settings
) -> dict[str, Any]:
    item = store.get_item(connection, item_ref)
    rate = RATES.eur_rate(settings)
    unit = int(Decimal(item.price_cents) * rate)
    return {
        "item": item.sku,
        "quantity": quantity,
        "unit_cents": unit,
        "total_cents": unit * quantity,
        "currency": "EUR",
        "rate": str(rate),
    }
