"""WAL checkpoints run in a thread of the writing process, not inside commits
(:mod:`actors.store.checkpoint`)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.store import Store
from actors.store import checkpoint as ckpt
from actors.store.checkpoint import BACKSTOP_PAGES, Checkpointer

PAGE = 4096


def wal_frames(db: Path) -> int:
    """Frames the WAL file has room for (its high-water mark: the file is reused, not cut)."""
    wal = Path(f"{db}-wal")
    return max(0, (wal.stat().st_size - 32) // (24 + PAGE)) if wal.exists() else 0


def write_pages(store: Store, pages: int, per_commit: int = 50) -> None:
    """Commits that each add about ``per_commit`` pages of blob rows."""
    blob = b"x" * (PAGE - 200)
    for _ in range(pages // per_commit):
        store.run_sqlite_write(
            lambda cur: cur.executemany("INSERT INTO t(b) VALUES (?)", [(blob,)] * per_commit)
        )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "jt.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
    setup.close()
    yield path


def test_commits_leave_checkpoints_to_the_thread(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SQLite's default 1,000 pages no commit checkpoints (it would hold the write lock
    and the gate through two syncs); the checkpointer's pass copies the WAL back, and the
    next commit starts the WAL over."""
    monkeypatch.setattr(ckpt, "INTERVAL_S", 3600.0)  # no background pass during the test
    store = Store(f"sqlite:///{db}")
    try:
        write_pages(store, 3000)
        assert wal_frames(db) > 2500, "a commit checkpointed at the default 1,000 pages"
        cp = store.checkpointer
        assert cp is not None and cp.passes == 0
        with sqlite3.connect(db, isolation_level=None) as conn:
            cp.checkpoint(conn)
        assert cp.last is not None
        busy, frames, done = cp.last
        assert busy == 0 and frames > 2500 and done == frames
        before = wal_frames(db)
        write_pages(store, 100)
        with sqlite3.connect(db, isolation_level=None) as conn:
            _, frames_after, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames_after < 200, "the WAL did not start over after a full checkpoint"
        assert wal_frames(db) == before  # reused from its start, not grown
    finally:
        store.dispose()


def test_the_thread_keeps_the_wal_checkpointed(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ckpt, "INTERVAL_S", 0.02)
    store = Store(f"sqlite:///{db}")
    try:
        write_pages(store, 500)
        cp = store.checkpointer
        assert cp is not None
        deadline = time.monotonic() + 30
        while not (cp.last and cp.last[0] == 0 and cp.last[1] > 0 and cp.last[2] == cp.last[1]):
            assert time.monotonic() < deadline, f"no full checkpoint: {cp.last}"
            time.sleep(0.02)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (500,)
    finally:
        store.dispose()


def test_one_thread_per_file_until_the_last_store_closes(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ckpt, "INTERVAL_S", 0.02)
    a, b = Store(f"sqlite:///{db}"), Store(f"sqlite:///{db}")
    write_pages(a, 50)
    write_pages(b, 50)
    assert a.checkpointer is b.checkpointer is not None
    cp = a.checkpointer
    a.dispose()
    assert cp._thread.is_alive()
    b.dispose()
    cp._thread.join(5)
    assert not cp._thread.is_alive()

    c = Store(f"sqlite:///{db}")  # a new store of the file starts a new thread
    write_pages(c, 50)
    assert c.checkpointer is not None and c.checkpointer is not cp
    thread = c.checkpointer._thread
    for suffix in ("", "-wal", "-shm"):  # the database is removed under it
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    thread.join(5)
    assert not thread.is_alive()
    assert not db.exists(), "the checkpointer created the file again"
    c.dispose()


def test_in_memory_and_read_only_stores_start_no_thread(db: Path) -> None:
    mem = Store.for_tests()
    reader = Store(f"sqlite:///{db}")
    with reader.read() as s:
        s.connection()
    assert mem.checkpointer is None and reader.checkpointer is None
    mem.dispose()
    reader.dispose()


