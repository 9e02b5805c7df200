"""Order commands of the simulator: placeorder, placeoso, placeoco, modifyorder, cancelorder,
liquidateposition (§4.1–§4.3). Each takes the caller's user id and the request parameters and
returns the JSON body of the answer; all answers are HTTP 200 (§4.1: a 200 can carry a failure).

Answers
-------
* Success: ``{"orderId": n}`` (+ ``oso1Id``/``oso2Id`` or ``ocoId``), or ``{"commandId": n}``
  for modify/cancel ([S1] ``PlaceOrderResult``/``PlaceOsoResult``/``PlaceOcoResult``/
  ``CommandResult``). Whether real success bodies also carry ``failureReason: "Success"`` is
  UNCONFIRMED (§4.1); the simulator omits it, as the documented sample does.
* Neither ``accountId`` nor ``accountSpec``: a ``violations`` body (§4.1, partner shape).
* An account the user does not own, or an unknown contract:
  ``{"failureReason": "UnknownReason", "failureText": "Access is denied"}`` (§4.1, [S7] #45).
* Order types other than Market, Stop and Limit: ``Unsupported`` (simulator limitation).
* A missing ``stopPrice``/``price`` for Stop/Limit: ``InvalidPrice``.
* Modify/cancel of an order that is no longer working: ``TooLate`` (real answer UNCONFIRMED).
* Liquidating a flat position (its working orders are still cancelled): ``UnknownReason`` with
  ``failureText: "Position is flat"`` (real answer UNCONFIRMED).

``clOrdId`` is stored on the order's ``Command`` and never deduplicated: the real API documents
no uniqueness check, so a client that resends creates a second order. The request log
(``GET /sim/requests``) is how tests prove a client never does.
"""

from __future__ import annotations

import math
from typing import Any

from actors.broker.tradovate.sim.engine import TERMINAL, SimEngine, SimOrder

__all__ = ["cancel_order", "liquidate", "modify_order", "place_oco", "place_order", "place_oso"]

Body = dict[str, Any]
_SUPPORTED = ("Market", "Stop", "Limit")
_ACTIONS = ("Buy", "Sell")
DENIED: Body = {"failureReason": "UnknownReason", "failureText": "Access is denied"}


class _Refused(Exception):
    def __init__(self, body: Body) -> None:
        super().__init__(body)
        self.body = body


def _fail(reason: str, text: str) -> _Refused:
    return _Refused({"failureReason": reason, "failureText": text})


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _account(engine: SimEngine, user_id: int, params: dict[str, Any]) -> int:
    """Resolve ``accountId``/``accountSpec`` (both sent by official examples, §4.1)."""
    account_id, spec = params.get("accountId"), params.get("accountSpec")
    if account_id is None and spec is None:
        raise _Refused({"violations": [{
            "constraint": "accountId or accountSpec", "value": None,
            "description": "Account is not specified",
        }]})  # fmt: skip
    by_spec = engine.account_by_name.get(spec) if isinstance(spec, str) else None
    if account_id is not None:
        if not isinstance(account_id, int) or (spec is not None and by_spec != account_id):
            raise _Refused(DENIED)
        found = account_id
    elif by_spec is None:
        raise _Refused(DENIED)
    else:
        found = by_spec
    account = engine.accounts.get(found)
    if account is None or account["userId"] != user_id:
        raise _Refused(DENIED)
    return found


def _shape(version: dict[str, Any], where: str) -> tuple[str, str, float | None, float | None]:
    """Validate action/orderType/prices of an order or bracket; (action, type, price, stop)."""
    action, kind = version.get("action"), version.get("orderType")
    if action not in _ACTIONS:
        raise _fail("UnknownReason", f"{where}action must be Buy or Sell")
    if kind not in _SUPPORTED:
        raise _fail("Unsupported", f"{where}orderType {kind!r} is not supported by the simulator")
    price, stop = _number(version.get("price")), _number(version.get("stopPrice"))
    if kind == "Stop" and stop is None:
        raise _fail("InvalidPrice", f"{where}stopPrice is required for a Stop order")
    if kind == "Limit" and price is None:
        raise _fail("InvalidPrice", f"{where}price is required for a Limit order")
    return action, kind, price if kind == "Limit" else None, stop if kind == "Stop" else None


