"""CME Globex trading hours: is the market open, and which CME trade date is it.

Calendar choice
---------------
``exchange_calendars`` ships a single CME calendar, ``CMES``; the names ``CME``, ``CBOT``,
``NYMEX`` and ``COMEX`` are aliases of it, so every product we list (equity index, energy, metals,
FX, Treasuries) uses ``CMES``. It models Globex as one session per trade date from 17:00 CT on the
previous calendar day to 17:00 CT, holidays as missing sessions (New Year, Good Friday, Christmas,
national days of mourning such as 2025-01-09) and the CME holiday halts as early closes at 12:00 CT
(MLK, Presidents, Memorial, Independence and Labor Day, Thanksgiving, the Friday after it,
Christmas Eve). It does **not** model the daily maintenance break (``has_break`` is False and its
closes are at 17:00), nor Juneteenth's early halt.

Our model on top of it
----------------------
* The session of trade date ``d`` runs from the calendar's open (17:00 CT on ``d - 1``) to
  ``min(calendar close, 16:00 CT on d)``. Clipping every close to 16:00 CT adds the daily
  16:00–17:00 CT maintenance break Monday–Thursday and the Friday 16:00 CT close; 12:00 CT early
  closes are kept. Sunday 17:00 CT opens Monday's session.
* Holidays and early closes come only from the library. It is built once for the fixed range
  ``CALENDAR_START``–``CALENDAR_END`` (deterministic, unlike the library's "20 years back, one
  year ahead of today" default); trade dates outside that range fall back to the weekly rule
  (every Monday–Friday trade date is a session 17:00 CT previous day – 16:00 CT, no holidays).
* Hours are one schedule for all our products; CME's product-specific holiday hours (e.g. 12:15
  vs 12:00 CT halts) are approximated by the library's single schedule.

``exchange_calendars`` (and pandas) is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from actors.instruments import spec_for

if TYPE_CHECKING:
    import exchange_calendars

__all__ = [
    "CALENDAR_END",
    "CALENDAR_START",
    "CHICAGO",
    "cme_calendar_for",
    "is_cme_session_open",
    "session_info",
    "trading_day",
]

CHICAGO = ZoneInfo("America/Chicago")
CALENDAR_START = date(2000, 1, 1)
CALENDAR_END = date(2040, 12, 31)
#: Daily close (start of the maintenance break) and reopen, America/Chicago wall time.
DAILY_CLOSE = time(16)
DAILY_OPEN = time(17)
#: Shifting Chicago time by this much maps 17:00 CT onto midnight of the next trade date.
_TRADE_DATE_SHIFT = timedelta(hours=7)
#: How far ahead ``session_info`` looks for the next open/close (covers any holiday cluster).
_SEARCH_DAYS = 31
WEEKLY_RULE = "weekly-rule"

# Every TradingView exchange prefix of our contracts maps to the library's one CME calendar.
_CALENDAR_BY_EXCHANGE = {
    "CME": "CMES",
    "CME_MINI": "CMES",
    "CBOT": "CMES",
    "CBOT_MINI": "CMES",
    "NYMEX": "CMES",
    "COMEX": "CMES",
}


@dataclass(frozen=True, slots=True)
class _SessionTable:
    """Per trade date (open, close) in UTC, the close already clipped to 16:00 CT."""

    name: str
    first: date
    last: date
    bounds: dict[date, tuple[datetime, datetime]]


@functools.cache
def _calendar(name: str) -> exchange_calendars.ExchangeCalendar:
    import exchange_calendars as xcals  # lazy: pulls in pandas

    return xcals.get_calendar(name, start=CALENDAR_START, end=CALENDAR_END)


def _calendar_name(root: str) -> str:
    return _CALENDAR_BY_EXCHANGE[spec_for(root).exchange]


@functools.cache
def cme_calendar_for(root: str) -> exchange_calendars.ExchangeCalendar:
    """The ``exchange_calendars`` calendar for a root (or any symbol form); shared and cached.

    Raises :class:`actors.instruments.UnknownSymbol` for roots we do not list.
    """
    return _calendar(_calendar_name(root))


@functools.cache
def _table(name: str) -> _SessionTable:
    cal = _calendar(name)
    schedule = cal.schedule
    bounds: dict[date, tuple[datetime, datetime]] = {}
    for session, open_, close in zip(
        schedule.index, schedule["open"], schedule["close"], strict=True
    ):
        trade_date = session.date()
        daily_close = datetime.combine(trade_date, DAILY_CLOSE, CHICAGO).astimezone(UTC)
        bounds[trade_date] = (open_.to_pydatetime(), min(close.to_pydatetime(), daily_close))
    return _SessionTable(
        name=name,
        first=cal.first_session.date(),
        last=cal.last_session.date(),
        bounds=bounds,
    )


def _to_utc(ts: datetime) -> datetime:
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp must be a timezone-aware datetime, got {ts!r}")
    return ts.astimezone(UTC)


def _session_date(ts: datetime) -> date:
    """Trade date whose session window (17:00 CT the day before, onwards) contains ``ts``."""
    return (ts.astimezone(CHICAGO) + _TRADE_DATE_SHIFT).date()


def _in_range(table: _SessionTable, d: date) -> bool:
    return table.first <= d <= table.last


def _bounds(table: _SessionTable, d: date) -> tuple[datetime, datetime] | None:
    """(open, close) in UTC of trade date ``d``, or None if ``d`` has no session."""
    if _in_range(table, d):
        return table.bounds.get(d)
    if d.weekday() >= 5:
        return None
    return (
        datetime.combine(d - timedelta(days=1), DAILY_OPEN, CHICAGO).astimezone(UTC),
        datetime.combine(d, DAILY_CLOSE, CHICAGO).astimezone(UTC),
    )


def trading_day(ts: datetime) -> date:
    """CME trade date of ``ts``: from 17:00 CT a timestamp belongs to the next day's session.

    ``(ts in America/Chicago + 7 hours).date()``, with Saturday and Sunday rolled forward to
    Monday (so Friday 17:00 CT onwards and the Sunday evening open both belong to Monday).
    Holidays are not rolled: this is a pure date rule, independent of the calendar.
    """
    d = _session_date(_to_utc(ts))
    if d.weekday() >= 5:
        d += timedelta(days=7 - d.weekday())
    return d


def is_cme_session_open(ts: datetime, root: str = "ES") -> bool:
    """True while Globex trades ``root`` at ``ts`` (timezone-aware), per the module's model."""
    utc = _to_utc(ts)
    bounds = _bounds(_table(_calendar_name(root)), _session_date(utc))
    return bounds is not None and bounds[0] <= utc < bounds[1]


