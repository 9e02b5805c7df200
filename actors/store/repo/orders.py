"""Orders of live pairs: one row per client order id, written before the order is sent and
updated as the broker answers (status, broker id, reason: a rejection keeps the broker's words).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import Session, col, select

from actors.store.models import Order
from actors.store.repo._base import _dialect

_ORDER_FIELDS = frozenset(Order.model_fields) - {"id"}


def upsert_orders(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert-or-update by ``cl_ord_id``. New rows need every non-null column; an existing row
    gets only the columns given (plus ``updated_at``)."""
    if not rows:
        return 0
    dialect = _dialect(session)
    now = time.time()
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        values = dict(row)
        unknown = set(values) - _ORDER_FIELDS
        if unknown:
            raise TypeError(f"unknown Order field(s): {sorted(unknown)}")
        values.setdefault("updated_at", now)
        groups.setdefault(frozenset(values), []).append(values)
    conn = session.connection()  # a Core statement: the ORM's execute path costs more than it
    for keys, group in groups.items():
        conn.execute(_upsert_statement(dialect, keys), group)
    return len(rows)


@functools.cache
def _upsert_statement(dialect: str, keys: frozenset[str]) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(Order.__table__)  # type: ignore[attr-defined]
    update_cols = sorted(keys - {"cl_ord_id", "created_at"})
    return stmt.on_conflict_do_update(
        index_elements=["cl_ord_id"], set_={name: stmt.excluded[name] for name in update_cols}
    )


def list_orders(
    session: Session,
    *,
    trader_id: int | None = None,
    recorder_id: int | None = None,
    status: str | None = None,
    limit: int = 500,
) -> list[Order]:
    """Newest first."""
    stmt = select(Order)
    if trader_id is not None:
        stmt = stmt.where(Order.trader_id == trader_id)
    if recorder_id is not None:
        stmt = stmt.where(Order.recorder_id == recorder_id)
    if status is not None:
        stmt = stmt.where(Order.status == status)
    return list(session.exec(stmt.order_by(col(Order.id).desc()).limit(limit)))
