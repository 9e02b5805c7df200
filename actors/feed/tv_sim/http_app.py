"""HTTP side of the simulator: the scanner endpoint (§3.6) and the fault/control API.

Scanner: ``POST /{market}/scan`` with ``{"symbols": {"tickers": [...]}, "columns": [...]}``
answers ``{"totalCount": n, "data": [{"s": ticker, "d": [values in column order]}]}``. Only the
columns §3.6 lists as working are known; any other column fails the whole request with 400, as
it did for the predecessor (the exact error body is UNCONFIRMED). Unknown tickers are left out
of ``data`` (UNCONFIRMED). Values are anonymous-user values, so ``update_mode`` is delayed (§3.6).

Home page (§3.5): ``GET /`` stands in for ``www.tradingview.com``: with the ``sessionid`` and
``sessionid_sign`` cookies of a configured session it embeds ``"auth_token":"<token>"`` in the
page (the string M2301's ``getUser()`` extracts); otherwise it is the anonymous page without a
token. How the real page is laid out beyond that string is UNCONFIRMED and not imitated.

Control (not part of TradingView): ``GET /sim/state``; ``POST /sim/faults/{drop,stall,malformed,
protocol_error}`` act on the connections open now; ``POST /sim/faults/reject``
``{"symbol": s, "on": bool}``, ``POST /sim/faults/scanner`` ``{"down": bool}`` and
``POST /sim/faults/ws`` ``{"down": bool}`` (quote socket outage) switch persistent faults;
``POST /sim/faults/expire_session`` ``{"sessionid": s}`` ends a logged-in session;
``POST /sim/ticks`` ``[{"symbol", "ts", "price"}]`` publishes prints.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from actors.feed.sources.base import Tick

if TYPE_CHECKING:
    from actors.feed.tv_sim.server import TvSim

__all__ = ["MARKETS", "SCANNER_COLUMNS", "create_app"]

MARKETS = frozenset({"global", "america", "futures", "forex", "crypto", "cfd", "bonds"})
"""§3.6 lists these (and "…"); other markets answer 404 here (UNCONFIRMED for the real one)."""

SCANNER_COLUMNS: dict[str, str | None] = {
    "close": "lp",
    "close[1]": "prev_close_price",
    "change": "chp",
    "change_abs": "ch",
    "high": "high_price",
    "low": "low_price",
    "volume": "volume",
    "bid": "bid",
    "ask": "ask",
    "update_mode": None,  # filled with the delayed mode
    "Recommend.All": None,  # known column; the simulator has no rating, so null
}
"""§3.6 columns known to work -> the quote field that backs each."""


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


def create_app(sim: TvSim) -> Starlette:
    """Starlette app bound to one running :class:`TvSim`."""

    async def scan(request: Request) -> Response:
        sim.stats.scans += 1
        if sim.faults.scanner_down:
            return PlainTextResponse("scanner unavailable (simulated)", status_code=503)
        market = request.path_params["market"]
        if market not in MARKETS:
            return JSONResponse({"error": f"unknown market {market!r}"}, status_code=404)
        body = await _json(request)
        symbols = body.get("symbols") if isinstance(body, dict) else None
        tickers = symbols.get("tickers") if isinstance(symbols, dict) else None
        columns = body.get("columns") if isinstance(body, dict) else None
        if not isinstance(tickers, list) or not isinstance(columns, list):
            return JSONResponse(
                {"totalCount": 0, "error": "bad request", "data": None}, status_code=400
            )
        for col in columns:
            if col not in SCANNER_COLUMNS:
                return JSONResponse(
                    {"totalCount": 0, "error": f'Unknown field "{col}"', "data": None},
                    status_code=400,
                )
        rows = []
        for t in tickers:
            if not isinstance(t, str) or not sim.market.known(t) or t in sim.faults.rejected:
                continue
            quote = sim.market.quotes[t]
            values = []
            for col in columns:
                backing = SCANNER_COLUMNS[col]
                if col == "update_mode":
                    values.append(sim.config.delayed_mode)
                else:
                    values.append(quote.get(backing) if backing else None)
            rows.append({"s": t, "d": values})
        return JSONResponse({"totalCount": len(rows), "data": rows})

    async def state(request: Request) -> Response:
        return JSONResponse(sim.state())

    async def fault(request: Request) -> Response:
        name = request.path_params["name"]
        body = await _json(request)
        body = body if isinstance(body, dict) else {}
        if name == "drop":
            n = await sim.drop_connections()
        elif name == "stall":
            n = sim.stall_connections()
        elif name == "malformed":
            n = await sim.send_malformed()
        elif name == "protocol_error":
            n = await sim.send_protocol_error()
        elif name == "reject" and isinstance(body.get("symbol"), str):
            sim.reject_symbol(body["symbol"], bool(body.get("on", True)))
            n = 0
        elif name == "scanner":
            sim.set_scanner_down(bool(body.get("down", True)))
            n = 0
        elif name == "ws":
            n = await sim.set_ws_down(bool(body.get("down", True)))
        elif name == "expire_session" and isinstance(body.get("sessionid"), str):
            n = await sim.expire_session(body["sessionid"])
        else:
            return JSONResponse({"error": f"unknown fault or bad body: {name}"}, status_code=404)
        return JSONResponse({"ok": True, "connections_affected": n, **sim.state()["faults"]})

    async def home(request: Request) -> Response:
        sim.stats.pages += 1
        sid = request.cookies.get("sessionid")
        found = sim.config.cookie_sessions.get(sid) if sid else None
        user = "null"
        if found is not None and request.cookies.get("sessionid_sign") == found[0]:
            user = json.dumps(
                {"username": "simuser", "auth_token": found[1]}, separators=(",", ":")
            )
        page = f"<html><head><script>window.user = {user};</script></head><body>sim</body></html>"
        return HTMLResponse(page)

    async def ticks(request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, list):
            return JSONResponse({"error": "expected a list of ticks"}, status_code=400)
        try:
            items = [Tick(str(t["symbol"]), float(t["ts"]), float(t["price"])) for t in body]
        except (KeyError, TypeError, ValueError) as e:
            return JSONResponse({"error": f"bad tick: {e}"}, status_code=400)
        for tick in items:
            await sim.publish(tick)
        return JSONResponse({"published": len(items)})

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/sim/state", state, methods=["GET"]),
            Route("/sim/faults/{name}", fault, methods=["POST"]),
            Route("/sim/ticks", ticks, methods=["POST"]),
            Route("/{market}/scan", scan, methods=["POST"]),
        ]
    )
