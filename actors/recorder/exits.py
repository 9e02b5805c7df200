"""Take profits, stops (fixed, break-even, trailing) and DCA adds of one position, per tick.

``on_tick`` is SPEC §4 rule 4 steps a–e in order, exactly as ``docs/recording-semantics.md``
states them. Levels are integer ticks; thresholds are exact rationals. The state here is what
must survive a restart (targets hit, stops activated, DCA levels fired), so it is plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from actors.recorder.book import Money, Position, Trade
from actors.recorder.config import RecorderSettings
from actors.recorder.levels import RATIONAL, distance_ticks, exact, half_up, level, round_half_up

STOP_PRECEDENCE = ("trailing_stop", "break_even", "stop_loss")


@dataclass(slots=True)
class ExitState:
    """Levels and progress of one open position's exits."""

    base_qty: int
    tp_levels: list[int | None] = field(default_factory=list)  # None once hit
    fixed_stop: int | None = None
    be_trigger: Fraction | None = None
    be_offset: Fraction | None = None
    be_stop: int | None = None  # set once break-even activates
    trail_trigger: Fraction | None = None
    trail_distance: Fraction | None = None
    trail_active: bool = False
    trail_stop: int | None = None
    dca_step: Fraction | None = None  # ticks, frozen at open
    dca_fired: int = 0

    def effective_stop(self, side: int) -> tuple[int | None, str | None]:
        """The tightest active stop component and its exit reason."""
        best: tuple[int | None, str | None] = (None, None)
        components = {
            "trailing_stop": self.trail_stop,
            "break_even": self.be_stop,
            "stop_loss": self.fixed_stop,
        }
        for reason in STOP_PRECEDENCE:
            lvl = components[reason]
            if lvl is not None and (best[0] is None or side * (lvl - best[0]) > 0):
                best = (lvl, reason)
        return best


@dataclass(slots=True, frozen=True)
class DcaFill:
    """A DCA level fired: ``qty`` contracts added at ``price`` (ticks); qty may be 0 when capped."""

    qty: int
    price: int
    level_index: int


@dataclass(slots=True, frozen=True)
class Exit:
    """An exit a rule decided: close ``quantity`` contracts for ``reason``."""

    quantity: int
    reason: str


@dataclass(slots=True)
class TickOutcome:
    exits: list[Exit] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)  # one per exit, when trades are booked
    dca: list[DcaFill] = field(default_factory=list)