def _sessions_from(table: _SessionTable, d: date) -> Iterator[tuple[datetime, datetime]]:
    for offset in range(_SEARCH_DAYS):
        bounds = _bounds(table, d + timedelta(days=offset))
        if bounds is not None:
            yield bounds


def session_info(ts: datetime, root: str = "ES") -> dict[str, Any]:
    """Open state and the next transitions at ``ts``.

    ``{"open": bool, "next_open": iso|None, "next_close": iso|None, "calendar": name}``.
    Times are ISO 8601 in UTC. While open, ``next_close`` ends the current session and
    ``next_open`` starts the following one; while closed, both describe the next session.
    ``calendar`` is the library calendar's name, or ``"weekly-rule"`` when the trade date of
    ``ts`` lies outside the calendar's range.
    """
    utc = _to_utc(ts)
    table = _table(_calendar_name(root))
    d = _session_date(utc)
    upcoming = (b for b in _sessions_from(table, d) if b[1] > utc)
    current = next(upcoming, None)
    is_open = current is not None and current[0] <= utc
    if is_open:
        following = next(upcoming, None)
        next_open = following[0] if following is not None else None
        next_close = current[1] if current is not None else None
    else:
        next_open = current[0] if current is not None else None
        next_close = current[1] if current is not None else None
    return {
        "open": is_open,
        "next_open": next_open.isoformat() if next_open is not None else None,
        "next_close": next_close.isoformat() if next_close is not None else None,
        "calendar": table.name if _in_range(table, d) else WEEKLY_RULE,
    }
