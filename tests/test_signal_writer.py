"""Group commit of webhook signals: concurrent inserts share transactions, keep arrival order,
and dedupe still holds inside one batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import func, select

from actors.store import Signal, Store, create_recorder, ensure_local_user
from api.signal_writer import SignalWriter


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
        return dict(recorder_id=rid, raw_body=f"{i}".encode(), content_type=None, remote_addr=None,
                    dedupe_key=key, window_s=60, now=1000.0 + i)  # fmt: skip

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
