"""Traders: links recorder → (account, sub-account) with a quantity multiplier, a contract cap,
close-only, and per-trader take-profit/stop-loss overrides (SPEC §5).

A user links only their own recorders and accounts; anything else is a 404, exactly like an id
that does not exist. One recorder is linked at most once per sub-account (two traders mirroring
one recorder into one broker position would fight over it).

Every change reloads the recorder's live pairs on its host (``load_traders``): an enabled
trader trades from the next signal on; a disabled one that still holds a position keeps
managing it close-only until flat (its protective stop stays at the broker meanwhile). A trader
with an open position cannot be deleted (409): nobody would manage that position any more.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from actors.store import Trader, repo
from api.context import Context, get_ctx
from api.schemas_accounts import TraderIn, TraderOut, TraderPatch

log = logging.getLogger("justtrades.api.traders")

router = APIRouter(prefix="/api/traders", tags=["traders"])


async def _reload(ctx: Context, recorder_id: int) -> None:
    """Tell the recorder's host; an unreachable host loads the links when it (re)starts."""
    if not ctx.hosts:
        return
    try:
        await ctx.host_for(recorder_id).load_traders.remote(recorder_id)
    except Exception as exc:  # the row is stored; the host reads it on its next start
        log.warning("host did not reload traders of recorder %s: %r", recorder_id, exc)


def _not_found(what: str = "not_found") -> HTTPException:
    return HTTPException(404, detail={"reason": what})


def _owned_trader(ctx: Context, trader_id: int) -> Trader:
    with ctx.store.read() as s:
        trader = repo.get_trader(s, trader_id)
        if trader is None or trader.owner_id != ctx.user_id:
            raise _not_found()
        s.expunge(trader)
        return trader


def _resolve_sub_account(
    s: Session, ctx: Context, account_id: int, sub_account_id: int | None
) -> int:
    """Check the account is the caller's and the sub-account belongs to it; with no
    sub-account given, the account's only one."""
    acc = repo.get_account(s, account_id)
    if acc is None or acc.owner_id != ctx.user_id:
        raise _not_found("account_not_found")
    if sub_account_id is None:
        subs = repo.list_sub_accounts(s, account_id)
        if len(subs) != 1:
            raise HTTPException(
                422,
                detail={
                    "reason": "sub_account_required",
                    "detail": f"the account has {len(subs)} sub-accounts; name one"
                    + (" (sync the account first)" if not subs else ""),
                },
            )
        assert subs[0].id is not None
        return subs[0].id
    sub = repo.get_sub_account(s, sub_account_id)
    if sub is None or sub.account_id != account_id:
        raise _not_found("sub_account_not_found")
    return sub_account_id


def _check_new(ctx: Context, body: TraderIn) -> int:
    with ctx.store.read() as s:
        rec = repo.get_recorder(s, body.recorder_id)
        if rec is None or rec.owner_id != ctx.user_id:
            raise _not_found("recorder_not_found")
        sub_id = _resolve_sub_account(s, ctx, body.account_id, body.sub_account_id)
        dup = repo.list_traders(s, recorder_id=body.recorder_id, sub_account_id=sub_id)
        if dup:
            raise HTTPException(409, detail={"reason": "trader_exists", "trader_id": dup[0].id})
        return sub_id


@router.get("", response_model=list[TraderOut])
async def list_traders(
    recorder_id: int | None = Query(None),
    account_id: int | None = Query(None),
    ctx: Context = Depends(get_ctx),
) -> list[TraderOut]:
    def read() -> list[Trader]:
        with ctx.store.read() as s:
            return repo.list_traders(s, ctx.user_id, recorder_id=recorder_id, account_id=account_id)

    return [TraderOut.of(t) for t in await run_in_threadpool(read)]


@router.post("", response_model=TraderOut, status_code=201)
async def create_trader(body: TraderIn, ctx: Context = Depends(get_ctx)) -> TraderOut:
    sub_id = await run_in_threadpool(_check_new, ctx, body)
    try:
        trader = await _create(ctx, body, sub_id)
    except IntegrityError as exc:  # a concurrent request linked the same pair first
        raise HTTPException(409, detail={"reason": "trader_exists"}) from exc
    await _reload(ctx, trader.recorder_id)
    return TraderOut.of(trader)


async def _create(ctx: Context, body: TraderIn, sub_id: int) -> Any:
    return await run_in_threadpool(
        lambda: repo.create_trader(
            ctx.store,
            ctx.user_id,
            body.recorder_id,
            body.account_id,
            sub_id,
            enabled=body.enabled,
            multiplier=body.multiplier,
            max_contracts=body.max_contracts,
            close_only=body.close_only,
            overrides=body.overrides.model_dump(mode="json", exclude_none=True)
            | {"reconcile_policy": body.reconcile_policy},
        )
    )


@router.get("/{trader_id}", response_model=TraderOut)
async def get_trader(trader_id: int, ctx: Context = Depends(get_ctx)) -> TraderOut:
    return TraderOut.of(await run_in_threadpool(_owned_trader, ctx, trader_id))


