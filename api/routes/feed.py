"""Feed routes: the TradingView session cookies that buy real-time quotes, and feed metrics.

Cookies (SPEC §6): ``PUT /api/feed/cookies`` stores ``sessionid`` and ``sessionid_sign`` sealed
with the broker credentials' box (:func:`api.routes.accounts.credential_box`, same key, same
rules); they are never returned and never logged, and a malformed body is answered with field
names only. ``GET`` says whether they are set and what the last check or the feed found
(``unchecked``/``valid``/``delayed``/``refused``/``expired``/``error``), plus the feed's live login state.
``POST /api/feed/cookies/check`` logs in with them now (reference ``tradingview.md`` §3.5,
see :mod:`actors.feed.tv_auth`) and records the outcome. Every change makes the feed log in
again (best effort: a feed that is down reads the cookies when it starts).

Metrics: :data:`COLLECTOR` exports the feed's counters from its status (the actor counts, the
API exports, as for every actor): ``jt_feed_failovers_total`` / ``jt_feed_failbacks_total`` per
symbol, ``jt_feed_source_active`` per symbol and source, ``jt_feed_delayed`` and
``jt_feed_market_open`` per symbol. :func:`update_metrics` is fed by ``/status``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from actors.broker.credentials import CredentialError
from actors.feed import cookies as cookie_store
from actors.feed.tv_auth import COOKIE_NAMES, fetch_auth_token
from api import metrics
from api.context import Context, get_ctx
from api.routes.accounts import credential_box

__all__ = ["COLLECTOR", "router", "update_metrics"]

log = logging.getLogger("justtrades.api.feed")

router = APIRouter(prefix="/api/feed", tags=["feed"])

FEED_CALL_TIMEOUT_S = 15.0
MAX_COOKIE_LEN = 4096
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+")
"""RFC 6265 ``cookie-octet``s: no spaces, quotes, commas, semicolons or backslashes, so a value
cannot smuggle another cookie or header into the request."""


def _bad(reason: str, fields: list[str]) -> HTTPException:
    return HTTPException(422, detail={"reason": reason, "fields": fields})


def parse_cookies(body: Any) -> dict[str, str]:
    """The two cookies from the request body; errors name fields, never values."""
    if not isinstance(body, dict):
        raise _bad("bad_cookies", ["body"])
    unknown = sorted(k for k in body if k not in COOKIE_NAMES)
    if unknown:
        raise _bad("unknown_fields", [str(k)[:64] for k in unknown])
    bad = [
        n
        for n in COOKIE_NAMES
        if not isinstance(body.get(n), str)
        or not 0 < len(body[n]) <= MAX_COOKIE_LEN
        or not _COOKIE_VALUE.fullmatch(body[n])
    ]
    if bad:
        raise _bad("bad_cookies", bad)
    return {n: body[n] for n in COOKIE_NAMES}


async def _feed_login(ctx: Context, reload: bool) -> dict[str, Any] | None:
    """The feed's login state (after logging in again when ``reload``); None if unreachable."""
    if ctx.feed is None:
        return None
    try:
        if reload:
            return await asyncio.wait_for(ctx.feed.reload_login.remote(), FEED_CALL_TIMEOUT_S)
        status = await asyncio.wait_for(ctx.feed.status.remote(), FEED_CALL_TIMEOUT_S)
    except Exception as exc:
        log.warning("feed not reached about its login: %s", type(exc).__name__)
        return None
    live = status.get("live") if isinstance(status, dict) else None
    return live.get("tradingview_login") if isinstance(live, dict) else None


async def _answer(ctx: Context, reload: bool = False) -> dict[str, Any]:
    feed = await _feed_login(ctx, reload)
    info = await run_in_threadpool(cookie_store.info, ctx.store)
    return info.as_dict() | {"feed": feed}


