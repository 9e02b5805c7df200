"""Store rows from what a pair did: fills, trades, the position row with its snapshot."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from actors.recorder.pair import FillEvent, Outcome, Pair
from actors.store import models, repo

# Built once: constructing statements per call was a large share of the per-signal CPU.
_INSERT_FILL = sa.insert(models.Fill.__table__)  # type: ignore[attr-defined]
_INSERT_TRADE = sa.insert(models.Trade.__table__)  # type: ignore[attr-defined]


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
        s.execute(_INSERT_FILL, fills)
    if trades:
        s.execute(_INSERT_TRADE, trades)
    repo.upsert_positions(s, list(positions.values()))