def test_commits_still_checkpoint_at_the_backstop(db: Path) -> None:
    store = Store(f"sqlite:///{db}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
    finally:
        store.dispose()


def test_acquire_replaces_a_thread_that_died(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ckpt, "INTERVAL_S", 0.02)
    first = Checkpointer.acquire(db)
    first._stop.set()
    first._thread.join(5)
    second = Checkpointer.acquire(db)
    try:
        assert second is not first and second._thread.is_alive()
    finally:
        second.release()
        first.release()


def test_a_steady_writer_still_sees_the_wal_start_over(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers that never pause leave a concurrent checkpoint always a few frames behind, and
    SQLite starts the WAL over only when it was copied to its end: without the second pass
    inside the write gate the WAL grew by everything written (to the backstop in the ingest
    bench)."""
    monkeypatch.setattr(ckpt, "INTERVAL_S", 0.01)
    monkeypatch.setattr(ckpt, "FINISH_FRAMES", 500)
    monkeypatch.setattr(ckpt, "FINISH_EVERY_S", 0.05)
    store = Store(f"sqlite:///{db}")
    try:
        write_pages(store, 20, per_commit=20)  # starts the checkpointer
        cp = store.checkpointer
        assert cp is not None
        for _ in range(800):  # commits one after another, as under load
            write_pages(store, 10, per_commit=10)
            time.sleep(0.0005)
        assert cp.finished > 0, (cp.passes, cp.busy, cp.last, wal_frames(db))
        assert wal_frames(db) < 4000, f"the WAL grew to {wal_frames(db)} frames"
    finally:
        store.dispose()


def test_gated_passes_are_rationed_per_file(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass inside the write gate holds every writer of every process (13-21 ms at 1,000
    webhooks/s, bench/ingest): at most one per FINISH_EVERY_S per file, whichever process's
    checkpointer runs it, sooner only when the WAL is very long."""
    monkeypatch.setattr(ckpt, "INTERVAL_S", 3600.0)  # passes by hand below
    monkeypatch.setattr(ckpt, "FINISH_FRAMES", 50)
    monkeypatch.setattr(ckpt, "FINISH_EVERY_S", 3600.0)
    store = Store(f"sqlite:///{db}")
    # two processes' checkpointers of one file (not started: their passes run here)
    a, b = Checkpointer(db.resolve(), 3600.0), Checkpointer(db.resolve(), 3600.0)
    conn_a, conn_b = (sqlite3.connect(db, isolation_level=None, timeout=0) for _ in "ab")
    try:
        write_pages(store, 200, per_commit=10)
        os.utime(a.gate.path, (0, 0))  # no gated pass yet on this file
        a.checkpoint(conn_a)
        assert a.finished == 1
        write_pages(store, 200, per_commit=10)
        a.checkpoint(conn_a)
        b.checkpoint(conn_b)
        assert (a.finished, b.finished) == (1, 0), "a gated pass sooner than FINISH_EVERY_S"
        assert b.passes == 1, "passive passes are not rationed"
        monkeypatch.setattr(ckpt, "FINISH_NOW_FRAMES", 100)  # this WAL is long: finish now
        b.checkpoint(conn_b)
        assert b.finished == 1
        monkeypatch.setattr(ckpt, "FINISH_NOW_FRAMES", 10**9)
        monkeypatch.setattr(ckpt, "FINISH_EVERY_S", 0.0)  # the time has come
        write_pages(store, 200, per_commit=10)
        a.checkpoint(conn_a)
        assert a.finished == 2
    finally:
        conn_a.close()
        conn_b.close()
        a.gate.close()
        b.gate.close()
        store.dispose()


def test_an_idle_thread_ends_and_the_next_write_starts_one(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ckpt, "INTERVAL_S", 0.01)
    monkeypatch.setattr(ckpt, "IDLE_EXIT_S", 0.1)
    store = Store(f"sqlite:///{db}")
    try:
        write_pages(store, 50)
        first = store.checkpointer
        assert first is not None
        first._thread.join(10)
        assert not first.alive
        write_pages(store, 50)
        assert store.checkpointer is not first and store.checkpointer is not None
        assert store.checkpointer.alive
    finally:
        store.dispose()


def test_the_files_are_synced_beside_the_writers_before_a_gated_pass(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite syncs the database only in a pass that reaches the WAL's end: without syncs of
    its own first, the gated pass synced everything the passive passes had copied since the
    last one, holding every writer 8-49 ms (bench/ingest). The gate is taken only after the
    database and the WAL were synced and the last passive pass's copies were synced too."""
    monkeypatch.setattr(ckpt, "INTERVAL_S", 3600.0)  # passes by hand below
    monkeypatch.setattr(ckpt, "FINISH_FRAMES", 50)
    monkeypatch.setattr(ckpt, "FINISH_EVERY_S", 0.0)
    store = Store(f"sqlite:///{db}")
    cp = Checkpointer(db.resolve(), 3600.0)
    conn = sqlite3.connect(db, isolation_level=None, timeout=0)
    names = {os.stat(db).st_ino: "db"}
    events: list[str] = []
    real_sync, real_pass, real_acquire = os.fdatasync, cp._pass, cp.gate.acquire

    here = threading.get_ident()  # other tests' checkpointer threads may still be syncing

    def sync(fd: int) -> None:
        if threading.get_ident() == here:
            events.append("sync " + names.get(os.fstat(fd).st_ino, "wal"))
        real_sync(fd)

    def one_pass(c: sqlite3.Connection) -> tuple[int, int, int]:
        events.append("pass")
        return real_pass(c)

    def acquire() -> None:
        events.append("gate")
        real_acquire()

    monkeypatch.setattr(ckpt.os, "fdatasync", sync)
    monkeypatch.setattr(cp, "_pass", one_pass)
    monkeypatch.setattr(cp.gate, "acquire", acquire)
    try:
        write_pages(store, 200, per_commit=10)
        cp.checkpoint(conn)
        assert cp.finished == 1
        assert events == [
            "pass", "sync db", "sync wal", "pass", "sync db", "sync wal", "gate", "pass",
        ]  # fmt: skip
    finally:
        conn.close()
        cp.gate.close()
        store.dispose()
