"""What the feed actor is told to run: the ``JT_FEED`` spec plus the live sources' settings.

The supervisor hands the feed actor ``tree_config()["feed"]``: a plain string in old configs and
tests (``"simulated"``), or the dict :meth:`actors.settings.Settings.feed_config` builds.
:meth:`FeedOptions.from_source` accepts both.

Live-source chains (the first name is the primary, the rest fallbacks, tried in order per symbol):

======================================  ==========================================================
``JT_FEED``                              chain
======================================  ==========================================================
``tradingview``                          TradingView quote websocket → TradingView scanner polling
``tradovate``                            Tradovate md websocket → TradingView websocket → scanner
``scanner``                              the scanner alone
``a>b>c`` (names above)                  exactly that chain, e.g. ``tradovate>scanner``
======================================  ==========================================================

Why these defaults: the TradingView websocket is the only source that needs no broker login
(delayed without cookies, real-time with them); the scanner shares nothing with it but the
vendor, is plain HTTPS and so survives websocket-level failures; Tradovate's md socket is
real-time but needs a Tradovate login with a CME market-data subscription, so it falls back to
the TradingView pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from actors.feed.sources.scanner import DEFAULT_SCANNER_BASE
from actors.feed.sources.tradingview import DEFAULT_URL
from actors.feed.sources.tradovate_md import DEFAULT_MD_URL
from actors.feed.tv_auth import DEFAULT_WWW_URL

__all__ = ["LIVE_SOURCES", "FeedOptions", "parse_chain"]

LIVE_SOURCES = ("tradingview", "scanner", "tradovate")
_DEFAULT_CHAINS = {
    "tradingview": ("tradingview", "scanner"),
    "tradovate": ("tradovate", "tradingview", "scanner"),
    "scanner": ("scanner",),
}


def parse_chain(spec: str) -> tuple[str, ...] | None:
    """The live-source chain of a feed spec, or None for ``simulated``/``replay:…``/``none``.
    Raises ``ValueError`` for an unknown name or a name listed twice."""
    spec = spec.strip()
    if spec in ("simulated", "none") or spec.startswith("replay:"):
        return None
    if ">" not in spec:
        if spec not in _DEFAULT_CHAINS:
            raise ValueError(
                f"unknown feed {spec!r}: simulated, replay:<csv>, none, "
                f"{', '.join(_DEFAULT_CHAINS)} or a chain like tradovate>scanner"
            )
        return _DEFAULT_CHAINS[spec]
    names = tuple(n.strip() for n in spec.split(">"))
    unknown = [n for n in names if n not in LIVE_SOURCES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"bad feed chain {spec!r}: names from {LIVE_SOURCES}, each once")
    return names


@dataclass(frozen=True)
class FeedOptions:
    """Everything the live sources need; the defaults are production's (see Settings)."""

    spec: str = "simulated"
    tradingview_url: str = DEFAULT_URL
    tradingview_www_url: str = DEFAULT_WWW_URL
    scanner_url: str = DEFAULT_SCANNER_BASE
    scanner_market: str = "futures"
    scanner_interval_s: float = 5.0
    #: no frame at all for this long: the source is down for the feed (it fails over); the
    #: TradingView client itself reconnects after twice as long (its own stale timer)
    stale_s: float = 15.0
    #: market open and no tick of a symbol for this long: that source is stale for it (0: off)
    symbol_stale_s: float = 120.0
    #: a better source must be healthy this long before the feed switches back to it
    recover_s: float = 10.0
    #: how often the feed checks its sources' health
    check_s: float = 0.5
    #: at most one new token per this many seconds when TradingView serves delayed data
    auth_retry_s: float = 300.0
    tradovate_md_url: str = DEFAULT_MD_URL
    tradovate_demo_url: str = "https://demo.tradovateapi.com/v1"
    tradovate_live_url: str = "https://live.tradovateapi.com/v1"
    #: the accounts row whose Tradovate login streams md (None: the first one with credentials)
    tradovate_account_id: int | None = None
    database_url: str | None = field(default=None, repr=False)  # may carry a password
    secret_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_source(cls, source: str | Mapping[str, Any]) -> FeedOptions:
        if isinstance(source, str):
            return cls(spec=source)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(source) - known)
        if unknown:
            raise ValueError(f"unknown feed option(s): {unknown}")
        return cls(**dict(source))

    @property
    def chain(self) -> tuple[str, ...] | None:
        return parse_chain(self.spec)
