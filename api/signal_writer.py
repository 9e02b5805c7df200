"""Group commit for webhook signal rows.

Every webhook stores its raw signal before anything else. One transaction per request meant
one SQLite write lock (and one thread-pool hop) per request; here concurrent requests share
one transaction, written by one dedicated thread. Inside the transaction the inserts run in
arrival order, so a resend's dedupe check sees the original even when both are in the same
batch. A request is answered only after its batch committed: durable before acknowledged.

The rows are written with prebuilt Core statements rather than
:func:`actors.store.insert_signal` (same rules, same columns; ``tests/test_signal_writer.py``
holds one against the other): that function builds its dedupe query and an ORM ``Signal`` per
call (~0.5 ms of CPU per webhook, on the API process's one GIL), and its query let SQLite scan
the recorder's whole signal history through ``ix_signals_recorder_id_id`` instead of using the
dedupe-key index, so the cost grew with the history.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from actors.store import Store
from actors.store.models import SIGNAL_STATUSES
from actors.store.repo.signals import DEDUPE_IGNORED_STATUSES, SIGNALS, _dedupe_lock_key
from api.dispatch import Batcher

MAX_BATCH = 256


class StoredSignal(NamedTuple):
    """What the webhook needs of a stored row."""

    id: int
    status: str
    reason: str | None


def _dedupe_query(recorder_is_null: bool) -> sa.Select[tuple[Any]]:
    """The earliest earlier signal that makes a new one a duplicate (see ``insert_signal``).

    ``recorder_id + 0`` keeps the planner off ``ix_signals_recorder_id_id`` (SQLite, without
    statistics, preferred it to avoid sorting, then scanned every signal of the recorder);
    the selective dedupe-key index is what should answer this. The status test is spelt out
    (no expanding ``NOT IN`` parameter: that re-renders the SQL on every execution).
    """
    c = SIGNALS.c
    rec = (
        (c.recorder_id + 0).is_(None)
        if recorder_is_null
        else (c.recorder_id + 0) == sa.bindparam("rid")
    )
    return sa.select(sa.func.min(c.id)).where(
        rec,
        c.dedupe_key == sa.bindparam("key"),
        *(c.status != s for s in DEDUPE_IGNORED_STATUSES),
        c.received_at >= sa.bindparam("since"),
    )


_DEDUPE = _dedupe_query(False)
_DEDUPE_NULL_RECORDER = _dedupe_query(True)
_INSERT = sa.insert(SIGNALS)
_PG_LOCK = sa.text("SELECT pg_advisory_xact_lock(CAST(:k AS BIGINT))")


def insert_signal_row(
    conn: Connection,
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
) -> tuple[StoredSignal, bool]:
    """``insert_signal`` inside the caller's write transaction on ``conn``: the same dedupe
    rule (same recorder, NULL matching NULL; same key; not rejected/duplicate; received at or
    after ``now - window_s``; the earliest wins) and the same PostgreSQL advisory lock."""
    if status not in SIGNAL_STATUSES:
        raise ValueError(f"unknown signal status {status!r}")
    duplicate_of: int | None = None
    if dedupe_key is not None and window_s > 0:
        if conn.dialect.name == "postgresql":
            conn.execute(_PG_LOCK, {"k": _dedupe_lock_key(recorder_id, dedupe_key)})
        stmt = _DEDUPE_NULL_RECORDER if recorder_id is None else _DEDUPE
        duplicate_of = conn.execute(
            stmt, {"rid": recorder_id, "key": dedupe_key, "since": now - window_s}
        ).scalar()
    if duplicate_of is not None:
        status, reason = "duplicate", f"duplicate_of:{duplicate_of}"
    result = conn.execute(
        _INSERT,
        {
            "recorder_id": recorder_id,
            "received_at": now,
            "raw_body": raw_body,
            "content_type": content_type,
            "remote_addr": remote_addr,
            "dedupe_key": dedupe_key,
            "status": status,
            "reason": reason,
            "detail": detail,
            "parsed": parsed,
            "action": action,
            "ticker": ticker,
            "symbol": symbol,
            "price": price,
            "quantity": quantity,
        },
    )
    (new_id,) = result.inserted_primary_key  # type: ignore[misc]
    return StoredSignal(new_id, status, reason), duplicate_of is not None


_COLUMNS = [c.name for c in SIGNALS.c if c.name not in ("id", "applied_at")]
_CANDIDATES_SQL = (
    "SELECT id, recorder_id, dedupe_key, received_at FROM signals "
    "WHERE dedupe_key IN ({keys}) AND {statuses} AND received_at + 0 >= ?"
).replace("{statuses}", " AND ".join("status != ?" for _ in DEDUPE_IGNORED_STATUSES))


def sqlite_processors(dialect: Dialect) -> list[Any]:
    """Each column's bind processor (what a Core insert applies: JSON to text, ...)."""
    return [SIGNALS.c[name].type.bind_processor(dialect) for name in _COLUMNS]


_STATUS, _REASON = _COLUMNS.index("status"), _COLUMNS.index("reason")


