"""Risk states of a live pair and the reconciler's actions on its book (pure).

States (issue #6, after nautilus_trader's trading states):
* ``ACTIVE`` — trades normally.
* ``REDUCING`` — only orders that reduce a position: no entries, adds or DCA. Entered when the
  pair's realised loss of the CME trading day reaches the recorder's ``max_daily_loss``; left at
  the next trading day.
* ``HALTED`` — nothing new goes out (the protective stop already resting at the broker stays).
  Entered when the reconciler finds a broker position the pair cannot explain; left only when a
  user resolves it (adopt the position, declare it external, or resume).

Every change is an event with a reason, kept with the pair (the last 20) and persisted in its
snapshot, shown by the API.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from actors.recorder.book import LONG, SHORT, Position, Trade, whole
from actors.recorder.levels import exact, round_half_up
from actors.recorder.live_book import LiveBook
from actors.recorder.live_orders import Request
from actors.sessions import trading_day

if TYPE_CHECKING:
    from actors.recorder.live import LivePair

ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"
MAX_EVENTS = 20


def set_risk(pair: LivePair, state: str, reason: str, ts: float) -> bool:
    """Move ``pair`` to ``state``; False if it was there already."""
    if pair.risk == state:
        return False
    pair.risk_events = [
        *pair.risk_events[-(MAX_EVENTS - 1) :],
        {"ts": ts, "from": pair.risk, "to": state, "reason": reason},
    ]
    pair.risk = state
    return True


def _day(ts: float) -> date:
    return trading_day(datetime.fromtimestamp(ts, UTC))


def note_trades(pair: LivePair, trades: list[Trade], ts: float) -> None:
    """Count realised P&L per trading day; REDUCING once the day's loss reaches the limit."""
    limit = pair.settings.filters.max_daily_loss
    for t in trades:
        day = _day(t.close_ts)
        if pair.day != day.isoformat():
            pair.day, pair.day_pnl = day.isoformat(), Fraction(0)
        pair.day_pnl += t.pnl
    if limit is not None and pair.risk == ACTIVE and pair.day_pnl <= -exact(limit):
        set_risk(pair, REDUCING, f"max_daily_loss: {float(pair.day_pnl):.2f} USD today", ts)


def new_day(pair: LivePair, ts: float) -> None:
    """A REDUCING entered for the daily loss ends with the trading day."""
    if pair.risk == REDUCING and pair.day is not None and _day(ts).isoformat() != pair.day:
        pair.day, pair.day_pnl = _day(ts).isoformat(), Fraction(0)
        set_risk(pair, ACTIVE, "new trading day", ts)


def adopt(pair: LivePair, b: LiveBook, net: int, price: float | None, ts: float) -> None:
    """The book takes the broker's position (``net`` contracts at ``price``): no trade is
    recorded, exits restart from the adopted average."""
    b.bounds = b.seen = None
    if net == 0:
        b.pos = b.exits = None
        return
    px = exact(price) / b.money.tick_size if price is not None else Fraction(b.last_tick or 0)
    side = LONG if net > 0 else SHORT
    b.pos = Position.open(b.symbol, side, abs(net), round_half_up(px), ts)
    b.pos.avg = whole(px)
    b.exits = b.rules.start(b.pos, None)


def correction(pair: LivePair, b: LiveBook) -> Request | None:
    """The market order that brings the broker back to the book (policy ``correct``)."""
    if b.broker_net is None:
        return None
    diff = b.net - (b.broker_net - b.external)  # + : the broker must buy
    if diff == 0:
        return None
    pair.seq += 1
    # "correct" orders change the broker, not the book (the book is what it should hold): their
    # fills are not booked. The side is the order's: LONG buys, SHORT sells.
    return Request("correct", LONG if diff > 0 else SHORT, abs(diff), "reconcile", f"c{pair.seq}")


def risk_snapshot(pair: LivePair) -> dict[str, Any]:
    return {
        "risk": pair.risk,
        "risk_events": pair.risk_events,
        "day": pair.day,
        "day_pnl": str(pair.day_pnl),
    }


def risk_restore(pair: LivePair, snap: dict[str, Any]) -> None:
    pair.risk = snap.get("risk", pair.risk)
    pair.risk_events = list(snap.get("risk_events", pair.risk_events))
    pair.day = snap.get("day", pair.day)
    pair.day_pnl = Fraction(snap.get("day_pnl", "0"))
