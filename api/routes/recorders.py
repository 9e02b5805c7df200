"""Recorders: CRUD, and per recorder its signals, live positions, trades, stats and reset.

History comes from the store; live positions come from the recorder's host (in-memory state the
actor already holds). Nothing here ever calls a broker.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from actors.instruments import UnknownSymbol, spec_for
from actors.recorder.stats import TradeRow, compute_stats
from actors.store import Recorder, Trade, models, repo
from api.context import Context, get_ctx
from api.schemas import RecorderIn, RecorderOut, RecorderPatch, SignalOut, TradeOut

router = APIRouter(prefix="/api/recorders", tags=["recorders"])


def _check_symbol(symbol: str) -> None:
    try:
        spec_for(symbol)
    except UnknownSymbol as exc:
        raise HTTPException(422, detail={"reason": "unknown_symbol", "symbol": exc.symbol}) from exc


def _owned(ctx: Context, recorder_id: int) -> Recorder:
    with ctx.store.read() as s:
        rec = repo.get_recorder(s, recorder_id)
        if rec is None or rec.owner_id != ctx.user_id:
            raise HTTPException(404, detail={"reason": "not_found"})
        s.expunge(rec)
        return rec


async def _reload(ctx: Context, recorder_id: int) -> None:
    ctx.tokens.clear()  # a renamed, disabled or deleted recorder must not be served from cache
    await ctx.host_for(recorder_id).load_recorder.remote(recorder_id)


@router.get("", response_model=list[RecorderOut])
async def list_recorders(ctx: Context = Depends(get_ctx)) -> list[RecorderOut]:
    def read() -> list[Recorder]:
        with ctx.store.read() as s:
            return repo.list_recorders(s, ctx.user_id)

    rows = await run_in_threadpool(read)
    return [RecorderOut.of(r, ctx.settings.base_url) for r in rows]


@router.post("", response_model=RecorderOut, status_code=201)
async def create_recorder(body: RecorderIn, ctx: Context = Depends(get_ctx)) -> RecorderOut:
    _check_symbol(body.symbol)
    try:
        rec = await run_in_threadpool(
            repo.create_recorder,
            ctx.store,
            ctx.user_id,
            body.name,
            body.symbol,
            body.settings,
            body.enabled,
        )
    except IntegrityError as exc:
        raise HTTPException(409, detail={"reason": "name_taken", "name": body.name}) from exc
    assert rec.id is not None
    await _reload(ctx, rec.id)
    return RecorderOut.of(rec, ctx.settings.base_url)


@router.get("/{recorder_id}", response_model=RecorderOut)
async def get_recorder(recorder_id: int, ctx: Context = Depends(get_ctx)) -> RecorderOut:
    return RecorderOut.of(await run_in_threadpool(_owned, ctx, recorder_id), ctx.settings.base_url)


@router.patch("/{recorder_id}", response_model=RecorderOut)
async def update_recorder(
    recorder_id: int, body: RecorderPatch, ctx: Context = Depends(get_ctx)
) -> RecorderOut:
    await run_in_threadpool(_owned, ctx, recorder_id)
    if body.symbol is not None:
        _check_symbol(body.symbol)
    try:
        rec = await run_in_threadpool(
            lambda: repo.update_recorder(
                ctx.store,
                recorder_id,
                name=body.name,
                symbol=body.symbol,
                settings=body.settings,
                enabled=body.enabled,
            )
        )
    except IntegrityError as exc:
        raise HTTPException(409, detail={"reason": "name_taken"}) from exc
    if rec is None:
        raise HTTPException(404, detail={"reason": "not_found"})
    await _reload(ctx, recorder_id)
    return RecorderOut.of(rec, ctx.settings.base_url)


@router.delete("/{recorder_id}", status_code=204)
async def delete_recorder(recorder_id: int, ctx: Context = Depends(get_ctx)) -> None:
    await run_in_threadpool(_owned, ctx, recorder_id)
    await run_in_threadpool(repo.soft_delete_recorder, ctx.store, recorder_id)
    await _reload(ctx, recorder_id)


@router.get("/{recorder_id}/signals", response_model=list[SignalOut])
async def list_signals(
    recorder_id: int,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    ctx: Context = Depends(get_ctx),
) -> list[SignalOut]:
    await run_in_threadpool(_owned, ctx, recorder_id)

    def read() -> list[SignalOut]:
        with ctx.store.read() as s:
            rows = repo.list_signals(s, recorder_id, limit=limit, offset=offset)
            return [
                SignalOut(
                    **r.model_dump(exclude={"raw_body", "parsed"}),
                    body=r.raw_body.decode("utf-8", errors="replace"),
                    parsed=r.parsed,
                )
                for r in rows
            ]

    return await run_in_threadpool(read)


@router.get("/{recorder_id}/positions")
async def positions(recorder_id: int, ctx: Context = Depends(get_ctx)) -> list[dict[str, Any]]:
    """Open positions with live excursions, straight from the host's memory."""
    await run_in_threadpool(_owned, ctx, recorder_id)
    return await ctx.host_for(recorder_id).positions.remote(recorder_id)


def _trades(ctx: Context, recorder_id: int, limit: int | None, offset: int = 0) -> list[Trade]:
    with ctx.store.read() as s:
        return repo.list_trades(s, recorder_id, limit=limit, offset=offset)


@router.get("/{recorder_id}/trades", response_model=list[TradeOut])
async def trades(
    recorder_id: int,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0),
    ctx: Context = Depends(get_ctx),
) -> list[TradeOut]:
    await run_in_threadpool(_owned, ctx, recorder_id)
    rows = await run_in_threadpool(_trades, ctx, recorder_id, limit, offset)
    return [TradeOut.model_validate(r.model_dump()) for r in rows]


@router.get("/{recorder_id}/stats")
async def stats(recorder_id: int, ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    """Metric cards of the recording (the virtual pair): net P&L, win rate, profit factor,
    average win/loss, max drawdown (closed equity and open-trade), expectancy, daily P&L."""
    await run_in_threadpool(_owned, ctx, recorder_id)

    def read() -> list[TradeRow]:
        with ctx.store.read() as s:
            rows = s.exec(
                select(models.Trade)
                .where(
                    models.Trade.recorder_id == recorder_id,
                    models.Trade.pair_key == f"r{recorder_id}:virtual",
                )
                .order_by(col(models.Trade.id))
            ).all()
            return [TradeRow(t.pnl, t.closed_at, t.quantity, t.mae_usd, t.mfe_usd) for t in rows]

    st = compute_stats(await run_in_threadpool(read))
    out: dict[str, Any] = {k: getattr(st, k) for k in st.__slots__ if k not in ("daily", "equity")}
    out["daily"] = [{"date": d.date, "pnl": d.pnl, "trades": d.trades} for d in st.daily]
    out["equity"] = [{"ts": ts, "equity": eq} for ts, eq in st.equity]
    return out


@router.post("/{recorder_id}/reset")
async def reset(recorder_id: int, ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    """Delete the recording's history (signals, trades, fills, positions) and its live state."""
    await run_in_threadpool(_owned, ctx, recorder_id)
    counts = await run_in_threadpool(repo.reset_history, ctx.store, recorder_id)
    await ctx.host_for(recorder_id).reset.remote(recorder_id)
    return {"deleted": counts}
