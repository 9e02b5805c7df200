"""Reconciliation on a recorder host: every (broker actor, account, contract) its live pairs
trade, judged by :mod:`actors.reconciler.policy` and acted on per the traders' policies.

A mixin of :class:`~actors.recorder.desk.LiveDesk` (``self`` is the desk): reconciliation runs
where the pairs live, inside the host, so it never races the pairs' own state changes.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from actors.reconciler.policy import Group, assess, decide
from actors.recorder.live_book import LiveBook, LiveOutcome

if TYPE_CHECKING:
    from actors.recorder.desk import LiveHosted, Write

log = logging.getLogger("justtrades.reconciler")

#: A difference between a broker position and its pairs must last this long to be acted on.
RECONCILE_CONFIRM_S = 2.0


def _group(items: list[tuple[LiveHosted, LiveBook]]) -> Group:
    nets = [b.broker_net for _, b in items if b.broker_net is not None]
    return Group(
        nets[0] if nets else None,
        tuple(b.net for _, b in items),
        sum(b.external for _, b in items),
        all(lh.pair.settled(b) for lh, b in items),
    )


class Reconciling:
    def groups(
        self, accounts: set[tuple[str, str]] | None = None
    ) -> dict[tuple[str, str, str], list[tuple[LiveHosted, LiveBook]]]:
        """Live pairs by (broker actor, account, contract): what one broker position nets
        (only the given (broker actor, account)s when ``accounts`` is given)."""
        out: dict[tuple[str, str, str], list[tuple[LiveHosted, LiveBook]]] = {}
        for lh in self.by_key.values():
            if accounts is not None and (lh.broker, lh.pair.t.account) not in accounts:
                continue
            for b in lh.pair.books.values():
                out.setdefault((lh.broker, lh.pair.t.account, b.symbol), []).append((lh, b))
        return out

    def reconcile(
        self, now: float, accounts: set[tuple[str, str]] | None = None
    ) -> list[tuple[LiveHosted, LiveOutcome]]:
        """Compare every group (of ``accounts`` only, when given) with its broker position and
        apply the policies (see :mod:`actors.reconciler.policy`). Runs on every timer beat
        (all groups) and after position events (the accounts the events are about)."""
        outs: list[tuple[LiveHosted, LiveOutcome]] = []
        for key, items in self.groups(accounts).items():
            v = assess(_group(items))
            for _, b in items:
                b.drift = v.difference if v.kind in ("drift", "unexplained") else 0
            if v.kind not in ("drift", "unexplained"):
                self.drift_since.pop(key, None)
                continue
            kind, diff, since = self.drift_since.get(key, (v.kind, v.difference, now))
            if (kind, diff) != (v.kind, v.difference):
                since = now
            self.drift_since[key] = (v.kind, v.difference, since)
            if self.positions_at.get(key[0], 0.0) <= since:
                # Judge on a position read after the difference appeared, not on a report
                # that may be stale (events are lost while a broker actor restarts).
                self.refresh_positions(key[0])
                continue
            lh0 = items[0][0]
            action = decide(v, len(items), lh0.pair.t.reconcile, now - since, RECONCILE_CONFIRM_S)
            if action == "none":
                continue
            self.counts[f"reconcile_{action}"] = self.counts.get(f"reconcile_{action}", 0) + 1
            self.drift_since[key] = (v.kind, v.difference, now)  # act once per confirm period
            if action == "halt":
                for lh, b in items:
                    reason = f"unexplained broker position {v.broker} in {b.symbol}"
                    if lh.pair.halt(reason, now):
                        log.error("trader %s HALTED: %s", lh.trader_id, reason)
                        outs.append((lh, LiveOutcome(symbols={b.symbol})))
            elif action == "alert":
                log.warning("drift on %s: broker %s, pairs %s", key, v.broker, v.expected)
            else:
                lh, b = items[0]
                outs.append((lh, lh.pair.reconcile(b, action, now)))
        return outs

    def refresh_positions(self, broker: str) -> None:
        """Read the positions of every account this host trades on ``broker`` from its broker
        actor (which waits for its broker sync) and give them to the pairs, flat ones too."""
        if broker in self.refreshing:
            return
        try:
            handle = self._handle(broker)
        except ValueError:
            return
        accounts = sorted({lh.pair.t.account for lh in self.by_key.values() if lh.broker == broker})
        self.refreshing.add(broker)
        self._spawn(self._await_positions(broker, accounts, handle.positions_of.remote(accounts)))

    async def _await_positions(self, broker: str, accounts: list[str], ref: Any) -> None:
        try:
            positions = await ref
        except Exception as exc:  # down or not synced: the next beat asks again
            log.warning("positions of %s not read: %r", broker, exc)
            return
        finally:
            self.refreshing.discard(broker)
        now = time.time()
        nets = {(p.account, p.symbol): (p.net_pos, p.net_price) for p in positions}
        outs = []
        for (name, account, symbol), items in self.groups().items():
            if name != broker or account not in accounts:
                continue
            net, price = nets.get((account, symbol), (0, None))
            for lh, _ in items:
                outs.append((lh, lh.pair.on_position(symbol, net, now, price)))
        self.positions_at[broker] = now
        write = self._collect(outs + self.reconcile(now))
        if write is not None:
            self.commit(write)
        else:
            self.send()

    def reconcile_view(self) -> list[dict[str, Any]]:
        out = []
        for (broker, account, symbol), items in self.groups().items():
            g = _group(items)
            v = assess(g)
            out.append(
                {
                    "broker": broker,
                    "account": account,
                    "symbol": symbol,
                    "verdict": v.kind,
                    "broker_net": g.broker_net,
                    "expected": v.expected,
                    "traders": [
                        {"trader_id": lh.trader_id, "net": b.net, "risk": lh.pair.risk}
                        for lh, b in items
                    ],
                }
            )
        return out

    def resolve(self, trader_id: int, symbol: str, action: str, now: float) -> Write | None:
        """A user's decision on a HALTED pair: ``adopt`` the broker's position, declare it
        ``external`` (not ours: expected from now on), or ``resume`` as is."""
        found = [lh for lh in self.by_key.values() if lh.trader_id == trader_id]
        if not found:
            raise KeyError(trader_id)
        lh = found[0]
        out = lh.pair.resolve(symbol, action, now)
        return self._collect([(lh, out)])
