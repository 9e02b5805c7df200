"""An exception inside one recorder's pair logic reloads that recorder from the store and leaves
its neighbours on the same host untouched (issue #6)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.recorder.config import RecorderSettings
from actors.recorder.host import RecorderHost
from actors.store import Store, create_recorder, ensure_local_user, insert_signal, models


def intent(kind: str, price: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "quantity": 1,
        "target": None,
        "price": price,
        "symbol": "MNQZ5",
        "signal_time": None,
        "received_at": time.time(),
    }


def two_recorders(tmp_path: Path) -> tuple[str, Store, Any, Any, Callable[[int], int]]:
    """A store with recorders a and b on MNQZ5, and a function storing a signal for one."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    a = create_recorder(store, user.id, "a", "MNQZ5", RecorderSettings())
    b = create_recorder(store, user.id, "b", "MNQZ5", RecorderSettings())
    assert a.id is not None and b.id is not None

    def stored(rid: int) -> int:
        row, _ = insert_signal(store, recorder_id=rid, raw_body=b"{}", content_type=None,
                               remote_addr=None, dedupe_key=None, window_s=0, now=time.time())  # fmt: skip
        assert row.id is not None
        return row.id

    return url, store, a, b, stored


def test_a_failing_pair_is_reloaded_and_its_neighbour_is_not_touched(tmp_path: Path) -> None:
    url, store, a, b, stored = two_recorders(tmp_path)

    async def run() -> None:
        host = RecorderHost(0, 1, url, flush_s=3600)
        await host.on_signals([(stored(a.id), a.id, intent("buy", 20000.0))])  # a: long 1
        before_b = host.recorders[b.id].pair
        broken = host.recorders[a.id].pair

        def boom(*_: Any, **__: Any) -> Any:
            raise RuntimeError("bug in pair logic")

        broken.on_signal = boom  # type: ignore[method-assign]
        results = await host.on_signals(
            [
                (stored(b.id), b.id, intent("buy", 20001.0)),
                (stored(a.id), a.id, intent("sell", 20002.0)),
                (stored(b.id), b.id, intent("buy", 20003.0)),
            ]
        )
        assert [r["status"] for r in results] == ["applied", "rejected", "applied"]
        assert results[1]["reason"] == "pair_error" and "bug in pair logic" in results[1]["detail"]
        assert host.recorders[b.id].pair is before_b  # the neighbour was not rebuilt
        assert host.recorders[b.id].pair.book("MNQZ5").pos.qty == 2  # type: ignore[union-attr]
        reloaded = host.recorders[a.id].pair
        assert reloaded is not broken  # rebuilt from the store: still the long of the first buy
        assert reloaded.book("MNQZ5").pos.qty == 1  # type: ignore[union-attr]
        out = await host.on_signals([(stored(a.id), a.id, intent("close", 20004.0))])
        assert out[0]["status"] == "applied" and reloaded.book("MNQZ5").pos is None
        assert host.counters["pair_reloads"] == 1

    asyncio.run(run())
    with store.read() as s:
        rejected = s.exec(
            models.Signal.__table__.select().where(models.Signal.reason == "pair_error")  # type: ignore[attr-defined]
        ).all()
    assert len(rejected) == 1


def test_a_recorder_failing_again_and_again_is_failed_until_it_is_changed(tmp_path: Path) -> None:
    """Past the budget of pair-logic errors the recorder is FAILED: its signals are stored as
    rejected (pair_failed) without running its logic, its neighbour keeps trading, and a change
    through the API (a reload) gives it a new chance."""
    from actors.recorder import host as host_module

    url, _store, a, b, stored = two_recorders(tmp_path)

    calls = []

    def boom(*_: Any, **__: Any) -> Any:
        calls.append(1)
        raise RuntimeError("bug in pair logic")

    async def run() -> None:
        host = RecorderHost(0, 1, url, flush_s=3600)
        original = host_module.Pair.on_signal

        def maybe_boom(self: Any, *args: Any, **kw: Any) -> Any:
            return boom() if self.key == f"r{a.id}:virtual" else original(self, *args, **kw)

        host_module.Pair.on_signal = maybe_boom  # type: ignore[method-assign]
        try:
            budget = host_module.PAIR_FAILURE_BUDGET
            for _ in range(budget):
                out = await host.on_signals([(stored(a.id), a.id, intent("buy", 20000.0))])
                assert out[0]["reason"] == "pair_error"
            assert a.id in host.failed_recorders
            out = await host.on_signals(
                [
                    (stored(a.id), a.id, intent("buy", 20000.0)),
                    (stored(b.id), b.id, intent("buy", 20001.0)),
                ]
            )
            assert [(r["status"], r["reason"]) for r in out] == [
                ("rejected", "pair_failed"),
                ("applied", None),
            ]
            assert len(calls) == budget  # its logic did not run again
            status = await host.status()
            assert a.id in status["failed_recorders"]
        finally:
            host_module.Pair.on_signal = original  # type: ignore[method-assign]
        await host.load_recorder(a.id)  # the user changed it: a new chance
        out = await host.on_signals([(stored(a.id), a.id, intent("buy", 20000.0))])
        assert out[0]["status"] == "applied"

    asyncio.run(run())


def test_a_signal_batch_stores_every_outcome_with_its_signal(tmp_path: Path) -> None:
    """One ``on_signals`` batch is written in one statement per table (records.SignalWrites):
    every signal gets its own status, every fill and trade the id of the signal that made it,
    and each position row ends at the pair's state after the whole batch."""
    url, store, a, b, stored = two_recorders(tmp_path)
    ids = [stored(a.id), stored(b.id), stored(a.id), stored(a.id), stored(b.id)]
    kinds = ["buy", "sell", "buy", "close", "bogus"]
    prices = [20000.0, 20001.0, 20002.0, 20010.0, 20003.0]
    recs = [a.id, b.id, a.id, a.id, b.id]

    async def run() -> list[dict[str, Any]]:
        host = RecorderHost(0, 1, url, flush_s=3600)
        items = [
            (sid, rid, intent(kind, px))
            for sid, rid, kind, px in zip(ids, recs, kinds, prices, strict=True)
        ]
        return await host.on_signals(items)

    results = asyncio.run(run())
    assert [r["status"] for r in results] == [
        "applied",
        "applied",
        "applied",
        "applied",
        "rejected",
    ]
    with store.read() as s:
        sigs = {x.id: x for x in s.exec(models.Signal.__table__.select()).all()}  # type: ignore[attr-defined]
        fills = s.exec(models.Fill.__table__.select().order_by("id")).all()  # type: ignore[attr-defined]
        trades = s.exec(models.Trade.__table__.select()).all()  # type: ignore[attr-defined]
        positions = {
            p.recorder_id: p
            for p in s.exec(models.Position.__table__.select()).all()  # type: ignore[attr-defined]
        }
    assert [sigs[i].status for i in ids] == ["applied"] * 4 + ["rejected"]
    assert all(sigs[i].applied_at is not None for i in ids)
    assert [(f.signal_id, f.kind, f.price) for f in fills] == [
        (ids[0], "entry", 20000.0),
        (ids[1], "entry", 20001.0),
        (ids[2], "add", 20002.0),
        (ids[3], "exit", 20010.0),
    ]
    assert [(t.signal_id, t.quantity, t.pair_key) for t in trades] == [
        (ids[3], 2, f"r{a.id}:virtual")
    ]
    assert positions[a.id].side == "flat" and positions[a.id].quantity == 0
    assert positions[b.id].side == "short" and positions[b.id].quantity == 1
