"""A deliberately naive, independent reference of ``docs/recording-semantics.md``.

One recorder, one symbol, the *virtual* pair only. Everything is exact: prices are integer
ticks, averages and distances are :class:`fractions.Fraction` of ticks, money is a Fraction of
USD. Every level is recomputed from scratch from the current state whenever it is needed (the
semantics page recomputes every level on each add, and an average only ever changes on an add,
so "compute on demand from the current average" is the same thing, only more obvious).

Nothing here is fast or clever on purpose: a reader should be able to check each line against
the semantics page. Comments quote the page's step letters (a. … e.) and section names.

Readings chosen where the page is not explicit (see the module's tests for examples):

* the signal's fill price is observed for excursions (step a) whenever a position is open and
  the signal has a fill price, even when the signal is then ignored (``no_add``, ``in_sync``);
* a DCA level whose add is 0 contracts is "fired" but is not an add: no fill, base unchanged;
  ``max_quantity − qty`` below 0 (a position opened larger than the cap) adds 0;
* the DCA add size is ``dca.add_size`` (not ``sizing.add_size``);
* a DCA step that converts to ≤ 0 ticks (ATR of 0, percent of a price ≤ 0) turns DCA off for
  the position, like "no completed bar" (otherwise infinitely many levels would fire);
* a one-minute bar is completed only when a *tick* of a later bucket arrives (a signal's
  timestamp does not complete a bar); a tick whose bucket is earlier than the current bar's is
  merged into the current bar; buckets use the exact value of the float timestamp;
* distances given in percent (including the trailing distance and the break-even offset) are
  converted against the average at the moment they are used;
* ``target`` from flat opens ``|target|`` on the target's side; a ``target`` signal never looks
  at ``allow_add`` / ``close_only``; ``add`` does not look at ``allow_add`` either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from actors.recorder.config import DcaUnit, RecorderSettings, Unit

ACTIONS = ("buy", "sell", "close", "add", "target")


def round_half_up(x: Fraction) -> int:
    """``floor(x + 1/2)``, exactly (Prices and units)."""
    return math.floor(x + Fraction(1, 2))


def exact(x: float | int) -> Fraction:
    """A float from the outside world as the decimal it was written as."""
    return Fraction(str(x))


def side_name(side: int) -> str:
    return "long" if side == 1 else "short"


@dataclass
class RefTrade:
    side: str  # "long" | "short"
    quantity: int
    entry_price: Fraction  # average entry at that moment, price units
    exit_price: Fraction  # price units
    pnl: Fraction  # USD
    reason: str
    open_ts: float
    close_ts: float
    mfe_points: Fraction  # >= 0
    mae_points: Fraction  # <= 0
    mfe_usd: Fraction  # per contract
    mae_usd: Fraction  # per contract


@dataclass
class RefPosition:
    side: str
    quantity: int
    avg_price: Fraction  # price units
    worst_unrealised: Fraction  # USD, <= 0
    best_unrealised: Fraction  # USD, >= 0
    stop_price: Fraction | None  # effective stop, price units; None when no stop is active
    target_prices: list[Fraction | None]  # per TP target in list order; None once hit
    dca_levels_fired: int


@dataclass
class _Bar:
    """One one-minute bar, prices in ticks."""

    bucket: int
    high: int
    low: int
    close: int


@dataclass
class _Open:
    """The open position's full state ("Position state"). Prices in ticks."""

    side: int  # +1 long, -1 short
    qty: int
    avg: Fraction  # exact average entry, ticks
    first_entry: int  # ticks, DCA anchor
    base_qty: int  # the quantity the TP trims are a percentage of
    open_ts: float
    targets_hit: list[bool]
    dca_fired: int  # levels 1..dca_fired have fired (levels are reached in order of i)
    best_u: Fraction = Fraction(0)  # USD
    worst_u: Fraction = Fraction(0)  # USD
    best_move: Fraction = Fraction(0)  # ticks per contract
    worst_move: Fraction = Fraction(0)  # ticks per contract
    best_price: int = 0  # ticks: highest seen for a long, lowest for a short
    worst_price: int = 0  # ticks: lowest seen for a long, highest for a short
    be_level: int | None = None  # break-even stop, once activated
    trail_level: int | None = None  # trailing stop, once activated
    atr: Fraction | None = None  # frozen at open, ticks; None = no completed bar