class ExitRules:
    """A recorder's exit settings bound to one contract's tick geometry.

    ``book_trades=False``: exits come without their :class:`Trade` (exact prices and money).
    A live pair sends an order for each exit and books the broker's fill instead; building the
    trade on its shadow position was ~40 us of Fraction arithmetic per exit, paid 20 times in a
    row when 20 accounts exited on one tick (bench.live_latency)."""

    def __init__(self, settings: RecorderSettings, money: Money, book_trades: bool = True) -> None:
        self.s = settings
        self.money = money
        self.book_trades = book_trades

    def _close(
        self, pos: Position, qty: int, price: int, ts: float, reason: str, out: TickOutcome
    ) -> None:
        out.exits.append(Exit(qty, reason))
        if self.book_trades:
            out.trades.append(pos.close(qty, price, ts, reason, self.money))
        else:
            pos.cut(qty)

    def _dist(self, unit: str, value: float, ref: Fraction) -> Fraction:
        d = distance_ticks(unit, value, ref, self.money.tick_size, self.money.tick_value)  # type: ignore[arg-type]
        assert d is not None
        return d

    def start(self, pos: Position, atr_ticks: Fraction | None) -> ExitState:
        """Exit state of a freshly opened position (ATR frozen now for ATR-step DCA)."""
        st = ExitState(base_qty=pos.qty)
        tp = self.s.take_profit
        if tp is not None:
            st.tp_levels = [0] * len(tp.targets)
        dca = self.s.dca
        if dca is not None:
            st.dca_step = distance_ticks(
                dca.unit,
                dca.step,
                Fraction(pos.first_entry),
                self.money.tick_size,
                self.money.tick_value,
                atr_ticks,
            )
            if st.dca_step is not None and st.dca_step <= 0:
                st.dca_step = None  # a flat market gives ATR 0: no ladder rather than a wall
        self.recompute(pos, st)
        return st

    def recompute(self, pos: Position, st: ExitState) -> None:
        """After the average changed: every level not yet triggered follows the new average."""
        st.base_qty = pos.qty
        avg, side, s = pos.avg, pos.side, self.s
        if s.take_profit is not None:
            unit = s.take_profit.unit
            for j, target in enumerate(s.take_profit.targets):
                if st.tp_levels[j] is not None:
                    st.tp_levels[j] = level(avg, side, self._dist(unit, target.value, avg))
        if s.stop_loss is not None:
            st.fixed_stop = level(avg, -side, self._dist(s.stop_loss.unit, s.stop_loss.value, avg))
        if s.break_even is not None:
            be = s.break_even
            st.be_trigger = self._dist(be.unit, be.trigger, avg)
            st.be_offset = self._dist(be.unit, be.offset, avg) if be.offset else Fraction(0)
        if s.trailing_stop is not None:
            ts = s.trailing_stop
            st.trail_trigger = self._dist(ts.unit, ts.trigger, avg)
            st.trail_distance = self._dist(ts.unit, ts.distance, avg)

    def trim_qty(self, pos: Position, st: ExitState, j: int) -> int:
        tp = self.s.take_profit
        assert tp is not None
        if j == len(tp.targets) - 1:
            return pos.qty
        want = max(1, round_half_up(st.base_qty * exact(tp.targets[j].trim) / 100))
        return min(pos.qty, want)

    def on_tick(self, pos: Position, st: ExitState, p: int, ts: float) -> TickOutcome:
        """Apply one tick price ``p`` (ticks) to an open position; mutates ``pos`` and ``st``."""
        out = TickOutcome()
        side, money = pos.side, self.money
        pos.observe(p, money)  # a. excursions with the quantity held before this tick

        stop, reason = st.effective_stop(side)  # b. stop, filled at the tick (gaps not forgiven)
        if stop is not None and side * (p - stop) <= 0:
            assert reason is not None
            self._close(pos, pos.qty, p, ts, reason, out)
            return out

        for j, lvl in enumerate(st.tp_levels):  # c. targets, nearest first, at their own level
            if lvl is not None and side * (p - lvl) >= 0:
                qty = self.trim_qty(pos, st, j)
                st.tp_levels[j] = None
                self._close(pos, qty, lvl, ts, f"tp{j + 1}", out)
                if pos.qty == 0:
                    return out

        move = pos.move(p)  # d. break-even and trailing adjust using p
        if st.be_trigger is not None and st.be_stop is None and move >= st.be_trigger:
            assert st.be_offset is not None
            st.be_stop = round_half_up(pos.avg + side * st.be_offset)
        if st.trail_trigger is not None and st.trail_distance is not None:
            if not st.trail_active and move >= st.trail_trigger:
                st.trail_active = True
            if st.trail_active:
                cand = round_half_up(pos.best_price - side * st.trail_distance)
                if st.trail_stop is None or side * (cand - st.trail_stop) > 0:
                    st.trail_stop = cand

        dca = self.s.dca  # e. DCA levels anchored at the first entry
        if dca is not None and st.dca_step is not None:
            last = last_dca_level_reached(pos.first_entry, side, st.dca_step, p)
            added = False
            while st.dca_fired < last:
                st.dca_fired += 1
                qty = min(dca.add_size, dca.max_quantity - pos.qty)
                if qty <= 0:  # capped: every further reached level fires empty
                    st.dca_fired = last
                    break
                pos.add(qty, p)
                added = True
                out.dca.append(DcaFill(qty, p, st.dca_fired))
            if added:
                self.recompute(pos, st)
        return out


def dca_level(first_entry: int, side: int, step: Fraction, i: int) -> int:
    """``round_half_up(first_entry - side * i * step)``; in integers for an int or Fraction step
    (several levels per DCA position on every walked tick: the binary search below)."""
    if type(step) in RATIONAL:
        d = step.denominator
        return half_up(first_entry * d - side * i * step.numerator, d)
    return round_half_up(first_entry - side * i * step)


def last_dca_level_reached(first_entry: int, side: int, step: Fraction, p: int) -> int:
    """The highest level index ``i`` whose level price ``p`` has reached (0 if none).

    Levels move monotonically against the position, so "reached" is monotone in ``i``; a binary
    search keeps a tiny step or a huge gap from costing one iteration per level.
    """

    def reached(i: int) -> bool:
        return side * (p - dca_level(first_entry, side, step, i)) <= 0

    if not reached(1):
        return 0
    lo, hi = 1, 2
    while reached(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # reached(lo) and not reached(hi)
        mid = (lo + hi) // 2
        if reached(mid):
            lo = mid
        else:
            hi = mid
    return lo