def _new(
    engine: SimEngine, account_id: int, contract: dict[str, Any], qty: int, version: dict[str, Any]
) -> SimOrder:
    action, kind, price, stop = _shape(version, "")
    return SimOrder(
        id=engine.new_id(),
        account_id=account_id,
        account_name=engine.accounts[account_id]["name"],
        contract=contract,
        action=action,
        order_type=kind,
        qty=qty,
        price=price,
        stop_price=stop,
        created=engine.clock(),
        command_id=0,
        cl_ord_id=version.get("clOrdId") if isinstance(version.get("clOrdId"), str) else None,
    )


def _entry(engine: SimEngine, user_id: int, params: dict[str, Any]) -> SimOrder:
    """Validate a PlaceOrder-shaped request and build the order (not yet created)."""
    account_id = _account(engine, user_id, params)
    symbol = params.get("symbol")
    contract = engine.catalog.find(symbol) if isinstance(symbol, str) else None
    if contract is None:
        raise _Refused(DENIED)
    qty = params.get("orderQty")
    if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
        raise _fail("UnknownReason", "orderQty must be a positive integer")
    order = _new(engine, account_id, contract, qty, params)
    if engine.faults.faults.require_is_automated and params.get("isAutomated") is not True:
        raise _fail("Unsupported", "isAutomated must be true (simulator strict mode)")
    return order


def _rejection(engine: SimEngine) -> tuple[str, str] | None:
    """An armed rejection fault: raised now in ``result`` mode, returned in ``report`` mode."""
    rejection = engine.faults.take_rejection()
    if rejection is None:
        return None
    if rejection[2] == "result":
        raise _fail(rejection[0], rejection[1])
    return rejection[0], rejection[1]


def _launch(
    engine: SimEngine,
    order: SimOrder,
    params: dict[str, Any],
    rejection: tuple[str, str] | None,
    children: tuple[tuple[SimOrder, dict[str, Any]], ...] = (),
) -> None:
    engine.create(order, params)
    for child, version in children:
        engine.create(child, version)
    if rejection is not None:
        engine.reject(order, rejection[0], rejection[1], engine.clock())
    else:
        engine.start(order, engine.clock())


def place_order(engine: SimEngine, user_id: int, params: dict[str, Any]) -> Body:
    """``order/placeorder`` (§4.1)."""
    try:
        order = _entry(engine, user_id, params)
        rejection = _rejection(engine)
    except _Refused as refused:
        return refused.body
    _launch(engine, order, params, rejection)
    return {"orderId": order.id}


def _bracket(engine: SimEngine, parent: SimOrder, version: Any, where: str) -> SimOrder:
    if not isinstance(version, dict):
        raise _fail("UnknownReason", f"{where} is required")
    return _new(engine, parent.account_id, parent.contract, parent.qty, version)


def place_oso(engine: SimEngine, user_id: int, params: dict[str, Any]) -> Body:
    """``order/placeoso`` (§4.2): brackets wait (Suspended) until the entry fills, then work;
    two brackets are an OCO pair. Suspended-until-fill is the simulator's reading of "bracket1
    is sent when the entry fills" ([S8]); the real interim status is UNCONFIRMED."""
    try:
        entry = _entry(engine, user_id, params)
        b1 = _bracket(engine, entry, params.get("bracket1"), "bracket1")
        b2 = (
            _bracket(engine, entry, params["bracket2"], "bracket2")
            if "bracket2" in params
            else None
        )
        rejection = _rejection(engine)
    except _Refused as refused:
        return refused.body
    inherited = {"isAutomated": params.get("isAutomated")}  # brackets act for the entry
    children = tuple(
        (b, inherited | v)
        for b, v in ((b1, params.get("bracket1")), (b2, params.get("bracket2")))
        if b is not None and v is not None
    )
    for child, _ in children:
        child.parent_id = entry.id
        child.status = "Suspended"
    if b2 is not None:
        b1.oco_id, b2.oco_id = b2.id, b1.id
    entry.children = [c.id for c, _ in children]
    _launch(engine, entry, params, rejection, children)
    body: Body = {"orderId": entry.id, "oso1Id": b1.id}
    if b2 is not None:
        body["oso2Id"] = b2.id
    return body


