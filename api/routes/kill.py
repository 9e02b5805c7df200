"""Kill switch over HTTP: per account, per user, or global (SPEC §5).

``POST /api/kill`` cancels working orders, flattens every position and blocks new entries of
the accounts in scope, until ``POST /api/kill/rearm``; ``GET /api/kill`` reads the kill state the
broker actor already holds (no broker call).

Mapping accounts to broker actors: paper accounts are served by the one paper broker actor
(``ctx.broker``), each Tradovate login by its own (:func:`actors.runtime.broker_name`). An
account's broker-side names are its sub-accounts' order account names
(:func:`actors.broker.logins.broker_account`: ``"paper-<account id>"`` for a paper account made
through the API, the account name for Tradovate). An account whose broker actor is not running
(no credentials, login failed) is answered under ``not_connected`` with a 200, never as an
error, so a caller sees exactly which part of a kill did not happen instead of a failure that
hides the part that did.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Literal

import ray
from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, model_validator

from actors.broker.logins import broker_account
from actors.runtime import BROKER, broker_name
from actors.store import Account, User, repo
from api.context import Context, get_ctx
from api.routes.accounts import owned_account

log = logging.getLogger("justtrades.api.kill")

router = APIRouter(prefix="/api/kill", tags=["kill switch"])


class KillIn(BaseModel):
    """What to kill or re-arm; ``account_id`` is required for (and only used by) ``account``."""

    scope: Literal["account", "user", "global"]
    account_id: int | None = None

    @model_validator(mode="after")
    def _account_needs_id(self) -> KillIn:
        if self.scope == "account" and self.account_id is None:
            raise ValueError("scope 'account' needs account_id")
        return self


@dataclasses.dataclass(slots=True)
class _Target:
    """One account in scope and the broker-side account names it maps to."""

    account: Account
    broker_accounts: list[str]
    actor: str  # broker actor name

    def describe(self) -> dict[str, Any]:
        return {
            "account_id": self.account.id,
            "name": self.account.name,
            "broker": self.account.broker,
            "broker_accounts": self.broker_accounts,
        }


def _is_admin(ctx: Context) -> bool:
    with ctx.store.read() as s:
        user = s.get(User, ctx.user_id)
        return user is not None and user.role == "admin"


def _targets(ctx: Context, body: KillIn) -> list[_Target]:
    """The accounts in scope with their sub-accounts' broker ids; 404 for an account that is not
    the caller's, 403 for a global kill by a non-admin."""
    if body.scope == "account":
        assert body.account_id is not None
        accounts = [owned_account(ctx, body.account_id)]
    elif body.scope == "global" and not _is_admin(ctx):
        raise HTTPException(403, detail={"reason": "admin_only"})
    else:
        with ctx.store.read() as s:
            owner = None if body.scope == "global" else ctx.user_id
            accounts = repo.list_accounts(s, owner)
            for acc in accounts:
                s.expunge(acc)
    with ctx.store.read() as s:
        return [
            _Target(
                acc,
                [broker_account(acc.broker, sub) for sub in repo.list_sub_accounts(s, acc.id or 0)],
                broker_name(acc.broker, acc.id or 0),
            )
            for acc in accounts
        ]


def _handle(ctx: Context, actor: str) -> Any | None:
    """The named broker actor, or None when it is not running."""
    if actor == BROKER:
        return ctx.broker
    try:
        return ray.get_actor(actor, namespace=ctx.settings.namespace)
    except ValueError:
        return None


def _split(ctx: Context, targets: list[_Target]) -> tuple[list[_Target], list[dict[str, Any]]]:
    handles = {t.actor: _handle(ctx, t.actor) for t in targets}
    connected = [t for t in targets if handles[t.actor] is not None]
    not_connected = [
        t.describe() | {"reason": "no_broker_actor"} for t in targets if handles[t.actor] is None
    ]
    return connected, not_connected


