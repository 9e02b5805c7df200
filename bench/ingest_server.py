"""Server side of the ingest bench, run as its own process (``python -m bench.ingest_server``).

``--mode real``: the whole Just.Trades system the way ``justtrades serve`` runs it (this process
is the uvicorn server and the Ray driver that starts a local Ray), on a fresh SQLite file, with
``--recorders`` recorders created in the store before serving and one tick per symbol pushed
through ``POST /api/feed/ticks`` once the API is up.

``--mode bare``: a bare FastAPI app with one ``POST /webhook/{token}`` that reads the body and
answers ``{"ok": true}``: the baseline, served by uvicorn the same way (one worker).

When ready the process prints one line ``READY {json}`` (port, pid, recorder tokens) on stdout.
SIGINT (or SIGTERM) stops uvicorn; the real mode then stops the actor tree and calls
``ray.shutdown()`` (never ``ray stop``: other Ray instances may run on the machine).

``--profile PATH``: :mod:`bench.ingest_profile` over every thread of this process, started by
SIGUSR1 and written to PATH (JSON) on SIGUSR2; the load generator sends both around its
measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import uuid

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.ingest_mix import recorder_settings, recorder_symbol, seed_ticks
from bench.ingest_profile import Sampler


def bare_app() -> FastAPI:
    app = FastAPI(title="bare")

    @app.post("/webhook/{token}")
    async def webhook(token: str, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"ok": True})

    return app


def create_recorders(database_url: str, n: int) -> list[str]:
    """``n`` recorders with varied exits and filters, created in the store before serving."""
    from actors.store import Store, create_recorder, ensure_local_user

    store = Store(database_url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    tokens = [
        create_recorder(
            store, user.id, f"bench-{i}", recorder_symbol(i), recorder_settings(i)
        ).token
        for i in range(n)
    ]
    store.dispose()
    return tokens


async def serve(args: argparse.Namespace) -> None:
    tokens: list[str] = []
    settings = None
    if args.mode == "real":
        from actors.settings import Settings
        from api.app import create_app

        settings = Settings(
            database_url=args.db,
            host="127.0.0.1",
            port=args.port,
            namespace=f"jt-bench-ingest-{uuid.uuid4().hex[:8]}",
            feed="none",
            recorder_hosts=args.hosts,
            rate_limit_per_minute=1_000_000_000,
        )
        tokens = await asyncio.to_thread(create_recorders, settings.resolved_database_url(), args.n)
        app = create_app(settings, frozen_heap=True)  # as `justtrades serve` runs it
    else:
        app = bare_app()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=args.http,
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        if args.mode == "real":
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{args.port}") as client:
                r = await client.post(
                    "/api/feed/ticks", json={"ticks": seed_ticks(), "wait": True}, timeout=60
                )
                r.raise_for_status()
        ready = {
            "port": args.port,
            "pid": os.getpid(),
            "tokens": tokens,
            "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
            "http": config.http_protocol_class.__name__,
        }
        print("READY " + json.dumps(ready), flush=True)

    task = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        task.cancel()
        if settings is not None:
            await asyncio.to_thread(stop_tree, settings.namespace)


def stop_tree(namespace: str) -> None:
    """Stop the detached actor tree and the Ray this process started."""
    import ray

    from actors.runtime import SUPERVISOR, get

    if not ray.is_initialized():
        return
    try:
        sup = get(SUPERVISOR, namespace)
        ray.get(sup.shutdown.remote(), timeout=15)
        ray.kill(sup, no_restart=True)
    except Exception as exc:  # tearing down: report, then shut Ray down regardless
        print(f"ingest_server: tree shutdown: {exc!r}", file=sys.stderr, flush=True)
    ray.shutdown()
    print("ingest_server: actor tree stopped, ray.shutdown() done", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ingest_server")
    ap.add_argument("--mode", choices=["real", "bare"], required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", default="", help="SQLAlchemy URL of the store (real mode)")
    ap.add_argument("--n", type=int, default=200, help="recorders to create (real mode)")
    ap.add_argument("--hosts", type=int, default=2, help="recorder host actors (real mode)")
    ap.add_argument("--profile", default="", help="write a sampling profile here (JSON)")
    ap.add_argument("--loop", default="auto", help="uvicorn --loop (auto: uvloop if installed)")
    ap.add_argument("--http", default="auto", help="uvicorn --http (auto: httptools if installed)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    if args.profile:
        Sampler(args.profile).install()
    # uvicorn re-raises the SIGINT/SIGTERM it caught once it has stopped; no-op handlers let
    # the tree and Ray shut down cleanly afterwards instead of dying on the default action.
    # (The bench stops this process with SIGINT: Ray's native handler dumps a stack on SIGTERM.)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    # The event loop uvicorn.run (so ``justtrades serve``) would choose for the same --loop.
    loop_factory = uvicorn.Config(app=None, loop=args.loop).get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
