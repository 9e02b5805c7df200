"""The FastAPI application: a plain Ray driver in front of the actor tree.

Start-up migrates the store, makes sure the local user exists, joins (or starts) Ray, and gets
or creates the detached supervisor, which builds the tree. Handlers ``await`` actor calls (never
``ray.get`` on the event loop) and run store calls in the thread pool.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from ray.exceptions import RayActorError
from starlette.types import Receive, Scope, Send

from actors.runtime import (
    BROKER,
    FEED,
    SUPERVISOR,
    actor_options,
    connect,
    freeze_heap,
    get,
    host_name,
    tree_class,
)
from actors.settings import Settings, get_settings
from actors.store import Store, ensure_local_user
from actors.supervisor import Supervisor
from api.context import Context
from api.ingest import TokenBucket, TokenLookup
from api.routes import accounts, kill, reconcile, recorders, supervisor, system, webhook

log = logging.getLogger("justtrades.api")


def open_store(settings: Settings) -> tuple[Store, int]:
    store = Store(settings.resolved_database_url())
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    return store, user.id


async def boot(settings: Settings) -> Context:
    store, user_id = await run_in_threadpool(open_store, settings)
    # Not in a worker thread: a locally started Ray ties gcs_server and raylet to the thread
    # that started them (PR_SET_PDEATHSIG), and the thread pool retires idle threads, which
    # silently killed both 10 s into a quiet period (found by bench/memory).
    connect(settings.ray_address, settings.namespace, settings.num_cpus)
    ns = settings.namespace
    sup = (
        tree_class(Supervisor)
        .options(**actor_options(SUPERVISOR, ns))
        .remote(settings.tree_config())
    )
    await sup.start.remote()
    hosts = [get(host_name(i), ns) for i in range(settings.recorder_hosts)]
    return Context(settings, store, user_id, sup, hosts, get(FEED, ns), get(BROKER, ns))


class App(FastAPI):
    """FastAPI, with ``POST /webhook/{token}`` served as plain ASGI ahead of the middleware
    stack, router and dependency injection (see :mod:`api.routes.webhook`). Everything else,
    and any webhook path the fast path does not take (a token with a ``/``), goes to FastAPI.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root = scope.get("root_path") or self.root_path
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(webhook.PREFIX):
                token = path[len(webhook.PREFIX) :]
                if token and "/" not in token and hasattr(self.state, "ctx"):
                    await webhook.asgi_webhook(self, token, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, frozen_heap: bool = False) -> FastAPI:
    """The API. ``frozen_heap`` (the server processes: ``justtrades serve``, the ingest bench):
    once booted, keep the garbage collector off everything alive (:func:`~actors.runtime.freeze_heap`); a full
    collection walking the Ray driver's, FastAPI's and SQLAlchemy's startup objects stalls
    every request in flight, and at a steady 1,000 webhooks/s a stall's backlog drains at
    only the spare rate."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await boot(settings)
        app.state.token_lookup = TokenLookup(ctx.store)
        app.state.ctx = ctx
        if frozen_heap:
            freeze_heap()
        log.info("Just.Trades ready on %s", settings.base_url)
        try:
            yield
        finally:
            app.state.token_lookup.close()

    app = App(
        title="Just.Trades",
        version="0.1.0",
        summary="TradingView alerts recorded tick-exactly and executed on many accounts.",
        lifespan=lifespan,
    )
    app.state.rate_limiter = TokenBucket(settings.rate_limit_per_minute)

    @app.exception_handler(RayActorError)
    async def actor_unavailable(request: Request, exc: RayActorError) -> JSONResponse:
        """An actor restarting is a temporary condition, said plainly (never a bare 500)."""
        log.warning("actor unavailable for %s: %r", request.url.path, exc)
        return JSONResponse(
            {"reason": "actor_unavailable", "detail": "a component is restarting; retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    app.include_router(webhook.router)
    app.include_router(recorders.router)
    app.include_router(system.router)
    app.include_router(accounts.router)
    app.include_router(kill.router)
    from api.routes import feed  # /api/feed/cookies (TradingView login of the price feed)

    app.include_router(feed.router)
    app.include_router(reconcile.router)
    app.include_router(supervisor.router)
    return app
