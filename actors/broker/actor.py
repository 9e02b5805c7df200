"""BrokerActor: one per broker login; the only place that talks to that broker.

The runtime wraps the plain class with :func:`broker_actor_class` (``max_restarts=-1``,
``max_task_retries=0``, ``num_cpus=0``). Order-placing calls must stay at-most-once: a Ray retry
could send an order twice, so a caller that gets ``RayActorError`` resolves the doubt by asking
(:meth:`BrokerActor.order_state`) and never by re-sending. The deterministic ``cl_ord_id`` is
the second line of defence: a ``cl_ord_id`` this actor has seen is answered from memory and never
sent again.

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

State
-----
The actor holds the broker state it learnt from the adapter's events (orders by ``cl_ord_id``,
fills, positions), so pairs, the reconciler and dashboards read it with no broker call. After a
restart it starts empty (for the paper broker, the paper account is gone too); the Tradovate
adapter will repopulate it from ``user/syncrequest``.

Kill switch
-----------
:meth:`BrokerActor.kill` blocks new ENTRY orders for the account (or all accounts), drops its
queued unsent orders, cancels its working orders and waits for those cancels, then flattens every
open position with market orders at KILL priority. Cancels go first so that a resting stop cannot
fill after the flatten and open the opposite position. Entries stay blocked until
:meth:`BrokerActor.rearm`; exits and stops are still accepted (a pair may legitimately need to
close or protect something the flatten raced with).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import ray

from actors.broker.base import (
    Broker,
    BrokerEvent,
    BrokerFill,
    BrokerPosition,
    OrderRequest,
    OrderState,
    Priority,
    UnknownOrder,
    event_to_dict,
)
from actors.broker.limiter import RateLimiter
from actors.broker.paper import PaperBroker

__all__ = ["DEFAULT_LIMITS", "BrokerActor", "broker_actor_class"]

log = logging.getLogger("justtrades.broker")

#: Tradovate's documented user-level budgets for an authenticated login: 5000 requests per
#: rolling hour (staff answer and partner docs) and, per second, the lowest documented figure
#: (100/s, the anonymous one). The safety margin is applied on top.
DEFAULT_LIMITS: dict[str, tuple[int, float]] = {"hour": (5000, 3600.0), "second": (100, 1.0)}

#: How long a kill switch waits for in-flight sends of the affected accounts to answer before it
#: reads positions to flatten (an order the broker is executing right now may still fill).
KILL_SETTLE_S = 2.0

_STATUS_RANK = {"pending": 0, "working": 1, "filled": 2, "rejected": 2, "cancelled": 2}


#: Events kept for one listener that is not keeping up; beyond this the oldest are dropped (the
#: listener sees a gap in ``seq`` and resyncs from the reads).
MAX_PENDING_EVENTS = 50_000


@dataclass(slots=True)
class _Subscriber:
    name: str
    handle: Any = None
    pending: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    errors: int = 0
    dropped: int = 0


@dataclass(slots=True)
class _Job:
    kind: Literal["place", "cancel"]
    priority: int
    seq: int
    cl_ord_id: str
    account: str
    future: asyncio.Future[OrderState]
    order: OrderRequest | None = None

    def __lt__(self, other: _Job) -> bool:  # heap order
        return (self.priority, self.seq) < (other.priority, other.seq)


class BrokerActor:
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
        self.name = name
        self.started = time.time()
        self.namespace = namespace
        self.broker: Broker = broker or self._make_broker(
            kind, accounts, slippage_ticks, latency_ms, tradovate
        )
        self.kind = self.broker.kind
        self.limiter = RateLimiter(dict(limits or DEFAULT_LIMITS), safety_margin)
        self._pools = {pool: 1 for pool in self.limiter.pools}
        if callable(getattr(self.broker, "set_limiter", None)):
            # a live adapter reports penalty tickets and 429 back-offs: the queue pauses for them
            self.broker.set_limiter(self.limiter)  # type: ignore[attr-defined]
        self.broker.set_listener(self._on_broker_event)

        self._requests: dict[str, OrderRequest] = {}
        self._states: dict[str, OrderState] = {}
        self._by_pair: dict[str, list[str]] = {}
        self._fills: list[BrokerFill] = []
        self._positions: dict[tuple[str, str], BrokerPosition] = {}

        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._inflight: dict[asyncio.Task[None], str] = {}  # send task -> account

        self._killed_all = False
        self._killed: set[str] = set()
        self._kill_no = 0

        self._subscribers: dict[str, _Subscriber] = {}
        self._event_seq = 0
        self.counts: Counter[str] = Counter()

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
        self._ensure_worker()
        submitted = self._submit(order)
        if isinstance(submitted, OrderState):
            return submitted
        return await submitted

    def _submit(self, order: OrderRequest) -> OrderState | asyncio.Future[OrderState]:
        """Synchronous half of :meth:`place`: the order is registered (deduplicated, visible to a
        concurrent kill switch) before the caller yields to the event loop."""
        known = self._states.get(order.cl_ord_id)
        if known is not None:
            self.counts["duplicates"] += 1
            return known
        self.counts["submitted"] += 1
        self._requests[order.cl_ord_id] = order
        self._by_pair.setdefault(order.pair_key, []).append(order.cl_ord_id)
        self._states[order.cl_ord_id] = OrderState(
            order.cl_ord_id, "pending", ts=time.time(), account=order.account, symbol=order.symbol
        )
        if self._entry_blocked(order):
            self.counts["kill_rejected"] += 1
            return self._local_final(order.cl_ord_id, "rejected", "kill_switch")
        return self._enqueue("place", order.cl_ord_id, order.account, order.priority, order).future

    async def cancel(self, cl_ord_id: str, priority: int = Priority.EXIT) -> OrderState:
        """Cancel an order. One still queued here is dropped without a broker call; a terminal
        one is returned unchanged; an unknown one raises :class:`UnknownOrder`."""
        self._ensure_worker()
        state = self._states.get(cl_ord_id)
        if state is None:
            raise UnknownOrder(cl_ord_id)
        if state.is_terminal:
            return state
        queued = self._queued_place(cl_ord_id)
        if queued is not None:
            self._remove_job(queued)
            final = self._local_final(cl_ord_id, "cancelled", "cancelled_before_send")
            _resolve(queued, final)
            return final
        return await self._cancel_at_broker(cl_ord_id, priority)

    async def _cancel_at_broker(self, cl_ord_id: str, priority: int) -> OrderState:
        self.counts["cancels"] += 1
        job = self._enqueue("cancel", cl_ord_id, self._states[cl_ord_id].account, priority)
        return await job.future

    # ------------------------------------------------------------------ kill switch

    async def kill(self, account: str | None = None) -> dict[str, Any]:
        """Cancel working orders and flatten every position of ``account`` (None: all accounts),
        then block new entries until :meth:`rearm`. Returns what was done."""
        self._ensure_worker()
        started = time.monotonic()
        if account is None:
            self._killed_all = True
        else:
            self._killed.add(account)

        def affected(acc: str) -> bool:
            return account is None or acc == account

        def is_kill_order(cl_ord_id: str) -> bool:
            request = self._requests.get(cl_ord_id)
            return request is not None and request.priority == Priority.KILL

        # 1. Unsent orders never leave (a queued exit would open the opposite position after the
        #    flatten); KILL jobs of an earlier kill are kept.
        dropped: list[str] = []
        doomed = [j for j in self._heap if j.priority != Priority.KILL and affected(j.account)]
        for job in sorted(doomed, key=lambda j: j.seq):
            self._remove_job(job)
            if job.kind == "place":
                dropped.append(job.cl_ord_id)
                _resolve(job, self._local_final(job.cl_ord_id, "rejected", "kill_switch"))
            else:  # a queued cancel: the kill's own cancel below covers that order
                _resolve(job, self._states[job.cl_ord_id])

        # 2. Cancel what the broker may still fill (sent, not final, not an earlier kill's
        #    flatten), including orders entered by hand, and wait for the answers.
        unsent = {j.cl_ord_id for j in self._heap if j.kind == "place"}
        active = [
            cl
            for cl, st in self._states.items()
            if st.is_active and cl not in unsent and affected(st.account) and not is_kill_order(cl)
        ]
        cancelled = await asyncio.gather(
            *(self._cancel_at_broker(cl, Priority.KILL) for cl in active)
        )
        # 3. Orders the broker is executing right now may still fill: let them answer first.
        busy = [t for t, acc in self._inflight.items() if affected(acc)]
        if busy:
            await asyncio.wait(busy, timeout=KILL_SETTLE_S)

        # 4. Flatten from the synced positions (no extra broker query on the hot path). Flatten
        #    orders of an earlier kill still under way count as done, so two kills in quick
        #    succession never close the same contracts twice (which would open the opposite
        #    position). No await between reading and registering: nothing can interleave.
        under_way: Counter[tuple[str, str]] = Counter()
        for cl, st in self._states.items():
            if st.is_active and is_kill_order(cl):
                under_way[(st.account, st.symbol)] += self._requests[cl].signed_qty
        self._kill_no += 1
        stamp = f"kill-{int(time.time() * 1000)}-{self._kill_no}"
        flatten: list[OrderRequest] = []
        for key, pos in sorted(self._positions.items()):
            left = pos.net_pos + under_way[key]
            if not affected(pos.account) or pos.net_pos == 0:
                continue
            if left == 0 or (left > 0) != (pos.net_pos > 0):
                continue
            flatten.append(
                OrderRequest(
                    cl_ord_id=f"{stamp}-{len(flatten)}",
                    account=pos.account,
                    symbol=pos.symbol,
                    side="sell" if left > 0 else "buy",  # closing a long sells
                    qty=abs(left),
                    priority=Priority.KILL,
                    pair_key="kill",
                    created_ts=time.time(),
                )
            )
        submitted = [self._submit(order) for order in flatten]
        results = [s if isinstance(s, OrderState) else await s for s in submitted]
        self.counts["kills"] += 1
        return {
            "account": account,
            "dropped": dropped,
            "cancelled": [s.cl_ord_id for s in cancelled if s.status == "cancelled"],
            "flatten": results,
            "elapsed_s": time.monotonic() - started,
        }

    async def rearm(self, account: str | None = None) -> dict[str, Any]:
        """Accept entries again for ``account``; None lifts every kill (a global kill can only be
        lifted globally)."""
        if account is None:
            self._killed_all = False
            self._killed.clear()
        else:
            self._killed.discard(account)
        return self._kill_status()

    def _entry_blocked(self, order: OrderRequest) -> bool:
        return order.priority == Priority.ENTRY and (
            self._killed_all or order.account in self._killed
        )

    def _kill_status(self) -> dict[str, Any]:
        return {"killed_all": self._killed_all, "killed": sorted(self._killed)}

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

    async def fills(self, account: str | None = None) -> list[BrokerFill]:
        return [f for f in self._fills if account is None or f.account == account]

    async def status(self) -> dict[str, Any]:
        by_status = Counter(state.status for state in self._states.values())
        return {
            "name": self.name,
            "kind": self.kind,
            "budget_left": self.limiter.budget_left(),
            "penalty_s": self.limiter.penalty_remaining(),
            "queue_depth": len(self._heap),
            "queue_by_priority": dict(Counter(Priority(j.priority).name for j in self._heap)),
            "in_flight": len(self._inflight),
            "orders": dict(by_status),
            "fills": len(self._fills),
            "open_positions": sum(1 for p in self._positions.values() if p.net_pos != 0),
            "subscribers": {
                name: {"delivered": sub.delivered, "errors": sub.errors, "dropped": sub.dropped}
                for name, sub in sorted(self._subscribers.items())
            },
            "counts": dict(self.counts),
            **self._kill_status(),
        }

    async def ping(self) -> dict[str, Any]:
        return {"ok": True, "name": self.name, "kind": self.kind, "started": self.started}

    # ------------------------------------------------------------------ prices and listeners

    async def on_ticks(self, batch: Mapping[str, tuple[list[float], list[float]]]) -> int:
        """Feed a tick batch (symbol -> (timestamps, prices)) to the paper broker; stops fill
        here. A no-op for adapters without ``on_price`` (live brokers match on their own)."""
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
        self._subscribers.setdefault(listener_name, _Subscriber(listener_name))

    async def unsubscribe(self, listener_name: str) -> None:
        self._subscribers.pop(listener_name, None)

    # ------------------------------------------------------------------ internals: queue

    def _ensure_worker(self) -> None:
        # Started lazily: Ray runs __init__ before the actor's event loop serves calls.
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())

    def _enqueue(
        self,
        kind: Literal["place", "cancel"],
        cl_ord_id: str,
        account: str,
        priority: int,
        order: OrderRequest | None = None,
    ) -> _Job:
        future: asyncio.Future[OrderState] = asyncio.get_running_loop().create_future()
        job = _Job(kind, int(priority), next(self._seq), cl_ord_id, account, future, order)
        heapq.heappush(self._heap, job)
        assert self._wake is not None
        self._wake.set()
        return job

    def _queued_place(self, cl_ord_id: str) -> _Job | None:
        """The queued (not yet sent) place job of ``cl_ord_id``, if any."""
        for job in self._heap:
            if job.kind == "place" and job.cl_ord_id == cl_ord_id:
                return job
        return None

    def _remove_job(self, job: _Job) -> None:
        self._heap.remove(job)
        heapq.heapify(self._heap)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.limiter.acquire(self._pools, self._heap[0].priority)
            if not self._heap:  # dropped while we waited (kill, cancel): the grant is spent
                continue
            job = heapq.heappop(self._heap)
            task = asyncio.get_running_loop().create_task(self._send(job))
            self._inflight[task] = job.account
            task.add_done_callback(self._inflight.pop)

    async def _send(self, job: _Job) -> None:
        try:
            if job.kind == "place":
                assert job.order is not None
                if self._entry_blocked(job.order):  # killed after it was queued
                    self.counts["kill_rejected"] += 1
                    _resolve(job, self._local_final(job.cl_ord_id, "rejected", "kill_switch"))
                    return
                self.counts["sent"] += 1
                state = await self.broker.place(job.order)
            else:
                state = await self.broker.cancel(job.cl_ord_id)
            self._merge(state)
            _resolve(job, self._states.get(job.cl_ord_id, state))
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
                _resolve(job, current)

    # ------------------------------------------------------------------ internals: state

    def _local_final(
        self, cl_ord_id: str, status: Literal["rejected", "cancelled"], reason: str
    ) -> OrderState:
        """Finish an order that never reached the broker, and tell the listeners."""
        state = replace(self._states[cl_ord_id], status=status, reason=reason, ts=time.time())
        self._on_broker_event(state)
        return self._states[cl_ord_id]

    def _merge(self, state: OrderState) -> bool:
        """Store ``state`` unless it is older news than what is known; True if it changed.

        Older news: a non-final state after a final one, or ``working`` after ``pending`` went
        past it (the answer to ``place`` can arrive after the fill event). A final state is never
        replaced by a different final state: an order that filled stays filled whatever a late
        cancel answer says.
        """
        old = self._states.get(state.cl_ord_id)
        if old is not None:
            if old.is_terminal and state.status != old.status:
                if state.is_terminal:
                    log.warning(
                        "ignoring %s after %s for %s", state.status, old.status, old.cl_ord_id
                    )
                return False
            if _STATUS_RANK[state.status] < _STATUS_RANK[old.status]:
                return False
            if not state.account and old.account:  # adapters may omit what we already know
                state = replace(state, account=old.account, symbol=old.symbol)
            if old == state:
                return False
        self._states[state.cl_ord_id] = state
        return True

    def _on_broker_event(self, event: BrokerEvent) -> None:
        """Adapter listener: update the synced state, queue the event for subscribers."""
        pair_key: str | None = None
        if isinstance(event, OrderState):
            if not self._merge(event):
                return
            request = self._requests.get(event.cl_ord_id)
            pair_key = request.pair_key if request else None
        elif isinstance(event, BrokerFill):
            self._fills.append(event)
            request = self._requests.get(event.cl_ord_id)
            pair_key = request.pair_key if request else None
        elif isinstance(event, BrokerPosition):
            self._positions[(event.account, event.symbol)] = event
        else:  # pragma: no cover - adapter bug
            log.error("ignoring unknown broker event %r", event)
            return
        self._event_seq += 1
        if not self._subscribers:
            return
        message = {
            **event_to_dict(event),
            "seq": self._event_seq,
            "broker": self.name,
            "pair_key": pair_key,
        }
        for sub in self._subscribers.values():
            sub.pending.append(message)
            if len(sub.pending) > MAX_PENDING_EVENTS:
                del sub.pending[0]
                sub.dropped += 1
            if sub.task is None or sub.task.done():
                # Starts on the next loop iteration: everything emitted in this one is one batch.
                sub.task = asyncio.get_running_loop().create_task(self._deliver(sub))

    async def _deliver(self, sub: _Subscriber) -> None:
        while sub.pending and self._subscribers.get(sub.name) is sub:
            batch, sub.pending = sub.pending, []
            try:
                if sub.handle is None:
                    sub.handle = ray.get_actor(sub.name, namespace=self.namespace)
                await sub.handle.on_broker_events.remote(batch)
                sub.delivered += len(batch)
            except Exception as exc:
                # Lost for this listener (it resyncs from the reads); look it up again next time.
                sub.handle = None
                sub.errors += 1
                self.counts["listener_errors"] += 1
                log.warning("could not deliver %d events to %s: %r", len(batch), sub.name, exc)


def _resolve(job: _Job, state: OrderState) -> None:
    # The caller may have gone (its Ray call cancelled); the order is tracked regardless.
    if not job.future.done():
        job.future.set_result(state)


def broker_actor_class() -> Any:
    """``BrokerActor`` as a Ray actor class: restarted forever, calls at-most-once, no CPU."""
    return ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)(BrokerActor)
