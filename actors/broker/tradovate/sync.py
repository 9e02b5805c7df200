"""The Tradovate adapter's synced state: entities in, broker events out. No I/O.

Section numbers (§) refer to ``reference/tradovate.md``.

:class:`SyncBook` keeps what ``user/syncrequest`` and ``props`` events (§5.6) say about orders
(by ``cl_ord_id`` and by ``orderId``), fills (by id), positions (by account+contract), accounts
and contracts, and turns every change into :class:`~actors.broker.base.OrderState`,
:class:`~actors.broker.base.BrokerFill` and :class:`~actors.broker.base.BrokerPosition` events,
emitted in order: an execution as its fill, then the order's state, then the position.

Ordering and identity
---------------------
* The ``Order`` entity carries no ``clOrdId``; the ``Command`` entity does (§4.4). The events of
  an order can arrive before ``placeorder`` answers with its ``orderId``, so items wait in an
  ordered inbox while a placement that could be that order is in flight (same account and
  contract, see :meth:`SyncBook.sending`) and the head names an unknown order; they are applied
  once the id is known (the answer, via :meth:`SyncBook.link`, or a
  ``Command``). With no placement in flight an unknown order is someone else's (entered by
  hand): reported with its command's ``clOrdId`` if any, else as ``tradovate-<orderId>``.
* An item naming an unknown contract id waits until :meth:`SyncBook.learn_contract` names it;
  ``request_contract`` is called once per such id so the adapter can look it up.
* A snapshot (first sync and every resync after a reconnect) is applied in one step: state is
  refreshed silently, then new fills (de-duplicated by fill id), changed orders and changed
  positions are emitted, so a resync never reports a fill twice.
* Unknown entity types, enum values and extra fields are ignored (§7: new enum values appear).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from actors.broker.base import (
    TERMINAL_STATUSES,
    BrokerEvent,
    BrokerFill,
    BrokerPosition,
    OrderState,
    OrderStatus,
)
from actors.broker.tradovate.auth import parse_time
from actors.broker.tradovate.frames import PropsEvent

__all__ = ["OrderRecord", "SyncBook", "map_status"]

log = logging.getLogger("justtrades.broker.tradovate.sync")

#: ``ordStatus`` (§4.4) → our status; ``Completed`` depends on fills; unknown values keep the
#: previous status.
_ORD_STATUS: dict[str, OrderStatus] = {
    "PendingNew": "pending",
    "Suspended": "pending",
    "Working": "working",
    "PendingCancel": "working",
    "PendingReplace": "working",
    "Filled": "filled",
    "Canceled": "cancelled",
    "Expired": "cancelled",
    "Rejected": "rejected",
}
_RANK = {"pending": 0, "working": 1, "filled": 2, "rejected": 2, "cancelled": 2}
_ORDER_KINDS = ("orderVersion", "order", "executionReport", "commandReport")

Entities = dict[str, list[dict[str, Any]]]


def map_status(ord_status: str | None, filled_qty: int, previous: OrderStatus) -> OrderStatus:
    """Our status for a Tradovate ``ordStatus``; never moves backwards or out of a final one."""
    if ord_status == "Completed":
        new: OrderStatus = "filled" if filled_qty > 0 else "cancelled"
    else:
        new = _ORD_STATUS.get(ord_status or "", previous)
    if previous in TERMINAL_STATUSES or _RANK[new] < _RANK[previous]:
        return previous
    return new


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(slots=True)
class OrderRecord:
    """One order as known from our request and the sync stream."""

    cl_ord_id: str
    account: str = ""
    symbol: str = ""
    qty: int | None = None
    order_id: int | None = None
    account_id: int | None = None
    contract_id: int | None = None
    status: OrderStatus = "pending"
    fills: dict[int, tuple[int, float]] = field(default_factory=dict)
    fill_info: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> (side, ts)
    reason: str | None = None
    ts: float = 0.0
    emitted: OrderState | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def state(self) -> OrderState:
        filled = sum(q for q, _ in self.fills.values())
        avg = sum(q * p for q, p in self.fills.values()) / filled if filled else None
        oid = None if self.order_id is None else str(self.order_id)
        return OrderState(
            self.cl_ord_id, self.status, oid, filled, avg, self.reason,
            self.ts, self.account, self.symbol,
        )  # fmt: skip


class SyncBook:
    """Synced state and event emission (module docstring). ``emit`` is the broker listener;
    ``request_contract(id)`` asks for a contract name; ``clock`` stamps local changes."""

    def __init__(
        self,
        emit: Callable[[BrokerEvent], None],
        request_contract: Callable[[int], None] = lambda _id: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._emit = emit
        self._request_contract = request_contract
        self._clock = clock
        #: Our placements in flight (cl_ord_id → record): sent, or about to be, no orderId yet.
        self.sending: dict[str, OrderRecord] = {}
        self.by_cl: dict[str, OrderRecord] = {}
        self.by_oid: dict[int, OrderRecord] = {}
        self._cl_of_oid: dict[int, str] = {}  # New commands: orderId -> clOrdId
        self._cmd_oid: dict[int, int] = {}  # commandId -> orderId
        self._fill_ids: set[int] = set()
        self.positions: dict[tuple[int, int], BrokerPosition] = {}
        self.account_names: dict[int, str] = {}
        self.account_ids: dict[str, int] = {}
        self.contract_names: dict[int, str] = {}
        self.contract_ids: dict[str, int] = {}
        self._requested: set[int] = set()
        self._inbox: deque[Entities] = deque()
        self.counts: dict[str, int] = dict.fromkeys(
            ("snapshots", "events", "duplicate_fills", "foreign_orders", "waits", "rekeyed"), 0
        )

    # ------------------------------------------------------------------ input

    def push_props(self, events: list[PropsEvent]) -> None:
        """Queue live ``props`` entities (one item each) and apply what can be applied."""
        for props in events:
            self.counts["events"] += 1
            if props.entity_type == "command":
                self.learn_command(props.entity)  # only names ids: safe to apply at once
            entity = dict(props.entity)
            if props.event_type == "Deleted":
                entity["_deleted"] = True
            self._inbox.append({props.entity_type: [entity]})
        self.pump()

    def push_snapshot(self, entities: Entities) -> None:
        """Queue a ``user/syncrequest`` snapshot (see :func:`~.ws.snapshot_entities`)."""
        self.counts["snapshots"] += 1
        self._inbox.append(entities)
        self.pump()

    def pump(self) -> None:
        """Apply inbox items in order until one must wait (module docstring)."""
        while self._inbox:
            item = self._inbox[0]
            if self._must_wait(item):
                self.counts["waits"] += 1
                return
            self._inbox.popleft()
            try:
                self._apply(item)
            except Exception:
                log.exception("could not apply a tradovate sync item")

    @property
    def waiting(self) -> int:
        return len(self._inbox)

    # ------------------------------------------------------------------ orders we place

    def new_order(self, cl_ord_id: str, account: str, symbol: str, qty: int) -> OrderRecord:
        rec = OrderRecord(cl_ord_id, account, symbol, qty, ts=self._clock())
        self.by_cl[cl_ord_id] = rec
        return rec

    def link(self, rec: OrderRecord, order_id: int) -> None:
        rec.order_id = order_id
        self.by_oid[order_id] = rec
        rec.changed.set()

    def finish(self, rec: OrderRecord, status: OrderStatus, reason: str) -> OrderState:
        """Make ``rec`` final locally (a refusal that created no order) and report it."""
        rec.status, rec.reason, rec.ts = status, reason, self._clock()
        self.refresh(rec)
        return rec.state()

    def refresh(self, rec: OrderRecord) -> None:
        """Emit ``rec``'s state if it differs (beyond ``ts``) from the last one emitted."""
        state = rec.state()
        last = rec.emitted
        # A newer timestamp alone is not a change (the Order entity carries its creation time).
        if last is None or replace(state, ts=last.ts) != last:
            rec.emitted = state
            rec.changed.set()
            self._send(state)

    # ------------------------------------------------------------------ reference data

    def learn_account(self, account: dict[str, Any]) -> None:
        account_id, name = _int(account.get("id")), account.get("name")
        if account_id is not None and isinstance(name, str):
            self.account_names[account_id] = name
            self.account_ids[name] = account_id

    def learn_contract(self, contract: dict[str, Any]) -> None:
        contract_id, name = _int(contract.get("id")), contract.get("name")
        if contract_id is not None and isinstance(name, str):
            self.contract_names[contract_id] = name
            self.contract_ids.setdefault(name, contract_id)

    def learn_command(self, cmd: dict[str, Any]) -> None:
        oid, cid = _int(cmd.get("orderId")), _int(cmd.get("id"))
        if oid is None:
            return
        if cid is not None:
            self._cmd_oid[cid] = oid
        cl = cmd.get("clOrdId")
        if isinstance(cl, str) and cl and cmd.get("commandType", "New") == "New":
            self._cl_of_oid.setdefault(oid, cl)
            rec = self.by_cl.get(cl)
            if rec is not None and rec.order_id is None:
                self.link(rec, oid)
            elif rec is None:
                self._rekey(oid, cl)

    def _rekey(self, oid: int, cl: str) -> None:
        """An order filed as foreign because its Order entity came in an earlier frame than the
        Command naming our clOrdId (it was placed by a broker actor that died before the answer;
        this one never had it in ``sending``): give it its clOrdId and publish its state and
        fills again under it (whoever placed it dedupes fills by id)."""
        rec = self.by_oid.get(oid)
        foreign = f"tradovate-{oid}"
        if rec is None or rec.cl_ord_id != foreign:
            return
        self.by_cl.pop(foreign, None)
        rec.cl_ord_id = cl
        self.by_cl[cl] = rec
        self.counts["rekeyed"] += 1
        self.counts["foreign_orders"] -= 1
        for fill_id, (qty, price) in rec.fills.items():
            side, ts = rec.fill_info.get(fill_id, ("buy", self._clock()))
            self._send(
                BrokerFill(
                    cl, str(oid), rec.account, rec.symbol, side, qty, price, ts, str(fill_id)
                )
            )
        rec.emitted = None
        self.refresh(rec)

    def account_name(self, account_id: int | None) -> str:
        if account_id is None:
            return ""
        return self.account_names.get(account_id, f"account-{account_id}")

    # ------------------------------------------------------------------ internals

    def _must_wait(self, item: Entities) -> bool:
        for cmd in item.get("command", ()):
            self.learn_command(cmd)
        for account in item.get("account", ()):
            self.learn_account(account)
        for contract in item.get("contract", ()):
            self.learn_contract(contract)
        wait = False
        for kind in ("order", "fill", "position", "executionReport"):
            for e in item.get(kind, ()):
                contract_id = _int(e.get("contractId"))
                if contract_id is not None and contract_id not in self.contract_names:
                    wait = True
                    if contract_id not in self._requested:
                        self._requested.add(contract_id)
                        self._request_contract(contract_id)
                oid = _int(e.get("id") if kind == "order" else e.get("orderId"))
                if kind != "position" and self.sending and oid is not None:
                    known = oid in self.by_oid or oid in self._cl_of_oid
                    wait = wait or (not known and self._maybe_ours(e))
        return wait

    def _maybe_ours(self, e: dict[str, Any]) -> bool:
        """Could this entity of an unknown order belong to one of our placements in flight?
        (Fills carry no accountId; a placement whose contract is not resolved yet matches.)"""
        account_id, contract_id = _int(e.get("accountId")), _int(e.get("contractId"))
        return any(
            (rec.contract_id is None or contract_id is None or rec.contract_id == contract_id)
            and (rec.account_id is None or account_id is None or rec.account_id == account_id)
            for rec in self.sending.values()
        )

    def _apply(self, item: Entities) -> None:
        """One inbox item: order entities, then fills (each reported), then the touched
        orders' states, then positions — the same order for a live event and a snapshot."""
        touched: dict[str, OrderRecord] = {}
        for kind in _ORDER_KINDS:
            for e in item.get(kind, ()):
                rec = self._order_entity(kind, e)
                if rec is not None and kind != "orderVersion":
                    touched[rec.cl_ord_id] = rec
        fills = item.get("fill", [])
        fills.sort(key=lambda f: (str(f.get("timestamp", "")), _int(f.get("id")) or 0))
        for fill in fills:
            rec = self._fill(fill)
            if rec is not None:
                touched[rec.cl_ord_id] = rec
        for rec in touched.values():
            self.refresh(rec)
        for position in item.get("position", ()):
            self._position(position)

    def _order_entity(self, kind: str, e: dict[str, Any]) -> OrderRecord | None:
        if kind == "commandReport":
            oid = self._cmd_oid.get(_int(e.get("commandId")) or -1)
        else:
            oid = _int(e.get("id") if kind == "order" else e.get("orderId"))
        if oid is None:
            return None
        rec = self._record_for(oid, e)
        if kind == "orderVersion":
            rec.qty = _int(e.get("orderQty")) or rec.qty
            return rec
        if kind == "order":
            rec.account_id = _int(e.get("accountId")) or rec.account_id
            rec.contract_id = _int(e.get("contractId")) or rec.contract_id
            rec.account = rec.account or self.account_name(rec.account_id)
            rec.symbol = rec.symbol or self.contract_names.get(rec.contract_id or -1, "")
        reject = e.get("rejectReason")
        if reject or e.get("execType") == "Rejected" or e.get("ordStatus") == "Rejected":
            reason = ": ".join(str(p) for p in (reject, e.get("text")) if p)
            rec.reason = reason or rec.reason
        status = e.get("ordStatus")
        if isinstance(status, str) and (kind == "order" or status != "Filled"):
            # A report may say Filled before its fill arrives: only the order entity or the
            # fills themselves make an order filled, so that the fill is reported first. For
            # the same reason filled_qty/avg come from fills only, not from a report's cumQty.
            rec.status = map_status(status, rec.state().filled_qty, rec.status)
        rec.ts = max(rec.ts, parse_time(e.get("timestamp")) or 0.0) or self._clock()
        return rec

    def _fill(self, e: dict[str, Any]) -> OrderRecord | None:
        fill_id, oid = _int(e.get("id")), _int(e.get("orderId"))
        if fill_id is None or oid is None or e.get("active") is False:
            return None
        if fill_id in self._fill_ids:
            self.counts["duplicate_fills"] += 1
            return None
        self._fill_ids.add(fill_id)
        rec = self._record_for(oid, e)
        qty, price = _int(e.get("qty")) or 0, float(e.get("price") or 0.0)
        rec.fills[fill_id] = (qty, price)
        symbol = rec.symbol or self.contract_names.get(_int(e.get("contractId")) or -1, "")
        side = "buy" if e.get("action") == "Buy" else "sell"
        ts = parse_time(e.get("timestamp")) or self._clock()
        rec.fill_info[fill_id] = (side, ts)
        self._send(
            BrokerFill(
                rec.cl_ord_id, str(oid), rec.account, symbol, side, qty, price, ts, str(fill_id)
            )
        )
        if rec.qty is not None and rec.state().filled_qty >= rec.qty:
            rec.status = map_status("Filled", rec.qty, rec.status)
        return rec

    def _position(self, e: dict[str, Any]) -> None:
        account_id, contract_id = _int(e.get("accountId")), _int(e.get("contractId"))
        if account_id is None or contract_id is None:
            return
        net = 0 if e.get("_deleted") else int(e.get("netPos") or 0)
        price = e.get("netPrice")
        pos = BrokerPosition(
            self.account_name(account_id),
            self.contract_names.get(contract_id, f"contract-{contract_id}"),
            net,
            float(price) if net and isinstance(price, int | float) else None,
        )
        if self.positions.get((account_id, contract_id)) != pos:
            self.positions[(account_id, contract_id)] = pos
            self._send(pos)

    def _record_for(self, oid: int, e: dict[str, Any]) -> OrderRecord:
        rec = self.by_oid.get(oid)
        if rec is not None:
            return rec
        cl = self._cl_of_oid.get(oid)
        rec = self.by_cl.get(cl) if cl else None
        if rec is None:  # someone else's order (module docstring)
            self.counts["foreign_orders"] += 1
            account_id, contract_id = _int(e.get("accountId")), _int(e.get("contractId"))
            symbol = self.contract_names.get(contract_id or -1, "")
            rec = self.new_order(cl or f"tradovate-{oid}", self.account_name(account_id), symbol, 0)
            rec.qty, rec.account_id, rec.contract_id = None, account_id, contract_id
        self.link(rec, oid)
        return rec

    def _send(self, event: BrokerEvent) -> None:
        try:
            self._emit(event)
        except Exception:
            log.exception("broker event listener failed on %r", event)
