"""Checkout: price an item (GET /checkout) and place an order (POST /checkout).

The `new_checkout` flag chooses the flow. Releases before 1.2.3 ship only the classic
flow, so for them the flag changes nothing.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

from sqlalchemy.engine import Connection

from demo_app import store
from demo_app.config import Settings
from demo_app.flags import FlagStore

FLAG = "new_checkout"
MAX_QUANTITY = 100


class BadRequest(ValueError):
    """The request asks for something that cannot be priced."""


@functools.cache
def new_flow() -> ModuleType | None:
    """The module of the new flow, or None in releases that do not have one."""
    try:
        return importlib.import_module("demo_app.checkout_new")
    except ModuleNotFoundError as error:
        if error.name != "demo_app.checkout_new":
            raise
        return None


def parse_quantity(raw: object) -> int:
    try:
        quantity = int(str(raw))
    except ValueError:
        raise BadRequest(f"qty must be a whole number from 1 to {MAX_QUANTITY}") from None
    if not 1 <= quantity <= MAX_QUANTITY:
        raise BadRequest(f"qty must be from 1 to {MAX_QUANTITY}")
    return quantity


def choose_flow(flags: FlagStore) -> str:
    return "new" if new_flow() is not None and flags.is_on(FLAG) else "classic"


def classic_quote(
    connection: Connection, item_ref: str, quantity: int, _settings: Settings
) -> dict[str, Any]:
    item = store.get_item(connection, item_ref)
    return {
        "item": item.sku,
        "quantity": quantity,
        "unit_cents": item.price_cents,
        "total_cents": item.price_cents * quantity,
    }


def quote(
    connection: Connection, flow: str, item_ref: str, quantity: int, settings: Settings
) -> dict[str, Any]:
    module = new_flow()
    price = module.quote if flow == "new" and module is not None else classic_quote
    return {**price(connection, item_ref, quantity, settings), "flow": flow}


def place_order(
    connection: Connection, flow: str, item_ref: str, quantity: int, settings: Settings
) -> dict[str, Any]:
    priced = quote(connection, flow, item_ref, quantity, settings)
    item = store.get_item(connection, item_ref)
    order_id = store.create_order(connection, item, quantity, priced["total_cents"])
    return {**priced, "order_id": order_id}
