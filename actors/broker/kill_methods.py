"""The broker actor's kill switch calls (:class:`KillMethods`, a mixin of
:class:`~actors.broker.actor.BrokerActor`; ``self`` is always the broker actor). The rules they
apply (what is blocked, what a flatten sends, liquidations) are :mod:`actors.broker.killswitch`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from actors.broker.base import OrderState, Priority
from actors.broker.killswitch import KILL_SETTLE_S, affects, is_kill_order
from actors.broker.queue import resolve

if TYPE_CHECKING:
    from actors.broker.actor import BrokerActor


class KillMethods:
    async def kill(self: BrokerActor, account: str | None = None) -> dict[str, Any]:
        """Cancel working orders and flatten every position of ``account`` (None: all accounts),
        then block new entries until :meth:`rearm`. Returns what was done."""
        self._queue.ensure_worker()
        started = time.monotonic()
        self._killswitch.engage(account)

        def affected(acc: str) -> bool:
            return affects(account, acc)

        # 1. Unsent orders never leave (a queued exit would open the opposite position after the
        #    flatten); KILL jobs of an earlier kill are kept.
        dropped: list[str] = []
        doomed = [
            j for j in self._queue.heap if j.priority != Priority.KILL and affected(j.account)
        ]
        for job in sorted(doomed, key=lambda j: j.seq):
            self._queue.remove(job)
            if job.kind == "place":
                dropped.append(job.cl_ord_id)
                resolve(job, self._local_final(job.cl_ord_id, "rejected", "kill_switch"))
            else:  # a queued cancel: the kill's own cancel below covers that order
                resolve(job, self._states[job.cl_ord_id])

        # 2. Contracts the broker can liquidate in one call (it cancels their orders and exits
        #    the position): one budgeted call each instead of a cancel per order plus a flatten,
        #    which on one Tradovate login does not fit the rate budget for many accounts.
        liquidating = (
            self._liquidations.targets(self._positions, affected)
            if callable(getattr(self.broker, "liquidate", None))
            else []
        )
        # 3. Cancel what the broker may still fill (sent, not final, not an earlier kill's
        #    flatten), including orders entered by hand, and wait for the answers; orders in a
        #    contract being liquidated are the liquidation's to cancel.
        unsent = {j.cl_ord_id for j in self._queue.heap if j.kind == "place"}
        active = [
            cl
            for cl, st in self._states.items()
            if st.is_active
            and cl not in unsent
            and affected(st.account)
            and not is_kill_order(self._requests, cl)
            and (st.account, st.symbol) not in liquidating
        ]
        cancelled, liquidated = await asyncio.gather(
            asyncio.gather(*(self._cancel_at_broker(cl, Priority.KILL) for cl in active)),
            asyncio.gather(
                *(
                    self._liquidations.liquidate(self.broker, self.limiter, *key)
                    for key in liquidating
                )
            ),
        )
        refused = {
            key
            for key, outcome in zip(liquidating, liquidated, strict=True)
            if outcome == "refused"
        }
        if refused:  # nothing happened there: cancel that contract's orders the usual way
            cancelled += await asyncio.gather(
                *(
                    self._cancel_at_broker(cl, Priority.KILL)
                    for cl, st in list(self._states.items())
                    if st.is_active
                    and (st.account, st.symbol) in refused
                    and cl not in unsent
                    and not is_kill_order(self._requests, cl)
                )
            )

        # 4. Orders the broker is executing right now may still fill: let them answer first.
        busy = [t for t, acc in self._queue.inflight.items() if affected(acc)]
        if busy:
            await asyncio.wait(busy, timeout=KILL_SETTLE_S)

        # 5. Flatten from the synced positions (no extra broker query on the hot path), net of
        #    an earlier kill's flatten orders still under way, except contracts whose
        #    liquidation the broker accepted or may have executed (flattening those too could
        #    open the opposite position). No await between reading and registering.
        skip = {key for key in liquidating if key not in refused}
        skip |= self._liquidations.in_flight(self._positions)
        flatten = [
            order
            for order in self._killswitch.flatten_orders(
                account, self._positions, self._states, self._requests
            )
            if (order.account, order.symbol) not in skip
        ]
        submitted = [self._submit(order) for order in flatten]
        results = [s if isinstance(s, OrderState) else await s for s in submitted]
        self.counts["kills"] += 1
        self.counts["liquidations"] += len(liquidating)
        return {
            "account": account,
            "dropped": dropped,
            "cancelled": [s.cl_ord_id for s in cancelled if s.status == "cancelled"],
            "liquidated": [
                {"account": a, "symbol": sym, "outcome": outcome}
                for (a, sym), outcome in zip(liquidating, liquidated, strict=True)
            ],
            "flatten": results,
            "elapsed_s": time.monotonic() - started,
        }

    async def rearm(self: BrokerActor, account: str | None = None) -> dict[str, Any]:
        """Accept entries again for ``account``; None lifts every kill (a global kill can only be
        lifted globally)."""
        self._killswitch.rearm(account)
        return self._killswitch.status()
