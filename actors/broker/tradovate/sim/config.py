"""Static configuration of the Tradovate simulator and the small time helpers every part uses.

SIMULATOR ONLY: nothing here talks to Tradovate. Citations ``§n`` point at
``reference/tradovate.md`` (the research notes); ``[S1]`` is the official OpenAPI spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["SimConfig", "SimUser", "iso", "trade_date"]

_CHICAGO = ZoneInfo("America/Chicago")


@dataclass(slots=True)
class SimUser:
    """One Tradovate login and the accounts it owns.

    ``accounts`` are account *names* (what ``accountSpec`` carries, e.g. ``DEMO0001``); the
    simulator assigns the integer entity ids (§4.6: the id, not the name, is ``accountId``).
    """

    name: str = "simuser"
    password: str = "simpass"
    user_id: int = 1
    email: str = "simuser@example.invalid"
    full_name: str = "Simulated User"
    accounts: list[str] = field(default_factory=lambda: ["DEMO0001"])


@dataclass(slots=True)
class SimConfig:
    """Everything fixed for the lifetime of one simulator instance.

    * ``environment`` — ``demo`` or ``live``; only changes ``hasLive`` and whether
      ``approved_devices`` is enforced (§2.1: only approved devices may trade live accounts).
    * ``cid`` / ``sec`` — when set, ``accesstokenrequest`` must carry them (§2.1); None accepts
      any API key, which is what most tests want.
    * ``oauth_client_id`` / ``oauth_client_secret`` — same for ``auth/oauthtoken`` (§2.5).
    * ``approved_devices`` — live only: orders from a session whose ``deviceId`` is not in this
      set get HTTP 401 (§2.1, [S3] UnderstandingDeviceId.md). None disables the check.
    * ``on`` — the calendar day that decides which contract is the front month (contract table
      from :mod:`actors.instruments`); None means today.
    * ``initial_cash`` — starting ``cashBalance.amount`` of every account, USD.
    * ``tradingview_flag`` — §6: no official source; when not None, ``auth/me`` carries
      ``tradingViewTradingEnabled`` with this value so clients can be tested against both.
    """

    users: list[SimUser] = field(default_factory=lambda: [SimUser()])
    environment: str = "demo"
    cid: str | None = None
    sec: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    approved_devices: set[str] | None = None
    on: date | None = None
    initial_cash: float = 50_000.0
    tradingview_flag: bool | None = None

    def __post_init__(self) -> None:
        if self.environment not in ("demo", "live"):
            raise ValueError(f"environment must be 'demo' or 'live', got {self.environment!r}")
        names = [a for u in self.users for a in u.accounts]
        if len(names) != len(set(names)):
            raise ValueError("account names must be unique across users")
        if len({u.user_id for u in self.users}) != len(self.users):
            raise ValueError("user ids must be unique")


def iso(ts: float) -> str:
    """Epoch seconds → the ISO form Tradovate uses (``2016-11-04T00:02:36.626Z``, §5.4)."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def trade_date(ts: float) -> dict[str, int]:
    """CME trade date of an instant as Tradovate's ``TradeDate`` object ([S1] schema).

    The CME Globex session that opens at 17:00 Chicago time belongs to the next day's trade
    date. Weekends and holidays are not skipped (a Sunday-evening fill is dated Monday, which
    is right; a Friday-evening one would be Saturday, which cannot happen while CME is closed).
    """
    local = datetime.fromtimestamp(ts, _CHICAGO)
    day = local.date() + timedelta(days=1) if local.hour >= 17 else local.date()
    return {"year": day.year, "month": day.month, "day": day.day}
