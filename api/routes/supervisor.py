"""The supervisor's children: their state, and a restart by hand of one it gave up on.

A child is FAILED when it restarted more than the budget allows (see :mod:`actors.restarts`);
it then stays down until a person restarts it here. A recorder host restarted this way loads its
live pairs HALTED: each is resumed with ``POST /api/traders/{id}/resolve`` (``resume``) once
the person has looked at it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from api.context import Context, get_ctx

router = APIRouter(prefix="/api/supervisor", tags=["system"])

STATUS_FOR = {"unknown_child": 404, "not_failed": 409}


def _supervisor(ctx: Context) -> Any:
    if ctx.supervisor is None:
        raise HTTPException(503, detail={"reason": "no_supervisor"})
    return ctx.supervisor


@router.get("/children", summary="The actor tree's children: state, restarts, back-off")
async def children(ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    tree = await _supervisor(ctx).tree.remote()
    return list(tree["children"])


@router.post(
    "/children/{name}/restart",
    summary="Restart a FAILED child by hand (404 unknown, 409 not FAILED)",
)
async def restart_child(name: str, ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    out = await _supervisor(ctx).restart_child.remote(name)
    if not out["ok"]:
        detail = {"reason": out["reason"], "child": out.get("child")}
        raise HTTPException(STATUS_FOR.get(out["reason"], 409), detail=detail)
    # the child is a new actor: this process's cached handles point at the dead one
    await run_in_threadpool(ctx.refresh_handles)
    ctx._cache.pop("status", None)
    return dict(out["child"])
