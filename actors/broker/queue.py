"""The broker actor's order queue: a priority heap of jobs drained by one worker task.

Order path
----------
``place`` / ``cancel`` → priority heap (KILL, EXIT, PROTECT, ENTRY; FIFO within a priority) →
one worker task → :class:`~actors.broker.limiter.RateLimiter` → adapter. The worker asks the
limiter for one grant at the priority of the most urgent queued job and, once granted, sends the
job that is most urgent *at that moment*: every order and cancel draws the same pools with weight
1, so a grant is interchangeable, and an exit that arrived while an entry was waiting for budget
overtakes it. The worker does not wait for the adapter's answer before taking the next job (the
send runs as its own task), so network latency does not eat into the rate budget and a kill
switch's flatten orders leave back to back, in priority order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from actors.broker.base import OrderRequest, OrderState
from actors.broker.limiter import RateLimiter

__all__ = ["Job", "JobQueue", "resolve"]


@dataclass(slots=True)
class Job:
    kind: Literal["place", "cancel"]
    priority: int
    seq: int
    cl_ord_id: str
    account: str
    future: asyncio.Future[OrderState]
    order: OrderRequest | None = None

    def __lt__(self, other: Job) -> bool:  # heap order
        return (self.priority, self.seq) < (other.priority, other.seq)


def resolve(job: Job, state: OrderState) -> None:
    # The caller may have gone (its Ray call cancelled); the order is tracked regardless.
    if not job.future.done():
        job.future.set_result(state)


class JobQueue:
    """Queued (unsent) jobs, the worker that sends them through ``limiter``, and the sends in
    flight. ``send`` is called, as its own task, for each job the limiter granted."""

    def __init__(self, limiter: RateLimiter, send: Callable[[Job], Awaitable[None]]) -> None:
        self.limiter = limiter
        self._send = send
        self._pools = {pool: 1 for pool in limiter.pools}
        self.heap: list[Job] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.inflight: dict[asyncio.Task[None], str] = {}  # send task -> account

    def ensure_worker(self) -> None:
        # Started lazily: Ray runs __init__ before the actor's event loop serves calls.
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    def enqueue(
        self,
        kind: Literal["place", "cancel"],
        cl_ord_id: str,
        account: str,
        priority: int,
        order: OrderRequest | None = None,
    ) -> Job:
        future: asyncio.Future[OrderState] = asyncio.get_running_loop().create_future()
        job = Job(kind, int(priority), next(self._seq), cl_ord_id, account, future, order)
        heapq.heappush(self.heap, job)
        assert self._wake is not None
        self._wake.set()
        return job

    def queued_place(self, cl_ord_id: str) -> Job | None:
        """The queued (not yet sent) place job of ``cl_ord_id``, if any."""
        for job in self.heap:
            if job.kind == "place" and job.cl_ord_id == cl_ord_id:
                return job
        return None

    def remove(self, job: Job) -> None:
        self.heap.remove(job)
        heapq.heapify(self.heap)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self.heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.limiter.acquire(self._pools, self.heap[0].priority)
            if not self.heap:  # dropped while we waited (kill, cancel): the grant is spent
                continue
            job = heapq.heappop(self.heap)
            task = asyncio.get_running_loop().create_task(self._send(job))
            self.inflight[task] = job.account
            task.add_done_callback(self.inflight.pop)
