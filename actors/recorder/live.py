"""LivePair: one trader (a recorder mirrored on one broker account), pure.

The pair decides; the broker executes; only the broker's fills change the book. Every event
(signal, tick, order state, fill, broker position, timer) goes in, and out come orders to place
or cancel plus the fills and trades to persist. No Ray, no I/O, no clock: time comes with the
events, exactly like the virtual :class:`~.pair.Pair`.

Rules (SPEC §5; the ``docs/recording-semantics.md`` live section states them for users):

* Decisions use the recorder's rules (:func:`~.plan.plan_signal`, :class:`~.exits.ExitRules`)
  with the trader's multiplier, contract cap, close-only flag and TP/SL overrides. A signal is
  planned from the *projected* position (booked + orders under way + decided, unsent ones), so a
  close for a position already closing plans nothing, and a reverse while an exit works opens
  only once.
* Exits the pair decides are market orders on the closing side. The protective stop rests at
  the broker for the booked quantity at the pair's effective stop, and is cancelled, with the
  cancel confirmed, before any other exit is sent (both could otherwise fill and open the
  opposite position). When the pair sees its stop crossed and the broker's stop rests at that
  level, it waits ``stop_grace_s`` for the broker's fill before exiting at market itself.
* Exit machine per contract: IDLE → EXIT_PENDING (waiting for the stop's cancel) → EXIT_WORKING
  (exit orders out) → CONFIRM_FLAT (booked; waiting for the broker's position to agree) → IDLE.
  Entries wait for IDLE. An exit that does not fill within ``exit_timeout_s`` is cancelled and,
  once the cancel is confirmed, re-sent; a refused exit is re-sent after a back-off.
* Client order ids are deterministic: ``<tag>-s<signal>-<leg>`` for signal legs, ``<tag>-x<n>``
  for tick exits and DCA adds, ``<tag>-p<n>`` for stops (``n`` from the pair's persisted
  counter), plus ``.<attempt>`` for re-sends. The host persists the pair before sending, so an
  id is never reused for a different order.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from actors.broker.base import OrderRequest
from actors.instruments import ContractSpec
from actors.recorder.book import LONG, SHORT, Money, order_side
from actors.recorder.catchup import FeedMarks
from actors.recorder.config import RecorderSettings
from actors.recorder.exits import ExitRules
from actors.recorder.live_admin import LiveAdmin
from actors.recorder.live_book import (
    CONFIRM_FLAT,
    EXIT_PENDING,
    EXIT_WORKING,
    IDLE,
    LiveBook,
    LiveOutcome,
    Trader,
    _in_flight,
    book_fill,
    entries_in_flight,
    unplan_entries,
)
from actors.recorder.live_orders import REDUCING_ROLES, LiveOrder, Request, priority_of
from actors.recorder.live_risk import (
    ACTIVE,
    HALTED,
    REDUCING,
    new_day,
    note_trades,
)
from actors.recorder.live_ticks import LiveTicks
from actors.recorder.plan import cap_legs, plan_signal


class LivePair(LiveTicks, LiveAdmin):
    """See module docstring."""

    def __init__(
        self,
        trader: Trader,
        settings: RecorderSettings,
        spec_for: Callable[[str], ContractSpec],
        marks: FeedMarks | None = None,
    ) -> None:
        self.t = trader
        self.marks = marks  # the host's feed marks, as for the virtual Pair
        self.key = trader.key
        self.settings = settings
        self.spec_for = spec_for
        self.books: dict[str, LiveBook] = {}
        self.seq = 0
        self.signals: list[int] = []  # recent signal ids: a replayed signal plans nothing
        self.risk = ACTIVE
        self.risk_events: list[dict[str, Any]] = []
        self.day: str | None = None
        self.day_pnl = Fraction(0)

    def book(self, symbol: str) -> LiveBook:
        b = self.books.get(symbol)
        if b is None:
            money = Money.of(self.spec_for(symbol))
            b = self.books[symbol] = LiveBook(
                symbol, money, ExitRules(self.settings, money, book_trades=False)
            )
        return b

    def busy_symbols(self) -> list[str]:
        """Contracts with a position, an order or a decision under way."""
        return [
            s
            for s, b in self.books.items()
            if b.pos is not None or b.orders or b.want_exit or b.want_entry
        ]

    # -- projections ----------------------------------------------------------------------------

    def projected(self, b: LiveBook) -> int:
        """Booked position + orders under way + decided, unsent orders (stops excluded: they
        protect, they are not a plan)."""
        net = b.net + sum(o.signed_pending for o in b.orders.values() if _in_flight(o))
        for r in b.want_entry:
            net += r.side * r.qty
        for r in b.want_exit:
            net -= r.side * r.qty
        return net

    def _closable(self, b: LiveBook) -> int:
        """Booked contracts no working exit or stop is already closing."""
        if b.pos is None:
            return 0
        closing = sum(
            o.pending for o in b.orders.values() if o.role in REDUCING_ROLES and _in_flight(o)
        )
        return max(0, b.pos.qty - closing)

    # -- events ---------------------------------------------------------------------------------

    def on_signal(
        self,
        symbol: str,
        ts: float,
        kind: str,
        signal_id: int,
        quantity: int | None = None,
        target: int | None = None,
        entry_sides: frozenset[int] = frozenset((LONG, SHORT)),
    ) -> LiveOutcome:
        b = self.book(symbol)
        if signal_id in self.signals:  # re-applied after a restart: its orders exist already
            return LiveOutcome("duplicate")
        self.signals = [*self.signals[-255:], signal_id]
        new_day(self, ts)
        if self.risk == HALTED:
            return LiveOutcome("halted")
        sides = frozenset() if self.t.close_only or self.risk == REDUCING else entry_sides
        plan = plan_signal(
            self.projected(b),
            kind,
            self.settings.sizing,
            quantity,
            target,
            sides,
            scale=self.t.scale,
        )
        out = LiveOutcome(plan.status)
        legs = cap_legs(self.t.max_contracts, self.projected(b), plan.legs)
        if plan.legs and not legs:
            out.status = "capped"
        for i, leg in enumerate(legs):
            origin = f"s{signal_id}-{i}"
            if leg.action == "close":
                qty = unplan_entries(b, leg.side, leg.qty)
                if qty > 0:
                    b.want_exit.append(
                        Request("exit", leg.side, qty, leg.reason, origin, 0, signal_id)
                    )
            else:
                role = "entry" if leg.action == "open" else "add"
                b.want_entry.append(
                    Request(role, leg.side, leg.qty, leg.reason, origin, 0, signal_id)
                )
        self._drive(b, ts, out)
        return out

    def _room(self, b: LiveBook, qty: int) -> int:
        """``qty`` trimmed so the projected position stays within ``max_contracts``."""
        cap = self.t.max_contracts
        return qty if cap is None else min(qty, cap - abs(self.projected(b)))

    def _want_exit(self, b: LiveBook, qty: int, reason: str) -> None:
        assert b.pos is not None
        self.seq += 1
        b.want_exit.append(Request("exit", b.pos.side, qty, reason, f"x{self.seq}"))

    def on_order(
        self,
        cl: str,
        status: str,
        filled_qty: int,
        reason: str | None,
        broker_order_id: str | None,
        ts: float,
    ) -> LiveOutcome:
        """An order state from the broker (an answer to place/cancel, or a sync event)."""
        out = LiveOutcome()
        b, o = self._find(cl)
        if b is None or o is None:
            out.status = "unknown_order"
            return out
        before = (o.status, o.broker_filled, o.broker_order_id, o.broker_reason)
        if o.terminal:  # terminal states never change (a late non-terminal echo is older news)
            o.broker_filled = max(o.broker_filled, filled_qty)
        else:
            o.status = status
            o.broker_filled = max(o.broker_filled, filled_qty)
            o.broker_order_id = broker_order_id or o.broker_order_id
            o.broker_reason = reason or o.broker_reason
            if status == "working" and o.role == "stop":
                b.backoff.ok()
            if status == "rejected":
                self._rejected(b, o, ts, out)
            elif status == "cancelled":
                self._cancelled(b, o, ts)
            if o.role == "stop" and o.terminal and not o.cancel_sent:
                b.stop_hold_since = ts  # a kill switch or a hand at the broker: see _maintain_stop
        if (o.status, o.broker_filled, o.broker_order_id, o.broker_reason) != before:
            out.orders[o.cl] = o  # the same news twice (answer and stream) is written once
            out.symbols.add(b.symbol)
        self._drive(b, ts, out)
        return out

    def _rejected(self, b: LiveBook, o: LiveOrder, ts: float, out: LiveOutcome) -> None:
        out.rejections.append((o.cl, o.broker_reason or "rejected"))
        if o.role in ("exit", "stop"):
            b.backoff.fail(ts, o.broker_reason or "rejected")
        if o.role == "exit":  # we still want out: retry after the back-off
            rest = o.qty - o.broker_filled
            if rest > 0:
                b.want_exit.append(self._retry(o, rest))
        # a refused entry/add/dca changes nothing: it is stored and dropped

    def _cancelled(self, b: LiveBook, o: LiveOrder, ts: float) -> None:
        if o.role == "exit":  # our timeout cancelled it (or a user did): send the rest again
            rest = o.qty - o.broker_filled
            if rest > 0:
                b.want_exit.append(self._retry(o, rest))

    @staticmethod
    def _retry(o: LiveOrder, qty: int) -> Request:
        origin, _, attempt = o.cl.partition("-")[2].partition(".")
        side = LONG if o.side == "sell" else SHORT  # an exit sells a long
        return Request("exit", side, qty, o.reason, origin, int(attempt or 0) + 1, o.signal_id)

    def on_fill(
        self,
        cl: str | None,
        side: str,
        qty: int,
        price: float,
        ts: float,
        fill_id: str = "",
        reason: str | None = None,
        symbol: str | None = None,
    ) -> LiveOutcome:
        """A broker fill. ``cl`` None: a fill of an order this pair did not send (a kill switch
        flatten routed here by the host); ``reason`` names it."""
        out = LiveOutcome()
        b, o = self._find(cl)
        if b is None:  # not ours (a kill switch flatten) or forgotten: book it on the contract
            b = self.books.get(symbol or "")
        if b is None:
            out.status = "unknown_order"
            return out
        key = fill_id or f"{cl}:{ts}:{qty}:{price}"
        if key in b.seen_fills:  # replayed after a websocket reconnect
            out.status = "duplicate"
            return out
        b.seen_fills = [*b.seen_fills[-63:], key]
        if o is not None:
            o.filled += qty
            out.orders[o.cl] = o
            if o.role == "exit":
                b.backoff.ok()
        if o is not None and o.role == "correct":  # the book already holds what it should
            self._drive(b, ts, out)
            return out
        kind = o.role if o is not None else "exit"
        why = o.reason if o is not None else (reason or "external")
        if o is not None and o.role == "stop" and b.pos is not None and b.exits is not None:
            # a resting stop not moved yet (moves are throttled) fills under the rule now in
            # force: label the trade by it (break_even, trailing_stop), as the virtual pair does
            why = b.exits.effective_stop(b.pos.side)[1] or why
        before = b.pos
        book_fill(b, side, qty, price, ts, kind, why, out)
        if b.pos is not None and b.pos is not before and o is not None and o.sent_ts:
            b.fresh = (b.pos, o.sent_ts)  # a new position: see LiveTicks.on_batch
        if out.trades:
            note_trades(self, out.trades, ts)
        out.symbols.add(b.symbol)
        self._drive(b, ts, out)
        return out

    def on_position(
        self, symbol: str, net: int, ts: float, price: float | None = None
    ) -> LiveOutcome:
        """The broker's netted position of this account in ``symbol`` (sync stream)."""
        out = LiveOutcome()
        b = self.books.get(symbol)
        if b is not None:
            b.broker_net, b.broker_price = net, price
            b.stop_hold_since = None
            self._drive(b, ts, out)
        return out

    def on_timer(self, now: float) -> LiveOutcome:
        """Timeouts, retries after a back-off, throttled stop moves."""
        out = LiveOutcome()
        for b in list(self.books.values()):
            if b.orders or b.want_exit or b.want_entry or b.pos is not None or b.phase != IDLE:
                self._drive(b, now, out)
        return out

    # -- the machine ----------------------------------------------------------------------------

    def _drive(self, b: LiveBook, now: float, out: LiveOutcome) -> None:
        """Send what the state calls for, one phase at a time (see module docstring)."""
        for cl in [cl for cl, o in b.orders.items() if o.done]:
            out.orders[cl] = b.orders.pop(cl)
        for o in b.orders.values():  # a cancel lost on the way (a broker actor restarting)
            if o.cancel_sent and not o.terminal and now - o.cancel_ts >= self.t.cancel_retry_s:
                self._cancel(o, now, out)
        if self.risk == HALTED:
            return  # nothing new goes out until a user resolves it
        if b.stop_wait_since is not None and now - b.stop_wait_since >= self.t.stop_grace_s:
            b.stop_wait_since = None  # the broker's stop did not fill: exit ourselves
            if b.pos is not None and self._closable(b) > 0:
                _, reason = b.exits.effective_stop(b.pos.side) if b.exits else (None, None)
                self._want_exit(b, b.pos.qty, reason or "stop_loss")
        if b.want_exit:
            if not b.backoff.ready(now) or entries_in_flight(b):
                b.phase = EXIT_PENDING
                return
            stop = b.active_stop()
            if stop is not None:
                if not stop.cancel_sent:
                    self._cancel(stop, now, out)
                self._phase(b, EXIT_PENDING, now)
                return
            closable = self._closable(b)
            for r in b.want_exit:
                q = min(r.qty, closable)
                if q > 0:
                    self._send(b, r, q, now, out)
                    closable -= q
            b.want_exit.clear()
        working = [o for o in b.orders.values() if o.role == "exit"]
        if working:
            self._phase(b, EXIT_WORKING, now)
            for o in working:
                if (
                    not o.terminal
                    and not o.cancel_sent
                    and now - o.placed_ts >= self.t.exit_timeout_s
                ):
                    self._cancel(o, now, out)
            return
        if b.phase == EXIT_WORKING:
            self._phase(b, CONFIRM_FLAT, now)
        if b.phase == CONFIRM_FLAT:
            agreed = b.broker_net is not None and b.broker_net == b.net
            if not agreed and now - b.phase_ts < self.t.confirm_timeout_s:
                return
        self._phase(b, IDLE, now)
        for r in b.want_entry:
            self._send(b, r, r.qty, now, out)
        b.want_entry.clear()
        self._maintain_stop(b, now, out)

    @staticmethod
    def _cancel(o: LiveOrder, now: float, out: LiveOutcome) -> None:
        o.cancel_sent, o.cancel_ts = True, now
        out.cancel.append(o.cl)
        out.orders[o.cl] = o
        out.symbols.add(o.symbol)  # the pair's snapshot keeps cancel_sent across a restart

    @staticmethod
    def _phase(b: LiveBook, phase: str, now: float) -> None:
        if b.phase != phase:
            b.phase, b.phase_ts = phase, now

    def _maintain_stop(self, b: LiveBook, now: float, out: LiveOutcome) -> None:
        """Keep one stop at the broker at the pair's effective stop for the booked quantity."""
        if any(o.role != "stop" for o in b.orders.values()):
            return  # orders under way: the booked quantity is about to change
        stop = b.active_stop()
        pending_stop = b.orders.get(b.stop_cl) if b.stop_cl else None
        level: int | None = None
        if b.pos is not None and b.exits is not None:
            level, _ = b.exits.effective_stop(b.pos.side)
        if stop is not None:
            stale = level is None or stop.qty != (b.pos.qty if b.pos else 0)
            moved = level is not None and stop.stop != level
            if not stop.cancel_sent and (
                stale or (moved and now - b.stop_moved_ts >= self.t.stop_move_s)
            ):
                self._cancel(stop, now, out)
            return
        if pending_stop is not None and not pending_stop.done:
            return  # the old stop ended but its fills are not booked yet
        if level is None or b.pos is None or not b.backoff.ready(now):
            return
        if b.broker_net is not None and b.broker_net != b.net:
            return  # protect what the broker confirms, never a guess
        if b.stop_hold_since is not None and now - b.stop_hold_since < self.t.confirm_timeout_s:
            # Our stop ended without our asking (a kill switch liquidating, a hand at the
            # broker): a new stop for the booked quantity could open the opposite position once
            # the liquidation fills, so wait for the broker's position (or the timeout).
            return
        if b.last_tick is not None and b.pos.side * (b.last_tick - level) <= 0:
            return  # already through the market: the pair's own stop logic exits
        _, reason = b.exits.effective_stop(b.pos.side) if b.exits else (None, None)
        self.seq += 1
        r = Request("stop", b.pos.side, b.pos.qty, reason or "stop_loss", f"p{self.seq}")
        b.stop_cl = self._send(b, r, b.pos.qty, now, out, stop=level)
        b.stop_moved_ts = now

    def _send(
        self,
        b: LiveBook,
        r: Request,
        qty: int,
        now: float,
        out: LiveOutcome,
        stop: int | None = None,
    ) -> str:
        cl = f"{self.t.tag}-{r.origin}" + (f".{r.attempt}" if r.attempt else "")
        closing = r.role in REDUCING_ROLES
        side = order_side(r.side, closing=closing)
        o = LiveOrder(
            cl, r.role, side, qty, r.reason, now, stop=stop, signal_id=r.signal_id, symbol=b.symbol
        )
        b.orders[cl] = out.orders[cl] = o
        out.place.append(
            OrderRequest(
                cl_ord_id=cl,
                account=self.t.account,
                symbol=b.symbol,
                side=side,  # type: ignore[arg-type]
                qty=qty,
                order_type="stop" if stop is not None else "market",
                stop_price=None if stop is None else b.money.price_float(stop),
                priority=priority_of(r.role),
                pair_key=self.key,
                created_ts=now,
            )
        )
        out.symbols.add(b.symbol)
        return cl
