"""HTTP surface of the Tradovate simulator: REST under ``/v1``, the two websockets, the OAuth
consent stand-in and the simulator-only admin endpoints under ``/sim``.

REST (§1, §2.6): ``GET`` or ``POST`` on ``/v1/<entity>/<operation>``; parameters from the query
string and/or a JSON body (a form-encoded body is accepted too: the official OAuth tutorial
posts a form, §2.5). ``Authorization: Bearer <accessToken>`` everywhere except
``auth/accesstokenrequest`` and ``auth/oauthtoken``. Unknown ``/v1`` paths answer 404. Bodies
are JSON; 401 and 429 have an empty body (§3.2 for 429; the real 401 body is UNCONFIRMED).

Websockets: ``/v1/websocket`` is the user socket (live/demo hosts, §1) and
``/md/v1/websocket`` the market-data socket (md.tradovateapi.com in reality): a client whose
base URLs are ``http://host:port/v1`` and ``http://host:port/md/v1`` derives both socket URLs
the official way, base + ``/websocket`` (§1).

SIMULATOR ONLY (never part of Tradovate's API):

* ``POST /sim/prices`` — ``[{symbol, price, ts?, bid?, ask?, size?}]`` (or ``{"prices": [...]}``):
  trade prints, in order; symbol is a contract name, a contract id, or a root/continuous symbol
  mapped to our front month.
* ``GET /sim/faults`` / ``POST /sim/faults`` — read/change fault switches and run one-shot
  actions (see :mod:`.faults`); 400 on an unknown switch or bad value, nothing applied.
* ``GET /sim/requests[?endpoint=order/placeorder]`` / ``DELETE /sim/requests`` — request log.
* ``GET /sim/state`` — accounts, orders, positions, cash, fills, last quotes.
* ``GET /oauth?response_type=code&client_id=&redirect_uri=&state=`` — stand-in for
  trader.tradovate.com/oauth: approves at once and redirects with ``?code=`` (§2.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from actors.broker.tradovate.sim.core import Reply, TradovateSim
from actors.broker.tradovate.sim.routes import query_params
from actors.broker.tradovate.sim.ws import SocketHub

__all__ = ["create_app"]


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _response(reply: Reply) -> Response:
    if reply.body is None:
        return Response(status_code=reply.status)
    if isinstance(reply.body, str) and reply.status != 200:
        return PlainTextResponse(reply.body, status_code=reply.status)
    return JSONResponse(reply.body, status_code=reply.status)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    return json.loads(raw)


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _random_walk(sim: TradovateSim, start: dict[str, float], interval_s: float) -> None:
    """Optional in-process price source for demos: each interval every symbol moves one tick
    up, one tick down or not at all (seeded, so runs repeat)."""
    rng = random.Random(7)
    prices = dict(start)
    while True:
        ticks = []
        for symbol, price in prices.items():
            contract = sim.catalog.resolve(symbol)
            assert contract is not None  # checked by create_app
            prices[symbol] = (
                price + rng.choice((-1, 0, 1)) * sim.catalog.spec_of(contract).tick_size
            )
            ticks.append({"symbol": symbol, "price": prices[symbol]})
        sim.push_prices(ticks)
        await asyncio.sleep(interval_s)


def create_app(
    sim: TradovateSim | None = None,
    *,
    walk: dict[str, float] | None = None,
    walk_interval_s: float = 1.0,
) -> FastAPI:
    """The ASGI app of one simulated environment (a fresh :class:`TradovateSim` by default).

    ``walk`` (symbol → start price) turns on the in-process random-walk price source;
    otherwise prices come only from ``POST /sim/prices`` (or :meth:`SimServer.call_in_loop`).
    """
    sim = sim or TradovateSim()
    unknown = [s for s in walk or {} if sim.catalog.resolve(s) is None]
    if unknown:
        raise ValueError(f"unknown symbol(s) for the random walk: {unknown}")
    hub = SocketHub(sim)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.loop = asyncio.get_running_loop()
        task = asyncio.create_task(_random_walk(sim, walk, walk_interval_s)) if walk else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="Tradovate API SIMULATOR (not Tradovate)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.sim = sim

    @app.api_route("/v1/{path:path}", methods=["GET", "POST"])
    async def rest(path: str, request: Request) -> Response:
        params = query_params(request.url.query)
        raw = await request.body()
        if raw.strip():
            if "x-www-form-urlencoded" in request.headers.get("content-type", ""):
                params |= dict(parse_qsl(raw.decode(), keep_blank_values=True))
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    return PlainTextResponse("Bad request: body is not JSON", status_code=400)
                if not isinstance(body, dict):
                    return PlainTextResponse("Bad request: expected an object", status_code=400)
                params |= body
        token = _bearer(request.headers.get("authorization"))
        return _response(sim.call(path, params, token=token, method=request.method))

    @app.websocket("/v1/websocket")
    async def user_socket(websocket: WebSocket) -> None:
        await hub.serve(websocket, "user")

    @app.websocket("/md/v1/websocket")
    async def md_socket(websocket: WebSocket) -> None:
        await hub.serve(websocket, "md")

    @app.get("/oauth")
    async def oauth_consent(request: Request) -> Response:
        q = request.query_params
        redirect_uri = q.get("redirect_uri")
        if q.get("response_type") != "code" or not redirect_uri:
            return PlainTextResponse("response_type=code and redirect_uri are required", 400)
        query = {"code": sim.auth.issue_code(redirect_uri)}
        if q.get("state"):
            query["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode(query)}", status_code=302)

    @app.post("/sim/prices")
    async def push_prices(request: Request) -> Response:
        try:
            body = await _json(request)
            ticks = body.get("prices") if isinstance(body, dict) else body
            if not isinstance(ticks, list) or not all(isinstance(t, dict) for t in ticks):
                return _bad("expected a list of {symbol, price, ts?}")
            return JSONResponse(sim.push_prices(ticks))
        except ValueError as exc:
            return _bad(str(exc))

    @app.get("/sim/faults")
    async def get_faults() -> Response:
        return JSONResponse(sim.faults.snapshot())

    @app.post("/sim/faults")
    async def set_faults(request: Request) -> Response:
        try:
            body = await _json(request)
            if not isinstance(body, dict):
                return _bad("expected an object of fault switches")
            return JSONResponse(sim.apply_faults(body))
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))

    @app.get("/sim/requests")
    async def request_log(endpoint: str | None = None) -> Response:
        return JSONResponse({"requests": sim.log.entries(endpoint)})

    @app.delete("/sim/requests")
    async def clear_requests() -> Response:
        sim.log.clear()
        return Response(status_code=204)

    @app.get("/sim/state")
    async def state() -> Response:
        return JSONResponse(sim.state())

    return app
