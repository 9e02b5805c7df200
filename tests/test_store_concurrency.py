"""Multi-process write load against one database: no "database is locked", no lost rows, and
the signal dedupe holds when processes race on the same keys.

Workers are module-level functions so ``multiprocessing`` (spawn) can import them in the child.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import time
import traceback
from collections import defaultdict
from multiprocessing.synchronize import Barrier, Event
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func
from sqlmodel import select

from actors.store import (
    Signal,
    Store,
    User,
    alembic_config,
    create_recorder,
    ensure_local_user,
    insert_signal,
    list_signals,
)

#: the newest migration (new revisions must not require editing these tests)
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

try:  # tests/ is not a package today; keep working if it becomes one
    from store_fixtures import db_url  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    from tests.store_fixtures import db_url

__all__ = ["db_url"]  # fixture used by name

WRITERS = 4
PER_WRITER = 200
SHARED_KEYS = 50
JOIN_TIMEOUT_S = 60.0
SLOT_S = 0.02


def _key(writer: int, j: int) -> str:
    """Odd iterations use one of SHARED_KEYS keys, in the same order in every writer (so they
    collide); even iterations use a key of their own."""
    return f"shared-{(j // 2) % SHARED_KEYS}" if j % 2 else f"w{writer}-{j}"


class _CountWarnings(logging.Handler):
    """Counts the store's retry warnings: a retried transaction is a hidden failure."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _sleep_until(deadline: float) -> None:
    while (left := deadline - time.time()) > 0:
        time.sleep(min(left, 0.005))


