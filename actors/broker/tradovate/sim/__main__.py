"""``python -m actors.broker.tradovate.sim --port 8790``: run the Tradovate SIMULATOR.

``main(argv)`` is the hook for the project CLI (``justtrades sim-tradovate ...`` forwards its
remaining arguments here). It serves one environment in the foreground until interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

import uvicorn

from actors.broker.tradovate.sim.app import create_app
from actors.broker.tradovate.sim.config import SimConfig, SimUser
from actors.broker.tradovate.sim.core import TradovateSim

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="justtrades sim-tradovate",
        description="Tradovate API simulator (NOT Tradovate): REST /v1, websockets, admin /sim.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8790)
    p.add_argument("--environment", choices=("demo", "live"), default="demo")
    p.add_argument("--user", default="simuser", help="login name")
    p.add_argument("--password", default="simpass")
    p.add_argument("--account", action="append", dest="accounts", help="account name (repeatable)")
    p.add_argument("--cid", help="require this API key id on login")
    p.add_argument("--sec", help="require this API secret on login")
    p.add_argument("--on", type=date.fromisoformat, help="trading day for front months")
    p.add_argument("--initial-cash", type=float, default=50_000.0)
    p.add_argument("--faults", type=json.loads, default=None, help="initial fault switches (JSON)")
    p.add_argument(
        "--walk",
        action="append",
        default=[],
        metavar="SYMBOL=PRICE",
        help="random-walk price source from PRICE (repeatable), e.g. MNQ1!=21000",
    )
    p.add_argument("--walk-interval", type=float, default=1.0, help="seconds between walk ticks")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    user = SimUser(name=args.user, password=args.password, accounts=args.accounts or ["DEMO0001"])
    config = SimConfig(
        users=[user],
        environment=args.environment,
        cid=args.cid,
        sec=args.sec,
        on=args.on,
        initial_cash=args.initial_cash,
    )
    sim = TradovateSim(config, args.faults)
    base = f"http://{args.host}:{args.port}"
    print(
        f"Tradovate SIMULATOR ({args.environment}) — REST {base}/v1, user socket "
        f"{base.replace('http', 'ws')}/v1/websocket, md socket "
        f"{base.replace('http', 'ws')}/md/v1/websocket, admin {base}/sim; "
        f"login {user.name}/{user.password}, accounts {', '.join(user.accounts)}",
        flush=True,
    )
    walk = {sym: float(price) for sym, _, price in (w.partition("=") for w in args.walk)}
    app = create_app(sim, walk=walk or None, walk_interval_s=args.walk_interval)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", ws="websockets-sansio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
