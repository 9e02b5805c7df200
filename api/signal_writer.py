"""Group commit for webhook signal rows.

Every webhook stores its raw signal before anything else. One transaction per request meant
one SQLite write lock (and one thread-pool hop) per request; here concurrent requests share
one transaction, written by one dedicated thread. Inside the transaction the inserts run in
arrival order, so a resend's dedupe check sees the original even when both are in the same
batch. A request is answered only after its batch committed: durable before acknowledged.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actors.store import Signal, Store, insert_signal

MAX_BATCH = 256


class SignalWriter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="signal-writer")
        self.queue: list[tuple[dict[str, Any], asyncio.Future[tuple[Signal, bool]]]] = []
        self.busy = False
        self.task: asyncio.Task[None] | None = None

    async def insert(self, **fields: Any) -> tuple[Signal, bool]:
        """``insert_signal(**fields)`` in the next group commit; returns ``(row, duplicate)``."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[Signal, bool]] = loop.create_future()
        self.queue.append((fields, fut))
        if not self.busy:
            self.busy = True
            self.task = loop.create_task(self._drain())  # referenced: not garbage-collected
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue:
                batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
                try:
                    rows = await loop.run_in_executor(
                        self.executor, self._write, [f for f, _ in batch]
                    )
                except Exception as exc:  # nothing of the batch was stored: every caller learns it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), row in zip(batch, rows, strict=True):
                    if not fut.done():
                        fut.set_result(row)
        finally:
            self.busy = False

    def _write(self, items: list[dict[str, Any]]) -> list[tuple[Signal, bool]]:
        return self.store.run_write(lambda s: [insert_signal(s, **f) for f in items])

    def close(self) -> None:
        self.executor.shutdown(wait=True)
