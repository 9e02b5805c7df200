"""The broker actor's kill switch: which accounts are blocked from entries, and the flatten.

Kill switch
-----------
:meth:`BrokerActor.kill <actors.broker.actor.BrokerActor.kill>` blocks new ENTRY orders for the
account (or all accounts), drops its queued unsent orders, cancels its working orders and waits
for those cancels, then flattens every open position with market orders at KILL priority. Cancels
go first so that a resting stop cannot fill after the flatten and open the opposite position.
Entries stay blocked until :meth:`BrokerActor.rearm <actors.broker.actor.BrokerActor.rearm>`;
exits and stops are still accepted (a pair may legitimately need to close or protect something
the flatten raced with).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from actors.broker.base import BrokerPosition, OrderRequest, OrderState, Priority
from actors.broker.limiter import RateLimiter

log = logging.getLogger("justtrades.broker.kill")

__all__ = ["KILL_SETTLE_S", "KillSwitch", "affects", "is_kill_order"]

#: How long a kill switch waits for in-flight sends of the affected accounts to answer before it
#: reads positions to flatten (an order the broker is executing right now may still fill).
KILL_SETTLE_S = 2.0


def affects(account: str | None, acc: str) -> bool:
    """Whether a kill of ``account`` (None: all accounts) concerns account ``acc``."""
    return account is None or acc == account


def is_kill_order(requests: Mapping[str, OrderRequest], cl_ord_id: str) -> bool:
    """Whether ``cl_ord_id`` is a kill switch's flatten order."""
    request = requests.get(cl_ord_id)
    return request is not None and request.priority == Priority.KILL


class KillSwitch:
    """Kill state of one broker login: a global kill and the killed accounts."""

    def __init__(self) -> None:
        self.killed_all = False
        self.killed: set[str] = set()
        self._kill_no = 0

    def engage(self, account: str | None) -> None:
        """Block entries for ``account`` (None: all accounts)."""
        if account is None:
            self.killed_all = True
        else:
            self.killed.add(account)

    def rearm(self, account: str | None) -> None:
        """Accept entries again for ``account``; None lifts every kill (a global kill can only be
        lifted globally)."""
        if account is None:
            self.killed_all = False
            self.killed.clear()
        else:
            self.killed.discard(account)

    def blocks(self, order: OrderRequest) -> bool:
        """Whether ``order`` is an entry for a killed account."""
        return order.priority == Priority.ENTRY and (
            self.killed_all or order.account in self.killed
        )

    def status(self) -> dict[str, Any]:
        return {"killed_all": self.killed_all, "killed": sorted(self.killed)}

    def flatten_orders(
        self,
        account: str | None,
        positions: Mapping[tuple[str, str], BrokerPosition],
        states: Mapping[str, OrderState],
        requests: Mapping[str, OrderRequest],
    ) -> list[OrderRequest]:
        """Market orders at KILL priority that close the synced ``positions`` of ``account``.

        Flatten orders of an earlier kill still under way count as done, so two kills in quick
        succession never close the same contracts twice (which would open the opposite
        position)."""
        under_way: Counter[tuple[str, str]] = Counter()
        for cl, st in states.items():
            if st.is_active and is_kill_order(requests, cl):
                under_way[(st.account, st.symbol)] += requests[cl].signed_qty
        self._kill_no += 1
        stamp = f"kill-{int(time.time() * 1000)}-{self._kill_no}"
        flatten: list[OrderRequest] = []
        for key, pos in sorted(positions.items()):
            left = pos.net_pos + under_way[key]
            if not affects(account, pos.account) or pos.net_pos == 0:
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
        return flatten


#: A contract liquidated by a kill is not liquidated or flattened again for this long, or until
#: the synced position has been seen flat (:meth:`Liquidations.settled`): a second exit racing
#: the first fill would flip it.
LIQUIDATION_GUARD_S = 10.0


class Liquidations:
    """Kills through a broker that liquidates a contract in one call (Tradovate's
    ``order/liquidateposition`` cancels the contract's orders and exits the position, §4.3):
    one budgeted KILL-priority call per open contract instead of a cancel per order plus a
    flatten, which for many accounts on one login does not fit the rate budget."""

    def __init__(self) -> None:
        self.started: dict[tuple[str, str], float] = {}  # (account, symbol) -> when

    def in_flight(
        self, positions: Mapping[tuple[str, str], BrokerPosition]
    ) -> set[tuple[str, str]]:
        now = time.monotonic()
        return {
            key
            for key, at in self.started.items()
            if now - at < LIQUIDATION_GUARD_S and key in positions and positions[key].net_pos != 0
        }

    def settled(self, position: BrokerPosition) -> None:
        """A synced position: flat means the liquidation is over (filled, or the position was
        closed otherwise). Without this a contract re-entered within the guard period after a
        kill was taken for one still being liquidated: a second kill skipped it and left the
        new position open."""
        if position.net_pos == 0:
            self.started.pop((position.account, position.symbol), None)

    def recent(self, key: tuple[str, str]) -> bool:
        """A liquidation of (account, symbol) started within the guard period."""
        at = self.started.get(key)
        return at is not None and time.monotonic() - at < LIQUIDATION_GUARD_S

    def targets(
        self, positions: Mapping[tuple[str, str], BrokerPosition], affected: Callable[[str], bool]
    ) -> list[tuple[str, str]]:
        """Open contracts to liquidate; none with a liquidation already in flight (two racing
        one fill would close the position twice)."""
        busy = self.in_flight(positions)
        return [
            key
            for key, pos in sorted(positions.items())
            if pos.net_pos != 0 and affected(pos.account) and key not in busy
        ]

    async def liquidate(self, broker: Any, limiter: RateLimiter, account: str, symbol: str) -> str:
        """One liquidation through the rate budget at KILL priority. Returns ``accepted``,
        ``refused`` (the broker said no: nothing happened, a flatten may follow) or
        ``unknown`` (it may have executed: never followed by anything else)."""
        key = (account, symbol)
        self.started[key] = time.monotonic()
        await limiter.acquire({pool: 1 for pool in limiter.pools}, Priority.KILL)
        try:
            answer = await broker.liquidate(account, symbol)
        except Exception as exc:
            if getattr(exc, "executed_unknown", True):
                log.error("liquidation %s %s outcome unknown: %r", account, symbol, exc)
                return "unknown"
            log.warning("liquidation %s %s refused: %r", account, symbol, exc)
            self.started.pop(key, None)
            return "refused"
        if isinstance(answer, dict) and answer.get("failureReason") not in (None, "Success"):
            log.warning("liquidation %s %s refused: %s", account, symbol, answer)
            self.started.pop(key, None)
            return "refused"
        return "accepted"
