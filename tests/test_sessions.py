"""CME Globex hours on top of exchange_calendars' CMES calendar (actors/sessions.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.instruments import CONTRACTS, UnknownSymbol
from actors.sessions import (
    CALENDAR_END,
    CALENDAR_START,
    cme_calendar_for,
    is_cme_session_open,
    session_info,
    trading_day,
)

CT = ZoneInfo("America/Chicago")
ET = ZoneInfo("America/New_York")


def ct(text: str) -> datetime:
    """A Chicago wall-clock time, e.g. ``ct("2025-12-02 10:00")``."""
    return datetime.fromisoformat(text).replace(tzinfo=CT)


def utc_iso(text: str) -> str:
    return ct(text).astimezone(UTC).isoformat()


# --------------------------------------------------------------------------- calendar


def test_every_root_uses_the_cmes_calendar_and_it_is_cached() -> None:
    calendars = {root: cme_calendar_for(root) for root in CONTRACTS}
    assert {cal.name for cal in calendars.values()} == {"CMES"}
    assert len({id(cal) for cal in calendars.values()}) == 1
    assert cme_calendar_for("ES") is cme_calendar_for("ES")
    assert cme_calendar_for("CME_MINI:MNQ1!") is cme_calendar_for("NQ")


def test_library_calendar_has_no_daily_break_so_we_add_it() -> None:
    # The premise of our model: CMES runs 17:00-17:00 CT with no break; if a library upgrade
    # starts modelling the break this test tells us to revisit sessions.py.
    cal = cme_calendar_for("ES")
    assert not cal.has_break
    assert cal.is_open_on_minute(ct("2025-12-02 16:30"))
    assert not is_cme_session_open(ct("2025-12-02 16:30"))


def test_calendar_range_is_fixed() -> None:
    cal = cme_calendar_for("ES")
    assert cal.first_session.date() == date(2000, 1, 3)  # 2000-01-01 is a Saturday
    assert cal.last_session.date() == CALENDAR_END == date(2040, 12, 31)  # a Monday
    assert cal.first_session.date() >= CALENDAR_START


def test_unknown_root_raises() -> None:
    with pytest.raises(UnknownSymbol):
        cme_calendar_for("FOO")
    with pytest.raises(UnknownSymbol):
        is_cme_session_open(ct("2025-12-02 10:00"), root="FOO")


# --------------------------------------------------------------------------- open / closed


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        ("2025-12-02 10:00", True),  # normal Tuesday
        ("2025-12-02 15:59:59", True),
        ("2025-12-02 16:00", False),  # daily maintenance break
        ("2025-12-02 16:30", False),
        ("2025-12-02 16:59:59", False),
        ("2025-12-02 17:00", True),  # reopen for Wednesday's session
        ("2025-12-02 23:30", True),
        ("2025-12-03 03:00", True),
        ("2025-12-05 15:59", True),  # Friday
        ("2025-12-05 16:00", False),  # weekly close
        ("2025-12-05 17:30", False),  # no Friday-evening reopen
        ("2025-12-06 10:00", False),  # Saturday
        ("2025-12-07 10:00", False),  # Sunday before the open
        ("2025-12-07 16:00", False),
        ("2025-12-07 16:59", False),
        ("2025-12-07 17:00", True),  # Sunday open
        ("2025-12-07 17:30", True),
        # Christmas 2025: 12:00 CT early close on the 24th, closed on the 25th, reopen 17:00.
        ("2025-12-24 11:59", True),
        ("2025-12-24 12:00", False),
        ("2025-12-24 17:30", False),
        ("2025-12-25 10:00", False),
        ("2025-12-25 17:00", True),
        # Thanksgiving 2025 per the library: 12:00 CT halt on the 27th, evening reopen, 12:00
        # CT early close on Black Friday.
        ("2025-11-27 10:00", True),
        ("2025-11-27 12:30", False),
        ("2025-11-27 17:30", True),
        ("2025-11-28 11:00", True),
        ("2025-11-28 12:30", False),
        # New Year 2026 (Thursday): closed all day, reopen 17:00 CT.
        ("2025-12-31 15:00", True),
        ("2026-01-01 10:00", False),
        ("2026-01-01 17:30", True),
        # Good Friday 2026-04-03: Thursday closes as usual, nothing until Sunday 17:00.
        ("2026-04-02 15:00", True),
        ("2026-04-02 17:30", False),
        ("2026-04-03 10:00", False),
        ("2026-04-05 17:30", True),
        # MLK Day 2026-01-19: early halt at 12:00 CT, reopen 17:00 CT.
        ("2026-01-19 11:00", True),
        ("2026-01-19 13:00", False),
        ("2026-01-19 17:30", True),
        # The library closes 2025-01-09 (national day of mourning) for the whole day.
        ("2025-01-09 10:00", False),
        # DST switch weekends: still 17:00 CT Sunday open.
        ("2025-03-09 16:59", False),
        ("2025-03-09 17:00", True),
        ("2025-11-02 17:00", True),
    ],
)
def test_is_cme_session_open(when: str, is_open: bool) -> None:
    assert is_cme_session_open(ct(when)) is is_open


def test_any_timezone_gives_the_same_answer() -> None:
    tuesday_10_ct = ct("2025-12-02 10:00")
    assert is_cme_session_open(tuesday_10_ct.astimezone(UTC))
    assert is_cme_session_open(tuesday_10_ct.astimezone(ET))
    # 17:30 ET is 16:30 CT: the break.
    assert not is_cme_session_open(datetime(2025, 12, 2, 17, 30, tzinfo=ET))
    # 18:00 ET Sunday is the Sunday open.
    assert is_cme_session_open(datetime(2025, 12, 7, 18, 0, tzinfo=ET))


@pytest.mark.parametrize("root", sorted(CONTRACTS))
def test_every_root_has_the_same_hours(root: str) -> None:
    assert is_cme_session_open(ct("2025-12-02 10:00"), root)
    assert not is_cme_session_open(ct("2025-12-02 16:30"), root)


def test_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError):
        is_cme_session_open(datetime(2025, 12, 2, 10, 0))
    with pytest.raises(ValueError):
        trading_day(datetime(2025, 12, 2, 10, 0))
    with pytest.raises(ValueError):
        session_info(datetime(2025, 12, 2, 10, 0))


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        ("1995-03-07 10:00", True),  # before the calendar: weekly rule
        ("1995-03-07 16:30", False),
        ("1995-03-11 10:00", False),  # Saturday
        ("1995-03-12 17:30", True),  # Sunday open
        ("1995-12-25 10:00", True),  # weekly rule knows no holidays
        ("2060-01-06 10:00", True),  # after the calendar
        ("2060-01-06 16:30", False),
        ("2060-01-04 17:00", True),  # Sunday
        ("2060-01-03 12:00", False),  # Saturday
    ],
)
def test_outside_the_calendar_range_the_weekly_rule_applies(when: str, is_open: bool) -> None:
    assert is_cme_session_open(ct(when)) is is_open
    assert session_info(ct(when))["calendar"] == "weekly-rule"


# --------------------------------------------------------------------------- trading day


@pytest.mark.parametrize(
    ("when", "day"),
    [
        ("2025-12-07 18:00", date(2025, 12, 8)),  # Sunday evening belongs to Monday
        ("2025-12-07 17:00", date(2025, 12, 8)),
        ("2025-12-07 10:00", date(2025, 12, 8)),  # weekend rolled to Monday
        ("2025-12-06 10:00", date(2025, 12, 8)),
        ("2025-12-05 17:30", date(2025, 12, 8)),  # Friday after the close
        ("2025-12-05 15:00", date(2025, 12, 5)),
        ("2025-12-02 16:59", date(2025, 12, 2)),
        ("2025-12-02 17:00", date(2025, 12, 3)),
        ("2025-12-02 00:30", date(2025, 12, 2)),
        ("2025-12-25 10:00", date(2025, 12, 25)),  # holidays are not rolled
    ],
)
def test_trading_day(when: str, day: date) -> None:
    assert trading_day(ct(when)) == day


def test_trading_day_from_utc() -> None:
    # 2025-12-07 23:30 UTC = Sunday 17:30 CST.
    assert trading_day(datetime(2025, 12, 7, 23, 30, tzinfo=UTC)) == date(2025, 12, 8)
    # 2025-07-01 21:59 UTC = Tuesday 16:59 CDT.
    assert trading_day(datetime(2025, 7, 1, 21, 59, tzinfo=UTC)) == date(2025, 7, 1)
    assert trading_day(datetime(2025, 7, 1, 22, 0, tzinfo=UTC)) == date(2025, 7, 2)


# --------------------------------------------------------------------------- session_info


@pytest.mark.parametrize(
    ("when", "is_open", "next_open", "next_close"),
    [
        ("2025-12-02 10:00", True, "2025-12-02 17:00", "2025-12-02 16:00"),
        ("2025-12-02 16:30", False, "2025-12-02 17:00", "2025-12-03 16:00"),
        ("2025-12-05 15:00", True, "2025-12-07 17:00", "2025-12-05 16:00"),
        ("2025-12-06 10:00", False, "2025-12-07 17:00", "2025-12-08 16:00"),
        ("2025-12-24 10:00", True, "2025-12-25 17:00", "2025-12-24 12:00"),
        ("2025-12-25 10:00", False, "2025-12-25 17:00", "2025-12-26 16:00"),
        ("2025-11-27 17:30", True, "2025-11-30 17:00", "2025-11-28 12:00"),
        ("2026-04-02 18:00", False, "2026-04-05 17:00", "2026-04-06 16:00"),
    ],
)
def test_session_info(when: str, is_open: bool, next_open: str, next_close: str) -> None:
    info = session_info(ct(when))
    assert info == {
        "open": is_open,
        "next_open": utc_iso(next_open),
        "next_close": utc_iso(next_close),
        "calendar": "CMES",
    }


@pytest.mark.parametrize("symbol", ["MNQZ5", "MNQ1!", "CME_MINI:MNQ1!", "CLF6", "ZN1!", "MYMZ2025"])
@pytest.mark.parametrize(
    ("when", "is_open", "next_open"),
    [
        ("2025-12-02 10:00", True, "2025-12-02 17:00"),  # a normal session
        ("2025-12-02 16:30", False, "2025-12-02 17:00"),  # the daily break
        ("2025-12-06 12:00", False, "2025-12-07 17:00"),  # the weekend
        ("2025-12-25 12:00", False, "2025-12-25 17:00"),  # a holiday
    ],
)
def test_session_info_accepts_every_symbol_form_the_feed_uses(
    symbol: str, when: str, is_open: bool, next_open: str
) -> None:
    # The feed asks with its contract symbols (MNQZ5), recorders with continuous ones (MNQ1!).
    info = session_info(ct(when), symbol)
    assert (info["open"], info["next_open"]) == (is_open, utc_iso(next_open))


# --------------------------------------------------------------------------- properties

instants = st.datetimes(
    min_value=datetime(1998, 1, 1), max_value=datetime(2043, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300)
@given(ts=instants)
def test_session_info_agrees_with_is_open(ts: datetime) -> None:
    info = session_info(ts)
    assert info["open"] is is_cme_session_open(ts)
    assert info["next_open"] is not None and info["next_close"] is not None
    next_open = datetime.fromisoformat(info["next_open"])
    next_close = datetime.fromisoformat(info["next_close"])
    assert next_open > ts and next_close > ts
    if info["open"]:
        assert next_close < next_open
        assert is_cme_session_open(next_close - timedelta(microseconds=1))
        assert not is_cme_session_open(next_close)
    else:
        assert next_open < next_close
        assert not is_cme_session_open(next_open - timedelta(microseconds=1))
        assert is_cme_session_open(next_open)


@settings(max_examples=300)
@given(ts=instants)
def test_never_open_in_the_break_or_on_saturday(ts: datetime) -> None:
    local = ts.astimezone(CT)
    if local.hour == 16 or local.weekday() == 5:
        assert not is_cme_session_open(ts)
    if local.weekday() == 6 and local.hour < 17:
        assert not is_cme_session_open(ts)
    if local.weekday() == 4 and local.hour >= 16:
        assert not is_cme_session_open(ts)


@given(ts=instants)
def test_trading_day_is_a_weekday_at_or_after_the_local_date(ts: datetime) -> None:
    day = trading_day(ts)
    local_date = ts.astimezone(CT).date()
    assert day.weekday() < 5
    assert local_date <= day <= local_date + timedelta(days=3)
    if is_cme_session_open(ts):
        # An open session's trade date is the local date or, in the evening, the next day.
        assert day - local_date in (timedelta(0), timedelta(days=1), timedelta(days=3))


def test_import_is_lazy() -> None:
    code = (
        "import sys, actors.sessions, actors.instruments; "
        "sys.exit('exchange_calendars' in sys.modules or 'pandas' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