def _writer(
    url: str, recorder_id: int, writer: int, barrier: Barrier, results: Any
) -> None:  # pragma: no cover - runs in a child process
    out: dict[str, Any] = {"writer": writer, "errors": [], "done": 0, "duplicates": 0}
    warnings = _CountWarnings()
    logging.getLogger("actors.store").addHandler(warnings)
    try:
        store = Store(url)
        store.migrate()  # every process migrates at start-up; must be a no-op here
        barrier.wait(JOIN_TIMEOUT_S)
        # Released within a few ms of each other, all writers pick the same next whole second
        # and insert the first occurrence of shared key k at t0 + k × SLOT_S: a real race on
        # every key, not just a lucky overlap.
        t0 = math.floor(time.time()) + 1.0
        started = time.perf_counter()
        for j in range(PER_WRITER):
            if j % 2 and j < 2 * SHARED_KEYS:
                _sleep_until(t0 + (j // 2) * SLOT_S)
            try:
                _row, dup = insert_signal(
                    store,
                    recorder_id=recorder_id,
                    raw_body=f'{{"action":"buy","w":{writer},"j":{j}}}'.encode(),
                    content_type="application/json",
                    remote_addr="127.0.0.1",
                    dedupe_key=_key(writer, j),
                    window_s=1e6,
                    now=time.time(),
                )
                out["done"] += 1
                out["duplicates"] += int(dup)
            except Exception:
                out["errors"].append(traceback.format_exc())
        out["elapsed"] = time.perf_counter() - started
        store.dispose()
    except Exception:
        out["errors"].append(traceback.format_exc())
    out["retries"] = warnings.count
    results.put(out)


def _reader(
    url: str, recorder_id: int, barrier: Barrier, stop: Event, results: Any
) -> None:  # pragma: no cover - runs in a child process
    out: dict[str, Any] = {"reader": True, "errors": [], "reads": 0, "last_count": 0}
    try:
        store = Store(url)
        barrier.wait(JOIN_TIMEOUT_S)
        last = 0
        while not stop.is_set():
            try:
                with store.read() as session:
                    count = session.exec(select(func.count()).select_from(Signal)).one()
                    list_signals(session, recorder_id, limit=20)
                if count < last:
                    out["errors"].append(f"row count went backwards: {last} -> {count}")
                last = count
                out["reads"] += 1
            except Exception:
                out["errors"].append(traceback.format_exc())
            time.sleep(0.002)
        out["last_count"] = last
        store.dispose()
    except Exception:
        out["errors"].append(traceback.format_exc())
    results.put(out)


def _migrate_and_ensure_user(url: str, barrier: Barrier, results: Any) -> None:  # pragma: no cover
    try:
        store = Store(url)
        barrier.wait(JOIN_TIMEOUT_S)
        store.migrate()
        user = ensure_local_user(store)
        store.dispose()
        results.put({"errors": [], "user_id": user.id})
    except Exception:
        results.put({"errors": [traceback.format_exc()], "user_id": None})


def _collect(results: Any, n: int, procs: list[Any]) -> list[dict[str, Any]]:
    """Read n results (before joining: a child blocks on exit until its queue data is read)."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    try:
        while len(out) < n:
            out.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
    finally:
        for p in procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
    return out


def _run_signal_load(url: str) -> None:
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    rec = create_recorder(store, user.id or 0, "load", "MNQ1!", {})
    assert rec.id is not None

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WRITERS + 1)
    stop = ctx.Event()
    results = ctx.Queue()
    writers = [
        ctx.Process(target=_writer, args=(url, rec.id, w, barrier, results), daemon=True)
        for w in range(WRITERS)
    ]
    reader = ctx.Process(target=_reader, args=(url, rec.id, barrier, stop, results), daemon=True)
    started = time.perf_counter()
    for p in [*writers, reader]:
        p.start()
    writer_results = _collect(results, WRITERS, writers)
    stop.set()
    reader_result = _collect(results, 1, [reader])[0]
    elapsed = time.perf_counter() - started

    errors = [e for r in [*writer_results, reader_result] for e in r["errors"]]
    assert errors == [], "\n".join(errors)
    assert sum(r["retries"] for r in writer_results) == 0  # not even a retried lock error
    assert sum(r["done"] for r in writer_results) == WRITERS * PER_WRITER
    assert reader_result["reads"] > 0

    with store.read() as session:
        rows = list_signals(session, rec.id, limit=None)
    store.dispose()
    assert len(rows) == WRITERS * PER_WRITER

    by_key: dict[str, list[Signal]] = defaultdict(list)
    for row in rows:
        assert row.dedupe_key is not None
        by_key[row.dedupe_key].append(row)
    shared = {k: v for k, v in by_key.items() if k.startswith("shared-")}
    own = {k: v for k, v in by_key.items() if not k.startswith("shared-")}
    assert len(shared) == SHARED_KEYS
    assert len(own) == WRITERS * PER_WRITER // 2
    assert all(len(v) == 1 and v[0].status == "received" for v in own.values())
    for key, group in shared.items():
        originals = [r for r in group if r.status != "duplicate"]
        assert len(originals) == 1, f"{key}: {len(originals)} non-duplicates"
        original = originals[0]
        assert len(group) == 2 * WRITERS
        for dup in group:
            if dup is not original:
                assert dup.reason == f"duplicate_of:{original.id}"
                assert (dup.id or 0) > (original.id or 0)
    expected_dups = WRITERS * PER_WRITER // 2 - SHARED_KEYS
    assert sum(r["duplicates"] for r in writer_results) == expected_dups
    phases = ", ".join(f"{r['elapsed']:.2f}s" for r in writer_results)
    print(
        f"\n{url.split(':')[0]}: {WRITERS}×{PER_WRITER} insert_signal transactions + "
        f"{reader_result['reads']} reads in {elapsed:.2f}s (incl. process start); "
        f"write phase per writer: {phases}"
    )


@pytest.mark.slow
def test_concurrent_signal_writers(db_url: str) -> None:
    _run_signal_load(db_url)


@pytest.mark.slow
def test_concurrent_first_start_migrates_once(db_url: str) -> None:
    """Several processes starting on a fresh database: migrations and the local user are
    created exactly once, nobody fails."""
    url = db_url
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_migrate_and_ensure_user, args=(url, barrier, results), daemon=True)
        for _ in range(WRITERS)
    ]
    for p in procs:
        p.start()
    out = _collect(results, WRITERS, procs)
    errors = [e for r in out for e in r["errors"]]
    assert errors == [], "\n".join(errors)
    assert len({r["user_id"] for r in out}) == 1
    store = Store(url)
    try:
        assert store.current_revision() == HEAD
        with store.read() as session:
            assert len(session.exec(select(User)).all()) == 1
    finally:
        store.dispose()
