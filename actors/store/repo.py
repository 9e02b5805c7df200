"""Repository functions: the only SQL the rest of the system needs.

Functions that form a transaction of their own take ``target: Store | Session``: given a
:class:`~actors.store.engine.Store` they run in their own write transaction (retried whole on a
transient lock error); given a write :class:`Session` they join the caller's transaction, so
several calls can be committed atomically. Functions that only make sense inside a larger
transaction, or only read, take a ``Session``.

Returned model objects are detached snapshots once their session has closed (the store turns
``expire_on_commit`` off), so they can be handed to other code freely.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import Session as SASession
from sqlmodel import Session, col, select

from actors.store.engine import Store
from actors.store.models import (
    SIGNAL_STATUSES,
    Fill,
    Position,
    Recorder,
    Signal,
    Trade,
    User,
)

T = TypeVar("T")

LOCAL_USER: Final = "local"
DEDUPE_IGNORED_STATUSES: Final[tuple[str, ...]] = ("rejected", "duplicate")
"""Signals with these statuses never make a later one a duplicate: a rejected delivery must be
retryable, and a duplicate points at an original that already counts."""

_POSITION_FIELDS: Final[frozenset[str]] = frozenset(Position.model_fields) - {"id"}


def _run(target: Store | SASession, fn: Callable[[Session], T]) -> T:
    if isinstance(target, Store):
        return target.run_write(fn)
    result = fn(target)  # type: ignore[arg-type]
    target.flush()
    return result


def _dialect(session: SASession) -> str:
    return session.get_bind().dialect.name


def new_token() -> str:
    """A webhook token: 24 random bytes (192 bits), URL-safe base64."""
    return secrets.token_urlsafe(24)


# -- users -------------------------------------------------------------------------------------


def ensure_local_user(target: Store | Session) -> User:
    """Return the single-user mode's ``local`` admin, creating it if needed (race-free)."""

    def fn(s: Session) -> User:
        existing = s.exec(select(User).where(User.name == LOCAL_USER)).first()
        if existing is not None:
            return existing
        user = User(name=LOCAL_USER, role="admin")
        try:
            with s.begin_nested():
                s.add(user)
        except sa.exc.IntegrityError:
            # PostgreSQL: another process created it between our SELECT and INSERT.
            return s.exec(select(User).where(User.name == LOCAL_USER)).one()
        return user

    return _run(target, fn)


def create_user(target: Store | Session, name: str, role: str = "user") -> User:
    if role not in ("admin", "user"):
        raise ValueError(f"unknown role {role!r}")

    def fn(s: Session) -> User:
        user = User(name=name, role=role)
        s.add(user)
        s.flush()
        return user

    return _run(target, fn)


def get_user_by_name(session: Session, name: str) -> User | None:
    return session.exec(select(User).where(User.name == name)).first()


# -- recorders ---------------------------------------------------------------------------------


