"""The desk's order traffic: sending a pair's orders to its broker actor once their rows are
durable, and feeding the answers back (:class:`OrderTraffic`, a mixin of
:class:`~actors.recorder.desk.LiveDesk`; ``self`` is always the desk).

Order answers come back twice, as the ``place`` call's result and as the broker actor's event
stream (:meth:`~actors.broker.actor.BrokerActor.subscribe`); the pair treats both as the same
news. A place whose outcome is unknown (the broker actor died mid-call) is left pending: the
exit timeout cancels it, and a cancel the broker answers with "unknown order" settles it as
never placed. Only a cancel's answer may: Ray does not keep the order of calls to an async
actor, so a cancel or a lookup can reach the broker actor before the placement it is about;
a cancel makes the broker actor refuse that id for good (see
:meth:`~actors.broker.actor.BrokerActor.cancel`), a lookup that finds nothing does not, so it
only sends the cancel again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import ray

from actors.broker.base import (
    UNKNOWN_AT_BROKER,
    OrderRequest,
    OrderState,
    Priority,
    UnknownOrder,
    event_to_dict,
)
from actors.channel import Direct
from actors.recorder.live import LiveOutcome
from actors.runtime import BROKER_CHANNEL

if TYPE_CHECKING:
    from actors.recorder.desk import LiveDesk, LiveHosted

#: A placement's answer is applied this long after it arrives. The broker actor's events for
#: the same orders (their states and fills) come a moment later, in a call of their own, and
#: carry the same news plus the fills; applied first, they leave the answer nothing to change,
#: so the pair's rows are written once instead of twice. Answer first, then events, was the
#: usual order (bench.live_latency), and its first write (order and position rows of 20
#: pairs, ~2 ms) ran while an exit tick waited behind it. The answer still settles whatever the
#: events did not bring (a stream that lost events, a broker actor restarting).
ANSWER_AFTER_S = 0.05

log = logging.getLogger("justtrades.desk")


class OrderTraffic:
    def _sweep(self: LiveDesk, now: float, older_than_s: float) -> None:
        """Ask each broker actor about the pairs' unsettled orders (see :data:`~actors.recorder.desk.SWEEP_AFTER_S`)."""
        self.last_sweep = now
        asks: dict[str, list[tuple[LiveHosted, str]]] = {}
        for lh in self.by_key.values():
            for o in lh.pair.unsettled(now, older_than_s):
                asks.setdefault(lh.broker, []).append((lh, o.cl))
        for name, items in asks.items():
            try:
                handle = self._handle(name)
            except ValueError:
                continue  # not running: asked again at the next sweep
            ref = handle.lookup.remote([cl for _, cl in items])
            self._spawn(self._await_lookup(items, ref))

    async def _await_lookup(self: LiveDesk, items: list[tuple[LiveHosted, str]], ref: Any) -> None:
        try:
            found = await ref
        except Exception as exc:  # the broker actor is down: the next sweep asks again
            log.warning("order lookup failed: %r", exc)
            return
        now = time.time()
        pairs = {cl: cur for lh, cl in items if (cur := self._current(lh)) is not None}
        outs: list[tuple[LiveHosted, LiveOutcome]] = []
        for f in found["fills"]:  # fills first: a state saying "filled" then finds them booked
            lh = pairs.get(f.cl_ord_id)
            if lh is not None:
                outs.append((lh, lh.pair.on_event(event_to_dict(f), now)))
        for cl, state in found["states"].items():
            lh = pairs.get(cl)
            if lh is None:  # its recorder was unloaded meanwhile
                continue
            if state is not None:
                out = lh.pair.on_order(
                    cl, state.status, state.filled_qty, state.reason, state.broker_order_id, now
                )
                outs.append((lh, out))
                continue
            o = lh.pair.order(cl)
            if o is None or o.done:
                continue
            if o.cancel_sent:
                # We want it gone and the broker actor has not seen it (yet: its placement may
                # still be on the way and run after this read). Settling it as never placed here
                # would forget an order that may be sent next; the cancel's answer settles it,
                # and makes the broker actor refuse a placement that comes after it.
                outs.append((lh, lh.pair.cancel_again(cl, now)))
                continue
            request = lh.pair.request_for(cl)  # never reached the broker: send it (same id)
            if request is not None:
                self.counts["resent"] = self.counts.get("resent", 0) + 1
                self.outbox.append((lh, "place", request))
        write = self._collect(outs)
        if write is not None:
            self.commit(write)
        else:
            self.send()

    # -- sending --------------------------------------------------------------------------------

    def _handle(self: LiveDesk, name: str) -> Any:
        h = self.handles.get(name)
        if h is None:
            h = self.handles[name] = Direct(
                ray.get_actor(name, namespace=self.namespace), BROKER_CHANNEL
            )
            self._subscribe(name, time.time())
        return h

    def _subscribe(self: LiveDesk, name: str, now: float) -> None:
        self.subscribed_at[name] = now
        handle = self.handles.get(name)
        if handle is not None:
            handle.subscribe.remote(self.listener)

    def send(self: LiveDesk) -> None:
        """Send the outbox (call only after its writes committed). The orders for one broker
        actor go in one call: a copy-traded recorder exits on every account at the same tick,
        and one call per order put the last account a few Ray round trips behind the first.
        While rows of a sliced batch wait for a commit (:attr:`durable` false) nothing is sent:
        the orders go with that commit."""
        if not self.durable():
            return
        box, self.outbox = self.outbox, []
        places: dict[str, list[tuple[LiveHosted, OrderRequest]]] = {}
        now = time.time()
        for lh, kind, payload in box:
            try:
                handle = self._handle(lh.broker)
            except ValueError as exc:  # no such broker actor (not connected)
                self.counts["send_errors"] += 1
                if kind == "place":
                    self._answer(
                        [(lh, payload.cl_ord_id, "rejected", 0, f"no_broker: {exc}", None)]
                    )
                continue
            if kind == "place":
                self.counts["placed"] += 1
                places.setdefault(lh.broker, []).append((lh, payload))
                book = lh.pair.books.get(payload.symbol)
                order = None if book is None else book.orders.get(payload.cl_ord_id)
                if order is not None:
                    order.sent_ts = now
            else:
                self.counts["cancels"] += 1
                ref = handle.cancel.remote(payload, Priority.EXIT, self.listener)
                self._spawn(self._await_cancel(lh, payload, ref))
        for _, order in (i for items in places.values() for i in items):
            if order.created_ts:
                self.send_lag_ms.append((now - order.created_ts) * 1000)
        for name, items in places.items():
            orders = [order for _, order in items]
            ref = self.handles[name].place_many.remote(orders, self.listener)
            self._spawn(self._await_places(items, ref))

    def _spawn(self: LiveDesk, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _await_places(
        self: LiveDesk, items: list[tuple[LiveHosted, OrderRequest]], ref: Any
    ) -> None:
        try:
            states: list[OrderState] = await ref
        except Exception as exc:  # outcome unknown: the sync stream or a timeout settles it
            self.counts["send_errors"] += len(items)
            log.warning("placing %d orders: outcome unknown (%r)", len(items), exc)
            return
        await asyncio.sleep(ANSWER_AFTER_S)
        self._answer(
            [
                (lh, st.cl_ord_id, st.status, st.filled_qty, st.reason, st.broker_order_id)
                for (lh, _), st in zip(items, states, strict=True)
            ]
        )

    async def _await_cancel(self: LiveDesk, lh: LiveHosted, cl: str, ref: Any) -> None:
        try:
            state: OrderState = await ref
        except Exception as exc:
            if isinstance(exc, UnknownOrder) or "UnknownOrder" in repr(exc):
                # The broker actor never saw it and refuses it from now on (a placement still on
                # its way is not sent): it is never placed.
                self._answer([(lh, cl, "cancelled", 0, UNKNOWN_AT_BROKER, None)])
                return
            self.counts["send_errors"] += 1
            log.warning("cancel %s: outcome unknown (%r)", cl, exc)
            return
        self._answer(
            [(lh, cl, state.status, state.filled_qty, state.reason, state.broker_order_id)]
        )

    def _current(self: LiveDesk, lh: LiveHosted) -> LiveHosted | None:
        """The pair hosted under ``lh``'s key now (None: unloaded). Answers that come back
        after an await go to it: a recorder reloaded while its orders were out has new pair
        objects (rebuilt from the store, sent orders included), and the old ones must not be
        written again (their rows would overwrite the new pair's)."""
        return self.by_key.get(lh.pair.key)

    def _answer(
        self, answers: list[tuple[LiveHosted, str, str, int, str | None, str | None]]
    ) -> None:
        """Broker answers to place/cancel, in one write, to the pairs hosted now
        (:meth:`_current`)."""
        now = time.time()
        outs = []
        for lh, cl, status, filled, reason, broker_id in answers:
            current = self._current(lh)
            if current is not None:
                outs.append(
                    (current, current.pair.on_order(cl, status, filled, reason, broker_id, now))
                )
        write = self._collect(outs)
        if write is not None:
            self.commit(write)
        else:
            self.send()