@router.patch("/{trader_id}", response_model=TraderOut)
async def update_trader(
    trader_id: int, body: TraderPatch, ctx: Context = Depends(get_ctx)
) -> TraderOut:
    """Change the fields sent; ``max_contracts: null`` removes the cap, ``overrides``
    replaces all overrides (send ``{}`` to clear them)."""
    trader = await run_in_threadpool(_owned_trader, ctx, trader_id)
    sent = body.model_fields_set
    kwargs: dict[str, object] = {}
    if "sub_account_id" in sent and body.sub_account_id != trader.sub_account_id:

        def check_sub() -> int:
            with ctx.store.read() as s:
                return _resolve_sub_account(s, ctx, trader.account_id, body.sub_account_id)

        kwargs["sub_account_id"] = await run_in_threadpool(check_sub)
    if "max_contracts" in sent:
        kwargs["max_contracts"] = body.max_contracts
    if body.overrides is not None or body.reconcile_policy is not None:
        old = dict(trader.overrides or {})
        policy = body.reconcile_policy or old.get("reconcile_policy", "alert")
        base = (
            body.overrides.model_dump(mode="json", exclude_none=True)
            if body.overrides is not None
            else {k: v for k, v in old.items() if k != "reconcile_policy"}
        )
        kwargs["overrides"] = base | {"reconcile_policy": policy}
    try:
        updated = await _update(ctx, trader_id, body, kwargs)
    except IntegrityError as exc:  # moved onto a sub-account this recorder already trades
        raise HTTPException(409, detail={"reason": "trader_exists"}) from exc
    if updated is None:
        raise _not_found()
    await _reload(ctx, updated.recorder_id)
    return TraderOut.of(updated)


async def _update(
    ctx: Context, trader_id: int, body: TraderPatch, kwargs: dict[str, object]
) -> Any:
    return await run_in_threadpool(
        lambda: repo.update_trader(
            ctx.store,
            trader_id,
            enabled=body.enabled,
            multiplier=body.multiplier,
            close_only=body.close_only,
            **kwargs,  # type: ignore[arg-type]
        )
    )


@router.delete("/{trader_id}", status_code=204)
async def delete_trader(trader_id: int, ctx: Context = Depends(get_ctx)) -> None:
    trader = await run_in_threadpool(_owned_trader, ctx, trader_id)

    def holding() -> bool:
        with ctx.store.read() as s:
            return any(
                p.trader_id == trader_id and p.quantity
                for p in repo.open_positions(s, trader.recorder_id)
            )

    if await run_in_threadpool(holding):
        raise HTTPException(
            409,
            detail={
                "reason": "trader_has_position",
                "detail": "disable the trader (it then only closes) and wait until it is flat",
            },
        )
    await run_in_threadpool(repo.delete_trader, ctx.store, trader_id)
    await _reload(ctx, trader.recorder_id)


@router.get(
    "/{trader_id}/orders",
    summary="The trader's orders, newest first (rejections keep the broker's reason)",
)
async def trader_orders(
    trader_id: int, status: str | None = Query(None), ctx: Context = Depends(get_ctx)
) -> list[dict[str, Any]]:
    await run_in_threadpool(_owned_trader, ctx, trader_id)

    def read() -> list[dict[str, Any]]:
        with ctx.store.read() as s:
            return [o.model_dump() for o in repo.list_orders(s, trader_id=trader_id, status=status)]

    return await run_in_threadpool(read)


class ResolveIn(BaseModel):
    symbol: str
    action: Literal["adopt", "external", "resume"] = Field(
        description="adopt the broker's position into the pair, declare it external (opened by "
        "hand: not the pair's, expected from now on), or resume as is"
    )


@router.post("/{trader_id}/resolve", summary="Decide about a HALTED trader's broker position")
async def resolve(
    trader_id: int, body: ResolveIn, ctx: Context = Depends(get_ctx)
) -> dict[str, Any]:
    trader = await run_in_threadpool(_owned_trader, ctx, trader_id)
    if not ctx.hosts:
        raise HTTPException(503, detail={"reason": "no_hosts"})
    try:
        return await ctx.host_for(trader.recorder_id).resolve.remote(
            trader_id, body.symbol, body.action
        )
    except Exception as exc:  # not loaded here, or no such contract in the pair
        raise HTTPException(
            409, detail={"reason": "cannot_resolve", "detail": str(exc)[:300]}
        ) from None


@router.get("/{trader_id}/positions", summary="The trader's live positions (from broker fills)")
async def trader_positions(trader_id: int, ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    trader = await run_in_threadpool(_owned_trader, ctx, trader_id)
    if not ctx.hosts:
        return []
    rows = await ctx.host_for(trader.recorder_id).live_positions.remote(trader.recorder_id)
    return [r for r in rows if r.get("trader_id") == trader_id]
