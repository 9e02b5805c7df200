"""Positions: the per-(pair, symbol) rows a recorder's pairs persist, single and bulk upserts,
and the queries used to show open positions and to rebuild pairs after a restart."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from sqlmodel import Session, col, select

from actors.store.models import Position
from actors.store.repo._base import _dialect

_POSITION_FIELDS: Final[frozenset[str]] = frozenset(Position.model_fields) - {"id"}


def _check_position_fields(fields: Iterable[str]) -> None:
    unknown = set(fields) - _POSITION_FIELDS
    if unknown:
        raise TypeError(f"unknown Position field(s): {sorted(unknown)}")


def upsert_position(session: Session, pair_key: str, symbol: str, **fields: Any) -> Position:
    """Create or update the position row of (pair_key, symbol); ``updated_at`` defaults to now.

    Creating a row needs ``recorder_id``. Each pair is owned by one actor, so there is one
    writer per row; for many rows at once (excursion flushes) use :func:`upsert_positions`.
    """
    _check_position_fields(fields)
    fields.setdefault("updated_at", time.time())
    pos = session.exec(
        select(Position).where(Position.pair_key == pair_key, Position.symbol == symbol)
    ).first()
    if pos is None:
        if fields.get("recorder_id") is None:
            raise ValueError("recorder_id is required to create a position row")
        pos = Position(pair_key=pair_key, symbol=symbol, **fields)
    else:
        for name, value in fields.items():
            setattr(pos, name, value)
    session.add(pos)
    session.flush()
    return pos


def upsert_positions(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Bulk insert-or-update position rows with ``INSERT … ON CONFLICT (pair_key, symbol) DO
    UPDATE`` (one statement per distinct set of keys). Each row needs ``pair_key``, ``symbol``
    and ``recorder_id``; an existing row gets only the given columns (plus ``updated_at``).
    Bypasses the ORM identity map: objects already loaded in ``session`` are not refreshed."""
    if not rows:
        return 0
    dialect = _dialect(session)
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - only these are supported
        raise NotImplementedError(dialect)
    now = time.time()
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        values = dict(row)
        _check_position_fields(values)
        for required in ("pair_key", "symbol", "recorder_id"):
            if values.get(required) is None:
                raise ValueError(f"{required} is required in every row")
        values.setdefault("updated_at", now)
        groups.setdefault(frozenset(values), []).append(values)
    conn = session.connection()  # a Core statement: the ORM's execute path costs more than it
    for keys, group in groups.items():
        conn.execute(_upsert_statement(dialect, keys), group)
    return len(rows)


@functools.cache
def _upsert_statement(dialect: str, keys: frozenset[str]) -> Any:
    """The INSERT … ON CONFLICT DO UPDATE for one dialect and set of columns, built once:
    constructing it per call (and its cache key) was most of a flush's CPU."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    table = Position.__table__  # type: ignore[attr-defined]
    stmt = dialect_insert(table)
    update_cols = sorted(keys - {"pair_key", "symbol"})
    return stmt.on_conflict_do_update(
        index_elements=["pair_key", "symbol"],
        set_={name: stmt.excluded[name] for name in update_cols},
    )


def open_positions(session: Session, recorder_id: int | None = None) -> list[Position]:
    """Non-flat position rows (all recorders when ``recorder_id`` is None)."""
    stmt = select(Position).where(Position.side != "flat", col(Position.quantity) > 0)
    if recorder_id is not None:
        stmt = stmt.where(Position.recorder_id == recorder_id)
    return list(session.exec(stmt.order_by(col(Position.id))))


def load_positions(session: Session, recorder_ids: Iterable[int]) -> list[Position]:
    """Every position row (flat ones too: their ``state`` may matter) of the given recorders,
    for rebuilding pairs after a restart."""
    ids = list(recorder_ids)
    if not ids:
        return []
    return list(
        session.exec(
            select(Position)
            .where(col(Position.recorder_id).in_(ids))
            .order_by(col(Position.recorder_id), col(Position.pair_key), col(Position.symbol))
        )
    )
