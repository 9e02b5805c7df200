""":class:`LiveFeed` runs a failover chain of live price sources for the feed actor.

It starts every source of the chain (hot standby; adapters in :mod:`actors.feed.adapters`),
routes their ticks through the :class:`~actors.feed.failover.FailoverRouter`, checks health
every ``check_s`` (with the CME session state from :mod:`actors.sessions`), logs and counts
switches, and keeps the TradingView login (:class:`~actors.feed.login.FeedLogin`) current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from actors.feed.adapters import (
    LiveSource,
    ScannerSource,
    TradingViewSource,
    TradovateSource,
    tradovate_login,
)
from actors.feed.failover import FailoverRouter, Switch
from actors.feed.login import FeedLogin
from actors.feed.options import FeedOptions
from actors.feed.sources.base import Tick
from actors.sessions import session_info

__all__ = ["LiveFeed", "market_status"]

log = logging.getLogger("justtrades.feed")

SWITCH_LOG = 50


def market_status(symbol: str, now: float) -> dict[str, Any]:
    """CME hours for ``symbol`` at ``now`` (:func:`actors.sessions.session_info`)."""
    info = session_info(datetime.fromtimestamp(now, UTC), symbol)
    return {"open": info["open"], "next_open": info["next_open"], "next_close": info["next_close"]}


class LiveFeed:
    """A chain of live sources for ``symbols``; delivered ticks go to ``publish``.

    ``tradovate_login`` (:func:`tradovate_login`'s result) is looked up when :meth:`run` starts
    unless given."""

    def __init__(
        self,
        options: FeedOptions,
        symbols: list[str],
        publish: Callable[[list[Tick]], None],
        *,
        tradovate_login: tuple[Any, str] | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        chain = options.chain
        if not chain:
            raise ValueError(f"{options.spec!r} is not a live-source chain")
        self.options, self.symbols, self.publish, self._clock = options, symbols, publish, clock
        self.chain = chain
        self.login = FeedLogin(options, clock)
        self._tradovate_login = tradovate_login
        self.router = FailoverRouter(
            chain,
            symbols,
            now=clock(),
            symbol_stale_s=options.symbol_stale_s,
            recover_s=options.recover_s,
            grace_s=options.stale_s,
        )
        self.sources: dict[str, LiveSource] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.switches: deque[Switch] = deque(maxlen=SWITCH_LOG)
        self.market: dict[str, dict[str, Any]] = {}
        self.failovers = self.failbacks = 0
        self.checks = self.errors = 0
        self._login_lock = asyncio.Lock()  # one re-login / reconnect at a time
        self._login_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Start the sources and check their health until cancelled."""
        # Load the exchange calendar off the event loop (pandas import, schedule build).
        if self.symbols:
            await asyncio.to_thread(market_status, self.symbols[0], self._clock())
        if "tradovate" in self.chain and self._tradovate_login is None:
            try:
                self._tradovate_login = await asyncio.to_thread(tradovate_login, self.options)
            except Exception as exc:  # a broken store must not stop the other sources
                self._tradovate_login = f"tradovate login not read: {type(exc).__name__}"
        token = await self.login.login() if "tradingview" in self.chain else None
        for name in self.chain:
            self._start(self._build(name, token))
        try:
            while True:
                try:
                    await self.check()
                except Exception:  # one bad check must not end the feed
                    self.errors += 1
                    log.exception("feed health check failed")
                await asyncio.sleep(self.options.check_s)
        finally:
            if self._login_task is not None:
                self._login_task.cancel()
            for name in list(self.sources):
                await self._stop(name)

    def _build(self, name: str, token: str | None) -> LiveSource:
        if name == "tradingview":
            return TradingViewSource(self.symbols, self.options, token)
        if name == "scanner":
            return ScannerSource(self.symbols, self.options)
        return TradovateSource(self.symbols, self.options, self._tradovate_login or "no login")

    def _start(self, source: LiveSource) -> None:
        self.sources[source.name] = source

        def on_tick(tick: Tick, name: str = source.name) -> None:
            out = self.router.on_tick(name, tick, self._clock())
            if out is not None:
                self.publish([out])

        self._tasks[source.name] = asyncio.get_running_loop().create_task(source.run(on_tick))

    async def _stop(self, name: str) -> None:
        """Stop a source; it stays listed (stopped) until replaced or :meth:`run` ends."""
        source, task = self.sources.get(name), self._tasks.pop(name, None)
        if source is not None:
            await source.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5.0)
            task.cancel()

    async def reconnect_tradingview(self, token: str | None) -> None:
        """Replace the TradingView client (a new token, or anonymous)."""
        if "tradingview" in self.chain:
            await self._stop("tradingview")
            self._start(self._build("tradingview", token))

    async def reload_login(self) -> dict[str, Any]:
        """Cookies changed or were checked (API): log in again; reconnect TradingView when that
        changed the token (a new token, or none any more)."""
        if "tradingview" in self.chain:
            async with self._login_lock:
                token = await self.login.login()
                tv = self.sources.get("tradingview")
                if not (isinstance(tv, TradingViewSource) and tv.uses(token)):
                    await self.reconnect_tradingview(token)
        return self.login.status()

    # -- health ---------------------------------------------------------------------------------

    async def check(self) -> None:
        now = self._clock()
        self.checks += 1
        healths = {n: s.healths(self.symbols, now) for n, s in self.sources.items()}
        for symbol in self.symbols:
            market = self.market[symbol] = market_status(symbol, now)
            per_source = {n: h[symbol] for n, h in healths.items()}
            switch, catch_up = self.router.evaluate(symbol, per_source, now, market["open"])
            if switch is not None:
                self._note(switch)
            if catch_up is not None:
                self.publish([catch_up])
        if self._login_task is None or self._login_task.done():
            # In its own task: a re-login waits on HTTP, health checks must not.
            self._login_task = asyncio.get_running_loop().create_task(self._check_login(now))

    def _note(self, switch: Switch) -> None:
        self.switches.append(switch)
        if switch.kind == "failover":
            self.failovers += 1
        else:
            self.failbacks += 1
        log.warning(
            "feed %s for %s: %s -> %s (%s)",
            switch.kind, switch.symbol, switch.source_from, switch.source_to, switch.reason,
        )  # fmt: skip

    async def _check_login(self, now: float) -> None:
        try:
            async with self._login_lock:
                await self._check_login_locked(now)
        except Exception:
            self.errors += 1
            log.exception("tradingview login check failed")

    async def _check_login_locked(self, now: float) -> None:
        tv = self.sources.get("tradingview")
        if not isinstance(tv, TradingViewSource):
            return
        refused = tv.refuses_token()
        if tv.authenticated and (refused or tv.all_delayed()):
            reconnect, token = await self.login.on_delayed(refused)
            if reconnect:
                await self.reconnect_tradingview(token)
        elif tv.authenticated and tv.any_real_time():
            await self.login.on_real_time()
        elif not tv.authenticated and self.login.retry_due(now):
            token = await self.login.login()  # the last failure may have passed: retry
            if token is not None:
                await self.reconnect_tradingview(token)

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = self._clock()
        per_symbol = {}
        for symbol in self.symbols:
            st = self.router.route_status(symbol, now)
            st["market"] = self.market.get(symbol)  # None until the first check
            per_symbol[symbol] = st
        return {
            "chain": list(self.chain),
            "failovers": self.failovers,
            "failbacks": self.failbacks,
            "checks": self.checks,
            "errors": self.errors,
            "switches": [s.as_dict() for s in self.switches],
            "symbols": per_symbol,
            "sources": {n: s.status() for n, s in self.sources.items()},
            "tradingview_login": self.login.status(),
        }
