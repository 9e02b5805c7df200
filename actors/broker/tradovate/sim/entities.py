"""Entity shapes of the simulator: pure builders, one per Tradovate entity type ([S1] schemas).

Kept apart from the engine so the shapes can be read (and checked against the OpenAPI spec) in
one place. Every builder returns a fresh dict with all fields the spec marks required; optional
fields are omitted rather than sent as null (Tradovate omits absent values, §4.6 "PnL fields may
be omitted").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.broker.tradovate.sim.config import iso, trade_date

__all__ = [
    "SimOrder",
    "account_entity",
    "cash_entity",
    "command_entity",
    "command_report",
    "execution_report",
    "fill_entity",
    "position_entity",
    "quote_entity",
    "version_entity",
]


@dataclass(slots=True)
class SimOrder:
    """One order plus its current version (qty and prices live on OrderVersion, §4.4)."""

    id: int
    account_id: int
    account_name: str
    contract: dict[str, Any]
    action: str
    order_type: str
    qty: int
    price: float | None
    stop_price: float | None
    created: float
    command_id: int
    cl_ord_id: str | None = None
    status: str = "PendingNew"
    key: str | None = None  # current PaperMatcher order id
    cum_qty: int = 0
    avg_px: float | None = None
    parent_id: int | None = None
    oco_id: int | None = None
    children: list[int] = field(default_factory=list)
    versions: int = 0

    @property
    def entity(self) -> dict[str, Any]:
        """``Order`` ([S1]; no qty/price/type on Order itself, §4.4)."""
        e: dict[str, Any] = {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": self.contract["id"],
            "timestamp": iso(self.created),
            "action": self.action,
            "ordStatus": self.status,
            "admin": False,
        }
        if self.parent_id is not None:
            e["parentId"] = self.parent_id
        if self.oco_id is not None:
            e["ocoId"] = self.oco_id
        return e


def account_entity(account_id: int, name: str, user_id: int) -> dict[str, Any]:
    """``Account`` with the 2021 spec's required fields plus ``archived`` (§4.6)."""
    return {
        "id": account_id,
        "name": name,
        "userId": user_id,
        "accountType": "Customer",
        "active": True,
        "clearingHouseId": 1,
        "riskCategoryId": 1,
        "autoLiqProfileId": 1,
        "marginAccountType": "Speculator",
        "legalStatus": "Individual",
        "readonly": False,
        "archived": False,
    }


def cash_entity(cash_id: int, account_id: int, amount: float, ts: float) -> dict[str, Any]:
    """``CashBalance`` in USD (``currencyId`` 1)."""
    return {
        "id": cash_id,
        "accountId": account_id,
        "timestamp": iso(ts),
        "tradeDate": trade_date(ts),
        "currencyId": 1,
        "amount": amount,
        "realizedPnL": 0.0,
        "weekRealizedPnL": 0.0,
    }


def command_entity(
    command_id: int, order_id: int, kind: str, params: dict[str, Any], ts: float
) -> dict[str, Any]:
    """``Command`` (§4.4): keeps the request's ``clOrdId``, ``customTag50`` and ``isAutomated``."""
    entity: dict[str, Any] = {
        "id": command_id,
        "orderId": order_id,
        "timestamp": iso(ts),
        "commandType": kind,
        "commandStatus": "RiskPassed",
    }
    for name in ("clOrdId", "customTag50"):
        if isinstance(params.get(name), str):
            entity[name] = params[name]
    if isinstance(params.get("isAutomated"), bool):
        entity["isAutomated"] = params["isAutomated"]
    return entity


def version_entity(version_id: int, order: SimOrder, params: dict[str, Any]) -> dict[str, Any]:
    """``OrderVersion``: qty, type and prices of the order (§4.4)."""
    entity: dict[str, Any] = {
        "id": version_id,
        "orderId": order.id,
        "orderQty": order.qty,
        "orderType": order.order_type,
        "timeInForce": params.get("timeInForce") or "Day",
    }
    if order.price is not None:
        entity["price"] = order.price
    if order.stop_price is not None:
        entity["stopPrice"] = order.stop_price
    if isinstance(params.get("text"), str):
        entity["text"] = params["text"]
    return entity


def command_report(
    report_id: int, command_id: int, order: SimOrder, ts: float, reject: tuple[str, str] | None
) -> dict[str, Any]:
    """``CommandReport``: ``AtExecution`` or ``ExecutionRejected`` with the reason (§4.4)."""
    entity: dict[str, Any] = {
        "id": report_id,
        "commandId": command_id,
        "timestamp": iso(ts),
        "commandStatus": "ExecutionRejected" if reject else "AtExecution",
        "ordStatus": order.status,
    }
    if reject:
        entity["rejectReason"], entity["text"] = reject
    return entity


def execution_report(
    report_id: int, command_id: int, order: SimOrder, exec_type: str, ts: float
) -> dict[str, Any]:
    """``ExecutionReport`` of one state change (§4.4); callers add lastQty/lastPx/rejectReason."""
    entity: dict[str, Any] = {
        "id": report_id,
        "commandId": command_id,
        "name": str(order.id),
        "accountId": order.account_id,
        "contractId": order.contract["id"],
        "timestamp": iso(ts),
        "tradeDate": trade_date(ts),
        "orderId": order.id,
        "execType": exec_type,
        "ordStatus": order.status,
        "action": order.action,
        "cumQty": order.cum_qty,
    }
    if order.avg_px is not None:
        entity["avgPx"] = order.avg_px
    return entity


def fill_entity(fill_id: int, order: SimOrder, qty: int, price: float, ts: float) -> dict[str, Any]:
    """``Fill`` (§4.4). ``finallyPaired`` stays 0: fill pairs are not modelled."""
    return {
        "id": fill_id,
        "orderId": order.id,
        "contractId": order.contract["id"],
        "timestamp": iso(ts),
        "tradeDate": trade_date(ts),
        "action": order.action,
        "qty": qty,
        "price": price,
        "active": True,
        "finallyPaired": 0,
    }


def position_entity(
    position_id: int, account_id: int, contract_id: int, ts: float
) -> dict[str, Any]:
    """A flat ``Position`` (§4.5); ``netPrice`` appears only while the position is open.
    ``prevPos`` is always 0: positions carried from a previous session are not modelled."""
    return {
        "id": position_id,
        "accountId": account_id,
        "contractId": contract_id,
        "timestamp": iso(ts),
        "tradeDate": trade_date(ts),
        "netPos": 0,
        "bought": 0,
        "boughtValue": 0.0,
        "sold": 0,
        "soldValue": 0.0,
        "prevPos": 0,
    }


def quote_entity(
    contract_id: int, price: float, ts: float, tick: float, volume: int, book: dict[str, Any]
) -> dict[str, Any]:
    """One ``md`` quote (§5.7): Bid/Offer/Trade/TotalTradeVolume keyed by ``contractId``.

    Without an explicit book the bid is the trade price and the offer one tick above it.
    Real quotes may be partial updates (UNCONFIRMED); the simulator always sends every entry.
    """

    def pick(key: str, default: Any) -> Any:
        value = book.get(key)
        return default if value is None else value

    return {
        "timestamp": iso(ts),
        "contractId": contract_id,
        "entries": {
            "Bid": {"price": pick("bid", price), "size": int(pick("bid_size", 10))},
            "Offer": {"price": pick("ask", price + tick), "size": int(pick("ask_size", 10))},
            "Trade": {"price": price, "size": int(pick("size", 1))},
            "TotalTradeVolume": {"size": volume},
        },
    }