def signal_params(items: list[dict[str, Any]], procs: list[Any]) -> list[list[Any]]:
    """Each item's column values as the driver takes them (JSON to text, ...), status and
    reason as given: done before the write lock is taken (see :func:`write_signals_sqlite`)."""
    out = []
    for f in items:
        if f.get("status", "received") not in SIGNAL_STATUSES:
            raise ValueError(f"unknown signal status {f['status']!r}")
        values = {**f, "received_at": f["now"]}
        out.append(
            [
                proc(values.get(name)) if proc is not None else values.get(name)
                for name, proc in zip(_COLUMNS, procs, strict=True)
            ]
        )
    return out


def write_signals_sqlite(
    cur: sqlite3.Cursor, items: list[dict[str, Any]], prepared: list[list[Any]]
) -> list[tuple[StoredSignal, bool]]:
    """The rows of ``items`` in arrival order, as :func:`insert_signal_row` one after the other
    would store them, in three statements whatever the batch size: one query for the dedupe
    candidates of the whole batch, ``max(id)``, one multi-row ``INSERT``.

    Runs on the raw ``sqlite3`` cursor of a write transaction (``Store.run_sqlite_write``,
    ``BEGIN IMMEDIATE``: the write lock is held), ``prepared`` from :func:`signal_params` (the
    values are converted before the lock is taken: every other writer waits while it is held). The ids
    are assigned here as ``max(id) + 1, + 2, ...``, which is what SQLite itself would assign (no
    ``AUTOINCREMENT``) and lets a resend in the same batch point at its original. Few
    statements matter more than they seem: every statement releases the GIL, and winning it
    back from the busy event loop can take a whole switch interval, all while this transaction
    holds the database's only write lock, which the recorder hosts are waiting for.
    """
    n = len(items)
    checking = [f for f in items if f["dedupe_key"] is not None and f["window_s"] > 0]
    # (recorder_id, dedupe_key) -> [(id, received_at)] of possible originals, by id
    originals: dict[tuple[int | None, str], list[tuple[int, float]]] = {}
    if checking:
        keys = sorted({f["dedupe_key"] for f in checking})
        since = min(f["now"] - f["window_s"] for f in checking)
        sql = _CANDIDATES_SQL.format(keys=",".join("?" * len(keys)))
        rows = cur.execute(sql, (*keys, *DEDUPE_IGNORED_STATUSES, since)).fetchall()
        for sid, rid, key, at in sorted(rows):
            originals.setdefault((rid, key), []).append((sid, at))
    first = (cur.execute("SELECT max(id) FROM signals").fetchone()[0] or 0) + 1
    params: list[Any] = []
    out: list[tuple[StoredSignal, bool]] = []
    for i, f in enumerate(items):
        sid = first + i
        status, reason = f.get("status", "received"), f.get("reason")
        key, rid = f["dedupe_key"], f["recorder_id"]
        duplicate_of = None
        if key is not None and f["window_s"] > 0:
            since = f["now"] - f["window_s"]
            duplicate_of = next((o for o, at in originals.get((rid, key), ()) if at >= since), None)
        if duplicate_of is not None:
            status, reason = "duplicate", f"duplicate_of:{duplicate_of}"
        if key is not None and status not in DEDUPE_IGNORED_STATUSES:
            originals.setdefault((rid, key), []).append((sid, f["now"]))
        row = prepared[i]
        row[_STATUS], row[_REASON] = status, reason
        params.append(sid)
        params += row
        out.append((StoredSignal(sid, status, reason), duplicate_of is not None))
    one = "(" + ",".join("?" * (len(_COLUMNS) + 1)) + ")"
    sql = f"INSERT INTO signals (id,{','.join(_COLUMNS)}) VALUES " + ",".join([one] * n)
    cur.execute(sql, tuple(params))
    return out


class SignalWriter(Batcher[dict[str, Any], tuple[StoredSignal, bool]]):
    def __init__(self, store: Store) -> None:
        super().__init__(MAX_BATCH)
        self.store = store
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="signal-writer")
        self.procs = sqlite_processors(store.engine.dialect) if store.is_sqlite else []

    def insert(self, **fields: Any) -> asyncio.Future[tuple[StoredSignal, bool]]:
        """:func:`insert_signal_row` in the next group commit; await it for ``(row,
        duplicate)``. Raises what the transaction raised (then nothing of its batch is stored)."""
        return self.enqueue(fields)

    async def call_batch(
        self, items: list[dict[str, Any]], attempt: int = 0
    ) -> list[tuple[StoredSignal, bool]]:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._write, items)

    def _write(self, items: list[dict[str, Any]]) -> list[tuple[StoredSignal, bool]]:
        if self.store.is_sqlite:
            prepared = signal_params(items, self.procs)
            return self.store.run_sqlite_write(
                lambda cur: write_signals_sqlite(cur, items, prepared)
            )
        return self.store.run_write(
            lambda s: [insert_signal_row(s.connection(), **f) for f in items]
        )

    def close(self) -> None:
        self.executor.shutdown(wait=True)
