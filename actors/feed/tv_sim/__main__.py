"""``python -m actors.feed.tv_sim``: run the TradingView SIMULATOR in the foreground.

``main(argv)`` is the hook for the project CLI (``justtrades sim-tradingview ...`` forwards its
remaining arguments here). Prices come from ``--walk`` random walks and/or a ``--replay`` CSV
(tick or OHLC-bar file, as for ``JT_FEED=replay:``); symbols are TradingView symbols
(``CME_MINI:MNQ1!``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from actors.feed.sources.replay import ReplaySource
from actors.feed.tv_sim.server import TvSim
from actors.feed.tv_sim.state import SimConfig
from actors.instruments import spec_for

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="justtrades sim-tradingview",
        description="TradingView quote websocket + scanner SIMULATOR (NOT TradingView).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8791, help="quote websocket port")
    p.add_argument("--http-port", type=int, default=8792, help="scanner + /sim control port")
    p.add_argument("--heartbeat", type=float, default=10.0, help="seconds between ~h~ frames")
    p.add_argument(
        "--token",
        action="append",
        default=[],
        help="auth token answered with real-time 'streaming' (repeatable); others are delayed",
    )
    p.add_argument(
        "--session",
        action="append",
        default=[],
        metavar="SESSIONID:SIGN:TOKEN",
        help="a logged-in browser session (repeatable): GET / with these cookies embeds TOKEN, "
        "which streams real time",
    )
    p.add_argument(
        "--walk",
        action="append",
        default=[],
        metavar="SYMBOL=PRICE",
        help="random walk from PRICE (repeatable), e.g. CME_MINI:MNQ1!=21000",
    )
    p.add_argument("--walk-interval", type=float, default=1.0, help="seconds between walk ticks")
    p.add_argument("--replay", metavar="CSV", help="tick or OHLC-bar CSV to play (symbols as TV)")
    p.add_argument("--replay-interval", type=float, default=0.25, help="seconds between ticks")
    p.add_argument("--seed", type=int, default=0)
    return p


async def _run(args: argparse.Namespace) -> None:
    config = SimConfig(
        host=args.host,
        ws_port=args.port,
        http_port=args.http_port,
        heartbeat_s=args.heartbeat,
        accepted_tokens=frozenset(args.token),
        cookie_sessions={
            sid: (sign, token)
            for sid, sign, token in (entry.split(":", 2) for entry in args.session)
        },
    )
    walk = {sym: float(price) for sym, _, price in (w.partition("=") for w in args.walk)}
    async with TvSim(config, symbols=walk) as sim:
        if walk:
            sim.walk(walk, args.walk_interval, args.seed)
        if args.replay:
            source = ReplaySource(args.replay, lambda s: spec_for(s).tick_size)
            sim.play(iter(source), args.replay_interval)
        print(
            f"TradingView SIMULATOR — quote socket {sim.ws_url}, scanner "
            f"{sim.http_url}/futures/scan, login page {sim.http_url}/, "
            f"control {sim.http_url}/sim/state",
            flush=True,
        )
        await sim.serve_forever()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
