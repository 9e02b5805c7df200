"""``justtrades`` command line: ``serve`` (the whole system), ``migrate``, ``sample-alert``,
``sim-tradovate`` and ``sim-tradingview`` (the protocol-faithful Tradovate / TradingView
simulators)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from actors.recorder.config import (
    RecorderSettings,
    StopLoss,
    TakeProfit,
    TakeProfitTarget,
    TrailingStop,
)
from actors.settings import Settings, get_settings

DEMO = "demo"


def demo_settings() -> RecorderSettings:
    """The demo recorder: two 50 % targets, a fixed stop and a trailing stop."""
    return RecorderSettings(
        take_profit=TakeProfit(
            targets=[TakeProfitTarget(value=20, trim=50), TakeProfitTarget(value=40, trim=50)]
        ),
        stop_loss=StopLoss(value=30),
        trailing_stop=TrailingStop(trigger=24, distance=12),
    )


def ensure_demo_recorder(settings: Settings) -> str:
    """Create the demo recorder on an empty database; return its webhook token."""
    from actors.store import Store, create_recorder, ensure_local_user, list_recorders

    store = Store(settings.resolved_database_url())
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    with store.read() as s:
        existing = [r for r in list_recorders(s, user.id) if r.name == DEMO]
    rec = (
        existing[0] if existing else create_recorder(store, user.id, DEMO, "MNQ1!", demo_settings())
    )
    store.dispose()
    return rec.token


def banner(settings: Settings, token: str) -> str:
    url = settings.base_url
    alert = json.dumps({"action": "buy", "ticker": "MNQ1!", "quantity": 1})
    return "\n".join(
        [
            "",
            "Just.Trades is starting (local Ray, SQLite, simulated feed, paper broker).",
            f"  API docs:   {url}/docs",
            f"  Status:     {url}/status",
            f"  Webhook:    {url}/webhook/{token}",
            "",
            "Send a sample alert (opens a long on the demo recorder):",
            f"  curl -s -X POST {url}/webhook/{token} -H 'Content-Type: application/json' -d '{alert}'",
            "Watch its live drawdown move:",
            f"  curl -s {url}/api/positions",
            "",
        ]
    )


def serve(settings: Settings) -> None:
    import uvicorn

    from api.app import create_app

    token = ensure_demo_recorder(settings)
    print(banner(settings, token), flush=True)
    # No access log: it would write every webhook URL, whose path is the recorder's secret
    # token, to the log (and cost CPU per request); every delivery is in the signals table.
    # loop/http "auto": uvloop and httptools (dependencies), cheaper per request than asyncio/h11.
    uvicorn.run(
        create_app(settings, frozen_heap=True),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        loop="auto",
        http="auto",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim-tradovate"]:  # its own options: python -m actors.broker.tradovate.sim
        from actors.broker.tradovate.sim.__main__ import main as sim_main

        return sim_main(argv[1:])
    if argv[:1] == ["sim-tradingview"]:  # its own options: python -m actors.feed.tv_sim
        from actors.feed.tv_sim.__main__ import main as tv_sim_main

        return tv_sim_main(argv[1:])
    parser = argparse.ArgumentParser(prog="justtrades")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve", help="start the whole system")
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    sub.add_parser("migrate", help="upgrade the database schema")
    sub.add_parser("sample-alert", help="print the demo webhook curl")
    sub.add_parser("sim-tradovate", help="run the Tradovate API simulator (see --help after it)")
    sub.add_parser(
        "sim-tradingview", help="run the TradingView quote/scanner simulator (see --help after it)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    overrides = {
        k: v
        for k, v in (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)))
        if v
    }
    if overrides:
        settings = settings.model_copy(update=overrides)
    if args.cmd == "serve":
        serve(settings)
    elif args.cmd == "migrate":
        from actors.store import Store

        Store(settings.resolved_database_url()).migrate()
        print("database at head")
    elif args.cmd == "sample-alert":
        print(banner(settings, ensure_demo_recorder(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
