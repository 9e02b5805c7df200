"""WAL checkpoints for file SQLite stores, off the commit path.

SQLite checkpoints inside the COMMIT that takes the WAL past ``wal_autocheckpoint`` pages
(1,000 by default): that commit copies the WAL back into the database and, with
``synchronous=NORMAL``, syncs both files, all while it holds the write lock and our write gate,
so every writer of every process waits behind it. Measured in ``bench.live_latency`` (a
recorder host writing ~100 transactions a second): 50 of 3,236 host writes stalled 3–9 ms
beyond their CPU time; with checkpoints in this module's thread, 3 of 3,152 did (host write
p99 7.3 → 4.1 ms).

So every process that writes runs one :class:`Checkpointer` thread per database file: a
``PASSIVE`` checkpoint every :data:`INTERVAL_S` on a connection of its own. A passive
checkpoint takes no lock a writer needs (writers keep appending to the WAL meanwhile), and the
``sqlite3`` module releases the GIL while it runs, so neither the event loop nor the writers
wait for its I/O: syncing the WAL and the database, the slow part (fsync of 1,000 pages: 4 ms
here, of 50: 0.3 ms), happens beside the writers.

A checkpoint that runs beside writers rarely catches up with the last frame, though, and SQLite
starts the WAL over only when a writer finds it fully copied: under a steady write load (the
ingest bench) the WAL grew to the backstop. So once the WAL holds :data:`FINISH_FRAMES` frames,
a second pass runs inside the write gate: it copies and syncs only what was written since the
first, and the next writer starts the WAL over. That pass holds every writer of every process
for its copy and two syncs: 13-21 ms at 1,000 webhooks/s (~5,600 WAL frames a second). Run
whenever the WAL reached 1,000 frames, it came every 0.25-0.45 s, and each one stalled the
webhooks that arrived meanwhile: the open-loop p99 of bench/ingest was 55-99 ms with it, 50 ms
without. So a gated pass runs at most every :data:`FINISH_EVERY_S` per file (across
processes: the time of the last one is the gate file's mtime), sooner only past
:data:`FINISH_NOW_FRAMES`. The price is a longer WAL file under a heavy steady load (at
1,000 webhooks/s up to ~30,000 frames, ~120 MB); SQLite reuses the file rather than shrinking it.

The gated pass is short only if its syncs are. SQLite syncs the database file only in a pass
that reaches the WAL's end, so that sync found every page the passive passes had copied since
the last gated pass (5 s of them, megabytes; ``fdatasync`` costs ~1.8 ms per MB here) and the
gated pass held the writers 8-49 ms (bench/ingest, per pass: 8, 19, 24, 25, 26, 49 ms). So
before taking the gate the checkpointer syncs the database and the WAL itself, beside the
writers (:meth:`Checkpointer._sync_files`), runs one more passive pass and syncs again: the
gated pass then copies and syncs only the last few milliseconds' frames (3-8 ms per pass in
the same bench, 13 passes).

Several processes' checkpointers take turns: SQLite runs one checkpoint at a time and answers
the others busy. Commits still checkpoint past :data:`BACKSTOP_PAGES`, in case no checkpointer
runs (a process that only migrates, or a thread that died).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import ClassVar, Final

from actors.store.gate import WriteGate

log = logging.getLogger(__name__)

INTERVAL_S: Final = 0.2
FINISH_FRAMES: Final = 1_000  # SQLite's own default checkpoint size
FINISH_EVERY_S: Final = 5.0  # at most one gated pass per file this often...
FINISH_NOW_FRAMES: Final = 50_000  # ...unless the WAL is this long (~200 MB at 4 KiB pages)
#: A thread whose file saw no write this long ends (the store's next write starts one).
IDLE_EXIT_S: Final = 30.0
BACKSTOP_PAGES: Final = 100_000  # ~400 MB of WAL at 4 KiB pages before a commit checkpoints


class Checkpointer:
    """The checkpoint thread of one database file in this process (shared by its stores)."""

    _running: ClassVar[dict[Path, Checkpointer]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, interval_s: float) -> None:
        self.path = path
        self.wal = path.with_name(path.name + "-wal")
        self.interval_s = interval_s
        self.users = 0
        self.passes = 0  # checkpoints run
        self.busy = 0  # checkpoints another connection was running already
        self.finished = 0  # second passes inside the write gate
        self._finished_at = -1  # WAL length when a gated pass last copied all of it
        self.gate = WriteGate(path)
        self.last: tuple[int, int, int] | None = None  # (busy, WAL frames, frames checkpointed)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"wal-checkpoint:{path.name}", daemon=True
        )

    @classmethod
    def acquire(cls, path: Path) -> Checkpointer:
        """This process's checkpointer of ``path``, started on first use."""
        path = path.resolve()
        with cls._lock:
            cp = cls._running.get(path)
            if cp is None or not cp.alive:
                cp = cls._running[path] = Checkpointer(path, INTERVAL_S)
                cp._thread.start()
            cp.users += 1
            return cp

    def release(self) -> None:
        """A store of this file is closed; the thread ends with the last one."""
        with self._lock:
            self.users -= 1
            if self.users <= 0:
                self._stop.set()
                if self._running.get(self.path) is self:
                    del self._running[self.path]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        seen, quiet_since = None, time.monotonic()
        try:
            while not self._stop.wait(self.interval_s):
                if not self.path.exists():
                    return  # the database is gone (a test's directory was removed)
                if self.last != seen:
                    seen, quiet_since = self.last, time.monotonic()
                elif time.monotonic() - quiet_since > IDLE_EXIT_S:
                    return  # nothing written for long: the store's next write starts a thread
                if conn is None:
                    # mode=rw: never create the file
                    conn = sqlite3.connect(
                        f"file:{self.path}?mode=rw", uri=True, isolation_level=None, timeout=0
                    )
                self.checkpoint(conn)
        except sqlite3.Error:
            log.warning("WAL checkpoints of %s stopped", self.path, exc_info=True)
        finally:
            if conn is not None:
                conn.close()
            self.gate.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """A passive checkpoint beside the writers, finished inside the write gate when the WAL
        is long and the first pass did not reach its end (see the module docstring)."""
        _, frames, _ = self._pass(conn)
        # "All of it" in a pass's answer means all it saw when it began: writers may have added
        # frames since, so only a pass no writer can overlap proves the end was reached.
        if frames < FINISH_FRAMES or frames == self._finished_at:
            return
        if frames < FINISH_NOW_FRAMES and time.time() - self._last_finish() < FINISH_EVERY_S:
            return
        self._sync_files()
        self._pass(conn)
        self._sync_files()
        self.gate.acquire()
        try:
            busy, frames, done = self._pass(conn)
            self._mark_finish()
        finally:
            self.gate.release()
        self.finished += 1
        if not busy and done == frames:
            self._finished_at = frames  # until a writer starts the WAL over or adds to it

    def _sync_files(self) -> None:
        """``fdatasync`` the database and its WAL here, outside the gate, so the syncs of the
        gated pass find only what was written since (see the module docstring)."""
        for path in (self.path, self.wal):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)

    def _last_finish(self) -> float:
        """When any process last ran a gated pass on this file (the gate file's mtime; a new
        gate file counts as one, so the first gated pass comes FINISH_EVERY_S after it)."""
        try:
            return os.stat(self.gate.path).st_mtime
        except OSError:
            return 0.0

    def _mark_finish(self) -> None:
        with contextlib.suppress(OSError):  # gone with its directory, like the database
            os.utime(self.gate.path)

    def _pass(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """One passive checkpoint; "busy" (another one is running) is not an error."""
        try:
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            busy, frames, done = 1, -1, -1
        self.passes += 1
        self.busy += busy
        self.last = (busy, frames, done)
        return self.last
