"""Columnar tick path: every open position in one symbol, updated per batch in vector ops.

Why this is exact. Between two events that change a position (a fill, an exit, a stop or DCA
level moving) its quantity and average are constant, so its unrealised P&L and per-contract move
are monotone in the price: the worst and best over any run of ticks are attained at the run's
lowest and highest price. A position therefore only needs, per batch, the batch's min and max
folded into two integer columns (``seg_min``/``seg_max``); the exact rational excursions are
computed from them when anyone looks (``fold``).

Everything that can change a position's state is a price threshold: the stop, the nearest
take-profit, break-even and trailing activation, a trailing stop that follows new extremes, the
next DCA level. Each is turned into integer bounds ``trig_lo`` (something happens at any price
``<= trig_lo``) and ``trig_hi`` (at any price ``>= trig_hi``), computed exactly from the
position's rational state. A batch whose range touches neither bound cannot change the position,
so only the positions it touches are walked tick by tick through the scalar core
(:mod:`actors.recorder.exits`, verified against the naive reference). Bounds may be conservative
(a walk that finds nothing is still exact); they must never be too loose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from actors.instruments import price_to_ticks
from actors.recorder.book import LONG, Position
from actors.recorder.exits import ExitState, dca_level
from actors.recorder.levels import RATIONAL, round_half_up
from actors.recorder.pair import Outcome, Pair, SymbolBook

LOW = -(2**62)  # "never" for a lower bound
HIGH = 2**62  # "never" for an upper bound


def _ceil(x: Fraction) -> int:
    return math.ceil(x)


def _floor(x: Fraction) -> int:
    return math.floor(x)


def trigger_bounds(pos: Position, ex: ExitState) -> tuple[int, int]:
    """Integer bounds outside which no exit, stop move or DCA add can happen."""
    side, avg = pos.side, pos.avg
    lo, hi = LOW, HIGH

    def at_or_below(p: int) -> None:
        nonlocal lo
        lo = max(lo, p)

    def at_or_above(p: int) -> None:
        nonlocal hi
        hi = min(hi, p)

    # favourable moves: p >= x for a long, p <= x for a short
    def favourable(threshold_move: Fraction) -> None:  # side*(p - avg) >= threshold
        if side == LONG:
            at_or_above(_ceil(avg + threshold_move))
        else:
            at_or_below(_floor(avg - threshold_move))

    stop, _ = ex.effective_stop(side)
    if stop is not None:
        (at_or_below if side == LONG else at_or_above)(stop)
    levels = [lv for lv in ex.tp_levels if lv is not None]
    if levels:
        if side == LONG:
            at_or_above(min(levels))
        else:
            at_or_below(max(levels))
    if ex.be_trigger is not None and ex.be_stop is None:
        favourable(ex.be_trigger)
    if ex.trail_trigger is not None:
        if not ex.trail_active:
            favourable(ex.trail_trigger)
        elif ex.trail_distance is not None and (
            ex.trail_stop is None
            or side * (round_half_up(pos.best_price - side * ex.trail_distance) - ex.trail_stop) > 0
        ):
            at_or_below(HIGH)  # a signal raised the best price: the next tick moves the stop
        elif side == LONG:  # any new best price may move the trailing stop
            at_or_above(pos.best_price + 1)
        else:
            at_or_below(pos.best_price - 1)
    if ex.dca_step is not None:
        nxt = dca_level(pos.first_entry, side, ex.dca_step, ex.dca_fired + 1)
        (at_or_below if side == LONG else at_or_above)(nxt)
    return lo, hi


def excursion_bounds(pos: Position, tick_value: Fraction) -> tuple[int, int]:
    """Integer bounds outside which a price would change worst/best unrealised, move or price.

    The moves (per contract, ticks) at which the position's excursions stand are, on the bad
    side, the largest of its worst move, its worst unrealised over ``tick_value * qty`` and the
    move to its worst price (the good side mirrored); the bounds are the prices just beyond
    them. Worked out on numerators and denominators (every value here is an int or a Fraction,
    denominators positive) instead of building ~10 Fractions: the bounds of every folded or
    walked row (:func:`excursion_bounds_exact` is the definition, property-tested against)."""
    tn, td, qty, avg = tick_value.numerator, tick_value.denominator, pos.qty, pos.avg
    if tn <= 0 or qty <= 0 or type(avg) not in RATIONAL:
        return excursion_bounds_exact(pos, tick_value)
    wu, bu = pos.worst_unrealised, pos.best_unrealised
    wm, bm = pos.worst_move, pos.best_move
    wp, bp = pos.move(pos.worst_price), pos.move(pos.best_price)
    # worst = max(...), best = min(...) as n/d: a/b > c/d iff a*d > c*b (b, d > 0)
    wn, wd = wm.numerator, wm.denominator
    for n, d in ((wu.numerator * td, wu.denominator * tn * qty), (wp.numerator, wp.denominator)):
        if n * wd > wn * d:
            wn, wd = n, d
    bn, bd = bm.numerator, bm.denominator
    for n, d in ((bu.numerator * td, bu.denominator * tn * qty), (bp.numerator, bp.denominator)):
        if n * bd < bn * d:
            bn, bd = n, d
    a, b = avg.numerator, avg.denominator
    if pos.side == LONG:  # worse: p < avg + worst; better: p > avg + best
        return -((-(a * wd + wn * b)) // (b * wd)) - 1, (a * bd + bn * b) // (b * bd) + 1
    # short: mirror (ceil(avg - best) - 1, floor(avg - worst) + 1)
    return -((-(a * bd - bn * b)) // (b * bd)) - 1, (a * wd - wn * b) // (b * wd) + 1


def excursion_bounds_exact(pos: Position, tick_value: Fraction) -> tuple[int, int]:
    """:func:`excursion_bounds` in Fraction arithmetic (its definition; other number types)."""
    side, avg, per_move = pos.side, pos.avg, tick_value * pos.qty
    worst = max(pos.worst_move, pos.worst_unrealised / per_move, pos.move(pos.worst_price))
    best = min(pos.best_move, pos.best_unrealised / per_move, pos.move(pos.best_price))
    if side == LONG:  # worse: p < avg + worst; better: p > avg + best
        return _ceil(avg + worst) - 1, _floor(avg + best) + 1
    return _ceil(avg - best) - 1, _floor(avg - worst) + 1  # short: mirror


def to_tick_array(prices: list[float], tick_size: float) -> np.ndarray:
    """Feed prices as integer ticks. On-grid prices (all real ones) convert in one vector op;
    anything off the grid goes through the exact scalar rule (round half up)."""
    arr = np.asarray(prices, dtype=np.float64)
    q = arr / tick_size
    r = np.rint(q)
    if np.all(np.abs(q - r) < 1e-6):
        return r.astype(np.int64)
    return np.asarray([price_to_ticks(p, tick_size) for p in prices], dtype=np.int64)


@dataclass(slots=True)
class Row:
    pair: Pair
    book: SymbolBook


class SymbolColumns:
    """Open positions of one symbol across many pairs, with their bounds as int64 columns."""

    def __init__(self, symbol: str, capacity: int = 64) -> None:
        self.symbol = symbol
        self.rows: list[Row] = []
        self.index: dict[str, int] = {}  # pair key -> row
        self.trig_lo = np.full(capacity, LOW, dtype=np.int64)
        self.trig_hi = np.full(capacity, HIGH, dtype=np.int64)
        self.ex_lo = np.full(capacity, LOW, dtype=np.int64)
        self.ex_hi = np.full(capacity, HIGH, dtype=np.int64)
        self.seg_min = np.full(capacity, HIGH, dtype=np.int64)
        self.seg_max = np.full(capacity, LOW, dtype=np.int64)
        self.last: int | None = None  # last tick price of the symbol (integer ticks)
        self.touched: set[str] = set()  # pair keys whose excursions moved since fold_all

    def __len__(self) -> int:
        return len(self.rows)

    # -- membership -----------------------------------------------------------------------------

    def _grow(self) -> None:
        n = len(self.trig_lo) * 2
        for name, fill in (
            ("trig_lo", LOW), ("trig_hi", HIGH), ("ex_lo", LOW), ("ex_hi", HIGH),
            ("seg_min", HIGH), ("seg_max", LOW),
        ):  # fmt: skip
            old = getattr(self, name)
            new = np.full(n, fill, dtype=np.int64)
            new[: len(old)] = old
            setattr(self, name, new)

    def sync(self, pair: Pair, book: SymbolBook) -> None:
        """After an event changed ``book`` (signal, exit): (re)index it or drop it if flat.
        The caller must have folded the row first (see :meth:`fold_pair`)."""
        i = self.index.get(pair.key)
        if book.pos is None:
            if i is not None:
                self._remove(i)
            return
        if i is None:
            if len(self.rows) == len(self.trig_lo):
                self._grow()
            i = len(self.rows)
            self.rows.append(Row(pair, book))
            self.index[pair.key] = i
        self._refresh(i)

    def drop(self, key: str) -> None:
        """Forget a pair (its recorder was reloaded or reset)."""
        i = self.index.get(key)
        if i is not None:
            self._remove(i)
        self.touched.discard(key)

    def _remove(self, i: int) -> None:
        last = len(self.rows) - 1
        key = self.rows[i].pair.key
        if i != last:
            self.rows[i] = self.rows[last]
            self.index[self.rows[i].pair.key] = i
            for col in (
                self.trig_lo,
                self.trig_hi,
                self.ex_lo,
                self.ex_hi,
                self.seg_min,
                self.seg_max,
            ):
                col[i] = col[last]
        self.rows.pop()
        del self.index[key]
        self.seg_min[last], self.seg_max[last] = HIGH, LOW

    def _refresh(self, i: int) -> None:
        b = self.rows[i].book
        assert b.pos is not None and b.exits is not None
        self.trig_lo[i], self.trig_hi[i] = trigger_bounds(b.pos, b.exits)
        self.ex_lo[i], self.ex_hi[i] = excursion_bounds(b.pos, b.money.tick_value)
        self.seg_min[i], self.seg_max[i] = HIGH, LOW

    # -- folding --------------------------------------------------------------------------------

    def _fold(self, i: int) -> bool:
        """Bring row ``i``'s position up to date with the prices its segment saw; True when its
        excursions (worst/best unrealised, moves, prices) changed."""
        b = self.rows[i].book
        pos = b.pos
        assert pos is not None
        lo, hi = int(self.seg_min[i]), int(self.seg_max[i])
        if lo > hi:  # no tick since the position's last event
            return False
        moved = bool(lo <= self.ex_lo[i] or hi >= self.ex_hi[i])
        if moved:
            pos.observe(lo, b.money)
            pos.observe(hi, b.money)
            self.ex_lo[i], self.ex_hi[i] = excursion_bounds(pos, b.money.tick_value)
            self.touched.add(self.rows[i].pair.key)
        assert self.last is not None
        pos.last_price = b.last_tick = self.last
        self.seg_min[i], self.seg_max[i] = HIGH, LOW
        return moved

    def fold_pair(self, key: str) -> None:
        i = self.index.get(key)
        if i is not None:
            self._fold(i)

    def fold_all(self) -> list[Row]:
        """Fold every row that saw ticks since its last event; returns the rows whose
        excursions changed since the previous ``fold_all`` (what needs persisting)."""
        n = len(self.rows)
        if n == 0:
            return []
        for i in np.flatnonzero(self.seg_min[:n] <= self.seg_max[:n]):
            self._fold(int(i))
        moved = [self.rows[self.index[k]] for k in self.touched if k in self.index]
        self.touched.clear()
        return moved

    # -- the tick path --------------------------------------------------------------------------

    def apply(self, ts: list[float], ticks: np.ndarray) -> list[tuple[Row, Outcome]]:
        """One batch of this symbol's ticks (integer prices, time order). Returns the rows
        whose state changed by an exit or add, with what happened."""
        n = len(self.rows)
        if len(ticks) == 0:
            return []
        if n == 0:
            self.last = int(ticks[-1])
            return []
        bmin, bmax = int(ticks.min()), int(ticks.max())
        hit = np.flatnonzero((self.trig_lo[:n] >= bmin) | (self.trig_hi[:n] <= bmax))
        walked = [self.rows[int(i)] for i in hit]
        for i in hit:
            self._fold(int(i))  # exact state before the tick-by-tick walk
        # rows not hit: the batch only widens their price segment
        if len(hit) < n:
            mask = np.ones(n, dtype=bool)
            mask[hit] = False
            np.minimum(self.seg_min[:n], bmin, out=self.seg_min[:n], where=mask)
            np.maximum(self.seg_max[:n], bmax, out=self.seg_max[:n], where=mask)
        self.last = int(ticks[-1])
        results: list[tuple[Row, Outcome]] = []
        for row in walked:
            out = self._walk(row, ts, ticks)
            self.sync(row.pair, row.book)
            if out.fills or out.trades:
                results.append((row, out))
        return results

    def _walk(self, row: Row, ts: list[float], ticks: np.ndarray) -> Outcome:
        """Step only the ticks that touch the position's bounds through the scalar core; the
        stretches between them are folded as exact extremes (nothing can trigger there)."""
        out = Outcome()
        b, start, n = row.book, 0, len(ticks)
        while start < n and b.pos is not None and b.exits is not None:
            lo, hi = trigger_bounds(b.pos, b.exits)
            rest = ticks[start:]
            crossing = np.flatnonzero((rest <= lo) | (rest >= hi))
            j = n if len(crossing) == 0 else start + int(crossing[0])
            if j > start:
                quiet = ticks[start:j]
                b.pos.observe(int(quiet.min()), b.money)
                b.pos.observe(int(quiet.max()), b.money)
            if j == n:
                break
            out.extend(row.pair.on_tick_ticks(b, ts[j], int(ticks[j])))
            start = j + 1
        b.last_tick = self.last
        if b.pos is not None:
            b.pos.last_price = self.last  # type: ignore[assignment]
        return out
