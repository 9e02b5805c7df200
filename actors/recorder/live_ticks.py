"""LivePair, part three: the tick path (exact excursions, exits and DCA on ticks, batches).

A mixin of :class:`~actors.recorder.live.LivePair` (split for size); ``self`` is always a
LivePair.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_left

from actors.recorder.columns import trigger_bounds
from actors.recorder.exits import STOP_PRECEDENCE
from actors.recorder.levels import to_ticks
from actors.recorder.live_book import (
    EXIT_WORKING,
    IDLE,
    LiveBook,
    LiveOutcome,
    entries_in_flight,
)
from actors.recorder.live_orders import REDUCING_ROLES, Request
from actors.recorder.live_risk import ACTIVE, HALTED


class LiveTicks:
    def on_tick(self, symbol: str, ts: float, price: float) -> LiveOutcome:
        b = self.book(symbol)
        return self.on_tick_ticks(b, ts, to_ticks(price, b.money.tick_size))

    def on_batch(
        self,
        b: LiveBook,
        tss: list[float],
        ticks: list[int],
        lo: int,
        hi: int,
        recv: list[float] | None = None,
    ) -> list[LiveOutcome]:
        """A tick batch (``lo``/``hi``: its lowest and highest price), exactly as tick by tick,
        but in one step when nothing can happen (:meth:`can_skip`). Returns the outcomes that
        did something.

        ``recv``: when the feed received each tick. A position opened by a fill does not see
        the ticks the feed received before its entry order was sent: those printed before the
        order reached the broker, so before the fill, and only move the last price. (The
        batches after a fill can hold such ticks: the feed coalesces a few milliseconds and a
        busy host lets batches grow. Counted, they gave the new position excursions it never
        had and took targets at market on prices from before the entry, 14% of the exits in
        bench.live_latency.) Ticks received after the send may still have printed before the
        fill and count, as they always did. Without ``recv`` (a replay) every tick counts."""
        if b.fresh is not None:
            tss, ticks, lo, hi = self._after_entry(b, tss, ticks, lo, hi, recv)
            if not ticks:
                return []
        if self.can_skip(b, lo, hi):
            self._skip(b, lo, hi, ticks[-1])
            return []
        if b.pos is None and self._awaiting_entries(b):
            b.last_tick = ticks[-1]
            return []
        outs = []
        inert = -math.inf
        for ts, p in zip(tss, ticks, strict=True):
            if ts < inert:
                self._inert_tick(b, p)
                continue
            out = self.on_tick_ticks(b, ts, p)
            if out.place or out.cancel or out.orders or out.fills or out.symbols:
                outs.append(out)
            inert = self._inert_until(b)
        return outs

    @staticmethod
    def _after_entry(
        b: LiveBook,
        tss: list[float],
        ticks: list[int],
        lo: int,
        hi: int,
        recv: list[float] | None,
    ) -> tuple[list[float], list[int], int, int]:
        """The part of a batch a fresh position (``b.fresh``) sees; ends its freshness at the
        first tick received after its entry order was sent."""
        assert b.fresh is not None
        pos, sent = b.fresh
        if pos is not b.pos or recv is None:
            b.fresh = None
            return tss, ticks, lo, hi
        k = bisect_left(recv, sent)
        if k == len(ticks):
            b.last_tick = ticks[-1]
            return [], [], lo, hi
        b.fresh = None
        if k == 0:
            return tss, ticks, lo, hi
        b.last_tick = ticks[k - 1]
        tss, ticks = tss[k:], ticks[k:]
        return tss, ticks, min(ticks), max(ticks)

    # Ticks this close to a timeout take the full path (which compares exactly as _drive does).
    _DEADLINE_MARGIN_S = 1e-3

    def _inert_until(self, b: LiveBook) -> float:
        """Until when ticks can only move ``b``'s excursions and last price (``-inf``: not now).

        That is while an exit works at the broker for everything booked and nothing else is
        under way: the rules need contracts no exit is closing yet, and :meth:`_drive` acts
        on events (which come between batches) or on its timeouts, the earliest of which
        bounds the time. Walking those ticks in full was most of a batch's cost after 20 pairs
        exited in it, and their orders waited for it; ``test_batches_equal_tick_by_tick`` and
        ``test_an_exit_timeout_inside_a_batch_fires_at_its_tick`` hold it to tick by tick."""
        if b.phase != EXIT_WORKING or b.pos is None or b.exits is None:
            return -math.inf
        if b.want_exit or b.want_entry or self._closable(b) > 0:
            return -math.inf
        until, working, t = math.inf, False, self.t
        for o in b.orders.values():
            if o.done:
                return -math.inf
            if o.cancel_sent and not o.terminal:
                until = min(until, o.cancel_ts + t.cancel_retry_s)
            if o.role == "exit":
                working = True
                if not o.terminal and not o.cancel_sent:
                    until = min(until, o.placed_ts + t.exit_timeout_s)
        if not working:
            return -math.inf
        if b.stop_wait_since is not None:
            until = min(until, b.stop_wait_since + t.stop_grace_s)
        return until - self._DEADLINE_MARGIN_S

    @staticmethod
    def _awaiting_entries(b: LiveBook) -> bool:
        """No position, and nothing under way but entries the broker has not settled: a tick
        can only move the last price. (:meth:`_drive` has no deadline for an entry, and stops
        and exits need a position.) The batches between a signal's entries and their fills
        walked every tick of every pair through ``_drive``: 20 pairs x 40 ticks, ~5 ms, while
        the fills, and the exits behind them, waited (bench.live_latency)."""
        return (
            b.phase == IDLE
            and not b.want_exit
            and not b.want_entry
            and b.stop_wait_since is None
            and all(
                o.role not in REDUCING_ROLES and not o.done and not o.cancel_sent
                for o in b.orders.values()
            )
        )

    @staticmethod
    def _inert_tick(b: LiveBook, p: int) -> None:
        """What :meth:`on_tick_ticks` does with a tick while :meth:`_inert_until` holds."""
        pos, seen = b.pos, b.seen
        assert pos is not None
        b.last_tick = p
        if seen is None or p < seen[0] or p > seen[1]:
            pos.observe(p, b.money)
            b.seen = (p, p) if seen is None else (min(seen[0], p), max(seen[1], p))
        else:
            pos.last_price = p
        b.bounds = None

    def can_skip(self, b: LiveBook, lo: int, hi: int) -> bool:
        """Whether a whole batch with prices in ``[lo, hi]`` can only move the excursions and
        the last price: nothing under way and no price at a trigger. The common batch for an
        open position; :meth:`_skip` then applies it in one step."""
        if b.pos is None or b.exits is None or b.seen is None or b.bounds is None:
            return False
        return b.bounds[0] < lo and hi < b.bounds[1] and self._quiet(b)

    @staticmethod
    def _skip(b: LiveBook, lo: int, hi: int, last: int) -> None:
        """A batch :meth:`can_skip` allows, exactly as tick by tick: between fills the quantity
        and average are fixed, so the excursions move with the price alone and the batch's
        lowest and highest prices are the only ones that can set a new extreme (in either
        order). The trigger bounds stay valid: tick by tick keeps them too while inside them
        (they already stop at any price where an excursion would move a level, e.g. a
        trailing stop's next best price)."""
        pos, seen = b.pos, b.seen
        assert pos is not None and seen is not None
        if lo < seen[0]:
            pos.observe(lo, b.money)
        if hi > seen[1]:
            pos.observe(hi, b.money)
        b.seen = (min(seen[0], lo), max(seen[1], hi))
        b.last_tick = pos.last_price = last

    def on_tick_ticks(self, b: LiveBook, ts: float, p: int) -> LiveOutcome:
        out = LiveOutcome()
        b.last_tick = p
        pos, st = b.pos, b.exits
        if pos is None or st is None:
            if b.orders or b.want_exit or b.want_entry:
                self._drive(b, ts, out)
            return out
        seen = b.seen
        if seen is None or p < seen[0] or p > seen[1]:
            # Exact excursions of what the broker says we hold. Between fills the quantity and
            # average are fixed, so only a price beyond those seen since can make a new extreme.
            pos.observe(p, b.money)
            b.seen = (p, p) if seen is None else (min(seen[0], p), max(seen[1], p))
        else:
            pos.last_price = p
        if self._quiet(b):
            if b.bounds is None:
                b.bounds = trigger_bounds(pos, st)
            if b.bounds[0] < p < b.bounds[1]:
                return out  # no rule can fire at p and nothing is under way: the common tick
        # The rules may change the levels. (Bounds are only worth computing when quiet: with an
        # exit under way they were computed and dropped on every tick, which was most of the
        # cost of the ticks after an exit in the same batch.)
        b.bounds = None
        closable = self._closable(b) - sum(r.qty for r in b.want_exit)
        if closable > 0 and not entries_in_flight(b) and self.risk != HALTED:
            shadow = copy.copy(pos)  # the rules run on what is not already closing
            shadow.qty = closable
            res = b.rules.on_tick(shadow, st, p, ts)
            for t in res.exits:
                if t.reason in STOP_PRECEDENCE and self._broker_stop_covers(b, p):
                    if b.stop_wait_since is None:
                        b.stop_wait_since = ts  # the broker's stop fires on this tick too
                    continue
                self._want_exit(b, t.quantity, t.reason)
            if not self.t.close_only and self.risk == ACTIVE:
                for d in res.dca:
                    qty = self._room(b, d.qty)
                    if qty > 0:
                        self.seq += 1
                        b.want_entry.append(Request("dca", pos.side, qty, "dca", f"x{self.seq}"))
            if res.exits or res.dca:
                out.symbols.add(b.symbol)
        self._drive(b, ts, out)
        return out

    @staticmethod
    def _quiet(b: LiveBook) -> bool:
        """Nothing under way but a resting stop (a throttled stop move waits for the timer)."""
        return (
            b.phase == IDLE
            and not b.want_exit
            and not b.want_entry
            and b.stop_wait_since is None
            and all(o.role == "stop" for o in b.orders.values())
        )

    def _broker_stop_covers(self, b: LiveBook, p: int) -> bool:
        """The broker's resting stop is triggered by price ``p`` (it will close on its own)."""
        stop = b.active_stop()
        if stop is None or stop.stop is None or b.pos is None:
            return False
        return b.pos.side * (p - stop.stop) <= 0