def _names(connected: list[_Target]) -> list[tuple[str, str]]:
    """Distinct (broker actor, broker-side account) pairs, in first-seen order."""
    return list(dict.fromkeys((t.actor, n) for t in connected for n in t.broker_accounts))


def _actors(ctx: Context) -> list[Any]:
    """Every running broker actor: the paper one and one per Tradovate login in the store."""
    with ctx.store.read() as s:
        names = [BROKER] + [
            broker_name(a.broker, a.id or 0) for a in repo.list_accounts(s) if a.broker != "paper"
        ]
    found = (_handle(ctx, n) for n in dict.fromkeys(names))
    return [h for h in found if h is not None]


def _kill_result(result: dict[str, Any]) -> dict[str, Any]:
    """The broker actor's kill answer in JSON form (OrderStates as dicts)."""
    return {
        "broker_account": result.get("account"),
        "dropped": list(result.get("dropped", [])),
        "cancelled": list(result.get("cancelled", [])),
        "flatten": [dataclasses.asdict(s) for s in result.get("flatten", [])],
        "elapsed_ms": round(float(result.get("elapsed_s", 0.0)) * 1000, 3),
    }


@router.post("")
async def kill(body: KillIn, ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    """Kill the accounts in scope. A global scope kills the paper broker actor as a whole (so
    accounts the store does not know, e.g. entered by hand, are flattened too)."""
    started = time.monotonic()
    targets = await run_in_threadpool(_targets, ctx, body)
    connected, not_connected = await run_in_threadpool(_split, ctx, targets)
    if body.scope == "global":
        actors = await run_in_threadpool(_actors, ctx)
        raw = list(await asyncio.gather(*(a.kill.remote(None) for a in actors)))
    else:
        # Different broker accounts are independent: kill them concurrently (the actor runs the
        # kills interleaved on its loop, each one netting the others' flatten orders).
        raw = list(
            await asyncio.gather(
                *(_handle(ctx, actor).kill.remote(n) for actor, n in _names(connected))  # type: ignore[union-attr]
            )
        )
    results = [_kill_result(r) for r in raw]
    log.warning(
        "kill switch (%s): %d broker accounts killed, %d accounts not connected",
        body.scope,
        len(results),
        len(not_connected),
    )
    return {
        "scope": body.scope,
        "accounts": [t.describe() for t in connected],
        "killed": results,
        "not_connected": not_connected,
        "elapsed_ms": round((time.monotonic() - started) * 1000, 3),
    }


@router.post("/rearm")
async def rearm(body: KillIn, ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    """Accept entries again for the accounts in scope. A global re-arm lifts every kill of the
    broker actor; a global kill is only lifted by a global re-arm (broker actor rule)."""
    targets = await run_in_threadpool(_targets, ctx, body)
    connected, not_connected = await run_in_threadpool(_split, ctx, targets)
    if body.scope == "global":
        state = None
        for actor in await run_in_threadpool(_actors, ctx):
            state = await actor.rearm.remote(None)
    else:
        state = None
        for actor, name in _names(connected):
            state = await _handle(ctx, actor).rearm.remote(name)  # type: ignore[union-attr]
        if state is None:
            state = await _kill_state(ctx)
    log.warning("kill switch re-armed (%s)", body.scope)
    return {
        "scope": body.scope,
        "accounts": [t.describe() for t in connected],
        "not_connected": not_connected,
        "state": state,
    }


async def _kill_state(ctx: Context) -> dict[str, Any]:
    status = await ctx.broker.status.remote()
    return {"killed_all": status["killed_all"], "killed": status["killed"]}


@router.get("")
async def kill_state(ctx: Context = Depends(get_ctx)) -> dict[str, Any]:
    """Current kill state of each broker actor, as held by the actor (no broker call)."""
    actors = await run_in_threadpool(_actors, ctx)
    statuses = await asyncio.gather(*(a.status.remote() for a in actors))
    keys = ("name", "kind", "killed_all", "killed", "open_positions", "queue_depth", "orders")
    return {"brokers": [{k: status.get(k) for k in keys} for status in statuses]}
