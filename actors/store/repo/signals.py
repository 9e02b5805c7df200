"""Signals: durable storage of every webhook delivery (with race-free deduplication), status
updates, and the queries a host (pending signals) and the API (history) need."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Session, col, select

from actors.store.engine import Store
from actors.store.models import SIGNAL_STATUSES, Signal
from actors.store.repo._base import _dialect, _run

SIGNALS = Signal.__table__  # type: ignore[attr-defined]
_INSERT_SIGNAL = sa.insert(SIGNALS)  # built once: statement construction is hot-path CPU

DEDUPE_IGNORED_STATUSES: Final[tuple[str, ...]] = ("rejected", "duplicate")
"""Signals with these statuses never make a later one a duplicate: a rejected delivery must be
retryable, and a duplicate points at an original that already counts."""


def check_signal_status(status: str) -> None:
    if status not in SIGNAL_STATUSES:
        raise ValueError(f"unknown signal status {status!r}")


def _dedupe_lock_key(recorder_id: int | None, dedupe_key: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (Python's ``hash`` is salted
    per process, so it cannot be used across processes)."""
    digest = hashlib.blake2b(f"{recorder_id}\x1f{dedupe_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def insert_signal(
    target: Store | Session,
    *,
    recorder_id: int | None,
    raw_body: bytes,
    content_type: str | None,
    remote_addr: str | None,
    dedupe_key: str | None,
    window_s: float,
    now: float,
    status: str = "received",
    reason: str | None = None,
    detail: str | None = None,
    parsed: dict[str, Any] | None = None,
    action: str | None = None,
    ticker: str | None = None,
    symbol: str | None = None,
    price: float | None = None,
    quantity: int | None = None,
) -> tuple[Signal, bool]:
    """Store one webhook delivery durably; returns ``(row, is_duplicate)``.

    When ``dedupe_key`` is set and ``window_s > 0``, an earlier signal of the same recorder
    (NULL matches NULL) with the same key, received at or after ``now - window_s`` and not
    rejected/duplicate, makes this one a ``"duplicate"`` with ``reason="duplicate_of:<id>"``.

    Check and insert happen in one write transaction, and concurrent writers of the same key are
    serialised: on SQLite by ``BEGIN IMMEDIATE`` (the whole database's write lock), on
    PostgreSQL by a transaction-scoped advisory lock on (recorder, key). So exactly one of
    several racing deliveries is the original.
    """
    check_signal_status(status)

    def fn(s: Session) -> tuple[Signal, bool]:
        duplicate_of: int | None = None
        if dedupe_key is not None and window_s > 0:
            if _dialect(s) == "postgresql":
                s.execute(
                    sa.text("SELECT pg_advisory_xact_lock(CAST(:k AS BIGINT))"),
                    {"k": _dedupe_lock_key(recorder_id, dedupe_key)},
                )
            same_recorder = (
                col(Signal.recorder_id).is_(None)
                if recorder_id is None
                else col(Signal.recorder_id) == recorder_id
            )
            duplicate_of = s.exec(
                select(Signal.id)
                .where(
                    same_recorder,
                    Signal.dedupe_key == dedupe_key,
                    col(Signal.status).not_in(DEDUPE_IGNORED_STATUSES),
                    col(Signal.received_at) >= now - window_s,
                )
                .order_by(col(Signal.id))
                .limit(1)
            ).first()
        values = {
            "recorder_id": recorder_id,
            "received_at": now,
            "raw_body": raw_body,
            "content_type": content_type,
            "remote_addr": remote_addr,
            "dedupe_key": dedupe_key,
            "status": status if duplicate_of is None else "duplicate",
            "reason": reason if duplicate_of is None else f"duplicate_of:{duplicate_of}",
            "detail": detail,
            "parsed": parsed,
            "action": action,
            "ticker": ticker,
            "symbol": symbol,
            "price": price,
            "quantity": quantity,
        }
        # A Core insert: the webhook hot path needs the id, not a unit-of-work flush (the ORM
        # round trip was most of the ingest CPU in bench/ingest).
        result = s.execute(_INSERT_SIGNAL, values)
        (new_id,) = result.inserted_primary_key  # type: ignore[misc]
        return Signal(id=new_id, applied_at=None, **values), duplicate_of is not None

    return _run(target, fn)


def get_signal(session: Session, signal_id: int) -> Signal | None:
    return session.get(Signal, signal_id)


def set_signal_status(
    target: Store | Session,
    signal_id: int,
    status: str,
    reason: str | None = None,
    detail: str | None = None,
    applied_at: float | None = None,
) -> Signal | None:
    """Record what became of a signal. ``reason``/``detail``/``applied_at`` are overwritten
    only when given. None when the signal does not exist."""
    check_signal_status(status)

    def fn(s: Session) -> Signal | None:
        row = s.get(Signal, signal_id)
        if row is None:
            return None
        row.status = status
        if reason is not None:
            row.reason = reason
        if detail is not None:
            row.detail = detail
        if applied_at is not None:
            row.applied_at = applied_at
        s.add(row)
        s.flush()
        return row

    return _run(target, fn)


def mark_signal(
    session: Session,
    signal_id: int,
    status: str,
    reason: str | None = None,
    detail: str | None = None,
    applied_at: float | None = None,
) -> bool:
    """:func:`set_signal_status` as one Core UPDATE inside the caller's transaction (the
    recorder hosts' hot path); False when the signal does not exist."""
    check_signal_status(status)
    values = {"status": status, "reason": reason, "detail": detail, "applied_at": applied_at}
    result = session.execute(MARK_SIGNAL, {"sid": signal_id, **values})
    return bool(result.rowcount)  # type: ignore[attr-defined]


#: status always; reason/detail/applied_at only when given (NULL keeps the stored value).
MARK_SIGNAL = (
    sa.update(SIGNALS)
    .where(SIGNALS.c.id == sa.bindparam("sid"))
    .values(
        status=sa.bindparam("status"),
        **{
            name: sa.func.coalesce(sa.bindparam(name, type_=SIGNALS.c[name].type), SIGNALS.c[name])
            for name in ("reason", "detail", "applied_at")
        },
    )
)


#: Literal, not a bound parameter: SQLite uses a partial index only when the query's WHERE
#: contains the index's condition as written.
RECEIVED: Final = sa.text("signals.status = 'received'")


def pending_signals(session: Session, recorder_ids: Collection[int] | None = None) -> list[Signal]:
    """Signals stored but not yet applied (status ``received``), in arrival order — what a
    restarted host must still apply — of ``recorder_ids`` (all recorders if None).

    One query over the partial index ``ix_signals_received`` whatever the number of recorders:
    a host asks every few seconds, and the table holds every signal ever received."""
    rows = session.exec(select(Signal).where(RECEIVED).order_by(col(Signal.id))).all()
    if recorder_ids is None:
        return list(rows)
    return [r for r in rows if r.recorder_id in recorder_ids]


def list_signals(
    session: Session, recorder_id: int, limit: int | None = 100, offset: int = 0
) -> list[Signal]:
    """A recorder's signals, newest first."""
    stmt = (
        select(Signal)
        .where(Signal.recorder_id == recorder_id)
        .order_by(col(Signal.id).desc())
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.exec(stmt))