class NaiveRecorder:
    """The virtual pair of one recorder on one symbol. ``trades`` lists every closed quantity."""

    def __init__(self, settings: RecorderSettings, tick_size: float, tick_value: float) -> None:
        self.settings = settings
        self.tick_size = exact(tick_size)
        self.tick_value = exact(tick_value)
        self.trades: list[RefTrade] = []
        self.last_price: int | None = None  # ticks, last tick seen
        self.completed_bars: list[_Bar] = []
        self.current_bar: _Bar | None = None
        self.pos: _Open | None = None

    # ------------------------------------------------------------------ units

    def to_ticks(self, price: float) -> int:
        """A price onto the tick grid: ``round_half_up(price / tick_size)``."""
        return round_half_up(exact(price) / self.tick_size)

    def to_price(self, ticks: Fraction | int) -> Fraction:
        return Fraction(ticks) * self.tick_size

    def distance_ticks(self, d: float, unit: Unit, reference: Fraction) -> Fraction:
        """Distance ``d`` in ``unit`` as ticks, against reference price ``reference`` (ticks)."""
        value = exact(d)
        if unit == Unit.ticks:
            return value
        if unit == Unit.points:
            return value / self.tick_size
        if unit == Unit.percent:
            return reference * value / 100
        if unit == Unit.dollars:
            return value / self.tick_value  # dollars are per contract
        raise ValueError(f"unknown unit {unit!r}")

    def pnl(self, side: int, qty: int, avg: Fraction, exit_ticks: Fraction | int) -> Fraction:
        """``side × (x − a) × tick_value × q`` (prices in ticks)."""
        return side * (Fraction(exit_ticks) - avg) * self.tick_value * qty

    # ------------------------------------------------------------------ levels (on demand)

    def tp_levels(self, pos: _Open) -> list[int]:
        """Every TP target's level from the current average, in list order."""
        tp = self.settings.take_profit
        if tp is None:
            return []
        levels = []
        for target in tp.targets:
            d = self.distance_ticks(target.value, tp.unit, pos.avg)
            levels.append(round_half_up(pos.avg + pos.side * d))
        return levels

    def fixed_stop_level(self, pos: _Open) -> int | None:
        sl = self.settings.stop_loss
        if sl is None:
            return None
        d = self.distance_ticks(sl.value, sl.unit, pos.avg)
        return round_half_up(pos.avg - pos.side * d)

    def effective_stop(self, pos: _Open) -> tuple[int, str] | None:
        """Tightest active stop component and its reason (step b).

        Candidates are listed in the tie order trailing_stop, break_even, stop_loss; a later
        candidate replaces the current one only when strictly tighter.
        """
        candidates: list[tuple[int, str]] = []
        if pos.trail_level is not None:
            candidates.append((pos.trail_level, "trailing_stop"))
        if pos.be_level is not None:
            candidates.append((pos.be_level, "break_even"))
        fixed = self.fixed_stop_level(pos)
        if fixed is not None:
            candidates.append((fixed, "stop_loss"))
        best: tuple[int, str] | None = None
        for level, reason in candidates:
            # tighter = higher for a long, lower for a short
            if best is None or pos.side * (level - best[0]) > 0:
                best = (level, reason)
        return best

    def dca_step_ticks(self, pos: _Open) -> Fraction | None:
        """The DCA step in ticks, or None when DCA is off for this position (step e)."""
        dca = self.settings.dca
        if dca is None:
            return None
        step = exact(dca.step)
        if dca.unit == DcaUnit.ticks:
            ticks = step
        elif dca.unit == DcaUnit.points:
            ticks = step / self.tick_size
        elif dca.unit == DcaUnit.percent:
            ticks = Fraction(pos.first_entry) * step / 100  # of the first entry price
        elif dca.unit == DcaUnit.atr:
            if pos.atr is None:
                return None  # no completed bar when the position opened
            ticks = step * pos.atr
        else:
            raise ValueError(f"unknown DCA unit {dca.unit!r}")
        if ticks <= 0:
            return None  # see module docstring: a step of 0 would fire forever
        return ticks

    def dca_level(self, pos: _Open, i: int, step: Fraction) -> int:
        """``round_half_up(first_entry − side × i × step)``."""
        return round_half_up(pos.first_entry - pos.side * i * step)

    # ------------------------------------------------------------------ ATR bars

    def record_bar_tick(self, ts: float, p: int) -> None:
        """Bars bucket by ``floor(ts / 60)``; a bar completes when a later bucket's tick arrives."""
        bucket = math.floor(Fraction(ts) / 60)
        bar = self.current_bar
        if bar is None:
            self.current_bar = _Bar(bucket, p, p, p)
        elif bucket > bar.bucket:
            self.completed_bars.append(bar)
            self.current_bar = _Bar(bucket, p, p, p)
        else:
            bar.high = max(bar.high, p)
            bar.low = min(bar.low, p)
            bar.close = p

    def current_atr(self) -> Fraction | None:
        """Mean true range of the last ``atr_period`` completed bars (ticks), None if none."""
        dca = self.settings.dca
        if dca is None or not self.completed_bars:
            return None
        true_ranges: list[int] = []
        for k, bar in enumerate(self.completed_bars):
            if k == 0:
                true_ranges.append(bar.high - bar.low)
            else:
                prev_close = self.completed_bars[k - 1].close
                true_ranges.append(max(bar.high, prev_close) - min(bar.low, prev_close))
        window = true_ranges[-dca.atr_period :]
        return Fraction(sum(window), len(window))

    # ------------------------------------------------------------------ position changes

    def open(self, ts: float, side: int, qty: int, price: int) -> None:
        """Opening a position ("Position state")."""
        n_targets = (
            0 if self.settings.take_profit is None else len(self.settings.take_profit.targets)
        )
        self.pos = _Open(
            side=side,
            qty=qty,
            avg=Fraction(price),
            first_entry=price,
            base_qty=qty,
            open_ts=ts,
            targets_hit=[False] * n_targets,
            dca_fired=0,
            best_u=Fraction(0),
            worst_u=Fraction(0),
            best_move=Fraction(0),
            worst_move=Fraction(0),
            best_price=price,
            worst_price=price,
            be_level=None,
            trail_level=None,
            atr=self.current_atr(),  # frozen now
        )

    def add(self, qty: int, price: int) -> None:
        """An add: new exact average; base quantity = quantity open after the add. Levels are
        computed on demand from the average, so "recompute every level" needs nothing more;
        targets hit, DCA levels fired and activated trailing / break-even levels are kept."""
        pos = self.pos
        assert pos is not None
        pos.avg = (pos.avg * pos.qty + Fraction(price) * qty) / (pos.qty + qty)
        pos.qty = pos.qty + qty
        pos.base_qty = pos.qty

    def close(self, ts: float, qty: int, price: Fraction | int, reason: str) -> None:
        """Close ``qty`` contracts at ``price`` (ticks) at the current average, as one trade."""
        pos = self.pos
        assert pos is not None
        assert 0 < qty <= pos.qty
        self.trades.append(
            RefTrade(
                side=side_name(pos.side),
                quantity=qty,
                entry_price=self.to_price(pos.avg),
                exit_price=self.to_price(price),
                pnl=self.pnl(pos.side, qty, pos.avg, price),
                reason=reason,
                open_ts=pos.open_ts,
                close_ts=ts,
                mfe_points=pos.best_move * self.tick_size,
                mae_points=pos.worst_move * self.tick_size,
                mfe_usd=pos.best_move * self.tick_value,
                mae_usd=pos.worst_move * self.tick_value,
            )
        )
        pos.qty = pos.qty - qty  # the average does not change on a partial close
        if pos.qty == 0:
            self.pos = None

    def observe(self, p: int) -> None:
        """Step a: excursions at ``p`` with the quantity and average held before it."""
        pos = self.pos
        assert pos is not None
        u = pos.side * (p - pos.avg) * self.tick_value * pos.qty
        pos.worst_u = min(pos.worst_u, u)
        pos.best_u = max(pos.best_u, u)
        m = pos.side * (p - pos.avg)
        pos.best_move = max(pos.best_move, m)
        pos.worst_move = min(pos.worst_move, m)
        if pos.side == 1:
            pos.best_price = max(pos.best_price, p)
            pos.worst_price = min(pos.worst_price, p)
        else:
            pos.best_price = min(pos.best_price, p)
            pos.worst_price = max(pos.worst_price, p)

    # ------------------------------------------------------------------ events

    def signal(
        self,
        ts: float,
        action: str,
        price: float | None = None,
        quantity: int | None = None,
        target: int | None = None,
    ) -> str:
        """Apply one signal ("Events"). Returns "applied" or the ignore/reject code."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if action == "target" and target is None:
            raise ValueError("a target signal needs target")
        if quantity is not None and quantity <= 0:
            raise ValueError("quantities are positive integers")
        sizing = self.settings.sizing

        # Fill price: the signal's price on the tick grid, else the last tick, else no_price.
        if price is not None:
            fill = self.to_ticks(price)
        elif self.last_price is not None:
            fill = self.last_price
        else:
            return "no_price"

        # Before the signal is applied, its fill price is observed for excursions (step a only).
        if self.pos is not None:
            self.observe(fill)

        if action in ("buy", "sell"):
            side = 1 if action == "buy" else -1
            if self.pos is None:
                # flat → open that side
                self.open(ts, side, quantity if quantity is not None else sizing.initial_size, fill)
                return "applied"
            if self.pos.side == side:
                # same side → add if allowed
                if not sizing.allow_add:
                    return "no_add"
                self.add(quantity if quantity is not None else sizing.add_size, fill)
                return "applied"
            # opposite side → close everything; reverse unless close_only
            if sizing.close_only:
                self.close(ts, self.pos.qty, fill, "signal")
                return "applied"
            self.close(ts, self.pos.qty, fill, "reverse")
            self.open(ts, side, quantity if quantity is not None else sizing.initial_size, fill)
            return "applied"

        if action == "close":
            if self.pos is None:
                return "flat"
            self.close(ts, self.pos.qty, fill, "close")
            return "applied"

        if action == "add":
            if self.pos is None:
                return "flat"
            self.add(quantity if quantity is not None else sizing.add_size, fill)
            return "applied"

        # action == "target": move to exactly `target` (signed).
        assert target is not None
        current = 0 if self.pos is None else self.pos.side * self.pos.qty
        if target == current:
            return "in_sync"
        if self.pos is None:
            # flat → open |target| on the target's side
            self.open(ts, 1 if target > 0 else -1, abs(target), fill)
            return "applied"
        pos = self.pos
        if target != 0 and (target > 0) == (pos.side == 1):
            # same side
            if abs(target) > pos.qty:
                self.add(abs(target) - pos.qty, fill)
            else:
                self.close(ts, pos.qty - abs(target), fill, "strategy")
            return "applied"
        # other side, or 0 → close everything, then open |target| on the new side (if any)
        self.close(ts, pos.qty, fill, "strategy")
        if target != 0:
            self.open(ts, 1 if target > 0 else -1, abs(target), fill)
        return "applied"

    def tick(self, ts: float, price: float) -> None:
        """Apply one tick ("Per tick", steps a–e)."""
        p = self.to_ticks(price)
        self.record_bar_tick(ts, p)  # every tick builds the ATR bars
        self.last_price = p
        pos = self.pos
        if pos is None:
            return

        # a. Excursions with the quantity and average held before this tick.
        self.observe(p)

        # b. Stop: the tightest active component; a long exits if stop ≥ p (short: ≤ p), at p.
        stop = self.effective_stop(pos)
        if stop is not None:
            level, reason = stop
            if pos.side * (level - p) >= 0:
                self.close(ts, pos.qty, p, reason)
                return  # nothing further happens on this tick

        # c. Take profits: every target not yet hit and reached fills at its own level,
        #    nearest first; trims of the base quantity, capped; the last in the list takes all.
        tp = self.settings.take_profit
        if tp is not None:
            levels = self.tp_levels(pos)
            reached = [
                j
                for j in range(len(tp.targets))
                if not pos.targets_hit[j] and pos.side * (p - levels[j]) >= 0
            ]
            reached.sort(key=lambda j: (pos.side * levels[j], j))  # nearest first
            for j in reached:
                if self.pos is None:
                    break  # an earlier target closed everything
                pos.targets_hit[j] = True
                if j == len(tp.targets) - 1:
                    qty = pos.qty
                else:
                    trim = exact(tp.targets[j].trim)
                    qty = min(pos.qty, max(1, round_half_up(pos.base_qty * trim / 100)))
                self.close(ts, qty, levels[j], f"tp{j + 1}")
            if self.pos is None:
                return  # closed by this step: nothing further happens on this tick

        # d. Trailing / break-even adjust using p (checked from the next tick on).
        be = self.settings.break_even
        if be is not None and pos.be_level is None:
            trigger = self.distance_ticks(be.trigger, be.unit, pos.avg)
            if pos.side * (p - pos.avg) >= trigger:
                offset = self.distance_ticks(be.offset, be.unit, pos.avg)
                pos.be_level = round_half_up(pos.avg + pos.side * offset)
        ts_cfg = self.settings.trailing_stop
        if ts_cfg is not None:
            if pos.trail_level is None:
                trigger = self.distance_ticks(ts_cfg.trigger, ts_cfg.unit, pos.avg)
                active = pos.side * (p - pos.avg) >= trigger
            else:
                active = True
            if active:
                distance = self.distance_ticks(ts_cfg.distance, ts_cfg.unit, pos.avg)
                candidate = round_half_up(pos.best_price - pos.side * distance)
                # only ever tightens (a long's never moves down)
                if pos.trail_level is None or pos.side * (candidate - pos.trail_level) > 0:
                    pos.trail_level = candidate

        # e. DCA: levels anchored at the first entry fire in order of i once p reaches them.
        dca = self.settings.dca
        step = self.dca_step_ticks(pos)
        if dca is not None and step is not None:
            i = pos.dca_fired + 1
            while True:
                level = self.dca_level(pos, i, step)
                if pos.side * (p - level) > 0:
                    break  # a long needs p ≤ level (a short: p ≥ level)
                pos.dca_fired = i
                qty = max(0, min(dca.add_size, dca.max_quantity - pos.qty))
                if qty > 0:
                    self.add(qty, p)  # levels recompute from the new average (see add)
                i += 1

    # ------------------------------------------------------------------ views

    def position(self) -> RefPosition | None:
        pos = self.pos
        if pos is None:
            return None
        stop = self.effective_stop(pos)
        levels = self.tp_levels(pos)
        return RefPosition(
            side=side_name(pos.side),
            quantity=pos.qty,
            avg_price=self.to_price(pos.avg),
            worst_unrealised=pos.worst_u,
            best_unrealised=pos.best_u,
            stop_price=None if stop is None else self.to_price(stop[0]),
            target_prices=[
                None if pos.targets_hit[j] else self.to_price(levels[j]) for j in range(len(levels))
            ],
            dca_levels_fired=pos.dca_fired,
        )
