"""TradingView scanner fallback: poll ``POST {base}/{market}/scan`` for the last close.

Used when the quote websocket is unavailable (reference ``tradingview.md`` §3.6). The request asks
for the ``close`` column only: it is on §3.6's list of columns known to work, and it is all a
price fallback needs. (A predecessor asked for columns that do not exist, and the whole request
failed.) The scanner is polled, carries no trade time, and is delayed for anonymous users
(§3.6), so it is strictly a fallback: each tick's ``ts`` is the local time the response arrived.

Pure request building (:func:`build_scan_request`) and response parsing
(:func:`parse_scan_response`) are separate from the polling loop (:class:`ScannerPoller`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import httpx

from actors.feed.sources.base import Tick
from actors.feed.sources.tradingview import tv_symbol

__all__ = [
    "DEFAULT_SCANNER_BASE",
    "SCAN_COLUMNS",
    "ScanError",
    "ScannerPoller",
    "build_scan_request",
    "parse_scan_response",
    "scan_url",
]

log = logging.getLogger("justtrades.feed.scanner")

DEFAULT_SCANNER_BASE = "https://scanner.tradingview.com"
"""§3.6."""

SCAN_COLUMNS: tuple[str, ...] = ("close",)
"""§3.6: ``close`` is a column known to work; nothing else is requested."""


class ScanError(Exception):
    """The scanner could not be reached, answered non-2xx, or sent a body not in the §3.6 shape."""


def scan_url(base: str, market: str) -> str:
    """``{base}/{market}/scan`` (§3.6; ``futures`` is the market for CME futures)."""
    return f"{base.rstrip('/')}/{market}/scan"


def build_scan_request(tickers: Sequence[str]) -> dict[str, Any]:
    """The §3.6 body: ``{"symbols": {"tickers": [...], "query": {"types": []}}, "columns": ["close"]}``."""
    if not tickers:
        raise ValueError("build_scan_request needs at least one ticker")
    return {
        "symbols": {"tickers": list(tickers), "query": {"types": []}},
        "columns": list(SCAN_COLUMNS),
    }


def parse_scan_response(body: Any) -> dict[str, float]:
    """``{ticker: close}`` from ``{"totalCount": n, "data": [{"s": ticker, "d": [close]}]}`` (§3.6).

    A row whose close is ``null`` or not a finite number is left out (no price known); so is a
    ticker the scanner does not return at all (UNCONFIRMED: the reference does not say how the
    scanner answers an unknown ticker; omission is what we handle). Raises ``ScanError`` when
    the body is not in that shape at all.
    """
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ScanError(f"scan response without a 'data' list: {str(body)[:200]!r}")
    closes: dict[str, float] = {}
    for row in body["data"]:
        if not isinstance(row, dict) or not isinstance(row.get("s"), str):
            raise ScanError(f"scan row without a ticker 's': {row!r}")
        values = row.get("d")
        if not isinstance(values, list) or len(values) < len(SCAN_COLUMNS):
            raise ScanError(f"scan row {row['s']!r}: 'd' is not a list of {SCAN_COLUMNS}")
        close = values[0]
        if isinstance(close, bool) or not isinstance(close, int | float):
            continue
        if math.isfinite(close):
            closes[row["s"]] = float(close)
    return closes


class ScannerPoller:
    """Polls the scanner for our symbols every ``interval_s`` and emits a tick when a close changes.

    Failures (connection refused, timeout, non-2xx, bad body) are counted and shown in
    :meth:`status`; polling simply continues at the same interval, so the fallback recovers by
    itself when the scanner comes back.
    """

    def __init__(
        self,
        symbols: Iterable[str] = (),
        *,
        base: str = DEFAULT_SCANNER_BASE,
        market: str = "futures",
        interval_s: float = 5.0,
        timeout_s: float = 5.0,
        on: date | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self.base, self.market = base, market
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self._on = on
        self._client = client
        self._clock = clock
        self._tickers: dict[str, list[str]] = {}  # TradingView ticker -> our symbols
        self._last: dict[str, float] = {}  # ticker -> last close emitted
        self._seen: dict[str, float] = {}  # ticker -> local time of the last poll that priced it
        self._stopping = asyncio.Event()
        self.polls = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.ticks = 0
        self.last_error: str | None = None
        self.last_ok_at: float | None = None
        self.add_symbols(symbols)

    def add_symbols(self, symbols: Iterable[str]) -> None:
        """Include more symbols from the next poll on (``UnknownSymbol`` for non-contracts)."""
        for ours, tv in [(s, tv_symbol(s, self._on)) for s in symbols]:
            owners = self._tickers.setdefault(tv, [])
            if ours not in owners:
                owners.append(ours)

    @property
    def tickers(self) -> list[str]:
        return list(self._tickers)

    async def poll_once(self, client: httpx.AsyncClient | None = None) -> dict[str, float]:
        """One scan: ``{our symbol: close}`` for the symbols the scanner priced.

        Raises ``ScanError`` on any transport error, non-2xx answer or malformed body.
        """
        async with contextlib.AsyncExitStack() as stack:
            http = client or self._client
            if http is None:
                http = await stack.enter_async_context(httpx.AsyncClient(timeout=self.timeout_s))
            closes = await self._scan(http)
        return {ours: px for tv, px in closes.items() for ours in self._tickers.get(tv, ())}

    async def _scan(self, http: httpx.AsyncClient) -> dict[str, float]:
        """``{ticker: close}`` from one request (pure parts: build/parse functions above)."""
        if not self._tickers:
            return {}
        try:
            resp = await http.post(
                scan_url(self.base, self.market),
                json=build_scan_request(list(self._tickers)),
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as e:
            raise ScanError(f"{type(e).__name__}: {e}") from None
        if resp.status_code // 100 != 2:
            raise ScanError(f"scanner answered HTTP {resp.status_code}: {resp.text[:200]!r}")
        try:
            body = resp.json()
        except ValueError as e:
            raise ScanError(f"scanner body is not JSON: {e}") from None
        return parse_scan_response(body)

    def seen_at(self, symbol: str) -> float | None:
        """Local time of the last successful poll that priced ``symbol`` (one of ours)."""
        times = [
            self._seen[tv]
            for tv, owners in self._tickers.items()
            if symbol in owners and tv in self._seen
        ]
        return max(times, default=None)

    def _emit(self, closes: Mapping[str, float], on_tick: Callable[[Tick], None]) -> None:
        ts = self._clock()
        for tv in closes:
            self._seen[tv] = ts
        for tv, price in closes.items():
            owners = self._tickers.get(tv)
            if not owners or self._last.get(tv) == price:
                continue
            self._last[tv] = price
            for ours in owners:
                self.ticks += 1
                on_tick(Tick(ours, ts, price))

    async def run(self, on_tick: Callable[[Tick], None]) -> None:
        """Poll until :meth:`stop`; emits a tick per symbol whenever its close changes."""
        async with contextlib.AsyncExitStack() as stack:
            client = self._client or await stack.enter_async_context(
                httpx.AsyncClient(timeout=self.timeout_s)
            )
            while not self._stopping.is_set():
                self.polls += 1
                try:
                    closes = await self._scan(client)
                except ScanError as e:
                    self.failures += 1
                    self.consecutive_failures += 1
                    self.last_error = str(e)
                    log.warning("tradingview scanner poll failed: %s", e)
                else:
                    self.consecutive_failures = 0
                    self.last_ok_at = self._clock()
                    self._emit(closes, on_tick)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    async def stop(self) -> None:
        """Make ``run`` return after the poll in progress (if any)."""
        self._stopping.set()

    def status(self) -> dict[str, Any]:
        return {
            "source": "tradingview-scanner",
            "url": scan_url(self.base, self.market),
            "available": self.polls > 0 and self.consecutive_failures == 0,
            "polls": self.polls,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "ticks": self.ticks,
            "last_error": self.last_error,
            "last_ok_at": self.last_ok_at,
            "last_close": {
                ours: self._last[tv]
                for tv, owners in self._tickers.items()
                if tv in self._last
                for ours in owners
            },
        }
