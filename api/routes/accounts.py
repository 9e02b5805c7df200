"""Broker accounts: add (credentials sealed with :class:`~actors.broker.credentials.
CredentialBox`), list, show, delete, sync sub-accounts from the broker, list sub-accounts.

Credentials go in once and never come out: responses carry ``has_credentials`` only, nothing
logs them, and validation errors name fields without echoing values. ``sync`` is the one route
that talks to a broker, on an explicit user action; dashboards never do (SPEC §5).

:data:`router` also carries the traders routes (:mod:`api.routes.traders`) so the application
includes both with one line.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import httpx
from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from actors.broker.credentials import (
    CredentialBox,
    CredentialError,
    SecretKeyMissing,
    load_key,
)
from actors.broker.tradovate.auth import Credentials, Endpoints, TradovateAuth
from actors.broker.tradovate.errors import (
    AuthError,
    CaptchaRequired,
    ConnectionFailed,
    HttpError,
    PenaltyTooLong,
    RateLimited,
    TradovateError,
)
from actors.broker.tradovate.rest import Throttle, TradovateRest
from actors.store import Account, SubAccount, repo
from api.context import Context, get_ctx
from api.routes import traders
from api.schemas_accounts import (
    AccountIn,
    AccountOut,
    SubAccountOut,
    parse_tradovate_credentials,
)

log = logging.getLogger("justtrades.api.accounts")

accounts_router = APIRouter(prefix="/api/accounts", tags=["accounts"])

PAPER_SUB_ACCOUNT_NAME = "Paper"
SYNC_TIMEOUT_S = 20.0
SYNC_MAX_PENALTY_WAIT_S = 10.0
"""A sync is an interactive request: wait out short penalties only, report longer ones."""


def credential_box(ctx: Context) -> CredentialBox:
    """The process's box, built once from the configured key (see :func:`load_key`). A missing
    key with PostgreSQL is a 503 with the reason, not a crash of unrelated routes."""
    box = ctx.cached("credential_box", float("inf"))
    if box is None:
        try:
            box = ctx.remember("credential_box", CredentialBox(load_key(ctx.settings)))
        except SecretKeyMissing as exc:
            raise HTTPException(
                503, detail={"reason": "secret_key_missing", "detail": str(exc)}
            ) from None
    return box


def owned_account(ctx: Context, account_id: int) -> Account:
    """The caller's account or 404 (someone else's account does not exist for them)."""
    with ctx.store.read() as s:
        acc = repo.get_account(s, account_id)
        if acc is None or acc.owner_id != ctx.user_id:
            raise HTTPException(404, detail={"reason": "not_found"})
        s.expunge(acc)
        return acc


def _sub_accounts(ctx: Context, account_ids: list[int]) -> dict[int, list[SubAccount]]:
    with ctx.store.read() as s:
        return {a: repo.list_sub_accounts(s, a) for a in account_ids}


def _check_pairing(body: AccountIn) -> None:
    if body.broker == "paper" and body.environment != "paper":
        raise HTTPException(
            422, detail={"reason": "bad_environment", "detail": "paper accounts use 'paper'"}
        )
    if body.broker == "tradovate" and body.environment not in ("demo", "live"):
        raise HTTPException(
            422,
            detail={"reason": "bad_environment", "detail": "tradovate uses 'demo' or 'live'"},
        )


@accounts_router.get("", response_model=list[AccountOut])
async def list_accounts(ctx: Context = Depends(get_ctx)) -> list[AccountOut]:
    def read() -> list[AccountOut]:
        with ctx.store.read() as s:
            rows = repo.list_accounts(s, ctx.user_id)
            return [AccountOut.of(a, repo.list_sub_accounts(s, a.id or 0)) for a in rows]

    return await run_in_threadpool(read)


@accounts_router.post("", response_model=AccountOut, status_code=201)
async def create_account(body: AccountIn, ctx: Context = Depends(get_ctx)) -> AccountOut:
    """Add an account. Paper accounts get their one sub-account at once; tradovate accounts
    need credentials (sealed before they reach the store) and a ``sync`` for sub-accounts."""
    _check_pairing(body)
    sealed: bytes | None = None
    subs: list[tuple[str, str]] = []
    if body.broker == "tradovate":
        if body.credentials is None:
            raise HTTPException(422, detail={"reason": "credentials_required"})
        try:
            creds = parse_tradovate_credentials(body.credentials)
        except ValueError as exc:
            raise HTTPException(
                422, detail={"reason": "bad_credentials", "fields": str(exc).split(", ")}
            ) from None
        # A stable device id per account (reference/tradovate.md §2.1), kept with the secrets
        # so every later login of this account presents the same device.
        plain = creds.plain() | {"device_id": secrets.token_hex(32)}
        box = credential_box(ctx)
        sealed = await run_in_threadpool(box.seal, plain)
    elif body.credentials:
        raise HTTPException(
            422, detail={"reason": "unexpected_credentials", "detail": "paper needs none"}
        )
    else:
        # One paper book per account: accounts sharing a broker-side name would net together.
        subs = [("paper-{account_id}", PAPER_SUB_ACCOUNT_NAME)]
    acc = await run_in_threadpool(
        repo.create_account,
        ctx.store,
        ctx.user_id,
        body.broker,
        body.name,
        body.environment,
        sealed,
        subs,
    )
    assert acc.id is not None
    log.info("account %d added (%s %s)", acc.id, acc.broker, acc.environment)
    found = await run_in_threadpool(_sub_accounts, ctx, [acc.id])
    return AccountOut.of(acc, found[acc.id])


@accounts_router.get("/{account_id}", response_model=AccountOut)
async def get_account(account_id: int, ctx: Context = Depends(get_ctx)) -> AccountOut:
    acc = await run_in_threadpool(owned_account, ctx, account_id)
    found = await run_in_threadpool(_sub_accounts, ctx, [account_id])
    return AccountOut.of(acc, found[account_id])


@accounts_router.delete("/{account_id}", status_code=204)
async def delete_account(account_id: int, ctx: Context = Depends(get_ctx)) -> None:
    """Delete an account and its sub-accounts; 409 while traders still link it."""
    await run_in_threadpool(owned_account, ctx, account_id)
    try:
        await run_in_threadpool(repo.delete_account, ctx.store, account_id)
    except repo.AccountInUse as exc:
        raise HTTPException(
            409, detail={"reason": "account_in_use", "trader_ids": exc.trader_ids}
        ) from None


@accounts_router.get("/{account_id}/subaccounts", response_model=list[SubAccountOut])
async def list_sub_accounts(
    account_id: int, ctx: Context = Depends(get_ctx)
) -> list[SubAccountOut]:
    await run_in_threadpool(owned_account, ctx, account_id)
    found = await run_in_threadpool(_sub_accounts, ctx, [account_id])
    return [SubAccountOut.of(s) for s in found[account_id]]


def endpoints_for(ctx: Context, environment: str) -> Endpoints:
    """REST base from settings (tests point it at the simulator); the socket URL follows it."""
    rest = (
        ctx.settings.tradovate_live_url
        if environment == "live"
        else ctx.settings.tradovate_demo_url
    ).rstrip("/")
    ws = "ws" + rest.removeprefix("http") + "/websocket"
    return Endpoints(rest=rest, ws=ws)


def _broker_error(exc: TradovateError) -> HTTPException:
    """Broker failures as 4xx/5xx with a reason; the text is the broker's, never ours with
    secrets in it (the client's errors carry response bodies, not requests)."""
    if isinstance(exc, AuthError):
        return HTTPException(400, detail={"reason": "broker_auth_failed", "detail": exc.error_text})
    if isinstance(exc, CaptchaRequired):
        return HTTPException(429, detail={"reason": "broker_captcha", "detail": exc.message})
    if isinstance(exc, RateLimited | PenaltyTooLong):
        return HTTPException(429, detail={"reason": "broker_rate_limited", "detail": exc.message})
    if isinstance(exc, ConnectionFailed):
        return HTTPException(502, detail={"reason": "broker_unreachable", "detail": exc.message})
    if isinstance(exc, HttpError):
        return HTTPException(502, detail={"reason": "broker_error", "detail": exc.message})
    return HTTPException(502, detail={"reason": "broker_error", "detail": exc.message})


async def fetch_tradovate_accounts(
    endpoints: Endpoints, plain: dict[str, Any]
) -> list[tuple[str, str]]:
    """Log in with ``plain`` credentials and return ``(id, name)`` of the login's accounts that
    are not archived. A fresh session per call (a sync is rare and user-initiated)."""
    creds = Credentials.from_plain(plain)
    async with httpx.AsyncClient(timeout=SYNC_TIMEOUT_S) as client:
        throttle = Throttle(max_penalty_wait_s=SYNC_MAX_PENALTY_WAIT_S)
        auth = TradovateAuth(client, endpoints, creds, throttle=throttle)
        items = await TradovateRest(client, auth).list_accounts()
    return [
        (str(item["id"]), str(item.get("name") or item["id"]))
        for item in items
        if "id" in item and not item.get("archived", False)
    ]


async def _start_broker(ctx: Context) -> None:
    """Ask the supervisor to start the broker actor of a new login (traders on it trade once it
    runs). Best effort: without a supervisor the account is connected at the next start."""
    if ctx.supervisor is None:
        return
    try:
        await ctx.supervisor.ensure_brokers.remote()
    except Exception as exc:
        log.warning("broker actors not refreshed: %r", exc)


@accounts_router.post("/{account_id}/sync", response_model=AccountOut)
async def sync_account(account_id: int, ctx: Context = Depends(get_ctx)) -> AccountOut:
    """Log in at the broker and store its accounts as sub-accounts (tradovate only)."""
    acc = await run_in_threadpool(owned_account, ctx, account_id)
    if acc.broker != "tradovate":
        raise HTTPException(
            422, detail={"reason": "not_syncable", "detail": f"{acc.broker} has nothing to sync"}
        )
    if acc.credentials_encrypted is None:
        raise HTTPException(422, detail={"reason": "credentials_required"})
    box = credential_box(ctx)
    try:
        plain = await run_in_threadpool(box.open, acc.credentials_encrypted)
    except CredentialError as exc:
        raise HTTPException(
            500, detail={"reason": "credentials_unreadable", "detail": str(exc)}
        ) from None
    try:
        found = await fetch_tradovate_accounts(endpoints_for(ctx, acc.environment), plain)
    except TradovateError as exc:
        log.warning("account %d sync failed: %s", account_id, type(exc).__name__)
        raise _broker_error(exc) from None
    subs = await run_in_threadpool(repo.upsert_sub_accounts, ctx.store, account_id, found)
    log.info("account %d synced: %d sub-accounts", account_id, len(subs))
    await _start_broker(ctx)
    return AccountOut.of(acc, subs)


router = APIRouter()
router.include_router(accounts_router)
router.include_router(traders.router)
