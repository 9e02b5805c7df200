"""The SQLite write gate and the raw write path (actors/store/gate.py, Store.run_sqlite_write)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from actors.store import Store
from actors.store.gate import WriteGate


def _hold(
    path: str, held: multiprocessing.synchronize.Event, go: multiprocessing.synchronize.Event
) -> None:
    gate = WriteGate(path)
    gate.acquire()
    held.set()
    go.wait(10)
    gate.release()


def test_gate_excludes_another_process_until_released(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    held, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path / "db"), held, go))
    proc.start()
    try:
        assert held.wait(30)
        gate = WriteGate(tmp_path / "db")
        got = threading.Event()

        def take() -> None:
            gate.acquire()
            got.set()
            gate.release()

        t = threading.Thread(target=take)
        t.start()
        assert not got.wait(0.3)  # the other process holds it
        go.set()
        assert got.wait(10)  # woken by the release, not by a timeout
        t.join()
    finally:
        go.set()
        proc.join(10)


def test_gate_orders_threads_of_one_process_and_is_reentrant(tmp_path: Path) -> None:
    gate = WriteGate(tmp_path / "db")
    inside = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(50):
            gate.acquire()
            gate.acquire()  # re-entrant on the same thread
            with lock:
                inside += 1
                most = max(most, inside)
            time.sleep(0.0005)
            with lock:
                inside -= 1
            gate.release()
            gate.release()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 1
    gate.close()


def test_file_store_has_a_gate_memory_store_does_not(tmp_path: Path) -> None:
    assert Store(f"sqlite:///{tmp_path / 'x.db'}").gate is not None
    assert Store("sqlite://").gate is None


def test_run_sqlite_write_commits_or_rolls_back_whole(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")

    def create(cur: sqlite3.Cursor) -> int:
        cur.execute("CREATE TABLE t (x INTEGER)")
        cur.execute("INSERT INTO t VALUES (1)")
        return 7

    assert store.run_sqlite_write(create) == 7

    def half(cur: sqlite3.Cursor) -> None:
        cur.execute("INSERT INTO t VALUES (2)")
        raise ValueError("boom")

    with pytest.raises(ValueError):
        store.run_sqlite_write(half)
    with sqlite3.connect(tmp_path / "x.db") as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    # the gate was released: another write goes through at once
    store.run_sqlite_write(lambda cur: cur.execute("INSERT INTO t VALUES (3)"))
    with sqlite3.connect(tmp_path / "x.db") as conn:
        assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]


def test_run_sqlite_write_retries_a_transient_lock_error(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.run_sqlite_write(lambda cur: cur.execute("CREATE TABLE t (x INTEGER)"))
    calls = 0

    def flaky(cur: sqlite3.Cursor) -> str:
        nonlocal calls
        calls += 1
        cur.execute("INSERT INTO t VALUES (?)", (calls,))
        if calls == 1:
            raise sqlite3.OperationalError("database is locked")
        return "ok"

    assert store.run_sqlite_write(flaky) == "ok"
    with sqlite3.connect(tmp_path / "x.db") as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(2,)]  # the first try rolled back
