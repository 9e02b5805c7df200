"""``POST /webhook/{token}``: TradingView alerts in.

Order of work (SPEC §3, DESIGN "Signal"): read the raw body within the size limit → find the
recorder by token (constant-time compare) → parse → store the raw signal durably (with its
dedupe verdict, in one transaction) → hand it to the recorder's host → answer. Every request is
stored, including rejected ones, with a machine-readable reason; a bad body is a 4xx, never a
5xx. If the host cannot be reached the signal stays ``received`` in the store (it is applied
when the host is back) and the answer is 202.

The hot path is plain ASGI: :func:`asgi_webhook` is called by :class:`api.app.App` before
FastAPI's middleware stack, router and dependency injection, which cost more CPU per request
than the webhook's own work (bench/ingest). The FastAPI route below serves the same handler for
the paths the fast path leaves to the router (and documents the endpoint in OpenAPI).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from ray.exceptions import RayActorError
from starlette.types import Receive, Scope, Send

from actors.instruments import UnknownSymbol
from actors.recorder.signals import SignalError, intent_of, parse_body
from api.context import Context
from api.ingest import (
    TokenBucket,
    TokenLookup,
    WebhookRecorder,
    allowed_sender,
    dedupe_key,
    intent_payload,
    parsed_json,
    resolve_symbol,
)
from api.metrics import WEBHOOK_LATENCY, WEBHOOKS

router = APIRouter(tags=["webhook"])
log = logging.getLogger("justtrades.webhook")

HTTP_FOR_REASON = {"body_too_large": 413, "unknown_token": 404, "rate_limited": 429}
HOST_REJECT_STATUS = 422
ANSWER_WITHIN_S = 2.5  # TradingView cancels a webhook request after ~3 s
PREFIX = "/webhook/"

_JSON_HEADERS = [(b"content-type", b"application/json")]
_ERROR_500 = b"Internal Server Error"


class Rejection(Exception):
    """A rejection before the signal could be stored as an intent (raised inside :func:`handle`)."""

    def __init__(self, reason: str, detail: str, code: int = 400) -> None:
        self.reason, self.detail, self.code = reason, detail, HTTP_FOR_REASON.get(reason, code)


#: Starlette's ``JSONResponse`` rendering, one encoder for every answer (``json.dumps`` with
#: arguments builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_COUNTERS: dict[tuple[str, str], Any] = {}  # (status, reason) -> WEBHOOKS child


def encode(code: int, body: dict[str, Any], started: float) -> bytes:
    """The answer's JSON (as Starlette's ``JSONResponse`` renders it), metrics updated."""
    # The reason label is cut at ':' ("duplicate_of:<id>"): one series per outcome, not per id.
    key = (body.get("status", "?"), (body.get("reason") or "").partition(":")[0])
    counter = _COUNTERS.get(key)
    if counter is None:  # labels() validates and locks on every call: once per series
        counter = _COUNTERS[key] = WEBHOOKS.labels(status=key[0], reason=key[1])
    counter.inc()
    WEBHOOK_LATENCY.observe(time.perf_counter() - started)
    return _ENCODER.encode(body).encode()


async def handle(
    ctx: Context,
    lookup: TokenLookup,
    limiter: TokenBucket,
    token: str,
    body: bytes,
    too_large: bool,
    content_type: str | None,
    remote: str | None,
) -> tuple[int, dict[str, Any]]:
    """The webhook's answer: HTTP status and JSON body. Every outcome is stored first."""
    now = time.time()
    settings = ctx.settings
    rec: WebhookRecorder | None = ctx.cached_recorder(token)
    if rec is None:
        rec = await lookup.get(token)
        if rec is not None:
            ctx.remember_recorder(token, rec)
    try:
        if rec is None:
            raise Rejection("unknown_token", "no recorder has this webhook token")
        if settings.tradingview_allowlist and not allowed_sender(remote):
            raise Rejection("sender_not_allowed", "not a TradingView address", 403)
        if not limiter.allow(str(rec.id)):
            raise Rejection("rate_limited", "too many alerts for this recorder")
        if too_large:
            raise Rejection("body_too_large", f"body over {settings.max_body_bytes} bytes")
        try:
            sig = parse_body(body, settings.max_body_bytes)
            intent = intent_of(sig)
            symbol = resolve_symbol(sig, rec.symbol, now)
        except SignalError as exc:
            detail = exc.message + (f" (field {exc.field})" if exc.field else "")
            raise Rejection(exc.reason, detail) from None
        except UnknownSymbol as exc:
            raise Rejection("unknown_symbol", f"{exc.symbol!r}: {exc.reason}") from None
    except Rejection as no:
        row, _ = await ctx.signals.insert(
            recorder_id=rec.id if rec is not None else None,
            raw_body=body,
            content_type=content_type,
            remote_addr=remote,
            dedupe_key=None,
            window_s=0,
            now=now,
            status="rejected",
            reason=no.reason,
            detail=no.detail,
        )
        return no.code, {
            "status": "rejected",
            "reason": no.reason,
            "detail": no.detail,
            "signal_id": row.id,
        }

    payload = intent_payload(sig, intent, symbol, now)
    row, duplicate = await ctx.signals.insert(
        recorder_id=rec.id,
        raw_body=body,
        content_type=content_type,
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
        return 200, {"status": "duplicate", "reason": row.reason, "signal_id": row.id}
    fut = ctx.dispatcher_for(rec.id).submit(row.id, rec.id, payload)
    fut.add_done_callback(_consume)
    try:
        # the dispatcher keeps delivering (in order) while the host restarts; the sender is
        # answered before TradingView's ~3 s timeout: the signal is stored, it will apply
        result = await asyncio.wait_for(asyncio.shield(fut), ANSWER_WITHIN_S)
    except (RayActorError, TimeoutError) as exc:
        log.warning("host for recorder %s unavailable; signal %s queued: %r", rec.id, row.id, exc)
        return 202, {"status": "received", "reason": "host_unavailable", "signal_id": row.id}
    return HOST_REJECT_STATUS if result["status"] == "rejected" else 200, {
        "status": result["status"],
        "reason": result.get("reason"),
        "detail": result.get("detail"),
        "signal_id": row.id,
        "symbol": symbol,
        "fills": result.get("fills", []),
    }


def _consume(fut: asyncio.Future[Any]) -> None:
    """Read the outcome of a delivery nobody waits for any more (answered 202 already)."""
    if not fut.cancelled():
        fut.exception()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def asgi_webhook(app: Any, token: str, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /webhook/{token}`` as plain ASGI (see the module docstring)."""
    started = time.perf_counter()
    state = app.state
    ctx: Context = state.ctx
    limit = ctx.settings.max_body_bytes
    headers = scope["headers"]
    declared = _header(headers, b"content-length")
    # The body up to ``limit`` + 1 bytes and whether it was too large (never buffers more).
    too_large = bool(declared and declared.isdigit() and int(declared) > limit)
    body = b""
    if not too_large:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > limit:
                chunks.append(chunk[: max(0, limit - (size - len(chunk)))])
                too_large = True
                break
            chunks.append(chunk)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    client = scope.get("client")
    try:
        code, answer = await handle(
            ctx,
            state.token_lookup,
            state.rate_limiter,
            token,
            body,
            too_large,
            _header(headers, b"content-type"),
            client[0] if client else None,
        )
        content = encode(code, answer, started)
    except Exception:
        log.exception("webhook failed")
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(_ERROR_500)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _ERROR_500})
        return
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [*_JSON_HEADERS, (b"content-length", b"%d" % len(content))],
        }
    )
    await send({"type": "http.response.body", "body": content})


class _Delegate(Response):
    """A response that is the plain-ASGI handler itself (so the route has no second copy)."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__()
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asgi_webhook(self.app, self.token, scope, receive, send)


@router.post("/webhook/{token}", summary="Receive a TradingView alert", response_class=Response)
async def webhook(token: str, request: Request) -> Response:
    """Reached only through FastAPI's router (see :class:`api.app.App`): the same handler."""
    return _Delegate(request.app, token)
