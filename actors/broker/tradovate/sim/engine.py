"""Accounts, orders, fills, positions and cash of the simulator, and the props events they emit.

Matching is not re-implemented here: every execution goes through the project's paper exchange
(:class:`actors.broker.paper.PaperMatcher`, no slippage), so market orders fill at the last
pushed price, stops rest and fill at the first price at or beyond the stop (a gap is not
forgiven), and positions net exactly as they do for the paper broker. The engine adds what the
Tradovate entity model needs around it (§4.4–§4.6): integer ids, ``Order`` / ``Command`` /
``CommandReport`` / ``OrderVersion`` / ``ExecutionReport`` / ``Fill`` / ``Position`` /
``CashBalance`` entities, resting limit orders (filled through the matcher as a market order at
the first price at or better than the limit) and brackets.

Events: every entity change is emitted as ``{"e":"props","d":{"entityType","eventType",
"entity"}}`` (§5.4) to the registered sinks, in the order the changes happen. The sequence
around one market order is: order Created (PendingNew) → command Created → orderVersion Created
→ commandReport Created → executionReport (New) → order Updated (Working) → executionReport
(Trade) → fill Created → order Updated (Filled) → position Created/Updated → cashBalance Updated
(only when P&L was realised). The real order of these events is UNCONFIRMED (§4.4); the entity
shapes follow [S1]. ``orderVersion.id`` equals the id of the command that created it (§4.4).

All ids come from one counter, so they are unique across entity types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from actors.broker.base import BrokerEvent, BrokerFill, BrokerPosition, OrderRequest, OrderState
from actors.broker.paper import PaperMatcher
from actors.broker.tradovate.sim.catalog import Catalog
from actors.broker.tradovate.sim.config import SimConfig, iso, trade_date
from actors.broker.tradovate.sim.entities import (
    SimOrder,
    account_entity,
    cash_entity,
    command_entity,
    command_report,
    execution_report,
    fill_entity,
    position_entity,
    quote_entity,
    version_entity,
)
from actors.broker.tradovate.sim.faults import FaultState

__all__ = ["TERMINAL", "EventSink", "QuoteSink", "SimEngine"]

EventSink = Callable[[dict[str, Any], int | None], None]  # (message, accountId)
QuoteSink = Callable[[int, dict[str, Any]], None]  # (contractId, quote)
Schedule = Callable[[float, Callable[[], None]], None]

TERMINAL = frozenset({"Canceled", "Filled", "Rejected", "Expired", "Completed"})
_ACCOUNT_BASE = 700_000


def _default_schedule(delay_s: float, fn: Callable[[], None]) -> None:
    asyncio.get_running_loop().call_later(delay_s, fn)


class SimEngine:
    """State of every account of one simulator; see the module docstring.

    Not thread-safe: the server calls it only from its event loop.
    """

    def __init__(
        self,
        config: SimConfig,
        catalog: Catalog,
        faults: FaultState,
        clock: Callable[[], float],
        schedule: Schedule = _default_schedule,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.faults = faults
        self.clock = clock
        self.schedule = schedule
        self.matcher = PaperMatcher()
        self.sinks: list[EventSink] = []
        self.quote_sinks: list[QuoteSink] = []
        self.entities: dict[str, dict[int, dict[str, Any]]] = {}
        self.orders: dict[int, SimOrder] = {}
        self.accounts: dict[int, dict[str, Any]] = {}
        self.account_by_name: dict[str, int] = {}
        self.quotes: dict[int, dict[str, Any]] = {}  # contractId -> last quote
        self._by_key: dict[str, int] = {}
        self._limits: dict[str, list[int]] = {}
        self._positions: dict[tuple[int, int], dict[str, Any]] = {}
        self._cash: dict[int, dict[str, Any]] = {}
        self._next_id = 1
        now = clock()
        owned = ((u, a) for u in config.users for a in u.accounts)
        for i, (user, name) in enumerate(owned, start=1):
            aid = _ACCOUNT_BASE + i
            self.accounts[aid] = account_entity(aid, name, user.user_id)
            self.account_by_name[name] = aid
            cash = cash_entity(self.new_id(), aid, config.initial_cash, now)
            self._cash[aid] = self._store("cashBalance", cash)

    # ------------------------------------------------------------------ plumbing

    def new_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def _store(self, entity_type: str, entity: dict[str, Any]) -> dict[str, Any]:
        self.entities.setdefault(entity_type, {})[entity["id"]] = entity
        return entity

    def account_of(self, entity_type: str, entity: dict[str, Any]) -> int | None:
        """The account an entity belongs to (for per-account scoping of lists and events)."""
        if "accountId" in entity:
            return int(entity["accountId"])
        if "orderId" in entity and entity["orderId"] in self.orders:
            return self.orders[entity["orderId"]].account_id
        if entity_type == "commandReport":
            command = self.entities.get("command", {}).get(entity["commandId"])
            return self.account_of("command", command) if command else None
        return None

    def emit(self, entity_type: str, event_type: str, entity: dict[str, Any]) -> None:
        """Store the entity's new state and send it to every sink as a props event (§5.4)."""
        stored = self._store(entity_type, dict(entity))
        message = {
            "e": "props",
            "d": {"entityType": entity_type, "eventType": event_type, "entity": dict(stored)},
        }
        account = self.account_of(entity_type, stored)
        for sink in list(self.sinks):
            sink(message, account)

    # ------------------------------------------------------------------ order lifecycle

    def command(self, order: SimOrder, kind: str, params: dict[str, Any], ts: float) -> int:
        """A ``Command`` (New/Modify/Cancel) for ``order``; New/Modify also get the
        ``OrderVersion`` carrying qty and prices, with the command's id (§4.4)."""
        cid = self.new_id()
        self.emit("command", "Created", command_entity(cid, order.id, kind, params, ts))
        if kind != "Cancel":
            order.command_id = cid
            self.emit("orderVersion", "Created", version_entity(cid, order, params))
        return cid

    def report(
        self, order: SimOrder, command_id: int, exec_type: str, ts: float, **extra: Any
    ) -> None:
        """ExecutionReport for one state change of ``order`` (§4.4), preceded by the
        command's CommandReport unless it is a trade (a fill is not a command outcome)."""
        if exec_type != "Trade":
            reject = (extra["rejectReason"], extra["text"]) if exec_type == "Rejected" else None
            cr = command_report(self.new_id(), command_id, order, ts, reject)
            self.emit("commandReport", "Created", cr)
        er = execution_report(self.new_id(), command_id, order, exec_type, ts) | extra
        self.emit("executionReport", "Created", er)

    def create(self, order: SimOrder, params: dict[str, Any]) -> None:
        """Register a new order: order Created (PendingNew), its New command and version."""
        self.orders[order.id] = order
        self.emit("order", "Created", order.entity)
        self.command(order, "New", params, order.created)

    def start(self, order: SimOrder, ts: float) -> None:
        """Accept an order at the exchange (Working) and route it by type."""
        order.status = "Working"
        self.report(order, order.command_id, "New", ts)
        self.emit("order", "Updated", order.entity)
        self.route(order, ts)

    def route(self, order: SimOrder, ts: float) -> None:
        """Stops rest in the matcher; limits rest here; market orders fill now or after the
        ``fill_delay_ms`` fault, at the price current when they execute."""
        if order.order_type == "Stop":
            self._submit(order, "stop", ts)
            self._activate(order.key)
        elif order.order_type == "Limit":
            last = self.matcher.last_price(order.contract["name"])
            if last is not None and self._limit_hit(order, last):
                self._fill_now(order, ts)
            else:
                self._limits.setdefault(order.contract["name"], []).append(order.id)
        else:
            self._submit(order, "market", ts)
            delay = self.faults.faults.fill_delay_ms / 1000.0
            if delay > 0:
                self.schedule(delay, lambda key=order.key: self._activate(key))
            else:
                self._activate(order.key)

    def _submit(self, order: SimOrder, kind: str, ts: float) -> None:
        # One matcher order per (order, version): a modified order is re-submitted under a new
        # key, so the matcher's own idempotency by id never swallows it.
        order.versions += 1
        key = f"{order.id}.{order.versions}"
        order.key = key
        self._by_key[key] = order.id
        request = OrderRequest(
            cl_ord_id=key,
            account=order.account_name,
            symbol=order.contract["name"],
            side="buy" if order.action == "Buy" else "sell",
            qty=order.qty,
            order_type="stop" if kind == "stop" else "market",
            stop_price=order.stop_price if kind == "stop" else None,
        )
        self.matcher.submit(request, ts)

    def _activate(self, key: str | None) -> None:
        if key is not None:
            self._apply(self.matcher.activate(key, self.clock()))

    @staticmethod
    def _limit_hit(order: SimOrder, price: float) -> bool:
        assert order.price is not None
        return price <= order.price if order.action == "Buy" else price >= order.price

    def _fill_now(self, order: SimOrder, ts: float) -> None:
        self._submit(order, "market", ts)
        self._activate(order.key)

    def withdraw(self, order: SimOrder, ts: float) -> None:
        """Take a working order off the book (matcher or limit list) without events."""
        if order.key is not None and not self.matcher.state(order.key).is_terminal:
            self.matcher.cancel(order.key, ts)
        resting = self._limits.get(order.contract["name"], [])
        if order.id in resting:
            resting.remove(order.id)

    def cancel(self, order: SimOrder, command_id: int | None, ts: float) -> None:
        """Cancel a live order and its suspended brackets (Canceled + reports)."""
        self.withdraw(order, ts)
        order.status = "Canceled"
        if command_id is None:
            command_id = self.command(order, "Cancel", {}, ts)
        self.report(order, command_id, "Canceled", ts)
        self.emit("order", "Updated", order.entity)
        for child_id in order.children:
            child = self.orders[child_id]
            if child.status not in TERMINAL:
                self.cancel(child, None, ts)

    def reject(self, order: SimOrder, reason: str, text: str, ts: float) -> None:
        order.status = "Rejected"
        self.report(order, order.command_id, "Rejected", ts, rejectReason=reason, text=text)
        self.emit("order", "Updated", order.entity)
        for child_id in order.children:
            child = self.orders[child_id]
            if child.status not in TERMINAL:
                self.reject(child, "ParentRejected", "Parent order rejected", ts)

    # ------------------------------------------------------------------ executions

    def _apply(self, events: list[BrokerEvent]) -> None:
        """Translate PaperMatcher events into Tradovate entities, then run OSO/OCO links."""
        filled: list[SimOrder] = []
        for event in events:
            if isinstance(event, BrokerFill):
                self._record_fill(self.orders[self._by_key[event.cl_ord_id]], event)
            elif isinstance(event, BrokerPosition):
                self._position(event)
            elif isinstance(event, OrderState):
                order = self.orders[self._by_key[event.cl_ord_id]]
                if event.status == "filled":
                    order.status = "Filled"
                    self.emit("order", "Updated", order.entity)
                    filled.append(order)
                elif event.status == "rejected":  # market order without any price yet
                    self.reject(order, "NoQuote", "No quote for the contract", event.ts)
        for order in filled:
            ts = self.clock()
            for child_id in order.children:
                child = self.orders[child_id]
                if child.status == "Suspended":
                    self.start(child, ts)
            if order.oco_id is not None:
                sibling = self.orders[order.oco_id]
                if sibling.status not in TERMINAL:
                    self.cancel(sibling, None, ts)

    def _record_fill(self, order: SimOrder, fill: BrokerFill) -> None:
        prev = order.avg_px or 0.0
        order.avg_px = (prev * order.cum_qty + fill.price * fill.qty) / (order.cum_qty + fill.qty)
        order.cum_qty += fill.qty
        order.status = "Filled" if order.cum_qty >= order.qty else "Working"
        self.report(order, order.command_id, "Trade", fill.ts, lastQty=fill.qty, lastPx=fill.price)
        entity = fill_entity(self.new_id(), order, fill.qty, fill.price, fill.ts)
        self.emit("fill", "Created", entity)
        pos = self._position_entity(order.account_id, order.contract["id"], fill.ts)
        side = "bought" if order.action == "Buy" else "sold"
        pos[side] += fill.qty
        pos[side + "Value"] += fill.qty * fill.price

    def _position_entity(self, account_id: int, contract_id: int, ts: float) -> dict[str, Any]:
        key = (account_id, contract_id)
        if key not in self._positions:
            self._positions[key] = position_entity(self.new_id(), account_id, contract_id, ts)
        return self._positions[key]

    def _position(self, event: BrokerPosition) -> None:
        account_id = self.account_by_name[event.account]
        contract = self.catalog.find(event.symbol)
        assert contract is not None
        ts = self.clock()
        pos = self._position_entity(account_id, contract["id"], ts)
        created = pos["id"] not in self.entities.get("position", {})
        pos.update(netPos=event.net_pos, timestamp=iso(ts), tradeDate=trade_date(ts))
        if event.net_price is None:
            pos.pop("netPrice", None)
        else:
            pos["netPrice"] = event.net_price
        self.emit("position", "Created" if created else "Updated", pos)
        self._cash_update(account_id, ts)

    def _cash_update(self, account_id: int, ts: float) -> None:
        """Realised P&L (from the matcher) moves ``cashBalance.amount``; no commissions."""
        name = self.accounts[account_id]["name"]
        contracts = self.catalog.contracts
        symbols = {contracts[cid]["name"] for (aid, cid) in self._positions if aid == account_id}
        realized = sum(self.matcher.realized_pnl(name, s) for s in symbols)
        cash = self._cash[account_id]
        if abs(realized - cash["realizedPnL"]) < 1e-9:
            return
        cash.update(
            amount=self.config.initial_cash + realized,
            realizedPnL=realized,
            weekRealizedPnL=realized,
            timestamp=iso(ts),
            tradeDate=trade_date(ts),
        )
        self.emit("cashBalance", "Updated", cash)

    # ------------------------------------------------------------------ prices

    def push_price(self, contract: dict[str, Any], price: float, ts: float, **book: Any) -> None:
        """One trade print: md quote to subscribers, then stops, then resting limits."""
        tick = self.catalog.spec_of(contract).tick_size
        prev = self.quotes.get(contract["id"], {}).get("entries", {})
        volume = prev.get("TotalTradeVolume", {}).get("size", 0) + int(book.get("size") or 1)
        quote = quote_entity(contract["id"], price, ts, tick, volume, book)
        self.quotes[contract["id"]] = quote
        for sink in list(self.quote_sinks):
            sink(contract["id"], quote)
        symbol = contract["name"]
        self._apply(self.matcher.on_price(symbol, ts, price))
        for order_id in list(self._limits.get(symbol, [])):
            order = self.orders[order_id]
            if order_id in self._limits[symbol] and self._limit_hit(order, price):
                self._limits[symbol].remove(order_id)
                self._fill_now(order, ts)

    # ------------------------------------------------------------------ queries

    def open_pnl(self, account_id: int) -> float:
        total = 0.0
        for (aid, cid), pos in self._positions.items():
            contract = self.catalog.contracts[cid]
            last = self.matcher.last_price(contract["name"])
            if aid == account_id and pos["netPos"] and last is not None:
                value = self.catalog.product_of(contract)["valuePerPoint"]
                total += (last - pos["netPrice"]) * pos["netPos"] * value
        return total

    def cash_snapshot(self, account_id: int) -> dict[str, Any]:
        """``CashBalanceSnapshot`` ([S1], §4.6); margins are not modelled (0)."""
        cash = self._cash[account_id]
        open_pnl = self.open_pnl(account_id)
        return {
            "totalCashValue": cash["amount"],
            "totalPnL": cash["realizedPnL"] + open_pnl,
            "initialMargin": 0.0,
            "maintenanceMargin": 0.0,
            "netLiq": cash["amount"] + open_pnl,
            "openPnL": open_pnl,
            "realizedPnL": cash["realizedPnL"],
            "weekRealizedPnL": cash["weekRealizedPnL"],
        }

    def net_position(self, account_id: int, contract: dict[str, Any]) -> int:
        return self.matcher.position(self.accounts[account_id]["name"], contract["name"]).net_pos
