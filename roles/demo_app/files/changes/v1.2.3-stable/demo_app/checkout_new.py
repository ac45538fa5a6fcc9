"""The new checkout flow (1.2.3): quotes carry a delivery estimate.

Behind the `new_checkout` flag; prices are the classic flow's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from demo_app.checkout import classic_quote
from demo_app.config import Settings

DELIVERY_DAYS = {"SKU-1004": 5}  # grinders ship from the supplier
STANDARD_DELIVERY_DAYS = 2


def quote(
    connection: Connection, item_ref: str, quantity: int, settings: Settings
) -> dict[str, Any]:
    priced = classic_quote(connection, item_ref, quantity, settings)
    return {**priced, "delivery_days": DELIVERY_DAYS.get(priced["item"], STANDARD_DELIVERY_DAYS)}
