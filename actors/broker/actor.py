"""BrokerActor: one per broker login; the only place that talks to that broker.

The runtime wraps the plain class with :func:`broker_actor_class` (``max_restarts=-1``,
``max_task_retries=0``, ``num_cpus=0``). Order-placing calls must stay at-most-once: a Ray retry
could send an order twice, so a caller that gets ``RayActorError`` resolves the doubt by asking
(:meth:`BrokerActor.order_state`) and never by re-sending. The deterministic ``cl_ord_id`` is
the second line of defence: a ``cl_ord_id`` this actor has seen is answered from memory and never
sent again.

Order path
----------
``place`` / ``cancel`` → priority heap → one worker task → rate limiter → adapter; see
:mod:`actors.broker.queue`.

State
-----
The actor holds the broker state it learnt from the adapter's events (orders by ``cl_ord_id``,
fills, positions), so pairs, the reconciler and dashboards read it with no broker call. After a
restart it starts empty (for the paper broker, the paper account is gone too); the Tradovate
adapter will repopulate it from ``user/syncrequest``.

Kill switch
-----------
:meth:`BrokerActor.kill` blocks entries, drops queued orders, cancels working ones and flattens;
:meth:`BrokerActor.rearm` lifts it. See :mod:`actors.broker.kill_methods` and
:mod:`actors.broker.killswitch`.

Listeners
---------
:meth:`BrokerActor.subscribe` sends every later event, in order, to a named actor; see
:mod:`actors.broker.listeners`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import ray

# Names marked "re-exported" lived in this module before the queue, kill switch, listeners and
# state merging moved out; they stay importable from here.
from actors.broker.base import (
    UNKNOWN_AT_BROKER,
    Broker,
    BrokerEvent,
    BrokerFill,
    BrokerPosition,
    OrderRequest,
    OrderState,
    Priority,
    UnknownOrder,
    event_to_dict,  # noqa: F401  (re-exported)
)
from actors.broker.kill_methods import KillMethods
from actors.broker.killswitch import KillSwitch, Liquidations, is_kill_order
from actors.broker.limiter import RateLimiter
from actors.broker.listeners import (
    MAX_PENDING_EVENTS,  # noqa: F401  (re-exported)
    Listeners,
)
from actors.broker.listeners import Subscriber as _Subscriber  # noqa: F401  (re-exported)
from actors.broker.paper import PaperBroker
from actors.broker.queue import Job, JobQueue, resolve
from actors.broker.state import STATUS_RANK as _STATUS_RANK  # noqa: F401  (re-exported)
from actors.broker.state import merge_state
from actors.channel import ChannelServer, channel_info
from actors.runtime import BROKER_CHANNEL, HEALTH, Beat, admit, freeze_startup_heap, tree_class

__all__ = ["DEFAULT_LIMITS", "BrokerActor", "broker_actor_class"]

log = logging.getLogger("justtrades.broker")

#: Tradovate's documented user-level budgets for an authenticated login: 5000 requests per
#: rolling hour (staff answer and partner docs) and, per second, the lowest documented figure
#: (100/s, the anonymous one). The safety margin is applied on top.
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {"hour": (5000, 3600.0), "second": (100, 1.0)}

_Job = Job  # re-exported under its old name
_resolve = resolve  # re-exported under its old name


class BrokerActor(KillMethods):
    """Actor body (see module docstring). Use :func:`broker_actor_class` to make it remote.

    ``kind``: ``"paper"`` or ``"tradovate"`` (with ``tradovate``, a
    :class:`~actors.broker.tradovate.adapter.TradovateConfig`). ``broker``: an adapter instance
    to use instead (tests, local use).
    ``namespace``: where :meth:`subscribe` looks listener actors up (default: the current one).
    ``limits``: pool -> (limit, window_s); every order and cancel draws 1 from each pool.
    """

    def __init__(
        self,
        name: str = "broker",
        kind: str = "paper",
        accounts: list[str] | None = None,
        slippage_ticks: int = 0,
        latency_ms: float = 0.0,
        namespace: str | None = None,
        limits: Mapping[str, tuple[int, float]] | None = None,
        safety_margin: float = 0.2,
        broker: Broker | None = None,
        tradovate: Any = None,
    ) -> None:
        # back-off, or refusal: before touching the broker
        self._admitted = admit(namespace=namespace) is not None
        self.name = name
        self.started = time.time()
        self.namespace = namespace
        self._beat = Beat().start()
        self.broker: Broker = broker or self._make_broker(
            kind, accounts, slippage_ticks, latency_ms, tradovate
        )
        self.kind = self.broker.kind
        self.limiter = RateLimiter(dict(limits or DEFAULT_LIMITS), safety_margin)
        if callable(getattr(self.broker, "set_limiter", None)):
            # a live adapter reports penalty tickets and 429 back-offs: the queue pauses for them
            self.broker.set_limiter(self.limiter)  # type: ignore[attr-defined]
        self.broker.set_listener(self._on_broker_event)

        self._requests: dict[str, OrderRequest] = {}
        self._states: dict[str, OrderState] = {}
        self._by_pair: dict[str, list[str]] = {}
        self._fills: list[BrokerFill] = []
        #: (cl_ord_id, requester's created_ts, when it went to the adapter): latency figures
        self._sent: deque[tuple[str, float, float]] = deque(maxlen=100_000)
        self._positions: dict[tuple[str, str], BrokerPosition] = {}
        self._liquidations = Liquidations()
        #: Ids a cancel was answered "never seen" for: never sent from then on (see :meth:`cancel`)
        self._refused: set[str] = set()

        self._queue = JobQueue(self.limiter, self._send)
        self._killswitch = KillSwitch()
        self.counts: Counter[str] = Counter()
        self._listeners = Listeners(name, namespace, self.counts)
        self._channel = ChannelServer(self, BROKER_CHANNEL)
        freeze_startup_heap()

    @staticmethod
    def _make_broker(
        kind: str,
        accounts: list[str] | None,
        slippage_ticks: int,
        latency_ms: float,
        tradovate: Any = None,
    ) -> Broker:
        if kind == "paper":
            return PaperBroker(accounts, slippage_ticks, latency_ms)
        if kind == "tradovate":
            from actors.broker.tradovate.adapter import TradovateBroker, TradovateConfig

            if not isinstance(tradovate, TradovateConfig):
                raise ValueError("broker kind 'tradovate' needs a TradovateConfig")
            if accounts is not None:
                tradovate = dataclasses.replace(tradovate, accounts=list(accounts))
            return TradovateBroker.from_config(tradovate)
        # An unknown kind is a configuration error: failing in __init__ makes the actor dead for
        # good (no restart loop), which the supervisor reports.
        raise ValueError(f"unsupported broker kind {kind!r}")

    # ------------------------------------------------------------------ orders

    async def place(self, order: OrderRequest) -> OrderState:
        """Queue ``order`` and return its state once the broker answered.

        A ``cl_ord_id`` seen before returns its current state at once and sends nothing, whatever
        the rest of the request says. An ENTRY for a killed account is rejected with
        ``kill_switch`` without reaching the broker (and that ``cl_ord_id`` stays used).
        """
        self._queue.ensure_worker()
        submitted = self._submit(order)
        if isinstance(submitted, OrderState):
            return submitted
        return await submitted

    async def place_many(
        self, orders: list[OrderRequest], listener: str | None = None
    ) -> list[OrderState]:
        """:meth:`place` for several orders in one call, queued in the given order before any
        of them is sent (one Ray call instead of one per order: a recorder copied to many
        accounts exits on all of them at the same tick).

        ``listener``: subscribe that actor (as :meth:`subscribe`) before anything is sent. Ray
        does not keep the order of calls to an async actor, so a host's first placement could
        run before its ``subscribe``, and the fill went to nobody: the pair learnt of it only
        from its lookup sweep, seconds later (one order in ``bench.live_latency`` waited
        3.97 s). The same holds for a broker actor restarted since the host subscribed."""
        if listener is not None:
            self._listeners.add(listener)
        self._queue.ensure_worker()
        submitted = [self._submit(order) for order in orders]
        return [s if isinstance(s, OrderState) else await s for s in submitted]

    def _submit(self, order: OrderRequest) -> OrderState | asyncio.Future[OrderState]:
        """Synchronous half of :meth:`place`: the order is registered (deduplicated, visible to a
        concurrent kill switch) before the caller yields to the event loop."""
        known = self._states.get(order.cl_ord_id)
        if known is not None:
            self.counts["duplicates"] += 1
            return known
        if order.cl_ord_id in self._refused:  # its cancel came first: it stays never placed
            self.counts["refused_after_cancel"] += 1
            log.warning("%s not sent: its cancel arrived first", order.cl_ord_id)
            return OrderState(
                order.cl_ord_id,
                "cancelled",
                reason=UNKNOWN_AT_BROKER,
                ts=time.time(),
                account=order.account,
                symbol=order.symbol,
            )
        self.counts["submitted"] += 1
        self._requests[order.cl_ord_id] = order
        self._by_pair.setdefault(order.pair_key, []).append(order.cl_ord_id)
        self._states[order.cl_ord_id] = OrderState(
            order.cl_ord_id, "pending", ts=time.time(), account=order.account, symbol=order.symbol
        )
        if self._killswitch.blocks(order):
            self.counts["kill_rejected"] += 1
            return self._local_final(order.cl_ord_id, "rejected", "kill_switch")
        return self._queue.enqueue(
            "place", order.cl_ord_id, order.account, order.priority, order
        ).future

    async def cancel(
        self, cl_ord_id: str, priority: int = Priority.EXIT, listener: str | None = None
    ) -> OrderState:
        """Cancel an order. One still queued here is dropped without a broker call; a terminal
        one is returned unchanged; an unknown one raises :class:`UnknownOrder`, and its id is
        refused from then on: a later placement of it is answered ``cancelled``
        (:data:`UNKNOWN_AT_BROKER`) and never sent.

        Why refuse: Ray does not keep the order of calls to an async actor, even from one
        caller, so the placement of an order can arrive *after* its cancel. The caller takes
        "unknown" for "never placed" and forgets the order; sending the placement then would
        leave an order at the broker that nobody tracks (a stop that fills later, its fill
        booked by no pair). This life's refusal is enough: a placement sent to an earlier life
        of this actor failed with it.

        ``listener``: as for :meth:`place_many` (the cancel's events must reach it)."""
        if listener is not None:
            self._listeners.add(listener)
        self._queue.ensure_worker()
        state = self._states.get(cl_ord_id)
        if state is None:
            # A restarted actor knows the orders of its previous life only once the adapter has
            # synced with the broker: "unknown" before that would be a guess (a resting stop
            # taken for never placed is a stop left working at the broker).
            await self._synced()
            state = self._states.get(cl_ord_id)
        if state is None:
            self._refused.add(cl_ord_id)
            raise UnknownOrder(cl_ord_id)
        if state.is_terminal:
            return state
        queued = self._queue.queued_place(cl_ord_id)
        if queued is not None:
            self._queue.remove(queued)
            final = self._local_final(cl_ord_id, "cancelled", "cancelled_before_send")
            resolve(queued, final)
            return final
        return await self._cancel_at_broker(cl_ord_id, priority)

    async def _cancel_at_broker(self, cl_ord_id: str, priority: int) -> OrderState:
        self.counts["cancels"] += 1
        job = self._queue.enqueue("cancel", cl_ord_id, self._states[cl_ord_id].account, priority)
        return await job.future

    # ------------------------------------------------------------------ reads

    async def order_state(self, cl_ord_id: str) -> OrderState | None:
        return self._states.get(cl_ord_id)

    async def orders_for(self, pair_key: str) -> list[OrderState]:
        """States of the pair's orders, in submission order."""
        return [self._states[cl] for cl in self._by_pair.get(pair_key, [])]

    async def positions(self, account: str | None = None) -> list[BrokerPosition]:
        """Open positions of ``account`` (None: all), as last reported by the broker."""
        return [
            pos
            for _, pos in sorted(self._positions.items())
            if pos.net_pos != 0 and (account is None or pos.account == account)
        ]

    async def _synced(self) -> None:
        start = getattr(self.broker, "start", None)
        if start is not None:
            await start()

    async def lookup(self, cl_ord_ids: list[str]) -> dict[str, Any]:
        """What this actor knows of the given orders: ``states`` (cl -> OrderState or None
        when it never saw the id) and their ``fills``. How a pair that may have missed events
        (it was down, or this actor restarted and forgot its subscribers) catches up."""
        try:  # a restarted actor learns its orders from the broker's sync
            await self._synced()
        except Exception as exc:
            raise RuntimeError(f"broker not synced yet: {exc!r}") from None
        wanted = set(cl_ord_ids)
        return {
            "states": {cl: self._states.get(cl) for cl in cl_ord_ids},
            "fills": [f for f in self._fills if f.cl_ord_id in wanted],
        }

    async def sent_orders(self) -> list[tuple[str, float, float]]:
        """``(cl_ord_id, created_ts, sent_ts)`` of recent orders handed to the adapter: the
        requester's clock to the moment the broker call started (benchmarks, /metrics)."""
        return list(self._sent)

    async def positions_of(self, accounts: list[str]) -> list[BrokerPosition]:
        """Positions of ``accounts``, flat ones included, once the adapter has synced with the
        broker (a restarted actor answers from the broker's state, not from an empty memory)."""
        await self._synced()
        wanted = set(accounts)
        return [pos for (acc, _), pos in sorted(self._positions.items()) if acc in wanted]

    async def fills(self, account: str | None = None) -> list[BrokerFill]:
        return [f for f in self._fills if account is None or f.account == account]

    async def status(self) -> dict[str, Any]:
        by_status = Counter(state.status for state in self._states.values())
        return {
            "name": self.name,
            "kind": self.kind,
            "budget_left": self.limiter.budget_left(),
            "penalty_s": self.limiter.penalty_remaining(),
            "queue_depth": len(self._queue.heap),
            "queue_by_priority": dict(Counter(Priority(j.priority).name for j in self._queue.heap)),
            "in_flight": len(self._queue.inflight),
            "orders": dict(by_status),
            "fills": len(self._fills),
            "open_positions": sum(1 for p in self._positions.values() if p.net_pos != 0),
            "subscribers": self._listeners.status(),
            "counts": dict(self.counts),
            "channel_calls": self._channel.calls,  # calls that came over the direct channel
            **self._killswitch.status(),
        }

    @ray.method(concurrency_group=HEALTH)
    async def ping(self) -> dict[str, Any]:
        """Served on the ``health`` group's loop: answers while orders keep the default loop
        busy, and says how long that loop has not run (``loop_lag_s``)."""
        return {
            "ok": True,
            "name": self.name,
            "kind": self.kind,
            "started": self.started,
            "pid": os.getpid(),
            "loop_lag_s": self._beat.lag(),
            "admitted": self._admitted,
        }

    # ------------------------------------------------------------------ prices and listeners

    async def on_ticks(
        self,
        batch: Mapping[str, tuple[list[float], list[float]]],
        seqs: Mapping[str, int] | None = None,
        epoch: float | None = None,
        recv: Mapping[str, list[float]] | None = None,
    ) -> int:
        """Feed a tick batch (symbol -> (timestamps, prices)) to the paper broker; stops fill
        here. A no-op for adapters without ``on_price`` (live brokers match on their own).
        The feed's tick numbers (``seqs``, ``epoch``) and receive times (``recv``) matter to
        hosts only: a batch sent again after a failed call moves paper prices over the same
        path once more."""
        on_price = getattr(self.broker, "on_price", None)
        if on_price is None:
            return 0
        count = 0
        for symbol, (timestamps, prices) in batch.items():
            for ts, price in zip(timestamps, prices, strict=True):
                if not math.isfinite(price):
                    # One bad tick must not stop the rest of the batch from triggering stops.
                    self.counts["bad_ticks"] += 1
                    continue
                on_price(symbol, float(ts), float(price))
                count += 1
        return count

    async def channel(self) -> tuple[str | None, str]:
        """This actor's direct channel (node, socket), started on first ask (on the default
        loop, where its calls must run)."""
        return await channel_info(self._channel)

    async def subscribe(self, listener_name: str) -> None:
        """Send every later event, in order, to the named actor's ``on_broker_events(list)``.

        Each event is :func:`~actors.broker.base.event_to_dict` plus ``seq`` (strictly increasing
        per actor life: a gap means lost events, so resync with :meth:`orders_for` and
        :meth:`positions`), ``broker`` and ``pair_key`` (None for positions and for orders this
        actor did not place). One batch at a time is in flight per listener, and whatever
        arrives meanwhile goes in the next batch: Ray does not keep the order of concurrent calls
        to an async actor, and a slow listener gets bigger batches instead of a growing queue.
        A listener that is down misses what is sent while it is down.
        """
        self._listeners.add(listener_name)

    async def unsubscribe(self, listener_name: str) -> None:
        self._listeners.remove(listener_name)

    # ------------------------------------------------------------------ internals: sending

    async def _send(self, job: Job) -> None:
        try:
            if job.kind == "place":
                assert job.order is not None
                if self._killswitch.blocks(job.order):  # killed after it was queued
                    self.counts["kill_rejected"] += 1
                    resolve(job, self._local_final(job.cl_ord_id, "rejected", "kill_switch"))
                    return
                self.counts["sent"] += 1
                self._sent.append((job.cl_ord_id, job.order.created_ts, time.time()))
                state = await self.broker.place(job.order)
            else:
                state = await self.broker.cancel(job.cl_ord_id)
            self._merge(state)
            resolve(job, self._states.get(job.cl_ord_id, state))
        except Exception as exc:
            # The outcome is unknown (the request may have reached the broker): never resend;
            # the order stays as it is known here and the sync stream / reconciler settles it.
            self.counts["send_errors"] += 1
            log.exception("%s %s failed", job.kind, job.cl_ord_id)
            current = self._states.get(job.cl_ord_id)
            if job.kind == "place" and current is not None and not current.is_terminal:
                current = replace(current, reason=f"unknown_outcome: {exc!r}"[:200])
                self._states[job.cl_ord_id] = current
            if current is None:
                if not job.future.done():
                    job.future.set_exception(exc)
            else:
                resolve(job, current)

    # ------------------------------------------------------------------ internals: state

    def _local_final(
        self, cl_ord_id: str, status: Literal["rejected", "cancelled"], reason: str
    ) -> OrderState:
        """Finish an order that never reached the broker, and tell the listeners."""
        state = replace(self._states[cl_ord_id], status=status, reason=reason, ts=time.time())
        self._on_broker_event(state)
        return self._states[cl_ord_id]

    def _merge(self, state: OrderState) -> bool:
        """Store ``state`` unless it is older news than what is known (see
        :func:`~actors.broker.state.merge_state`); True if it changed."""
        merged = merge_state(self._states.get(state.cl_ord_id), state)
        if merged is None:
            return False
        self._states[state.cl_ord_id] = merged
        return True

    def _on_broker_event(self, event: BrokerEvent) -> None:
        """Adapter listener: update the synced state, queue the event for subscribers."""
        pair_key: str | None = None
        origin: str | None = None
        if isinstance(event, OrderState):
            if not self._merge(event):
                return
            request = self._requests.get(event.cl_ord_id)
            pair_key = request.pair_key if request else None
        elif isinstance(event, BrokerFill):
            self._fills.append(event)
            request = self._requests.get(event.cl_ord_id)
            pair_key = request.pair_key if request else None
            # A fill no pair ordered is the kill switch's (its flatten orders, or a broker-side
            # liquidation it started) or a hand at the broker's: only the first may be booked
            # by the pairs; the second is the reconciler's to show.
            if (request is not None and is_kill_order(self._requests, event.cl_ord_id)) or (
                request is None and self._liquidations.recent((event.account, event.symbol))
            ):
                origin = "kill_switch"
        elif isinstance(event, BrokerPosition):
            self._positions[(event.account, event.symbol)] = event
            self._liquidations.settled(event)
        else:  # pragma: no cover - adapter bug
            log.error("ignoring unknown broker event %r", event)
            return
        self._listeners.publish(event, pair_key, origin)


def broker_actor_class() -> Any:
    """``BrokerActor`` as a Ray actor class: restarted forever, calls at-most-once, no CPU,
    with the tree's concurrency groups (its ``ping`` runs in ``health``)."""
    return tree_class(BrokerActor, max_restarts=-1, max_task_retries=0, num_cpus=0)