def _settings_json(settings: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(settings, BaseModel):
        return settings.model_dump(mode="json")
    return dict(settings)


def create_recorder(
    target: Store | Session,
    owner_id: int,
    name: str,
    symbol: str,
    settings: Mapping[str, Any] | BaseModel,
    enabled: bool = True,
) -> Recorder:
    """Create a recorder with a fresh token. A duplicate (owner, name) raises
    ``sqlalchemy.exc.IntegrityError``."""

    def fn(s: Session) -> Recorder:
        now = time.time()
        rec = Recorder(
            owner_id=owner_id,
            name=name,
            symbol=symbol,
            token=new_token(),
            enabled=enabled,
            settings=_settings_json(settings),
            created_at=now,
            updated_at=now,
        )
        s.add(rec)
        s.flush()
        return rec

    return _run(target, fn)


def get_recorder(
    session: Session, recorder_id: int, *, include_deleted: bool = False
) -> Recorder | None:
    rec = session.get(Recorder, recorder_id)
    if rec is None or (rec.deleted and not include_deleted):
        return None
    return rec


def get_recorder_by_token(session: Session, token: str) -> Recorder | None:
    """Indexed lookup of a live (not deleted) recorder. Comparing the token in constant time
    and keeping it out of logs is the API's job."""
    return session.exec(
        select(Recorder).where(Recorder.token == token, col(Recorder.deleted).is_(False))
    ).first()


def list_recorders(
    session: Session, owner_id: int | None = None, *, include_deleted: bool = False
) -> list[Recorder]:
    """Recorders of ``owner_id`` (all owners when None), by id."""
    stmt = select(Recorder)
    if owner_id is not None:
        stmt = stmt.where(Recorder.owner_id == owner_id)
    if not include_deleted:
        stmt = stmt.where(col(Recorder.deleted).is_(False))
    return list(session.exec(stmt.order_by(col(Recorder.id))))


def update_recorder(
    target: Store | Session,
    recorder_id: int,
    *,
    name: str | None = None,
    symbol: str | None = None,
    settings: Mapping[str, Any] | BaseModel | None = None,
    enabled: bool | None = None,
) -> Recorder | None:
    """Change the given fields of a live recorder; None when it does not exist or is deleted."""

    def fn(s: Session) -> Recorder | None:
        rec = get_recorder(s, recorder_id)
        if rec is None:
            return None
        if name is not None:
            rec.name = name
        if symbol is not None:
            rec.symbol = symbol
        if settings is not None:
            rec.settings = _settings_json(settings)  # a new object: JSON is not mutation-tracked
        if enabled is not None:
            rec.enabled = enabled
        rec.updated_at = time.time()
        s.add(rec)
        s.flush()
        return rec

    return _run(target, fn)


def rotate_recorder_token(target: Store | Session, recorder_id: int) -> Recorder | None:
    """Give a live recorder a new webhook token (the old one stops working at commit)."""

    def fn(s: Session) -> Recorder | None:
        rec = get_recorder(s, recorder_id)
        if rec is None:
            return None
        rec.token = new_token()
        rec.updated_at = time.time()
        s.add(rec)
        s.flush()
        return rec

    return _run(target, fn)


def soft_delete_recorder(target: Store | Session, recorder_id: int) -> bool:
    """Mark a recorder deleted and disabled; its history stays. The name gets a
    ``" [deleted <id>]"`` suffix so the owner can reuse the name (unique per owner), and
    :func:`get_recorder_by_token` stops finding it. False when there was nothing to delete."""

    def fn(s: Session) -> bool:
        rec = get_recorder(s, recorder_id)
        if rec is None:
            return False
        rec.deleted = True
        rec.enabled = False
        rec.name = f"{rec.name} [deleted {rec.id}]"
        rec.updated_at = time.time()
        s.add(rec)
        s.flush()
        return True

    return _run(target, fn)


# -- signals -----------------------------------------------------------------------------------


def _check_signal_status(status: str) -> None:
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
    _check_signal_status(status)

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
        row = Signal(
            recorder_id=recorder_id,
            received_at=now,
            raw_body=raw_body,
            content_type=content_type,
            remote_addr=remote_addr,
            dedupe_key=dedupe_key,
            status=status if duplicate_of is None else "duplicate",
            reason=reason if duplicate_of is None else f"duplicate_of:{duplicate_of}",
            detail=detail,
            parsed=parsed,
            action=action,
            ticker=ticker,
            symbol=symbol,
            price=price,
            quantity=quantity,
        )
        s.add(row)
        s.flush()
        return row, duplicate_of is not None

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
    _check_signal_status(status)

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


def pending_signals(session: Session, recorder_id: int) -> list[Signal]:
    """Signals stored but not yet applied (status ``received``), in arrival order — what a
    restarted host must still apply."""
    return list(
        session.exec(
            select(Signal)
            .where(Signal.recorder_id == recorder_id, Signal.status == "received")
            .order_by(col(Signal.id))
        )
    )


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


# -- positions ---------------------------------------------------------------------------------


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
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
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
    table = Position.__table__  # type: ignore[attr-defined]
    for keys, group in groups.items():
        stmt = dialect_insert(table)
        update_cols = sorted(keys - {"pair_key", "symbol"})
        stmt = stmt.on_conflict_do_update(
            index_elements=["pair_key", "symbol"],
            set_={name: stmt.excluded[name] for name in update_cols},
        )
        session.execute(stmt, group)
    return len(rows)


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


# -- trades and fills --------------------------------------------------------------------------


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
