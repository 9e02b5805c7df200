"""``POST /webhook/{token}``: TradingView alerts in.

Order of work (SPEC §3, DESIGN "Signal"): read the raw body within the size limit → find the
recorder by token (constant-time compare) → parse → store the raw signal durably (with its
dedupe verdict, in one transaction) → hand it to the recorder's host → answer. Every request is
stored, including rejected ones, with a machine-readable reason; a bad body is a 4xx, never a
5xx. If the host cannot be reached the signal stays ``received`` in the store (it is applied
when the host is back) and the answer is 202.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from ray.exceptions import RayActorError

from actors.instruments import UnknownSymbol
from actors.recorder.signals import SignalError, intent_of, parse_body
from actors.store import Recorder, get_recorder_by_token
from api.context import Context, get_ctx
from api.ingest import allowed_sender, dedupe_key, intent_payload, parsed_json, resolve_symbol
from api.metrics import WEBHOOK_LATENCY, WEBHOOKS

router = APIRouter(tags=["webhook"])
log = logging.getLogger("justtrades.webhook")

HTTP_FOR_REASON = {"body_too_large": 413, "unknown_token": 404, "rate_limited": 429}
HOST_REJECT_STATUS = 422


async def _read_limited(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body up to ``limit`` + 1 bytes, and whether it was too large (never buffers more)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return b"", True
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: max(0, limit - (size - len(chunk)))])
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def _answer(status_code: int, body: dict[str, Any], started: float) -> JSONResponse:
    WEBHOOKS.labels(status=body.get("status", "?"), reason=body.get("reason") or "").inc()
    WEBHOOK_LATENCY.observe(time.perf_counter() - started)
    return JSONResponse(body, status_code=status_code)


def _lookup(ctx: Context, token: str) -> Recorder | None:
    with ctx.store.read() as s:
        rec = get_recorder_by_token(s, token)
        if rec is None or not hmac.compare_digest(rec.token.encode(), token.encode()):
            return None
        s.expunge(rec)
        return rec


@router.post("/webhook/{token}", summary="Receive a TradingView alert")
async def webhook(token: str, request: Request, ctx: Context = Depends(get_ctx)) -> JSONResponse:
    started = time.perf_counter()
    now = time.time()
    settings = ctx.settings
    remote = request.client.host if request.client else None
    ctype = request.headers.get("content-type")
    body, too_large = await _read_limited(request, settings.max_body_bytes)

    async def reject(reason: str, detail: str, rec_id: int | None, code: int = 400) -> JSONResponse:
        row, _ = await ctx.signals.insert(
            recorder_id=rec_id,
            raw_body=body,
            content_type=ctype,
            remote_addr=remote,
            dedupe_key=None,
            window_s=0,
            now=now,
            status="rejected",
            reason=reason,
            detail=detail,
        )
        code = HTTP_FOR_REASON.get(reason, code)
        answer = {"status": "rejected", "reason": reason, "detail": detail, "signal_id": row.id}
        return _answer(code, answer, started)

    rec = ctx.cached_recorder(token)
    if rec is None:
        rec = await run_in_threadpool(_lookup, ctx, token)
        if rec is not None:
            ctx.remember_recorder(token, rec)
    if rec is None:
        return await reject("unknown_token", "no recorder has this webhook token", None)
    if settings.tradingview_allowlist and not allowed_sender(remote):
        return await reject("sender_not_allowed", "not a TradingView address", rec.id, 403)
    if not request.app.state.rate_limiter.allow(str(rec.id)):
        return await reject("rate_limited", "too many alerts for this recorder", rec.id)
    if too_large:
        limit = settings.max_body_bytes
        return await reject("body_too_large", f"body over {limit} bytes", rec.id)
    try:
        sig = parse_body(body, settings.max_body_bytes)
        intent = intent_of(sig)
        symbol = resolve_symbol(sig, rec.symbol, now)
    except SignalError as exc:
        detail = exc.message + (f" (field {exc.field})" if exc.field else "")
        return await reject(exc.reason, detail, rec.id)
    except UnknownSymbol as exc:
        return await reject("unknown_symbol", f"{exc.symbol!r}: {exc.reason}", rec.id)

    payload = intent_payload(sig, intent, symbol, now)
    row, duplicate = await ctx.signals.insert(
        recorder_id=rec.id,
        raw_body=body,
        content_type=ctype,
        remote_addr=remote,
        dedupe_key=dedupe_key(body, sig),
        window_s=settings.dedupe_window_s,
        now=now,
        parsed={**parsed_json(sig), "intent": payload},
        action=intent.kind,
        ticker=sig.ticker,
        symbol=symbol,
        price=sig.price,
        quantity=intent.quantity,
    )
    if duplicate:
        answer = {"status": "duplicate", "reason": row.reason, "signal_id": row.id}
        return _answer(200, answer, started)
    try:
        result = await ctx.dispatcher_for(rec.id).submit(row.id, rec.id, payload)
    except RayActorError as exc:
        log.warning("host for recorder %s unavailable; signal %s queued: %r", rec.id, row.id, exc)
        answer = {"status": "received", "reason": "host_unavailable", "signal_id": row.id}
        return _answer(202, answer, started)
    code = HOST_REJECT_STATUS if result["status"] == "rejected" else 200
    answer = {
        "status": result["status"],
        "reason": result.get("reason"),
        "detail": result.get("detail"),
        "signal_id": row.id,
        "symbol": symbol,
        "fills": result.get("fills", []),
    }
    return _answer(code, answer, started)
