"""A live pair wired to the pure paper matching engine, in one thread, for tests.

Orders a pair asks for are executed by :class:`~actors.broker.paper.PaperMatcher` and the events
it produces are fed back to the pair until nothing more happens. ``hold`` lets a test keep events
back and deliver them later, in any order (a slow or reordering broker).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.broker.base import BrokerEvent, OrderRequest, event_to_dict
from actors.broker.paper import PaperMatcher
from actors.recorder.live import LiveOutcome, LivePair


@dataclass
class Harness:
    pair: LivePair
    matcher: PaperMatcher = field(default_factory=PaperMatcher)
    placed: list[OrderRequest] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    outcomes: list[LiveOutcome] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)
    hold: Callable[[dict[str, Any]], bool] | None = None  # True: keep this event back
    resting: set[str] = field(default_factory=set)  # ids accepted but left pending (no fill)

    def run(self, out: LiveOutcome, ts: float) -> LiveOutcome:
        """Execute ``out``'s orders and feed the events back until quiet."""
        todo: deque[LiveOutcome] = deque([out])
        while todo:
            o = todo.popleft()
            self.outcomes.append(o)
            events: list[BrokerEvent] = []
            for cl in o.cancel:
                self.cancels.append(cl)
                state, evs = self.matcher.cancel(cl, ts)
                events += evs if evs else [state]  # an answer even when nothing changed
            for order in o.place:
                self.placed.append(order)
                state, evs, new = self.matcher.submit(order, ts)
                events += evs
                if new and state.status == "pending" and order.cl_ord_id not in self.resting:
                    events += [self.matcher.state(order.cl_ord_id)]
                    events += self.matcher.activate(order.cl_ord_id, ts)
            for ev in events:
                d = event_to_dict(ev)
                if self.hold is not None and self.hold(d):
                    self.held.append(d)
                    continue
                todo.append(self.pair.on_event(d, ts))
        return out

    def release(
        self, ts: float, order: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = list
    ) -> None:
        events, self.held = order(self.held), []
        for d in events:
            self.run(self.pair.on_event(d, ts), ts)

    def signal(self, symbol: str, ts: float, kind: str, signal_id: int, **kw: Any) -> LiveOutcome:
        return self.run(self.pair.on_signal(symbol, ts, kind, signal_id, **kw), ts)

    def tick(self, symbol: str, ts: float, price: float, broker_first: bool = True) -> None:
        if broker_first:
            self._broker_tick(symbol, ts, price)
            self.run(self.pair.on_tick(symbol, ts, price), ts)
        else:
            self.run(self.pair.on_tick(symbol, ts, price), ts)
            self._broker_tick(symbol, ts, price)

    def _broker_tick(self, symbol: str, ts: float, price: float) -> None:
        for ev in self.matcher.on_price(symbol, ts, price):
            d = event_to_dict(ev)
            if self.hold is not None and self.hold(d):
                self.held.append(d)
            else:
                self.run(self.pair.on_event(d, ts), ts)

    def timer(self, now: float) -> None:
        self.run(self.pair.on_timer(now), now)

    def broker_net(self, symbol: str) -> int:
        return self.matcher.position(self.pair.t.account, symbol).net_pos

    def pair_net(self, symbol: str) -> int:
        b = self.pair.books.get(symbol)
        return 0 if b is None else b.net
