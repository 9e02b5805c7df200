"""Signal filters: which entries a signal may make, and that exits always pass."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actors.instruments import spec_for
from actors.recorder.book import LONG, SHORT
from actors.recorder.config import Filters, RecorderSettings, Sizing, TimeWindow
from actors.recorder.filters import (
    BOTH,
    FilterState,
    cap_quantity,
    cap_target,
    evaluate,
)
from actors.recorder.pair import Pair

# Tuesday 2026-01-06 15:00 UTC = 09:00 CT, inside the CME session
TUE_0900_CT = datetime(2026, 1, 6, 15, 0, tzinfo=UTC).timestamp()
# Tuesday 22:30 UTC = 16:30 CT, the daily maintenance break
TUE_1630_CT = datetime(2026, 1, 6, 22, 30, tzinfo=UTC).timestamp()


def verdict(f: Filters, now: float = TUE_0900_CT, state: FilterState | None = None, **kw):
    return evaluate(
        f, enabled=kw.get("enabled", True), now=now, signal_time=kw.get("signal_time"),
        state=state or FilterState(), root="MNQ",
    )  # fmt: skip


def test_defaults_allow_both_sides() -> None:
    v = verdict(Filters())
    assert v.entry_sides == BOTH and v.reason is None and not v.stop


def test_disabled_and_stale_stop_the_whole_signal() -> None:
    assert verdict(Filters(), enabled=False).stop
    old = datetime.fromtimestamp(TUE_0900_CT - 120, UTC)
    v = verdict(Filters(stale_after_seconds=60), signal_time=old)
    assert (v.stop, v.reason) == (True, "stale")
    fresh = datetime.fromtimestamp(TUE_0900_CT - 30, UTC)
    assert not verdict(Filters(stale_after_seconds=60), signal_time=fresh).stop


def test_direction_filter() -> None:
    v = verdict(Filters(direction="long"))
    assert v.entry_sides == frozenset((LONG,)) and v.reason == "direction_long_only"
    assert verdict(Filters(direction="short")).entry_sides == frozenset((SHORT,))


@pytest.mark.parametrize(
    ("window", "now", "inside"),
    [
        (TimeWindow(start="08:30", end="15:00"), TUE_0900_CT, True),
        (TimeWindow(start="09:30", end="15:00"), TUE_0900_CT, False),
        (TimeWindow(start="08:30", end="15:00", days=[0, 2, 3, 4]), TUE_0900_CT, False),
        # wrapping midnight: 17:00-02:00 CT; 16:30 CT is outside, 09:00 too
        (TimeWindow(start="17:00", end="02:00"), TUE_0900_CT, False),
        (TimeWindow(start="16:00", end="02:00"), TUE_1630_CT, True),
    ],
)
def test_time_windows_in_exchange_time(window: TimeWindow, now: float, inside: bool) -> None:
    v = verdict(Filters(time_windows=[window]), now=now)
    assert (v.entry_sides == BOTH) is inside
    if not inside:
        assert v.reason == "outside_window"


def test_cme_session_only() -> None:
    assert verdict(Filters(cme_session_only=True)).entry_sides == BOTH
    v = verdict(Filters(cme_session_only=True), now=TUE_1630_CT)
    assert (v.entry_sides, v.reason) == (frozenset(), "outside_session")


def test_cooldown_counts_from_the_last_entry() -> None:
    st = FilterState()
    st.note_applied(TUE_0900_CT - 10, entered=True)
    assert verdict(Filters(cooldown_seconds=30), state=st).reason == "cooldown"
    assert verdict(Filters(cooldown_seconds=5), state=st).entry_sides == BOTH
    st2 = FilterState()
    st2.note_applied(TUE_0900_CT - 10, entered=False)  # an exit does not start a cooldown
    assert verdict(Filters(cooldown_seconds=30), state=st2).entry_sides == BOTH


def test_max_signals_per_session_resets_next_trade_date() -> None:
    st = FilterState()
    for i in range(3):
        st.note_applied(TUE_0900_CT - 100 + i, entered=False)
    assert verdict(Filters(max_signals_per_session=3), state=st).reason == "max_signals_per_session"
    next_day = TUE_0900_CT + 86400
    assert verdict(Filters(max_signals_per_session=3), now=next_day, state=st).entry_sides == BOTH


def test_max_daily_loss() -> None:
    st = FilterState()
    st.note_pnl(TUE_0900_CT - 60, -300.0)
    assert verdict(Filters(max_daily_loss=500), state=st).entry_sides == BOTH
    st.note_pnl(TUE_0900_CT - 30, -250.0)
    assert verdict(Filters(max_daily_loss=500), state=st).reason == "max_daily_loss"
    # a new CME trade date starts at 17:00 CT
    assert (
        verdict(Filters(max_daily_loss=500), now=TUE_0900_CT + 86400, state=st).entry_sides == BOTH
    )


def test_caps() -> None:
    f = Filters(max_contracts=3)
    assert cap_quantity(f, 5) == 3 and cap_quantity(f, 2) == 2 and cap_quantity(f, None) is None
    assert cap_target(f, -7) == -3 and cap_target(f, 7) == 3 and cap_target(Filters(), 9) == 9


def test_blocked_entries_still_let_exits_through() -> None:
    """A long-only recorder: a sell closes the long but never opens a short; from flat, a sell
    is blocked; a target to short closes only."""
    pair = Pair("p", RecorderSettings(sizing=Sizing(initial_size=2)), spec_for)
    longs = frozenset((LONG,))
    assert pair.on_signal("MNQZ6", 1, "buy", 21000, entry_sides=longs).status == "applied"
    out = pair.on_signal("MNQZ6", 2, "sell", 21001, entry_sides=longs)
    assert [t.reason for t in out.trades] == ["signal"] and pair.view("MNQZ6") is None
    assert pair.on_signal("MNQZ6", 3, "sell", 21001, entry_sides=longs).status == "blocked"
    pair.on_signal("MNQZ6", 4, "buy", 21000, entry_sides=longs)
    out = pair.on_signal("MNQZ6", 5, "target", 21002, target=-1, entry_sides=longs)
    assert [t.reason for t in out.trades] == ["strategy"] and pair.view("MNQZ6") is None
    none: frozenset[int] = frozenset()
    pair.on_signal("MNQZ6", 6, "buy", 21000)
    assert pair.on_signal("MNQZ6", 7, "add", 21000, entry_sides=none).status == "blocked"
    assert (
        pair.on_signal("MNQZ6", 8, "target", 21000, target=5, entry_sides=none).status == "blocked"
    )
    out = pair.on_signal("MNQZ6", 9, "target", 21004, target=1, entry_sides=none)
    assert [(t.quantity, t.reason) for t in out.trades] == [(1, "strategy")]
