"""LivePair, part two: reconciliation, risk, recovery, views and persistence.

A mixin of :class:`~actors.recorder.live.LivePair` (split for size: this part only reads the
pair's state or applies decisions taken elsewhere); ``self`` is always a LivePair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.broker.base import OrderRequest
from actors.recorder.live_book import (
    LiveBook,
    LiveOutcome,
    book_restore,
    book_snapshot,
    book_view,
)
from actors.recorder.live_orders import LiveOrder, priority_of
from actors.recorder.live_risk import (
    ACTIVE,
    HALTED,
    adopt,
    correction,
    risk_restore,
    risk_snapshot,
    set_risk,
)

if TYPE_CHECKING:
    pass


class LiveAdmin:
    def on_event(self, ev: dict[str, Any], now: float) -> LiveOutcome:
        """A broker event in :func:`~actors.broker.base.event_to_dict` form."""
        kind = ev.get("type")
        if kind == "order":
            return self.on_order(
                ev["cl_ord_id"],
                ev["status"],
                int(ev.get("filled_qty") or 0),
                ev.get("reason"),
                ev.get("broker_order_id"),
                now,
            )
        if kind == "fill":
            return self.on_fill(
                ev.get("cl_ord_id"),
                ev["side"],
                int(ev["qty"]),
                float(ev["price"]),
                float(ev.get("ts") or now),
                str(ev.get("fill_id") or ""),
                ev.get("reason"),
                ev.get("symbol"),
            )
        if kind == "position":
            return self.on_position(ev["symbol"], int(ev["net_pos"]), now, ev.get("net_price"))
        return LiveOutcome("ignored")

    def settled(self, b: LiveBook) -> bool:
        """Nothing under way in ``b``: its book is what the broker should hold."""
        return self._quiet(b)

    def halt(self, reason: str, now: float) -> bool:
        return set_risk(self, HALTED, reason, now)

    def reconcile(self, b: LiveBook, action: str, now: float) -> LiveOutcome:
        """Apply a reconciler decision (``adopt`` or ``correct``) to contract ``b``."""
        out = LiveOutcome(action)
        if action == "adopt" and b.broker_net is not None:
            adopt(self, b, b.broker_net - b.external, b.broker_price, now)
            self.risk_events = [
                *self.risk_events[-19:],
                {"ts": now, "from": self.risk, "to": self.risk, "reason": f"adopted {b.net}"},
            ]
        elif action == "correct":
            r = correction(self, b)
            if r is not None:
                self._send(b, r, r.qty, now, out)
        out.symbols.add(b.symbol)
        self._drive(b, now, out)
        return out

    def resolve(self, symbol: str, action: str, now: float) -> LiveOutcome:
        """A user's decision on a HALTED pair (see :meth:`LiveDesk.resolve`)."""
        b = self.books.get(symbol)
        if b is None or action not in ("adopt", "external", "resume"):
            raise ValueError(f"cannot {action!r} {symbol!r}")
        if action == "adopt" and b.broker_net is not None:
            adopt(self, b, b.broker_net - b.external, b.broker_price, now)
        elif action == "external" and b.broker_net is not None:
            b.external = b.broker_net - b.net
        set_risk(self, ACTIVE, f"resolved by user: {action}", now)
        out = LiveOutcome(action, symbols={symbol})
        self._drive(b, now, out)
        return out

    def request_for(self, cl: str) -> OrderRequest | None:
        """The request an order of this pair was sent with, rebuilt from its record (to send it
        again under the same id: the broker answers a known id with its state, so this is how a
        recovered pair makes sure an order it may or may not have sent exists exactly once)."""
        b, o = self._find(cl)
        if b is None or o is None:
            return None
        return OrderRequest(
            cl_ord_id=o.cl,
            account=self.t.account,
            symbol=b.symbol,
            side=o.side,  # type: ignore[arg-type]
            qty=o.qty,
            order_type="stop" if o.stop is not None else "market",
            stop_price=None if o.stop is None else b.money.price_float(o.stop),
            priority=priority_of(o.role),
            pair_key=self.key,
            created_ts=o.placed_ts,
        )

    def cancel_again(self, cl: str, now: float) -> LiveOutcome:
        """Send the cancel of ``cl`` again now (a lookup found that the broker actor has not
        seen the order: only the cancel's own answer may settle it, see
        :meth:`~actors.recorder.desk.LiveDesk._await_lookup`)."""
        out = LiveOutcome()
        b, o = self._find(cl)
        if b is not None and o is not None and o.cancel_sent and not o.terminal:
            self._cancel(o, now, out)
        return out

    def order(self, cl: str) -> LiveOrder | None:
        return self._find(cl)[1]

    def unsettled(self, now: float, older_than_s: float) -> list[LiveOrder]:
        """Orders not settled yet that were sent at least ``older_than_s`` ago."""
        return [
            o
            for b in self.books.values()
            for o in b.orders.values()
            if not o.done and now - o.placed_ts >= older_than_s
        ]

    def _find(self, cl: str | None) -> tuple[LiveBook | None, LiveOrder | None]:
        if cl is None:
            return None, None
        for b in self.books.values():
            o = b.orders.get(cl)
            if o is not None:
                return b, o
        return None, None

    def view(self, symbol: str) -> dict[str, Any] | None:
        b = self.books.get(symbol)
        view = None if b is None else book_view(b)
        if view is not None:
            view["risk"] = self.risk
        return view

    def snapshot(self, symbol: str) -> dict[str, Any]:
        snap = {
            "seq": self.seq,
            "signals": self.signals,
            **risk_snapshot(self),
            **book_snapshot(self.book(symbol)),
        }
        if self.marks is not None:
            snap["feed"] = self.marks.of(symbol)
        return snap

    def restore(self, symbol: str, snap: dict[str, Any]) -> None:
        self.seq = max(self.seq, int(snap.get("seq", 0)))
        self.signals = sorted(set(self.signals) | set(snap.get("signals", [])))[-256:]
        risk_restore(self, snap)
        book_restore(self.book(symbol), snap)
