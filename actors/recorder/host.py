"""RecorderHost: the actor that hosts many recorders' pairs in one process.

A pair is the unit of state, a host the unit of hosting (DESIGN.md): one Ray process holds the
virtual pairs of every recorder assigned to it (``recorder_id % n_hosts == index``), applies
signals and ticks through the pure core, and persists each state change. It is an async actor
whose handlers do not await between reading and writing state, so events run one at a time in
arrival order; the only concurrent task is the excursion flusher.

Durability: a signal's status, its fills, trades and the position snapshot commit in one
transaction. Exits triggered by ticks commit at once; plain excursion changes (worst/best
unrealised, last price) are flushed at most ``excursion_flush_s`` later and always on close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from actors.instruments import UnknownSymbol, spec_for
from actors.recorder.config import RecorderSettings
from actors.recorder.filters import FilterState, Verdict, cap_quantity, cap_target, evaluate
from actors.recorder.levels import to_ticks
from actors.recorder.pair import FillEvent, Outcome, Pair
from actors.store import Store, models, repo

log = logging.getLogger("justtrades.host")

IGNORED = {"no_add", "flat", "in_sync"}


@dataclass(slots=True)
class Hosted:
    """One recorder on this host."""

    id: int
    name: str
    symbol: str
    enabled: bool
    settings: RecorderSettings
    pair: Pair
    filters: FilterState = field(default_factory=FilterState)


def pair_key(recorder_id: int) -> str:
    return f"r{recorder_id}:virtual"


class RecorderHost:
    """Actor body. ``ray.remote`` is applied by :mod:`actors.runtime`."""

    def __init__(self, index: int, n_hosts: int, database_url: str, flush_s: float = 1.0) -> None:
        self.index, self.n_hosts = index, n_hosts
        self.store = Store(database_url)
        self.flush_s = flush_s
        self.recorders: dict[int, Hosted] = {}
        self.by_symbol: dict[str, set[int]] = {}
        self.last_price: dict[str, tuple[float, float]] = {}
        self.dirty: set[tuple[int, str]] = set()
        self.started = time.time()
        self.counters = {"signals": 0, "ticks": 0, "trades": 0, "errors": 0}
        self._flusher: asyncio.Task[None] | None = None
        self.recovered: set[int] = set()
        self._load_all()
        self._recover_pending()

    # -- loading --------------------------------------------------------------------------------

    def owns(self, recorder_id: int) -> bool:
        return recorder_id % self.n_hosts == self.index

    def _load_all(self) -> None:
        with self.store.read() as s:
            rows = s.exec(select(models.Recorder).where(models.Recorder.deleted == False)).all()  # noqa: E712
            for r in rows:
                if self.owns(r.id):
                    self._install(s, r)

    def _install(self, s: Session, r: models.Recorder) -> Hosted:
        settings = RecorderSettings.model_validate(r.settings or {})
        h = Hosted(
            r.id, r.name, r.symbol, r.enabled, settings, Pair(pair_key(r.id), settings, spec_for)
        )
        for p in repo.load_positions(s, [r.id]):
            if p.pair_key == h.pair.key and p.state:
                h.pair.restore(p.symbol, p.state)
                self._watch(h, p.symbol)
        self._rebuild_filters(s, h)
        self.recorders[r.id] = h
        return h

    def _recover_pending(self) -> None:
        """Signals stored but never applied (the host died or was unreachable when they came)
        are applied now, in arrival order, before any new call is served."""
        with self.store.read() as s:
            pending = [
                (sig.id, sig.recorder_id, (sig.parsed or {}).get("intent"))
                for rid in self.recorders
                for sig in repo.pending_signals(s, rid)
            ]
        for signal_id, rid, intent in sorted(pending, key=lambda p: p[0] or 0):
            assert signal_id is not None and rid is not None
            h = self.recorders[rid]
            if intent is None:
                self._finish(
                    signal_id, h, "rejected", "no_intent", "stored without intent", Outcome()
                )
                continue
            self.recovered.add(signal_id)
            self._evaluate_and_apply(signal_id, h, {**intent, "delayed": True})
            log.info("recovered pending signal %s of recorder %s", signal_id, rid)

    def _rebuild_filters(self, s: Session, h: Hosted) -> None:
        now = time.time()
        for t in s.exec(
            select(models.Trade)
            .where(models.Trade.recorder_id == h.id, models.Trade.closed_at >= now - 86400 * 3)
            .order_by(models.Trade.id)
        ).all():
            h.filters.note_pnl(t.closed_at, t.pnl)

    def _watch(self, h: Hosted, symbol: str) -> None:
        self.by_symbol.setdefault(symbol, set()).add(h.id)

    async def load_recorder(self, recorder_id: int) -> bool:
        """(Re)load a recorder's settings after the API changed it. Open positions are kept."""
        with self.store.read() as s:
            r = s.get(models.Recorder, recorder_id)
            old = self.recorders.pop(recorder_id, None)
            if r is None or r.deleted:
                for ids in self.by_symbol.values():
                    ids.discard(recorder_id)
                return False
            if old is not None and old.settings == RecorderSettings.model_validate(
                r.settings or {}
            ):
                old.name, old.symbol, old.enabled = r.name, r.symbol, r.enabled
                self.recorders[recorder_id] = old
                return True
            self._install(s, r)
            return True

    async def reset(self, recorder_id: int) -> None:
        """History was wiped: forget the pair's state too."""
        self.recorders.pop(recorder_id, None)
        for ids in self.by_symbol.values():
            ids.discard(recorder_id)
        await self.load_recorder(recorder_id)

    # -- signals --------------------------------------------------------------------------------

    async def on_signal(
        self, signal_id: int, recorder_id: int, intent: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply one stored signal. ``intent``: kind, quantity, target, price, symbol,
        signal_time (ISO or None), received_at. Returns the status written to the store."""
        self._ensure_flusher()
        self.counters["signals"] += 1
        h = self.recorders.get(recorder_id)
        if h is None and self.owns(recorder_id):
            await self.load_recorder(recorder_id)
            h = self.recorders.get(recorder_id)
        if h is None:
            return self._finish(signal_id, None, "rejected", "unknown_recorder", None, Outcome())
        if signal_id in self.recovered:
            return {"status": "applied", "reason": "recovered", "detail": None, "fills": []}
        if intent.get("delayed") is None:
            delay = h.settings.filters.signal_delay_seconds
            if delay > 0:
                asyncio.get_running_loop().call_later(
                    delay, self._evaluate_and_apply, signal_id, h, {**intent, "delayed": True}
                )
                return {"status": "received", "reason": "delayed", "detail": f"applies in {delay}s"}
        return self._evaluate_and_apply(signal_id, h, intent)

    def _evaluate_and_apply(
        self, signal_id: int, h: Hosted, intent: dict[str, Any]
    ) -> dict[str, Any]:
        now = float(intent["received_at"])
        symbol = intent["symbol"]
        sig_time = intent.get("signal_time")
        verdict = evaluate(
            h.settings.filters,
            enabled=h.enabled,
            now=now,
            signal_time=datetime.fromisoformat(sig_time) if sig_time else None,
            state=h.filters,
            root=spec_for(symbol).root,
        )
        if verdict.stop:
            return self._finish(signal_id, h, "filtered", verdict.reason, None, Outcome())
        return self._apply(signal_id, h, intent, verdict, now)

    def _apply(
        self, signal_id: int, h: Hosted, intent: dict[str, Any], verdict: Verdict, now: float
    ) -> dict[str, Any]:
        symbol = intent["symbol"]
        f = h.settings.filters
        price = intent.get("price")
        if price is None and symbol in self.last_price:
            price = self.last_price[symbol][1]
        try:
            out = h.pair.on_signal(
                symbol,
                now,
                intent["kind"],
                price=price,
                quantity=cap_quantity(f, intent.get("quantity")),
                target=cap_target(f, intent.get("target")),
                entry_sides=verdict.entry_sides,
            )
        except (ValueError, UnknownSymbol) as exc:
            self.counters["errors"] += 1
            return self._finish(signal_id, h, "rejected", "invalid_signal", str(exc), Outcome())
        self._watch(h, symbol)
        if h.pair.view(symbol) is not None:
            self.dirty.add((h.id, symbol))  # the fill price moved excursions even if ignored
        if out.status == "applied":
            entered = any(fl.kind in ("entry", "add") for fl in out.fills)
            h.filters.note_applied(now, entered)
            return self._finish(signal_id, h, "applied", verdict.reason, None, out, symbol)
        if out.status == "blocked":
            return self._finish(signal_id, h, "filtered", verdict.reason or "blocked", None, out)
        if out.status == "no_price":
            return self._finish(signal_id, h, "rejected", "no_price", "no price yet", out)
        return self._finish(signal_id, h, "ignored", out.status, None, out)

    def _finish(
        self,
        signal_id: int,
        h: Hosted | None,
        status: str,
        reason: str | None,
        detail: str | None,
        out: Outcome,
        symbol: str | None = None,
    ) -> dict[str, Any]:
        now = time.time()

        def write(s: Session) -> None:
            repo.set_signal_status(
                s, signal_id, status, reason=reason, detail=detail, applied_at=now
            )
            if h is not None and symbol is not None:
                self._persist(s, h, symbol, out, signal_id)

        self.store.run_write(write)
        if h is not None:
            for t in out.trades:
                h.filters.note_pnl(t.close_ts, float(t.pnl))
        self.counters["trades"] += len(out.trades)
        return {
            "status": status,
            "reason": reason,
            "detail": detail,
            "trades": len(out.trades),
            "fills": [_fill_row(fl) for fl in out.fills],
        }

    # -- ticks ----------------------------------------------------------------------------------

    async def on_ticks(self, batch: dict[str, tuple[list[float], list[float]]]) -> int:
        """A feed batch: per symbol, timestamps and prices in time order."""
        self._ensure_flusher()
        n = 0
        exits: list[tuple[Hosted, str, Outcome]] = []
        for symbol, (tss, prices) in batch.items():
            if not tss:
                continue
            self.last_price[symbol] = (tss[-1], prices[-1])
            ids = self.by_symbol.get(symbol)
            n += len(tss)
            if not ids:
                continue
            for rid in list(ids):
                h = self.recorders.get(rid)
                if h is None:
                    continue
                b = h.pair.book(symbol)
                if b.pos is None and b.bars is None:
                    b.last_tick = to_ticks(prices[-1], b.money.tick_size)
                    continue
                acc = Outcome()
                for ts, px in zip(tss, prices, strict=True):
                    acc.extend(h.pair.on_tick_ticks(b, ts, to_ticks(px, b.money.tick_size)))
                if acc.fills or acc.trades:
                    exits.append((h, symbol, acc))
                elif b.pos is not None:
                    self.dirty.add((rid, symbol))
        self.counters["ticks"] += n
        if exits:

            def write(s: Session) -> None:
                for h, symbol, out in exits:
                    self._persist(s, h, symbol, out, None)

            self.store.run_write(write)
            for h, _symbol, out in exits:
                for t in out.trades:
                    h.filters.note_pnl(t.close_ts, float(t.pnl))
                self.counters["trades"] += len(out.trades)
        return n

    # -- persistence ----------------------------------------------------------------------------

    def _persist(
        self, s: Session, h: Hosted, symbol: str, out: Outcome, signal_id: int | None
    ) -> None:
        key = h.pair.key
        repo.add_fills(
            s,
            [
                {**_fill_row(fl), "pair_key": key, "recorder_id": h.id, "signal_id": signal_id}
                for fl in out.fills
            ],
        )
        repo.add_trades(
            s,
            [
                {**t.row(), "pair_key": key, "recorder_id": h.id, "signal_id": signal_id}
                for t in out.trades
            ],
        )
        self._write_position(s, h, symbol)
        self.dirty.discard((h.id, symbol))

    def _write_position(self, s: Session, h: Hosted, symbol: str) -> None:
        view = h.pair.view(symbol)
        snap = h.pair.snapshot(symbol)
        fields: dict[str, Any] = {"recorder_id": h.id, "state": snap, "updated_at": time.time()}
        if view is None:
            fields.update(side="flat", quantity=0, avg_price=0.0, unrealised=0.0)
        else:
            fields.update(
                side=view["side"],
                quantity=view["quantity"],
                avg_price=view["avg_price"],
                opened_at=view["opened_at"],
                last_price=view["last_price"],
                unrealised=view["unrealised"],
                worst_unrealised=view["worst_unrealised"],
                best_unrealised=view["best_unrealised"],
            )
        repo.upsert_position(s, h.pair.key, symbol, **fields)

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                self.flush()
            except Exception:  # keep flushing; the next round retries the same rows
                log.exception("excursion flush failed")
                self.counters["errors"] += 1

    def flush(self) -> int:
        """Write every position whose excursions changed since the last write."""
        if not self.dirty:
            return 0
        dirty, self.dirty = self.dirty, set()

        def write(s: Session) -> None:
            for rid, symbol in dirty:
                h = self.recorders.get(rid)
                if h is not None:
                    self._write_position(s, h, symbol)

        self.store.run_write(write)
        return len(dirty)

    # -- reads ----------------------------------------------------------------------------------

    async def positions(self, recorder_id: int | None = None) -> list[dict[str, Any]]:
        out = []
        for h in self.recorders.values():
            if recorder_id is not None and h.id != recorder_id:
                continue
            for symbol in h.pair.open_symbols():
                view = h.pair.view(symbol)
                if view is not None:
                    out.append({"recorder_id": h.id, "pair_key": h.pair.key, **view})
        return out

    async def ping(self) -> dict[str, Any]:
        return {"index": self.index, "ok": True, "started": self.started}

    async def status(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "recorders": len(self.recorders),
            "open_positions": sum(len(h.pair.open_symbols()) for h in self.recorders.values()),
            "symbols": sorted(self.by_symbol),
            "last_prices": {k: v[1] for k, v in self.last_price.items()},
            "counters": dict(self.counters),
            "uptime_s": time.time() - self.started,
        }


def _fill_row(fl: FillEvent) -> dict[str, Any]:
    return {
        "symbol": fl.symbol,
        "side": fl.side,
        "quantity": fl.qty,
        "price": float(fl.price),
        "ts": fl.ts,
        "kind": fl.kind,
    }
