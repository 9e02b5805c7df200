"""Coalescing webhook signals into one actor call per recorder host.

Each host has at most one ``on_signals`` call in flight; signals that arrive meanwhile wait
and go together in the next call. At low load every call carries one signal (nothing waits
on a timer); under load the per-call cost — the dominant cost of ingest on a small machine —
is shared by the whole batch. The host applies a batch in order and commits it before
answering, so an answer still means "durably applied".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostDispatcher:
    handle: Any
    max_batch: int = 256
    queue: list[tuple[int, int, dict[str, Any], asyncio.Future[dict[str, Any]]]] = field(
        default_factory=list
    )
    busy: bool = False
    task: asyncio.Task[None] | None = None  # referenced so it is not garbage-collected

    async def submit(
        self, signal_id: int, recorder_id: int, intent: dict[str, Any]
    ) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.queue.append((signal_id, recorder_id, intent, fut))
        if not self.busy:
            self.busy = True
            self.task = asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
                try:
                    results = await self.handle.on_signals.remote(
                        [(s, r, i) for s, r, i, _ in batch]
                    )
                except Exception as exc:  # every waiter learns the host was unreachable
                    for *_, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (*_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self.busy = False
