"""Trades and fills: inserts, the trade history query, and :func:`reset_history`, which wipes
a recorder's recorded history (trades, fills, signals, positions) in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session as SASession
from sqlmodel import Session, col, select

from actors.store.engine import Store
from actors.store.models import Fill, Position, Signal, Trade
from actors.store.repo._base import _run


def add_trades(session: Session, rows: Iterable[Trade | Mapping[str, Any]]) -> list[Trade]:
    """Insert closed trades; returns them with ids assigned."""
    trades = [r if isinstance(r, Trade) else Trade(**r) for r in rows]
    session.add_all(trades)
    session.flush()
    return trades


def add_fills(session: Session, rows: Iterable[Fill | Mapping[str, Any]]) -> list[Fill]:
    """Insert fills; returns them with ids assigned."""
    fills = [r if isinstance(r, Fill) else Fill(**r) for r in rows]
    session.add_all(fills)
    session.flush()
    return fills


def list_trades(
    session: Session, recorder_id: int, limit: int | None = 100, offset: int = 0
) -> list[Trade]:
    """A recorder's trades (virtual and live pairs), most recently closed first."""
    stmt = (
        select(Trade)
        .where(Trade.recorder_id == recorder_id)
        .order_by(col(Trade.closed_at).desc(), col(Trade.id).desc())
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt))


def reset_history(target: Store | Session, recorder_id: int) -> dict[str, int]:
    """Delete a recorder's trades, fills, signals and positions in one transaction; returns
    the number of rows deleted per table. Orders (broker records) are kept."""

    def fn(s: Session) -> dict[str, int]:
        counts: dict[str, int] = {}
        for model in (Trade, Fill, Signal, Position):
            table = model.__table__  # type: ignore[attr-defined]
            result = s.execute(sa.delete(table).where(table.c.recorder_id == recorder_id))
            counts[table.name] = result.rowcount  # type: ignore[attr-defined]
        return counts

    result = _run(target, fn)
    if isinstance(target, SASession):
        target.expire_all()  # deleted rows may sit in the identity map
    return result
