"""Per-recorder signal filters (SPEC §3): which entries a signal may make, or why none.

Filters guard *entries*. A signal that would only close or reduce a position is never stopped by
a time window, cooldown or loss limit: refusing an exit leaves a trader exposed, which is the
opposite of what a filter is for. Two filters stop a signal whole: recording disabled, and a
stale ``timenow`` (the alert is too old to act on at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from actors.recorder.book import LONG, SHORT
from actors.recorder.config import Filters, TimeWindow
from actors.sessions import CHICAGO, is_cme_session_open, trading_day

BOTH = frozenset((LONG, SHORT))
NONE: frozenset[int] = frozenset()


@dataclass(slots=True)
class FilterState:
    """What the filters remember of a recorder between signals (rebuilt from the store)."""

    last_entry_ts: float | None = None
    session_day: str | None = None
    session_signals: int = 0
    day_pnl: float = 0.0  # realised USD in the current CME trade date
    pnl_day: str | None = None

    def note_applied(self, now: float, entered: bool) -> None:
        day = _day(now)
        if day != self.session_day:
            self.session_day, self.session_signals = day, 0
        self.session_signals += 1
        if entered:
            self.last_entry_ts = now

    def note_pnl(self, closed_at: float, pnl: float) -> None:
        day = _day(closed_at)
        if day != self.pnl_day:
            self.pnl_day, self.day_pnl = day, 0.0
        self.day_pnl += pnl


@dataclass(slots=True, frozen=True)
class Verdict:
    """``entry_sides`` may be opened or added to; ``reason`` says what removed the others.
    ``stop`` means the whole signal is filtered (nothing at all is applied)."""

    entry_sides: frozenset[int]
    reason: str | None = None
    stop: bool = False


def _day(ts: float) -> str:
    return trading_day(datetime.fromtimestamp(ts, UTC)).isoformat()


def _in_window(w: TimeWindow, local: datetime) -> bool:
    start, end = time.fromisoformat(w.start), time.fromisoformat(w.end)
    t = local.time()
    if start <= end:
        return local.weekday() in w.days and start <= t < end
    # wraps midnight: the part after midnight belongs to the previous day's window
    if t >= start:
        return local.weekday() in w.days
    return t < end and (local.weekday() - 1) % 7 in w.days


def evaluate(
    f: Filters,
    *,
    enabled: bool,
    now: float,
    signal_time: datetime | None,
    state: FilterState,
    root: str,
) -> Verdict:
    """Decide which entry sides a signal received at ``now`` may use."""
    if not enabled:
        return Verdict(NONE, "disabled", stop=True)
    if f.stale_after_seconds is not None and signal_time is not None:
        if now - signal_time.timestamp() > f.stale_after_seconds:
            return Verdict(NONE, "stale", stop=True)
    sides = {"both": BOTH, "long": frozenset((LONG,)), "short": frozenset((SHORT,))}[f.direction]
    reason = None if f.direction == "both" else f"direction_{f.direction}_only"
    blocked = _entry_block(f, now, state, root)
    if blocked:
        return Verdict(NONE, blocked)
    return Verdict(sides, reason)


def _entry_block(f: Filters, now: float, state: FilterState, root: str) -> str | None:
    dt = datetime.fromtimestamp(now, UTC)
    if f.time_windows and not any(_in_window(w, dt.astimezone(CHICAGO)) for w in f.time_windows):
        return "outside_window"
    if f.cme_session_only and not is_cme_session_open(dt, root):
        return "outside_session"
    if f.cooldown_seconds and state.last_entry_ts is not None:
        if now - state.last_entry_ts < f.cooldown_seconds:
            return "cooldown"
    if f.max_signals_per_session is not None and state.session_day == _day(now):
        if state.session_signals >= f.max_signals_per_session:
            return "max_signals_per_session"
    if f.max_daily_loss is not None and state.pnl_day == _day(now):
        if state.day_pnl <= -f.max_daily_loss:
            return "max_daily_loss"
    return None


def cap_quantity(f: Filters, qty: int | None) -> int | None:
    """Max contracts per trade caps an entry's size (it does not stop the signal)."""
    if qty is None or f.max_contracts is None:
        return qty
    return min(qty, f.max_contracts)


def cap_target(f: Filters, target: int | None) -> int | None:
    if target is None or f.max_contracts is None:
        return target
    return max(-f.max_contracts, min(f.max_contracts, target))
