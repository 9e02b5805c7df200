"""LiveDesk: the live pairs (traders) of one recorder host, and their wiring to broker actors.

The host owns one desk. The desk builds a :class:`~.live.LivePair` per trader of each hosted
recorder (enabled traders, plus disabled ones that still hold a position, which run close-only
until flat), routes signals, ticks, broker events and timer beats to them, turns their outcomes
into store writes, and sends their orders.

Durable before sent: a pair's new orders go to the :attr:`outbox`; the host commits the writes
(order rows, the pair's snapshot with its id counter) and only then calls :meth:`send`. A crash
in between loses nothing that reached a broker, and a replayed signal plans nothing twice
(the pair remembers recent signal ids).

Sending orders and reading their answers back is :mod:`.desk_orders`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlmodel import Session

from actors.broker.logins import broker_account
from actors.channel import drop
from actors.instruments import spec_for
from actors.reconciler.desk import Reconciling
from actors.recorder.catchup import FeedMarks
from actors.recorder.config import RecorderSettings
from actors.recorder.desk_orders import OrderTraffic
from actors.recorder.live import LiveOutcome, LivePair, Trader
from actors.recorder.live_orders import LiveOrder
from actors.recorder.records import Rows, fill_row, position_fields
from actors.runtime import broker_name
from actors.store import repo

log = logging.getLogger("justtrades.desk")

Write = Callable[[Session], None]  # what the host commits: Rows, or any session function
RESUBSCRIBE_S = 10.0
#: An order not settled this long after it was sent is looked up at its broker actor: the pair
#: may have missed events (it was down, or the broker actor restarted and forgot its listeners).
SWEEP_AFTER_S = 3.0
SWEEP_EVERY_S = 3.0
#: How often the broker positions of every account in use are read (reconciler sweep).
POSITIONS_EVERY_S = 10.0


def live_key(recorder_id: int, trader_id: int) -> str:
    return f"r{recorder_id}:t{trader_id}"


@dataclass(slots=True)
class LiveHosted:
    trader_id: int
    recorder_id: int
    account_id: int
    sub_account_id: int | None
    broker: str  # broker actor name
    pair: LivePair
    enabled: bool


def trader_settings(base: RecorderSettings, overrides: dict[str, Any]) -> RecorderSettings:
    """The recorder's settings with the trader's take-profit / stop-loss overrides."""
    if not overrides:
        return base
    data = base.model_dump()
    data.update({k: v for k, v in overrides.items() if k in ("take_profit", "stop_loss")})
    return RecorderSettings.model_validate(data)


class LiveDesk(Reconciling, OrderTraffic):
    def __init__(self, namespace: str | None, listener: str) -> None:
        self.namespace = namespace
        self.listener = listener  # this host's actor name, for broker event subscriptions
        self.by_recorder: dict[int, list[LiveHosted]] = {}
        self.by_key: dict[str, LiveHosted] = {}
        self.outbox: list[tuple[LiveHosted, str, Any]] = []  # (pair, "place"|"cancel", payload)
        self.handles: dict[str, Any] = {}
        self.subscribed_at: dict[str, float] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.counts = {"placed": 0, "cancels": 0, "send_errors": 0, "rejections": 0}
        #: per order sent: cause (signal received / tick) -> handed to Ray, ms (diagnostics)
        self.send_lag_ms: deque[float] = deque(maxlen=10_000)
        self.commit: Callable[[Write], None] = lambda w: None  # set by the host
        #: whether every row decided so far is committed (the host's batch slices leave some
        #: for a later commit); :meth:`send` sends nothing until then
        self.durable: Callable[[], bool] = lambda: True
        self.last_sweep = 0.0
        self.drift_since: dict[tuple[str, str, str], tuple[str, int, float]] = {}
        self.positions_at: dict[str, float] = {}  # broker actor -> last positions read
        self.refreshing: set[str] = set()
        self.recovering = False  # restored orders not looked up at their broker yet
        self.marks: FeedMarks | None = None  # the host's feed marks
        self.row_marks: dict[tuple[str, str], list[float] | None] = {}  # restored states'

    # -- loading --------------------------------------------------------------------------------

    def load(self, s: Session, recorder_id: int, settings: RecorderSettings) -> None:
        """(Re)build the live pairs of one recorder from the store."""
        self.unload(recorder_id)
        positions = {
            p.pair_key: p for p in repo.load_positions(s, [recorder_id]) if p.trader_id is not None
        }
        hosted: list[LiveHosted] = []
        for t in repo.list_traders(s, recorder_id=recorder_id):
            assert t.id is not None
            key = live_key(recorder_id, t.id)
            rows = [p for k, p in positions.items() if k == key]
            holding = any(p.quantity for p in rows) or any(
                (p.state or {}).get("orders") for p in rows
            )
            if not t.enabled and not holding:
                continue
            account = repo.get_account(s, t.account_id)
            sub = repo.get_sub_account(s, t.sub_account_id) if t.sub_account_id else None
            if account is None or sub is None:
                log.warning("trader %s has no account/sub-account; not loaded", t.id)
                continue
            trader = Trader(
                key=key,
                tag=f"jt{recorder_id}t{t.id}",
                account=broker_account(account.broker, sub),
                multiplier=Fraction(repr(t.multiplier)),
                max_contracts=t.max_contracts,
                close_only=t.close_only or not t.enabled,
                reconcile=str((t.overrides or {}).get("reconcile_policy", "alert")),
            )
            pair = LivePair(
                trader, trader_settings(settings, t.overrides or {}), spec_for, self.marks
            )
            for p in rows:
                if p.state:
                    pair.restore(p.symbol, p.state)
                    if p.quantity or p.state.get("orders"):
                        self.row_marks[(key, p.symbol)] = p.state.get("feed")
            self.recovering |= bool(pair.unsettled(time.time(), 0.0))
            lh = LiveHosted(
                t.id,
                recorder_id,
                t.account_id,
                t.sub_account_id,
                broker_name(account.broker, t.account_id),
                pair,
                t.enabled,
            )
            hosted.append(lh)
            self.by_key[key] = lh
        if hosted:
            self.by_recorder[recorder_id] = hosted

    def unload(self, recorder_id: int) -> None:
        for lh in self.by_recorder.pop(recorder_id, []):
            self.by_key.pop(lh.pair.key, None)

    # -- events ---------------------------------------------------------------------------------

    def on_signal(
        self,
        recorder_id: int,
        signal_id: int,
        intent: dict[str, Any],
        entry_sides: frozenset[int],
        now: float,
    ) -> Rows | None:
        outs = []
        for lh in self.by_recorder.get(recorder_id, []):
            out = lh.pair.on_signal(
                intent["symbol"],
                now,
                intent["kind"],
                signal_id,
                quantity=intent.get("quantity"),
                target=intent.get("target"),
                entry_sides=entry_sides,
            )
            outs.append((lh, out))
        return self._collect(outs, signal_id)

    def on_ticks(
        self,
        symbol: str,
        tss: list[float],
        ticks: list[int],
        skip: set[str] | frozenset[str] = frozenset(),
        recv: list[float] | None = None,
    ) -> Rows | None:
        outs = []
        lo, hi = min(ticks), max(ticks)
        for lh in self.by_key.values():
            if lh.pair.key in skip:
                continue
            b = lh.pair.books.get(symbol)
            if b is None or (b.pos is None and not b.orders and not b.want_entry):
                continue
            outs += [(lh, out) for out in lh.pair.on_batch(b, tss, ticks, lo, hi, recv)]
        return self._collect(outs)

    def halt_all(
        self,
        reason: str,
        now: float,
        broker: str | None = None,
        recorder_id: int | None = None,
    ) -> Rows | None:
        """HALT every live pair (or those trading through ``broker``, or of ``recorder_id``):
        something they depend on failed for good. Their snapshots carry the state and reason."""
        outs = []
        for lh in self.by_key.values():
            if broker is not None and lh.broker != broker:
                continue
            if recorder_id is not None and lh.recorder_id != recorder_id:
                continue
            if lh.pair.halt(reason, now):
                log.error("trader %s HALTED: %s", lh.trader_id, reason)
                outs.append((lh, LiveOutcome(symbols=set(lh.pair.books))))
        return self._collect(outs)

    def on_events(self, events: list[dict[str, Any]], now: float) -> Rows | None:
        outs = []
        for ev in events:
            lh = self.by_key.get(ev.get("pair_key") or "")
            if lh is not None:
                outs.append((lh, lh.pair.on_event(ev, now)))
                continue
            for lh in self._by_account(ev):
                if ev.get("type") == "fill" and ev.get("origin") == "kill_switch":
                    # not sent by a pair but by the kill switch: it closed the pair's position
                    outs.append((lh, lh.pair.on_event({**ev, "reason": "kill_switch"}, now)))
                elif ev.get("type") == "position":
                    outs.append((lh, lh.pair.on_event(ev, now)))
        if any(ev.get("type") == "position" for ev in events):
            # continuously: on every sync of a position, for the accounts these events are about
            # (a scan of every group per event batch cost 0.2 ms at 20 pairs, O(pairs))
            touched = {(ev.get("broker") or "", ev.get("account") or "") for ev in events}
            outs += self.reconcile(now, touched)
        return self._collect(outs)

    def _by_account(self, ev: dict[str, Any]) -> list[LiveHosted]:
        """Live pairs trading the event's (broker, account, symbol). A foreign fill is only
        booked when exactly one pair trades that contract there (otherwise nobody can tell
        whose it is: the reconciler shows the drift)."""
        found = [
            lh
            for lh in self.by_key.values()
            if lh.broker == ev.get("broker")
            and lh.pair.t.account == ev.get("account")
            and ev.get("symbol") in lh.pair.books
        ]
        if ev.get("type") == "fill" and len(found) != 1:
            return []
        return found

    def on_timer(self, now: float) -> Rows | None:
        for name, at in list(self.subscribed_at.items()):
            if now - at >= RESUBSCRIBE_S:  # a restarted broker actor forgot its subscribers
                self._subscribe(name, now)
        if self.recovering or now - self.last_sweep >= SWEEP_EVERY_S:
            self._sweep(now, 0.0 if self.recovering else SWEEP_AFTER_S)
            self.recovering = False
        for broker in {lh.broker for lh in self.by_key.values()}:
            if now - self.positions_at.get(broker, 0.0) >= POSITIONS_EVERY_S:
                self.refresh_positions(broker)  # the periodic sweep of the reconciler
        outs = [(lh, lh.pair.on_timer(now)) for lh in self.by_key.values()]
        return self._collect(outs + self.reconcile(now))

    def rewire(self, broker: str, now: float) -> bool:
        """Subscribe to a restarted ``broker`` again and catch up (see the host's ``rewire``).
        False when no live pair of this host trades there."""
        if not any(lh.broker == broker for lh in self.by_key.values()):
            return False
        drop(self.handles.pop(broker, None))  # re-created (not restarted): a new actor
        try:
            self._handle(broker)
        except ValueError:
            return False
        self._subscribe(broker, now)
        self._sweep(now, 0.0)
        self.refresh_positions(broker)
        return True

    # -- persistence ----------------------------------------------------------------------------

    def _collect(
        self, outs: list[tuple[LiveHosted, LiveOutcome]], signal_id: int | None = None
    ) -> Rows | None:
        """Queue the orders to send and return the rows that must commit first."""
        rows = Rows()
        touched: dict[tuple[str, str], LiveHosted] = {}
        for lh, out in outs:
            ids = {
                "pair_key": lh.pair.key,
                "recorder_id": lh.recorder_id,
                "trader_id": lh.trader_id,
                "signal_id": signal_id,
            }
            rows.fills += [{**fill_row(f), **ids, "order_id": None} for f in out.fills]
            rows.trades += [{**t.row(), **ids} for t in out.trades]
            for o in out.orders.values():
                rows.orders[o.cl] = self._order_row(lh, o)
            for sym in out.symbols | {f.symbol for f in out.fills}:
                touched[(lh.pair.key, sym)] = lh
            self.counts["rejections"] += len(out.rejections)
            self.outbox += [(lh, "place", order) for order in out.place]
            self.outbox += [(lh, "cancel", cl) for cl in out.cancel]
        for (_, sym), lh in touched.items():  # once per position, at its newest state
            rows.positions[(lh.pair.key, sym)] = self._position_row(lh, sym)
        return rows if rows else None

    @staticmethod
    def _order_row(lh: LiveHosted, o: LiveOrder) -> dict[str, Any]:
        money = lh.pair.book(o.symbol).money
        return {
            "pair_key": lh.pair.key,
            "recorder_id": lh.recorder_id,
            "trader_id": lh.trader_id,
            "account_id": lh.account_id,
            "sub_account_id": lh.sub_account_id,
            "cl_ord_id": o.cl,
            "symbol": o.symbol,
            "side": o.side,
            "quantity": o.qty,
            "order_type": "stop" if o.stop is not None else "market",
            "stop_price": None if o.stop is None else money.price_float(o.stop),
            "status": o.status,
            "broker_order_id": o.broker_order_id,
            "reason": o.broker_reason,
            "created_at": o.placed_ts,
        }

    @staticmethod
    def _position_row(lh: LiveHosted, symbol: str) -> dict[str, Any]:
        return {
            "pair_key": lh.pair.key,
            "symbol": symbol,
            "trader_id": lh.trader_id,
            **position_fields(lh.pair, lh.recorder_id, symbol),
        }

    # -- reads ----------------------------------------------------------------------------------

    def positions(self, recorder_id: int | None = None) -> list[dict[str, Any]]:
        out = []
        for lh in self.by_key.values():
            if recorder_id is not None and lh.recorder_id != recorder_id:
                continue
            for symbol in lh.pair.busy_symbols():
                view = lh.pair.view(symbol)
                if view is not None:
                    out.append(
                        {
                            "recorder_id": lh.recorder_id,
                            "trader_id": lh.trader_id,
                            "pair_key": lh.pair.key,
                            **view,
                        }
                    )
        return out

    def status(self) -> dict[str, Any]:
        lags = sorted(self.send_lag_ms)
        p99 = lags[int(0.99 * (len(lags) - 1))] if lags else None
        risk: dict[str, int] = {}
        for lh in self.by_key.values():
            risk[lh.pair.risk] = risk.get(lh.pair.risk, 0) + 1
        drift = [
            {"broker": k[0], "account": k[1], "symbol": k[2], "kind": v[0], "difference": v[1]}
            for k, v in self.drift_since.items()
        ]
        return {
            "live_pairs": len(self.by_key),
            "risk": risk,  # live pairs per risk state (ACTIVE / REDUCING / HALTED)
            "drift": drift,  # broker positions that differ from their pairs right now
            "send_lag_p99_ms": p99,
            **self.counts,
        }

    def send_lags(self) -> list[float]:
        return list(self.send_lag_ms)
