"""Store rows from what a pair did: fills, trades, the position row with its snapshot."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session

from actors.recorder.pair import FillEvent, Outcome, Pair
from actors.store import models, repo
from actors.store.repo import bulk

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


class Snapshots(Protocol):
    """What a position row is built from: a virtual :class:`Pair` or a live pair."""

    def view(self, symbol: str) -> dict[str, Any] | None: ...

    def snapshot(self, symbol: str) -> dict[str, Any]: ...


def position_fields(pair: Snapshots, recorder_id: int, symbol: str) -> dict[str, Any]:
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

_ORDER_KEEP = frozenset({"created_at"})  # an order's row keeps when it was first written


@dataclass(slots=True)
class Rows:
    """What one transaction writes: signal outcomes, fills, trades, order and position rows, a
    statement per table (one ``executemany``) instead of a round trip per row or per pair.

    Built before the write transaction, so the database's one write lock, which every other
    writer waits for, is held only while the statements run. Rows of several events merge
    (:meth:`add`): history rows append in order; an order or position row met twice becomes one
    row with the newer value of each column, which is what writing both in turn would leave.

    Callable with a session (the Core path, any database); on SQLite the host writes
    :meth:`sqlite` on the raw cursor instead (:mod:`actors.store.repo.bulk`, same result).
    """

    marks: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.marks or self.fills or self.trades or self.orders or self.positions)

    def add(self, other: Rows) -> Rows:
        self.marks += other.marks
        self.fills += other.fills
        self.trades += other.trades
        for cl, row in other.orders.items():
            old = self.orders.get(cl)
            self.orders[cl] = row if old is None else {**old, **row}
        for key, row in other.positions.items():
            old = self.positions.get(key)
            self.positions[key] = row if old is None else {**old, **row}
        return self

    def add_outcomes(self, items: Outcomes) -> Rows:
        """The virtual pairs' rows of many events (a tick batch's exits, a signal batch's
        fills). A position is written once, with the pair's state now (the newest)."""
        for pair, rid, symbol, out, signal_id in items:
            ids = {"pair_key": pair.key, "recorder_id": rid, "signal_id": signal_id}
            self.fills += [
                {**fill_row(fl), **ids, "trader_id": None, "order_id": None} for fl in out.fills
            ]
            self.trades += [{**t.row(), **ids, "trader_id": None} for t in out.trades]
            self.positions[(pair.key, symbol)] = {
                "pair_key": pair.key,
                "symbol": symbol,
                **position_fields(pair, rid, symbol),
            }
        return self

    def __call__(self, s: Session) -> None:
        if self.marks:
            s.connection().execute(repo.MARK_SIGNAL, self.marks)
        insert_history(s, self.fills, self.trades)
        repo.upsert_orders(s, list(self.orders.values()))
        repo.upsert_positions(s, list(self.positions.values()))

    def sqlite(self) -> Callable[[sqlite3.Cursor], None]:
        """The same writes for ``Store.run_sqlite_write``, their parameters built now."""
        now = time.time()
        statements = [bulk.mark_statement(self.marks)] if self.marks else []
        statements += bulk.insert_statements("fills", self.fills)
        statements += bulk.insert_statements("trades", self.trades)
        statements += bulk.insert_statements(
            "orders",
            [{"updated_at": now, **row} for row in self.orders.values()],
            conflict=("cl_ord_id",),
            keep=_ORDER_KEEP,
        )
        statements += bulk.insert_statements(
            "positions",
            [{"updated_at": now, **row} for row in self.positions.values()],
            conflict=("pair_key", "symbol"),
        )
        return lambda cur: bulk.run(cur, statements)


@dataclass(frozen=True, slots=True)
class Sequential:
    """Two writes in one transaction, in order (older :class:`Rows` before another write)."""

    first: Rows
    then: Callable[[Session], object]

    def __call__(self, s: Session) -> None:
        self.first(s)
        self.then(s)


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
    """A signal batch's writes, committed together before anyone is answered: the signals'
    outcomes, the virtual pairs' rows, then the live pairs' rows (:class:`Rows`)."""

    marks: list[dict[str, Any]] = field(default_factory=list)
    outcomes: Outcomes = field(default_factory=list)
    live: Rows = field(default_factory=Rows)

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

    def freeze(self) -> Rows:
        """Everything collected, its rows built now (before the transaction)."""
        return Rows(marks=list(self.marks)).add_outcomes(self.outcomes).add(self.live)
