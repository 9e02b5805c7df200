"""Group commit of webhook signals: concurrent inserts share transactions, keep arrival order,
and dedupe still holds inside one batch."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from sqlmodel import func, select

from actors.store import Signal, Store, create_recorder, ensure_local_user, insert_signal
from api.signal_writer import _CANDIDATES_SQL, _DEDUPE, SignalWriter
from tests.store_fixtures import BACKENDS, database_url


def make_store_at(url: str) -> tuple[Store, int, int]:
    """A migrated store with two recorders (ids are the same on every fresh database)."""
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    a = create_recorder(store, user.id, "r", "MNQ1!", {}).id
    b = create_recorder(store, user.id, "o", "MES1!", {}).id
    assert a is not None and b is not None
    return store, a, b


def make_store(tmp_path: Path) -> tuple[Store, int]:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    rec = create_recorder(store, user.id, "r", "MNQ1!", {})
    assert rec.id is not None
    return store, rec.id


async def test_concurrent_inserts_commit_together_in_order_and_dedupe(tmp_path: Path) -> None:
    store, rid = make_store(tmp_path)
    writer = SignalWriter(store)
    calls = []
    original = writer._write
    writer._write = lambda items: calls.append(len(items)) or original(items)  # type: ignore[method-assign]

    def fields(i: int, key: str) -> dict:
        return dict(
            recorder_id=rid,
            raw_body=f"{i}".encode(),
            content_type=None,
            remote_addr=None,
            dedupe_key=key,
            window_s=60,
            now=1000.0 + i,
        )

    results = await asyncio.gather(*(writer.insert(**fields(i, f"k{i % 10}")) for i in range(30)))
    ids = [row.id for row, _ in results]
    assert ids == sorted(ids)  # arrival order kept
    dups = [dup for _, dup in results]
    assert dups == [False] * 10 + [True] * 20  # the first of each key wins, even in one batch
    assert sum(calls) == 30 and len(calls) < 30  # coalesced into fewer transactions
    with store.read() as s:
        assert s.exec(select(func.count()).select_from(Signal)).one() == 30
    writer.close()


async def test_a_failed_batch_fails_its_callers(tmp_path: Path) -> None:
    store, rid = make_store(tmp_path)
    writer = SignalWriter(store)

    def boom(items: list) -> list:
        raise RuntimeError("disk full")

    writer._write = boom  # type: ignore[method-assign]
    outcome = await asyncio.gather(
        writer.insert(
            recorder_id=rid,
            raw_body=b"x",
            content_type=None,
            remote_addr=None,
            dedupe_key=None,
            window_s=0,
            now=1.0,
        ),
        return_exceptions=True,
    )
    assert isinstance(outcome[0], RuntimeError)
    assert not writer.busy
    writer.close()


def _sequence(rid: int, other: int) -> list[dict]:
    """Deliveries covering every dedupe rule: same key and recorder (in and out of the window),
    another recorder, no recorder (NULL matches NULL), a rejected original (never counts), a
    zero window, no key, resends of resends."""

    def f(i: int, key: str | None, rec: int | None = rid, window: float = 60, **kw: object) -> dict:
        return dict(
            recorder_id=rec,
            raw_body=f"body {i}".encode(),
            content_type="text/plain",
            remote_addr="10.0.0.1",
            dedupe_key=key,
            window_s=window,
            now=1000.0 + i,
            **kw,
        )

    parsed = {"action": "buy", "fields": {"action": "buy"}, "intent": {"kind": "buy"}}
    return [
        f(
            0,
            "a",
            parsed=parsed,
            action="buy",
            ticker="MNQ1!",
            symbol="MNQZ6",
            price=1.5,
            quantity=2,
        ),
        f(1, "a"),  # duplicate of 0
        f(2, "a", rec=other),  # another recorder: original
        f(3, "b", status="rejected", reason="unknown_action", detail="no"),
        f(4, "b"),  # the rejected one does not count: original
        f(5, "b"),  # duplicate of 4
        f(6, "c", rec=None),
        f(7, "c", rec=None),  # NULL matches NULL
        f(8, "a", window=0),  # no check: stored as received
        f(9, None),
        f(100, "a", window=50),  # 0 and 8 are out of this window: original
        f(101, "d", window=0),
        f(102, "d"),  # duplicate: a delivery stored without a check still counts as original
        f(103, "e", status="rejected", reason="rate_limited"),
        f(104, "e", status="rejected", reason="rate_limited"),  # rejected: never a duplicate
    ]


def _rows(store: Store) -> list[tuple]:
    with store.read() as s:
        rows = s.exec(select(Signal).order_by(Signal.id)).all()
        return [tuple(getattr(r, name) for name in Signal.model_fields) for r in rows]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_stored_rows_are_exactly_what_insert_signal_stores(
    backend: str, tmp_path: Path
) -> None:
    """The writer (SQLite: its batch path; PostgreSQL: one row at a time under the advisory
    lock) against the store's own ``insert_signal``, one delivery at a time: same answers, same
    rows column by column, whether the deliveries come in one batch or in several."""
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(database_url(backend, tmp_path / n)) for n in ("r", "o", "s")]
        made = [make_store_at(url) for url in urls]
        ids = {(rid, other) for _, rid, other in made}
        assert len(ids) == 1
        (ref, rid, other), *targets = made
        items = _sequence(rid, other)
        want = [
            (row.id, row.status, row.reason, dup)
            for row, dup in (insert_signal(ref, **f) for f in items)
        ]
        assert [i for i, (*_, dup) in enumerate(want) if dup] == [1, 5, 7, 12]
        for (store, _, _), batches in zip(
            targets, ([items], [items[:5], items[5:6], items[6:]]), strict=True
        ):
            writer = SignalWriter(store)
            got = []
            for batch in batches:
                got += await asyncio.gather(*(writer.insert(**f) for f in batch))
            writer.close()
            assert [(row.id, row.status, row.reason, dup) for row, dup in got] == want
            assert _rows(store) == _rows(ref)
        for store, _, _ in made:
            store.dispose()


def test_the_dedupe_check_uses_the_dedupe_key_index(tmp_path: Path) -> None:
    """Not the recorder's index: that scanned the recorder's whole signal history per webhook."""
    store, _ = make_store(tmp_path)
    with store.engine.connect() as conn:
        sql = str(_DEDUPE.compile(dialect=conn.dialect))
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + sql, (1, 0, "k", "rejected", "duplicate", 0.0)
        ).all()
        assert any("ix_signals_dedupe_key" in str(row) for row in plan), plan
        batch = _CANDIDATES_SQL.format(keys="?,?")
        plan = conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + batch, ("a", "b", "rejected", "duplicate", 0.0)
        ).all()
        assert any("ix_signals_dedupe_key" in str(row) for row in plan), plan