@router.get("/cookies", summary="Whether TradingView cookies are stored, and their status")
async def get_cookies(ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    return await _answer(ctx)


@router.put("/cookies", summary="Store TradingView session cookies (encrypted, write-only)")
async def put_cookies(
    body: Any = Body(
        ..., examples=[{"sessionid": "<from your browser>", "sessionid_sign": "<same>"}]
    ),
    ctx: Context = Depends(get_ctx),
) -> dict[str, Any]:
    cookies = parse_cookies(body)
    box = credential_box(ctx)
    await run_in_threadpool(
        cookie_store.save_cookies, ctx.store, box, cookies["sessionid"], cookies["sessionid_sign"]
    )
    log.info("tradingview cookies stored")
    return await _answer(ctx, reload=True)


@router.delete("/cookies", status_code=204, summary="Forget the TradingView cookies")
async def delete_cookies(ctx: Context = Depends(get_ctx)) -> Response:
    if not await run_in_threadpool(cookie_store.delete_cookies, ctx.store):
        raise HTTPException(404, detail={"reason": "not_set"})
    log.info("tradingview cookies deleted")
    await _feed_login(ctx, reload=True)
    return Response(status_code=204)


@router.post("/cookies/check", summary="Log in to TradingView with the stored cookies now")
async def check_cookies(ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    box = credential_box(ctx)
    try:
        cookies = await run_in_threadpool(cookie_store.load_cookies, ctx.store, box)
    except CredentialError as exc:
        raise HTTPException(
            500, detail={"reason": "cookies_unreadable", "detail": str(exc)}
        ) from None
    if cookies is None:
        raise HTTPException(404, detail={"reason": "not_set"})
    result = await fetch_auth_token(cookies, ctx.settings.feed_tradingview_www_url)
    await run_in_threadpool(cookie_store.set_status, ctx.store, result.status, result.detail)
    log.info("tradingview cookies checked: %s", result.status)
    return await _answer(ctx, reload=True)


# ----------------------------------------------------------------------------------- metrics


class FeedCollector:
    """Prometheus collector over the last feed status seen by ``/status``."""

    def __init__(self) -> None:
        self.per_symbol: dict[str, dict[str, Any]] = {}
        self.chain: list[str] = []

    def update(self, feed: Any) -> None:
        if isinstance(feed, dict) and isinstance(feed.get("per_symbol"), dict):
            self.per_symbol = feed["per_symbol"]
            self.chain = list(feed.get("chain") or [])

    def describe(self) -> list[Metric]:
        return []  # samples depend on the feed's symbols: nothing to declare up front

    def collect(self) -> Iterator[Metric]:
        failovers = CounterMetricFamily(
            "jt_feed_failovers",
            "Switches away from a source earlier in the chain",
            labels=["symbol"],
        )
        failbacks = CounterMetricFamily(
            "jt_feed_failbacks", "Switches back to a source earlier in the chain", labels=["symbol"]
        )
        active = GaugeMetricFamily(
            "jt_feed_source_active",
            "1 for the source in use per symbol",
            labels=["symbol", "source"],
        )
        delayed = GaugeMetricFamily(
            "jt_feed_delayed", "1 when the symbol's prices are delayed", labels=["symbol"]
        )
        market = GaugeMetricFamily(
            "jt_feed_market_open",
            "1 while the symbol's exchange session is open",
            labels=["symbol"],
        )
        for symbol, st in self.per_symbol.items():
            if not isinstance(st, dict):
                continue
            failovers.add_metric([symbol], float(st.get("failovers", 0)))
            failbacks.add_metric([symbol], float(st.get("failbacks", 0)))
            for source in self.chain or [st.get("source")]:
                active.add_metric([symbol, str(source)], 1.0 if st.get("source") == source else 0.0)
            if st.get("delayed") is not None:
                delayed.add_metric([symbol], 1.0 if st["delayed"] else 0.0)
            if isinstance(st.get("market"), dict):
                market.add_metric([symbol], 1.0 if st["market"].get("open") else 0.0)
        yield from (failovers, failbacks, active, delayed, market)


COLLECTOR = FeedCollector()
metrics.REGISTRY.register(COLLECTOR)  # type: ignore[arg-type]


def update_metrics(status: dict[str, Any]) -> None:
    """Called by ``/status`` with its answer (which includes the feed's status)."""
    COLLECTOR.update(status.get("feed"))
