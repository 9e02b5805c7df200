"""One writer at a time on a SQLite file, woken the moment the previous one commits.

SQLite serialises writers itself: ``BEGIN IMMEDIATE`` on a locked database calls the busy
handler, which *sleeps* (1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms …) and tries again. With
the API's signal writer and every recorder host committing many small transactions, a waiter
often slept 10–25 ms past the moment the lock was free: latency, and a database that stood
idle while three processes waited for it (bench/ingest showed the server using 1.3 of 2 cores
while its throughput was lock-bound).

The gate queues writers on an exclusive ``flock`` of a file next to the database instead: the
kernel wakes the next waiter as soon as the holder releases, with no polling. The SQLite lock is
still taken by ``BEGIN IMMEDIATE`` inside the gate, so correctness never depends on the gate
(a writer that does not use it, e.g. the ``sqlite3`` shell, is still excluded by SQLite and
waits in the busy handler as before). ``flock`` belongs to an open file description, shared by
the threads of a process, so a thread lock orders the threads of one process first (re-entrant:
a write opened inside another on the same thread behaves as before the gate, SQLite's busy
handler decides).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class WriteGate:
    """Exclusive across processes (``flock``) and threads (a lock) for one database file."""

    def __init__(self, database: str | Path) -> None:
        self.path = Path(f"{database}-writer.lock")
        self._thread_lock = threading.RLock()
        self._depth = 0  # holds of the current owner thread
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        # Opened lazily, and again in a forked child: a descriptor inherited across fork shares
        # its lock with the parent, which would let both "hold" the gate at once.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)  # releases the GIL while waiting
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
