"""The built-in paper broker: fills from the live price feed, in memory, no network, no Ray.

Two layers:

* :class:`PaperMatcher` is the exchange, pure and synchronous: every method takes the time as an
  argument and returns the events it produced, so it can be driven by property tests and
  replays without an event loop.
* :class:`PaperBroker` is the async :class:`~actors.broker.base.Broker` facade around it: it
  supplies the clock, waits ``latency_ms`` between accepting and executing an order, and hands
  every event to the registered listener, in order.

Matching rules
--------------
* Market orders fill in full at the latest price of their symbol, moved ``slippage_ticks`` ticks
  against the trader (buys higher, sells lower) after rounding the feed price to the contract's
  tick. With latency, the price is the latest one *after* the wait, as it would be at a real
  exchange. No price yet for the symbol: ``rejected`` with reason ``no_price``.
* Stop orders rest (``working``) and trigger on the first price that arrives after they were
  accepted and is at or beyond the stop (buy stop: price >= stop, sell stop: price <= stop). They
  fill at *that* price ± slippage, not at the stop price: a gap through the stop is not forgiven.
  A stop already through the market when accepted triggers on the next tick (CME would reject
  such a stop; the paper broker is lenient so that a late protective stop still protects).
  Stops triggered by the same tick fill in the order they were accepted.
* Positions net per (account, symbol). Adding to a position moves ``net_price`` to the weighted
  average; reducing keeps it and realises P&L on the closed contracts; crossing through zero
  opens the remainder at the fill price.
* A ``cl_ord_id`` seen before (in any state, rejected included) returns the existing state and
  never fills again.
* Symbols are matched as exact strings: the feed and the orders must use the same contract code
  (the feed actor sends concrete contracts such as ``MNQZ5``). Tick size comes from
  :func:`actors.instruments.spec_for`; an unknown symbol is rejected with ``unknown_symbol``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

from actors.broker.base import (
    BrokerEvent,
    BrokerFill,
    BrokerPosition,
    EventListener,
    OrderRequest,
    OrderState,
    UnknownOrder,
    signed_qty,
)
from actors.instruments import UnknownSymbol, price_to_ticks, spec_for, ticks_to_price

__all__ = ["PaperBroker", "PaperMatcher"]

log = logging.getLogger("justtrades.broker.paper")


@dataclass(slots=True)
class _Position:
    net_pos: int = 0
    net_price: float | None = None
    realized_pnl: float = 0.0  # USD, from closed contracts


@dataclass(slots=True)
class _Order:
    request: OrderRequest
    state: OrderState


class PaperMatcher:
    """Pure in-memory exchange and account book (see module docstring for the rules).

    ``accounts``: the accounts of this login. None accepts any account (created on first use);
    otherwise an order for another account is rejected with ``unknown_account``.
    """

    def __init__(self, accounts: Iterable[str] | None = None, slippage_ticks: int = 0) -> None:
        if not isinstance(slippage_ticks, int) or slippage_ticks < 0:
            raise ValueError(f"slippage_ticks must be a non-negative integer, got {slippage_ticks}")
        self.slippage_ticks = slippage_ticks
        self._accounts: set[str] | None = None if accounts is None else set(accounts)
        self._orders: dict[str, _Order] = {}
        self._stops: dict[str, list[str]] = {}  # symbol -> working stop ids, acceptance order
        self._last: dict[str, float] = {}
        self._positions: dict[tuple[str, str], _Position] = {}
        self._fills: list[BrokerFill] = []
        self._reject_queue: deque[str] = deque()
        self._next_order_id = 1

    # ------------------------------------------------------------------ queries

    @property
    def accounts(self) -> list[str]:
        """Configured accounts, plus every account that has a position or an order."""
        known = set(self._accounts or ())
        known.update(account for account, _ in self._positions)
        known.update(o.request.account for o in self._orders.values())
        return sorted(known)

    def add_account(self, account: str) -> None:
        if self._accounts is not None:
            self._accounts.add(account)

    def last_price(self, symbol: str) -> float | None:
        return self._last.get(symbol)

    def state(self, cl_ord_id: str) -> OrderState:
        order = self._orders.get(cl_ord_id)
        if order is None:
            raise UnknownOrder(cl_ord_id)
        return order.state

    def request(self, cl_ord_id: str) -> OrderRequest:
        order = self._orders.get(cl_ord_id)
        if order is None:
            raise UnknownOrder(cl_ord_id)
        return order.request

    def orders(self, account: str | None = None) -> list[OrderState]:
        """States in submission order, for one account or all."""
        return [
            o.state
            for o in self._orders.values()
            if account is None or o.request.account == account
        ]

    def fills(self, account: str | None = None) -> list[BrokerFill]:
        return [f for f in self._fills if account is None or f.account == account]

    def position(self, account: str, symbol: str) -> BrokerPosition:
        pos = self._positions.get((account, symbol), _Position())
        return BrokerPosition(account, symbol, pos.net_pos, pos.net_price)

    def positions(self, account: str | None = None) -> list[BrokerPosition]:
        """Open (non-flat) positions, sorted by (account, symbol)."""
        return [
            BrokerPosition(acc, sym, pos.net_pos, pos.net_price)
            for (acc, sym), pos in sorted(self._positions.items())
            if pos.net_pos != 0 and (account is None or acc == account)
        ]

    def realized_pnl(self, account: str, symbol: str) -> float:
        """USD realised on closed contracts of (account, symbol) since start."""
        return self._positions.get((account, symbol), _Position()).realized_pnl

    def fill_price(self, symbol: str, side: str, price: float) -> float:
        """``price`` rounded to the tick, then ``slippage_ticks`` against a ``side`` order."""
        spec = spec_for(symbol)
        ticks = price_to_ticks(price, spec.tick_size)
        ticks += self.slippage_ticks if side == "buy" else -self.slippage_ticks
        return ticks_to_price(ticks, spec)

    # ------------------------------------------------------------------ commands

    def reject_next(self, reason: str = "rejected_by_test", count: int = 1) -> None:
        """Reject the next ``count`` new orders with ``reason`` (a test hook)."""
        self._reject_queue.extend([reason] * count)

    def submit(self, order: OrderRequest, ts: float) -> tuple[OrderState, list[BrokerEvent], bool]:
        """Accept (``pending``) or reject a new order. Returns (state, events, is_new).

        A known ``cl_ord_id`` returns its current state, no events, ``is_new=False``: this is
        the idempotency guarantee, so it holds whatever the rest of the request says.
        """
        known = self._orders.get(order.cl_ord_id)
        if known is not None:
            return known.state, [], False
        state = OrderState(
            order.cl_ord_id,
            "pending",
            f"P{self._next_order_id}",
            ts=ts,
            account=order.account,
            symbol=order.symbol,
        )
        self._next_order_id += 1
        reason = self._rejection(order)
        if reason is not None:
            state = replace(state, status="rejected", reason=reason)
            self._orders[order.cl_ord_id] = _Order(order, state)
            return state, [state], True
        self._orders[order.cl_ord_id] = _Order(order, state)
        return state, [], True

    def activate(self, cl_ord_id: str, ts: float) -> list[BrokerEvent]:
        """Execute a pending order once its latency has passed: fill/reject a market order, rest
        a stop. A no-op for an order that is no longer pending (cancelled meanwhile)."""
        order = self._orders.get(cl_ord_id)
        if order is None:
            raise UnknownOrder(cl_ord_id)
        if order.state.status != "pending":
            return []
        request = order.request
        if request.order_type == "stop":
            order.state = replace(order.state, status="working", ts=ts)
            self._stops.setdefault(request.symbol, []).append(cl_ord_id)
            return [order.state]
        last = self._last.get(request.symbol)
        if last is None:
            order.state = replace(order.state, status="rejected", reason="no_price", ts=ts)
            return [order.state]
        return self._fill(order, last, ts)

    def cancel(self, cl_ord_id: str, ts: float) -> tuple[OrderState, list[BrokerEvent]]:
        """Cancel a pending or working order; a terminal order is returned unchanged."""
        order = self._orders.get(cl_ord_id)
        if order is None:
            raise UnknownOrder(cl_ord_id)
        if order.state.is_terminal:
            return order.state, []
        if order.state.status == "working":
            self._stops[order.request.symbol].remove(cl_ord_id)
        order.state = replace(order.state, status="cancelled", reason="cancelled", ts=ts)
        return order.state, [order.state]

    def on_price(self, symbol: str, ts: float, price: float) -> list[BrokerEvent]:
        """Record the latest price of ``symbol`` and trigger the stops it reaches."""
        if not math.isfinite(price):
            raise ValueError(f"price must be finite, got {price!r}")
        self._last[symbol] = price
        waiting = self._stops.get(symbol)
        if not waiting:
            return []
        events: list[BrokerEvent] = []
        for cl_ord_id in list(waiting):
            order = self._orders[cl_ord_id]
            stop = order.request.stop_price
            assert stop is not None
            hit = price >= stop if order.request.side == "buy" else price <= stop
            if hit:
                waiting.remove(cl_ord_id)
                events.extend(self._fill(order, price, ts))
        return events

    # ------------------------------------------------------------------ internals

    def _rejection(self, order: OrderRequest) -> str | None:
        if self._reject_queue:
            return self._reject_queue.popleft()
        if self._accounts is not None and order.account not in self._accounts:
            return "unknown_account"
        try:
            spec_for(order.symbol)
        except UnknownSymbol:
            return "unknown_symbol"
        return None

    def _fill(self, order: _Order, raw_price: float, ts: float) -> list[BrokerEvent]:
        request = order.request
        price = self.fill_price(request.symbol, request.side, raw_price)
        fill = BrokerFill(
            cl_ord_id=request.cl_ord_id,
            broker_order_id=order.state.broker_order_id,
            account=request.account,
            symbol=request.symbol,
            side=request.side,
            qty=request.qty,
            price=price,
            ts=ts,
            fill_id=f"F{len(self._fills) + 1}",
        )
        self._fills.append(fill)
        order.state = replace(
            order.state, status="filled", filled_qty=request.qty, avg_fill_price=price, ts=ts
        )
        position = self._apply(request.account, request.symbol, request.side, request.qty, price)
        return [fill, order.state, position]

    def _apply(
        self, account: str, symbol: str, side: str, qty: int, price: float
    ) -> BrokerPosition:
        pos = self._positions.setdefault((account, symbol), _Position())
        delta = signed_qty(side, qty)
        old = pos.net_pos
        new = old + delta
        if old == 0 or (old > 0) == (delta > 0):
            # Opening or adding: weighted average of what is held and what was bought/sold.
            held_price = pos.net_price if pos.net_price is not None else price
            pos.net_price = (abs(old) * held_price + qty * price) / abs(new)
        else:
            assert pos.net_price is not None
            closed = min(qty, abs(old))
            direction = 1 if old > 0 else -1
            pos.realized_pnl += (
                (price - pos.net_price) * closed * direction * spec_for(symbol).point_value
            )
            if new == 0:
                pos.net_price = None
            elif (new > 0) != (old > 0):
                pos.net_price = price  # crossed zero: the remainder is a new position
            # else: a partial close keeps the average of the contracts still held
        pos.net_pos = new
        return BrokerPosition(account, symbol, pos.net_pos, pos.net_price)


class PaperBroker:
    """Async :class:`~actors.broker.base.Broker` over a :class:`PaperMatcher`.

    ``latency_ms`` is the time between accepting an order (``pending``) and executing it; during
    it the order can be cancelled, and a duplicate ``place`` returns the pending state. ``clock``
    stamps events (wall time by default); ``sleep`` is injectable for tests.
    """

    kind = "paper"

    def __init__(
        self,
        accounts: Iterable[str] | None = None,
        slippage_ticks: int = 0,
        latency_ms: float = 0.0,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not math.isfinite(latency_ms) or latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        self.matcher = PaperMatcher(accounts, slippage_ticks)
        self.latency_ms = latency_ms
        self._clock = clock
        self._sleep = sleep
        self._listener: EventListener | None = None

    def set_listener(self, listener: EventListener | None) -> None:
        self._listener = listener

    def _emit(self, events: list[BrokerEvent]) -> None:
        listener = self._listener
        if listener is None:
            return
        for event in events:
            try:
                listener(event)
            except Exception:  # a faulty listener must not stop the matching of later events
                log.exception("broker event listener failed on %r", event)

    async def place(self, order: OrderRequest) -> OrderState:
        state, events, is_new = self.matcher.submit(order, self._clock())
        self._emit(events)
        if not is_new or state.status != "pending":
            return state
        if self.latency_ms > 0:
            await self._sleep(self.latency_ms / 1000.0)
        self._emit(self.matcher.activate(order.cl_ord_id, self._clock()))
        return self.matcher.state(order.cl_ord_id)

    async def cancel(self, cl_ord_id: str) -> OrderState:
        state, events = self.matcher.cancel(cl_ord_id, self._clock())
        self._emit(events)
        return state

    async def positions(self, account: str) -> list[BrokerPosition]:
        return self.matcher.positions(account)

    async def orders(self, account: str) -> list[OrderState]:
        return self.matcher.orders(account)

    def on_price(self, symbol: str, ts: float, price: float) -> None:
        """Feed one tick; stops it triggers are filled and reported before this returns."""
        self._emit(self.matcher.on_price(symbol, ts, price))

    def reject_next(self, reason: str = "rejected_by_test", count: int = 1) -> None:
        self.matcher.reject_next(reason, count)

    @property
    def accounts(self) -> list[str]:
        return self.matcher.accounts
