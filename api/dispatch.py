"""Coalescing webhook work: one call for everything that arrived meanwhile.

:class:`Batcher` is the pattern shared by the webhook's three stages (token lookup, group commit
of the raw signal, the host call): at most one call in flight; items that arrive meanwhile wait
and go together in the next call. At low load every call carries one item (nothing waits on a
timer); under load the per-call cost is shared by the whole batch.

:class:`HostDispatcher` is the host stage: concurrent webhooks of one recorder host go in one
``host.on_signals`` call (the per-call cost, ~0.8 ms of the API process's CPU through Ray, was
the dominant cost of ingest on a small machine; the call goes over the host's direct channel
when the host runs on this node, :mod:`actors.channel`). The host applies a batch in order and
commits it before answering, so an answer still means "durably applied".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Generic, TypeVar

from ray.exceptions import ActorDiedError, RayActorError

from actors.channel import ChannelClosed, Direct, drop
from actors.runtime import API_CHANNEL

log = logging.getLogger("justtrades.api")

#: How long a host batch is tried again while the host does not answer (restarting, re-created):
#: in order, and newer webhooks of that host wait behind it. The webhook itself answers 202
#: long before (TradingView gives up after ~3 s); the signal is stored either way.
REDELIVER_FOR_S = 120.0
REDELIVER_EVERY_S = 0.2

I = TypeVar("I")  # noqa: E741
R = TypeVar("R")


class Batcher(Generic[I, R]):
    """Coalesce :meth:`call_batch` calls: one in flight, the queue goes in the next."""

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self.retry_for_s = 0.0  # > 0: a batch whose call fails with ``retry_on`` goes again
        self.retry_on: tuple[type[BaseException], ...] = ()
        self.queue: list[tuple[I, asyncio.Future[R]]] = []
        self.busy = False
        self.task: asyncio.Task[None] | None = None  # referenced so it is not garbage-collected

    async def call_batch(self, items: list[I], attempt: int = 0) -> list[R]:
        """One result per item, in order; raising fails every item of the batch. ``attempt``
        counts the earlier calls of the same batch that failed."""
        raise NotImplementedError

    def enqueue(self, item: I) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self.queue.append((item, fut))
        if not self.busy:
            self.busy = True
            self.task = loop.create_task(self._drain())
        return fut

    async def _drain(self) -> None:
        try:
            while self.queue:
                if len(self.queue) <= self.max_batch:
                    batch, self.queue = self.queue, []
                else:
                    batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
                try:
                    results = await self._call_with_retries([item for item, _ in batch])
                except Exception as exc:  # every waiter of the batch learns it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self.busy = False

    async def _call_with_retries(self, items: list[I]) -> list[R]:
        first, attempt = time.monotonic(), 0
        while True:
            try:
                return await self.call_batch(items, attempt)
            except self.retry_on as exc:
                attempt += 1
                if time.monotonic() - first >= self.retry_for_s:
                    raise
                await self.on_retry(exc)
                await asyncio.sleep(REDELIVER_EVERY_S)

    async def on_retry(self, exc: BaseException) -> None:
        """Called before a failed batch goes again."""


class HostDispatcher(Batcher[tuple[int, int, dict[str, Any]], dict[str, Any]]):
    """Signals stored while their host is down are delivered as soon as it answers again, in
    arrival order (the host's own recovery applied those stored before it started; it answers
    those "recovered"). Without this, a signal stored while the host was starting would wait
    for the host's orphan sweep and be applied late."""

    def __init__(
        self,
        handle: Any,
        max_batch: int = 256,
        name: str | None = None,
        namespace: str | None = None,
    ) -> None:
        super().__init__(max_batch)
        self._handle: Direct | None = None
        self.handle = handle
        self.name, self.namespace = name, namespace
        # a broken channel leaves the outcome unknown, like a dead actor: deliver again
        self.retry_for_s, self.retry_on = REDELIVER_FOR_S, (RayActorError, ChannelClosed)
        self.retries = 0

    @property
    def handle(self) -> Any:
        """The host, reached over its direct channel when it runs on this node."""
        return self._handle

    @handle.setter
    def handle(self, handle: Any) -> None:
        drop(self._handle)
        self._handle = Direct(handle, API_CHANNEL)

    async def on_retry(self, exc: BaseException) -> None:
        self.retries += 1
        if self.retries % 25 == 1:
            log.warning("host %s unavailable; delivering again (%r)", self.name, exc)
        if isinstance(exc, ActorDiedError) and self.name and self.namespace:
            # re-created by the supervisor: a new actor under the same name
            from actors.runtime import get

            with contextlib.suppress(ValueError):  # not there yet: the next retry looks again
                self.handle = await asyncio.to_thread(get, self.name, self.namespace)

    def submit(
        self, signal_id: int, recorder_id: int, intent: dict[str, Any]
    ) -> asyncio.Future[dict[str, Any]]:
        """The host's result for one stored signal (await it); raises what the call raised
        (``RayActorError``: the host is unreachable, the signal stays ``received``)."""
        return self.enqueue((signal_id, recorder_id, intent))

    async def call_batch(
        self, items: list[tuple[int, int, dict[str, Any]]], attempt: int = 0
    ) -> list[dict[str, Any]]:
        if attempt:  # the failed call may have been applied: the host checks the store first
            return await self.handle.on_signals.remote(items, True)
        return await self.handle.on_signals.remote(items)
