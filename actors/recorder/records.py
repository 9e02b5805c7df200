"""Store rows from what a pair did: fills, trades, the position row with its snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


Outcomes = list[tuple[Pair, int, str, Outcome, int | None]]
"""(pair, recorder id, symbol, what the pair did, the signal that caused it or None)."""


@dataclass(slots=True)
class OutcomeRows:
    """The rows of many events at once (a tick batch's exits, a signal batch's fills): one bulk
    insert per table and one bulk position upsert, instead of an ORM round trip per row. Built
    before the write transaction (:meth:`of`), so the database's one write lock, which every
    other writer waits for, is held only while the statements run. A position is written once,
    with the pair's state when the rows were built (the newest)."""

    fills: list[dict[str, Any]]
    trades: list[dict[str, Any]]
    positions: list[dict[str, Any]]

    @classmethod
    def of(cls, items: Outcomes) -> OutcomeRows:
        fills, trades, positions = [], [], {}
        for pair, rid, symbol, out, signal_id in items:
            ids = {"pair_key": pair.key, "recorder_id": rid, "signal_id": signal_id}
            fills += [
                {**fill_row(fl), **ids, "trader_id": None, "order_id": None} for fl in out.fills
            ]
            trades += [{**t.row(), **ids, "trader_id": None} for t in out.trades]
            positions[(pair.key, symbol)] = {
                "pair_key": pair.key,
                "symbol": symbol,
                **position_fields(pair, rid, symbol),
            }
        return cls(fills, trades, list(positions.values()))

    def write(self, s: Session) -> None:
        insert_history(s, self.fills, self.trades)
        repo.upsert_positions(s, self.positions)


def insert_history(s: Session, fills: list[dict[str, Any]], trades: list[dict[str, Any]]) -> None:
    """Fill and trade rows, one prebuilt Core insert each (the ORM's execute path, and building
    the statement per call, cost more than the inserts)."""
    conn = s.connection()
    if fills:
        conn.execute(_INSERT_FILL, fills)
    if trades:
        conn.execute(_INSERT_TRADE, trades)


@dataclass
class SignalWrites:
    """A signal batch's writes, committed together before anyone is answered: one ``UPDATE``
    (executemany) for the signals' outcomes, one insert per table for fills and trades, one
    position upsert, then the live pairs' writes in order. Was one closure per signal running
    the same statements one by one: the host's largest per-signal cost under load."""

    marks: list[dict[str, Any]] = field(default_factory=list)
    outcomes: Outcomes = field(default_factory=list)
    live: list[Callable[[Session], None]] = field(default_factory=list)

    def mark(
        self, signal_id: int, status: str, reason: str | None, detail: str | None, at: float
    ) -> None:
        repo.check_signal_status(status)
        self.marks.append(
            {
                "sid": signal_id,
                "status": status,
                "reason": reason,
                "detail": detail,
                "applied_at": at,
            }
        )

    def __bool__(self) -> bool:
        return bool(self.marks or self.outcomes or self.live)

    def freeze(self) -> Callable[[Session], None]:
        """The write of everything collected, its rows built now (before the transaction)."""
        marks, live = list(self.marks), list(self.live)
        rows = OutcomeRows.of(self.outcomes) if self.outcomes else None

        def write(s: Session) -> None:
            if marks:
                s.connection().execute(repo.MARK_SIGNAL, marks)
            if rows is not None:
                rows.write(s)
            for w in live:
                w(s)

        return write