def place_oco(engine: SimEngine, user_id: int, params: dict[str, Any]) -> Body:
    """``order/placeoco`` (§4.2): two working orders; the first fill cancels the other."""
    try:
        first = _entry(engine, user_id, params)
        other = _bracket(engine, first, params.get("other"), "other")
        rejection = _rejection(engine)
    except _Refused as refused:
        return refused.body
    first.oco_id, other.oco_id = other.id, first.id
    engine.create(first, params)
    engine.create(other, params["other"])
    ts = engine.clock()
    if rejection is not None:
        engine.reject(first, rejection[0], rejection[1], ts)
        engine.reject(other, rejection[0], rejection[1], ts)
        return {"orderId": first.id, "ocoId": other.id}
    engine.start(first, ts)
    if other.status not in TERMINAL:  # the first may have filled and cancelled it already
        engine.start(other, ts)
    return {"orderId": first.id, "ocoId": other.id}


def _own(engine: SimEngine, user_id: int, order_id: Any) -> SimOrder | None:
    order = engine.orders.get(order_id) if isinstance(order_id, int) else None
    if order is None or engine.accounts[order.account_id]["userId"] != user_id:
        return None
    return order


def cancel_order(engine: SimEngine, user_id: int, params: dict[str, Any]) -> Body:
    """``order/cancelorder`` (§4.3)."""
    order = _own(engine, user_id, params.get("orderId"))
    if order is None:
        return DENIED
    if order.status in TERMINAL:
        return {"failureReason": "TooLate", "failureText": f"Order is already {order.status}"}
    ts = engine.clock()
    command_id = engine.command(order, "Cancel", params, ts)
    engine.cancel(order, command_id, ts)
    return {"commandId": command_id}


def modify_order(engine: SimEngine, user_id: int, params: dict[str, Any]) -> Body:
    """``order/modifyorder`` (§4.3): new OrderVersion (id = command id), ``Replaced`` report;
    a working stop/limit is re-queued at its new price."""
    order = _own(engine, user_id, params.get("orderId"))
    if order is None:
        return DENIED
    if order.status not in ("Working", "Suspended"):
        return {"failureReason": "TooLate", "failureText": f"Order is {order.status}"}
    qty = params.get("orderQty")
    try:
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise _fail("UnknownReason", "orderQty must be a positive integer")
        _, kind, price, stop = _shape({"action": order.action} | params, "")
    except _Refused as refused:
        return refused.body
    ts = engine.clock()
    working = order.status == "Working"
    if working:
        engine.withdraw(order, ts)
    order.qty, order.order_type, order.price, order.stop_price = qty, kind, price, stop
    command_id = engine.command(order, "Modify", params, ts)
    engine.report(order, command_id, "Replaced", ts)
    engine.emit("order", "Updated", order.entity)
    if working:
        engine.route(order, ts)
    return {"commandId": command_id}


def liquidate(engine: SimEngine, user_id: int, params: dict[str, Any]) -> Body:
    """``order/liquidateposition`` (§4.3): cancel the contract's working orders, then close the
    position with a market order (its id is the answer)."""
    account_id, contract_id = params.get("accountId"), params.get("contractId")
    account = engine.accounts.get(account_id) if isinstance(account_id, int) else None
    contract = engine.catalog.contracts.get(contract_id) if isinstance(contract_id, int) else None
    if account is None or account["userId"] != user_id or contract is None:
        return DENIED
    ts = engine.clock()
    live = [
        o for o in engine.orders.values()
        if o.account_id == account_id and o.contract["id"] == contract_id
        and o.status not in TERMINAL
    ]  # fmt: skip
    for order in live:
        if order.status not in TERMINAL:  # a cancelled parent takes its brackets with it
            engine.cancel(order, None, ts)
    net = engine.net_position(account_id, contract)
    if net == 0:  # working orders (if any) were cancelled all the same
        return {"failureReason": "UnknownReason", "failureText": "Position is flat"}
    version = {"action": "Sell" if net > 0 else "Buy", "orderType": "Market"}
    order = _new(engine, account_id, contract, abs(net), version)
    engine.create(order, {"customTag50": params.get("customTag50")})
    engine.start(order, ts)
    return {"orderId": order.id}
