"""``GET /api/reconcile``: every broker position next to the live pairs that trade it.

Read from the actors' memory (no broker call): each host's groups with the reconciler's verdict
(in sync, drift, unexplained), and each broker actor's open positions that no live pair trades
(opened by hand: shown, never flattened silently).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from api.context import Context, get_ctx
from api.routes.kill import _actors

router = APIRouter(tags=["traders"])


@router.get("/api/reconcile", summary="Broker positions vs live pairs, with drift")
async def reconcile(ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    views = await asyncio.gather(*(h.reconcile_view.remote() for h in ctx.hosts))
    groups = [g for view in views for g in view]
    brokers = await run_in_threadpool(_actors, ctx)
    statuses = await asyncio.gather(*(b.status.remote() for b in brokers))
    positions = await asyncio.gather(*(b.positions.remote() for b in brokers))
    covered = {(g["broker"], g["account"], g["symbol"]) for g in groups}
    unmanaged = [
        {"broker": st["name"], **dataclasses.asdict(p)}
        for st, ps in zip(statuses, positions, strict=True)
        for p in ps
        if (st["name"], p.account, p.symbol) not in covered
    ]
    return {
        "groups": groups,
        "drift": [g for g in groups if g["verdict"] in ("drift", "unexplained")],
        "unmanaged_positions": unmanaged,
    }
