"""Ordered delivery of the broker actor's events to the actors that subscribed to them.

Each event is :func:`~actors.broker.base.event_to_dict` plus ``seq`` (strictly increasing per
actor life: a gap means lost events), ``broker`` and ``pair_key``. One batch at a time is in
flight per listener, and whatever arrives meanwhile goes in the next batch: Ray does not keep the
order of concurrent calls to an async actor, and a slow listener gets bigger batches instead of a
growing queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import ray

from actors.broker.base import BrokerEvent, event_to_dict
from actors.channel import Direct, drop
from actors.runtime import HOST_CHANNEL

__all__ = ["MAX_PENDING_EVENTS", "Listeners", "Subscriber"]

log = logging.getLogger("justtrades.broker")

#: Events kept for one listener that is not keeping up; beyond this the oldest are dropped (the
#: listener sees a gap in ``seq`` and resyncs from the reads).
MAX_PENDING_EVENTS = 50_000


@dataclass(slots=True)
class Subscriber:
    name: str
    handle: Any = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    errors: int = 0
    dropped: int = 0


class Listeners:
    """The subscribed listener actors of broker ``broker_name`` (looked up by name in
    ``namespace``) and what is pending for each. Delivery failures count in ``counts``."""

    def __init__(self, broker_name: str, namespace: str | None, counts: Counter[str]) -> None:
        self.broker_name = broker_name
        self.namespace = namespace
        self.counts = counts
        self.subscribers: dict[str, Subscriber] = {}
        self.seq = 0

    def add(self, listener_name: str) -> None:
        self.subscribers.setdefault(listener_name, Subscriber(listener_name))

    def remove(self, listener_name: str) -> None:
        self.subscribers.pop(listener_name, None)

    def publish(self, event: BrokerEvent, pair_key: str | None, origin: str | None = None) -> None:
        """Number ``event`` and queue it for every subscriber (sent from the next loop
        iteration on)."""
        self.seq += 1
        if not self.subscribers:
            return
        message = {
            **event_to_dict(event),
            "seq": self.seq,
            "broker": self.broker_name,
            "pair_key": pair_key,
            "origin": origin,
        }
        for sub in self.subscribers.values():
            sub.pending.append(message)
            if len(sub.pending) > MAX_PENDING_EVENTS:
                del sub.pending[0]
                sub.dropped += 1
            if sub.task is None or sub.task.done():
                # Starts on the next loop iteration: everything emitted in this one is one batch.
                sub.task = asyncio.get_running_loop().create_task(self._deliver(sub))

    def status(self) -> dict[str, dict[str, int]]:
        return {
            name: {"delivered": sub.delivered, "errors": sub.errors, "dropped": sub.dropped}
            for name, sub in sorted(self.subscribers.items())
        }

    async def _deliver(self, sub: Subscriber) -> None:
        while sub.pending and self.subscribers.get(sub.name) is sub:
            batch, sub.pending = sub.pending, []
            try:
                if sub.handle is None:
                    sub.handle = Direct(
                        ray.get_actor(sub.name, namespace=self.namespace), HOST_CHANNEL
                    )
                await sub.handle.on_broker_events.remote(batch)
                sub.delivered += len(batch)
            except Exception as exc:
                # Lost for this listener (it resyncs from the reads); look it up again next time.
                drop(sub.handle)
                sub.handle = None
                sub.errors += 1
                self.counts["listener_errors"] += 1
                log.warning("could not deliver %d events to %s: %r", len(batch), sub.name, exc)
