"""Health, status, metrics, all open positions, and pushing ticks into the feed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from ray.exceptions import RayActorError

from api import metrics
from api.context import Context, get_ctx
from api.routes import feed as feed_routes
from api.schemas import TicksIn

router = APIRouter(tags=["system"])

STATUS_CACHE_S = 0.3


@router.get("/health", summary="Liveness")
async def health() -> dict[str, Any]:
    return {"ok": True, "ts": time.time()}


async def _gather(calls: list[Any], timeout: float = 3.0) -> list[Any]:
    async def one(ref: Any) -> Any:
        try:
            return await asyncio.wait_for(ref, timeout)
        except Exception as exc:  # an actor that is down is shown as such, not a 500
            return {"error": repr(exc)}

    return await asyncio.gather(*(one(c) for c in calls))


@router.get("/status", summary="Actor tree, feeds, prices, open positions")
async def status(ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    cached = ctx.cached("status", STATUS_CACHE_S)
    if cached is not None:
        return cached
    tree, feed, *hosts = await _gather(
        [ctx.supervisor.tree.remote(), ctx.feed.status.remote()]
        + [h.status.remote() for h in ctx.hosts]
    )
    out = {
        "ts": time.time(),
        "tree": tree,
        "feed": feed,
        "hosts": hosts,
        "open_positions": sum(h.get("open_positions", 0) for h in hosts if isinstance(h, dict)),
        # webhook signals handed to the hosts, over their direct channels or through Ray
        "signal_calls": {
            way: sum(d.handle.sent[way] for d in ctx.dispatchers) for way in ("channel", "ray")
        },
    }
    metrics.update_from_status(out)
    feed_routes.update_metrics(out)
    return ctx.remember("status", out)


@router.get("/metrics", summary="Prometheus metrics")
async def prometheus(ctx: Context = Depends(get_ctx)) -> Response:
    await status(ctx)
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/api/positions", tags=["positions"], summary="Every open position, live")
async def all_positions(ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    parts = await asyncio.gather(*(h.positions.remote() for h in ctx.hosts))
    return [p for part in parts for p in part]


@router.post("/api/feed/ticks", tags=["feed"], summary="Publish ticks through the feed")
async def push_ticks(body: TicksIn, ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    """For replays, demos and external price sources: the ticks go through the FeedActor like
    its own source's, in order. With ``wait`` the answer comes after every host applied them."""
    now = time.time()
    ticks = [{"symbol": t.symbol, "price": t.price, "ts": t.ts or now} for t in body.ticks]
    try:
        n = await ctx.feed.push.remote(ticks)
    except RayActorError as exc:  # down or restarting: nothing was published, send them again
        raise HTTPException(503, detail={"reason": "feed_unavailable", "detail": str(exc)}) from exc
    except Exception as exc:
        raise HTTPException(422, detail={"reason": "bad_ticks", "detail": str(exc)}) from exc
    try:
        drained = await ctx.feed.drain.remote() if body.wait else False
    except RayActorError as exc:  # the feed died with them: they may not have reached every host
        raise HTTPException(503, detail={"reason": "feed_unavailable", "detail": str(exc)}) from exc
    return {"accepted": n, "drained": drained}
