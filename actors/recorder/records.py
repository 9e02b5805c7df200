"""Store rows from what a pair did: fills, trades, the position row with its snapshot."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from actors.recorder.pair import FillEvent, Outcome, Pair
from actors.store import models, repo


def fill_row(fl: FillEvent) -> dict[str, Any]:
    return {
        "symbol": fl.symbol,
        "side": fl.side,
        "quantity": fl.qty,
        "price": float(fl.price),
        "ts": fl.ts,
        "kind": fl.kind,
    }


def position_fields(pair: Pair, recorder_id: int, symbol: str) -> dict[str, Any]:
    """The position row of ``pair`` in ``symbol``: live figures plus the rebuild snapshot."""
    view = pair.view(symbol)
    fields: dict[str, Any] = {
        "recorder_id": recorder_id,
        "state": pair.snapshot(symbol),
        "updated_at": time.time(),
    }
    if view is None:
        fields.update(side="flat", quantity=0, avg_price=0.0, unrealised=0.0)
    else:
        fields.update(
            side=view["side"],
            quantity=view["quantity"],
            avg_price=view["avg_price"],
            opened_at=view["opened_at"],
            last_price=view["last_price"],
            unrealised=view["unrealised"],
            worst_unrealised=view["worst_unrealised"],
            best_unrealised=view["best_unrealised"],
        )
    return fields


def persist_outcome(
    s: Session, pair: Pair, recorder_id: int, symbol: str, out: Outcome, signal_id: int | None
) -> None:
    """Fills, trades and the position snapshot of one event, in the caller's transaction."""
    ids = {"pair_key": pair.key, "recorder_id": recorder_id, "signal_id": signal_id}
    repo.add_fills(s, [{**fill_row(fl), **ids} for fl in out.fills])
    repo.add_trades(s, [{**t.row(), **ids} for t in out.trades])
    repo.upsert_position(s, pair.key, symbol, **position_fields(pair, recorder_id, symbol))


def persist_outcomes(
    s: Session, items: list[tuple[Pair, int, str, Outcome]], signal_id: int | None = None
) -> None:
    """Many events at once (a tick batch's exits): one bulk insert per table and one bulk
    position upsert, instead of an ORM round trip per row."""
    fills, trades, positions = [], [], {}
    for pair, rid, symbol, out in items:
        ids = {"pair_key": pair.key, "recorder_id": rid, "signal_id": signal_id}
        fills += [{**fill_row(fl), **ids, "trader_id": None, "order_id": None} for fl in out.fills]
        trades += [{**t.row(), **ids, "trader_id": None} for t in out.trades]
        positions[(pair.key, symbol)] = {
            "pair_key": pair.key,
            "symbol": symbol,
            **position_fields(pair, rid, symbol),
        }
    if fills:
        s.execute(sa.insert(models.Fill), fills)
    if trades:
        s.execute(sa.insert(models.Trade), trades)
    repo.upsert_positions(s, list(positions.values()))
