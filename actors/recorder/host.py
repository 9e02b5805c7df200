"""RecorderHost: the actor that hosts many recorders' pairs in one process.

A pair is the unit of state, a host the unit of hosting (DESIGN.md): one Ray process holds the
virtual pairs of every recorder assigned to it (``recorder_id % n_hosts == index``), applies
signals through the pure core and ticks through the columnar path (:mod:`.columns`), and persists
each state change. It is an async actor on one event loop. A tick batch runs from start to
commit without awaiting. Signal and broker-event batches are applied a slice at a time, and
between slices the calls that arrived meanwhile run (:func:`let_others_run`): an exit tick no
longer waits behind a whole batch of 20 pairs' fills. Each kind of batch still runs one call at
a time in arrival order (a lock each); the rows of an unfinished batch wait in
``_unwritten`` and go into whichever commit comes first (:meth:`RecorderHost._commit`), so
nothing is ever sent before the state that decided it is durable, and no older row is written
after a newer one.

Durability: a signal's status, its fills, trades and the position snapshot commit in one
transaction. Exits triggered by ticks commit at once; excursion changes (worst/best unrealised,
last price) are flushed at most ``flush_s`` later and always on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlmodel import Session, col, select

from actors.instruments import UnknownSymbol, spec_for
from actors.recorder.catchup import FeedMarks
from actors.recorder.columns import SymbolColumns, to_tick_array
from actors.recorder.config import DcaUnit, RecorderSettings
from actors.recorder.desk import LiveDesk
from actors.recorder.filters import FilterState, Verdict, cap_quantity, cap_target, evaluate
from actors.recorder.host_live import LiveMethods
from actors.recorder.host_recovery import Batch, CatchUp
from actors.recorder.pair import MinuteBars, Outcome, Pair
from actors.recorder.records import Rows, Sequential, SignalWrites, fill_row, position_fields
from actors.recorder.turns import SIGNAL_SLICE, let_others_run
from actors.runtime import host_name
from actors.store import Store, models, repo

log = logging.getLogger("justtrades.host")

#: Longest ATR period a recorder may ask for (config validates it); shared bars keep this many.
MAX_ATR_BARS = 500
PAIR_FAILURE_BUDGET = 3  # errors in one recorder's pair logic in the window before it is FAILED
PAIR_FAILURE_WINDOW_S = 300.0


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


class RecorderHost(CatchUp, LiveMethods):
    """Actor body. ``ray.remote`` is applied by the supervisor."""

    def __init__(
        self,
        index: int,
        n_hosts: int,
        database_url: str,
        flush_s: float = 1.0,
        namespace: str | None = None,
        halt_reason: str | None = None,
    ) -> None:
        self.index, self.n_hosts = index, n_hosts
        self.namespace = namespace
        self.store = Store(database_url)
        self.flush_s = flush_s
        self.recorders: dict[int, Hosted] = {}
        self.by_key: dict[str, Hosted] = {}
        self.columns: dict[str, SymbolColumns] = {}
        self.bars: dict[str, MinuteBars] = {}
        self.settings_cache: dict[str, RecorderSettings] = {}
        self.last_price: dict[str, tuple[float, float]] = {}
        self.started = time.time()
        self.counters = {"signals": 0, "ticks": 0, "batches": 0, "trades": 0, "errors": 0}
        self._flusher: asyncio.Task[None] | None = None
        self.recovered: set[int] = set()
        self.applied_max: dict[int, int] = {}  # recorder -> newest signal id applied here
        self.pair_failures: dict[int, list[float]] = {}  # recorder -> times its logic failed
        self.failed_recorders: dict[int, str] = {}  # recorder -> why it is FAILED
        self.orphans_at = time.time()
        self.atr_users = False
        self._writes: SignalWrites | None = None  # a signal batch's writes
        self._unwritten = Rows()  # rows of a batch between two of its slices (see _commit)
        self._signal_turn = asyncio.Lock()  # signal batches apply one at a time, in order
        self._event_turn = asyncio.Lock()
        self.marks = FeedMarks()  # symbol -> [feed epoch, last tick number applied]
        self.row_marks: dict[tuple[str, str], list[float] | None] = {}  # restored states' marks
        self.desk = LiveDesk(namespace, host_name(index))
        self.desk.commit = self._commit
        self.desk.durable = lambda: not self._unwritten
        self.desk.marks, self.desk.row_marks = self.marks, self.row_marks
        self._load_all()
        if halt_reason:  # restarted by hand after the supervisor gave up on this host
            write = self.desk.halt_all(halt_reason, time.time())
            if write is not None:
                self._write(write)
        self._recover()

    # -- loading --------------------------------------------------------------------------------

    def owns(self, recorder_id: int) -> bool:
        return recorder_id % self.n_hosts == self.index

    def _cols(self, symbol: str) -> SymbolColumns:
        c = self.columns.get(symbol)
        if c is None:
            c = self.columns[symbol] = SymbolColumns(symbol)
        return c

    def _settings(self, raw: dict[str, Any]) -> RecorderSettings:
        """One validated object per distinct configuration: recorders often share settings,
        the models are frozen, and they were the largest per-pair memory item (~4 KiB)."""
        key = json.dumps(raw, sort_keys=True)
        cached = self.settings_cache.get(key)
        if cached is None:
            cached = self.settings_cache[key] = RecorderSettings.model_validate(raw)
        return cached

    def _bars(self, symbol: str) -> MinuteBars:
        b = self.bars.get(symbol)
        if b is None:
            b = self.bars[symbol] = MinuteBars(MAX_ATR_BARS)
        return b

    def _load_all(self) -> None:
        with self.store.read() as s:
            rows = s.exec(select(models.Recorder).where(models.Recorder.deleted == False)).all()  # noqa: E712
            for r in rows:
                if r.id is not None and self.owns(r.id):
                    self._install(s, r)

    def _install(self, s: Session, r: models.Recorder) -> Hosted:
        assert r.id is not None
        settings = self._settings(r.settings or {})
        pair = Pair(pair_key(r.id), settings, spec_for, shared_bars=self._bars, marks=self.marks)
        h = Hosted(r.id, r.name, r.symbol, r.enabled, settings, pair)
        for p in repo.load_positions(s, [r.id]):
            if p.pair_key == pair.key and p.state:
                pair.restore(p.symbol, p.state)
                self._cols(p.symbol).sync(pair, pair.book(p.symbol))
                if pair.book(p.symbol).pos is not None:
                    self.row_marks[(pair.key, p.symbol)] = p.state.get("feed")
        for t in s.exec(
            select(models.Trade)
            .where(
                models.Trade.recorder_id == r.id, models.Trade.closed_at >= time.time() - 3 * 86400
            )
            .order_by(models.Trade.id)
        ).all():
            h.filters.note_pnl(t.closed_at, t.pnl)
        self.recorders[r.id] = self.by_key[pair.key] = h
        self.atr_users = self._needs_bars()
        self.desk.load(s, r.id, settings)
        return h

    def _uninstall(self, recorder_id: int, *, keep_state: bool) -> None:
        h = self.recorders.pop(recorder_id, None)
        if h is None:
            return
        del self.by_key[h.pair.key]
        self.desk.unload(recorder_id)
        self.atr_users = self._needs_bars()
        for cols in self.columns.values():
            cols.fold_pair(h.pair.key)
        if keep_state:  # the next install reloads the positions from the store
            symbols = h.pair.open_symbols()
            self.store.run_write(
                lambda s: [
                    repo.upsert_position(s, h.pair.key, sym, **position_fields(h.pair, h.id, sym))
                    for sym in symbols
                ]
            )
        for cols in self.columns.values():
            cols.drop(h.pair.key)

    @contextlib.asynccontextmanager
    async def _alone(self) -> AsyncIterator[None]:
        """No sliced batch is under way meanwhile (so nothing is unwritten): for calls that
        rebuild pairs from the store, which must not read it while newer rows wait in memory,
        nor leave a suspended batch writing rows of pairs they replaced."""
        async with self._signal_turn, self._event_turn:
            yield

    async def load_recorder(self, recorder_id: int) -> bool:
        """(Re)load a recorder after the API changed it. Open positions are kept; a FAILED
        recorder gets a new chance (its live pairs stay HALTED until a user resumes them)."""
        async with self._alone():
            return await self._load_recorder(recorder_id)

    async def _load_recorder(self, recorder_id: int) -> bool:
        self.failed_recorders.pop(recorder_id, None)
        self.pair_failures.pop(recorder_id, None)
        with self.store.read() as s:
            r = s.get(models.Recorder, recorder_id)
            old = self.recorders.get(recorder_id)
            if r is None or r.deleted:
                self._uninstall(recorder_id, keep_state=True)
                return False
            if old is not None and old.settings == self._settings(r.settings or {}):
                old.name, old.symbol, old.enabled = r.name, r.symbol, r.enabled
                return True
        self._uninstall(recorder_id, keep_state=True)
        with self.store.read() as s:
            r = s.get(models.Recorder, recorder_id)
            assert r is not None
            self._install(s, r)
        return True

    async def reset(self, recorder_id: int) -> None:
        """History was wiped: forget the pair's state too."""
        async with self._alone():
            self._uninstall(recorder_id, keep_state=False)
            await self._load_recorder(recorder_id)

    # -- signals --------------------------------------------------------------------------------

    async def on_signal(
        self, signal_id: int, recorder_id: int, intent: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply one stored signal. ``intent``: kind, quantity, target, price, symbol,
        signal_time (ISO or None), received_at. Returns the status written to the store."""
        async with self._signal_turn:  # not inside a signal batch that lets others run
            return await self._on_signal(signal_id, recorder_id, intent)

    async def _on_signal(
        self, signal_id: int, recorder_id: int, intent: dict[str, Any]
    ) -> dict[str, Any]:
        self._ensure_flusher()
        self.counters["signals"] += 1
        h = self.recorders.get(recorder_id)
        if h is None and self.owns(recorder_id):
            await self._load_recorder(recorder_id)  # inside this batch's turn
            h = self.recorders.get(recorder_id)
        if h is None:
            return self._finish(signal_id, None, "rejected", "unknown_recorder")
        if signal_id in self.recovered:
            return {"status": "applied", "reason": "recovered", "detail": None, "fills": []}
        if recorder_id in self.failed_recorders:
            reason = self.failed_recorders[recorder_id]
            return self._finish(signal_id, None, "rejected", "pair_failed", reason)
        if intent.get("delayed") is None:
            delay = h.settings.filters.signal_delay_seconds
            if delay > 0:
                asyncio.get_running_loop().call_later(
                    delay, self._evaluate_and_apply, signal_id, h, {**intent, "delayed": True}
                )
                return {"status": "received", "reason": "delayed", "detail": f"applies in {delay}s"}
        return self._evaluate_and_apply(signal_id, h, intent)

    async def on_signals(
        self, items: list[tuple[int, int, dict[str, Any]]], redelivered: bool = False
    ) -> list[dict[str, Any]]:
        """Several stored signals, applied in order, their writes committed in one transaction
        before the call returns (the API coalesces concurrent webhooks into one call: per-call
        overhead, not the work, dominated ingest). Durable before acknowledged still holds: no
        result leaves this method before its commit.

        ``redelivered``: the API sends this batch again after a call that failed; the host that
        failed may have applied (and committed) some of it before dying, so those are answered
        from the store, never applied twice."""
        async with self._signal_turn:
            order = [sid for sid, _, _ in items]
            done = self._settled_in_store(order) if redelivered else {}
            if done:
                items = [item for item in items if item[0] not in done]
            results = []
            try:
                for k, (sid, rid, intent) in enumerate(items):
                    if k and k % SIGNAL_SLICE == 0:
                        self._park_signal_writes()
                        await let_others_run()
                    if self._writes is None:
                        self._writes = SignalWrites()
                    results.append(await self._on_signal(sid, rid, intent))
            finally:
                self._park_signal_writes()
            self._commit_unwritten()
        if done:
            by_id = dict(zip([sid for sid, _, _ in items], results, strict=True))
            results = [by_id[sid] if sid in by_id else done[sid] for sid in order]
        return results

    def _settled_in_store(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """Signals among ``ids`` already past ``received`` in the store, with their outcome."""
        with self.store.read() as s:
            rows = s.exec(select(models.Signal).where(col(models.Signal.id).in_(ids))).all()
        return {
            r.id: {"status": r.status, "reason": r.reason, "detail": r.detail, "fills": []}
            for r in rows
            if r.id is not None and r.status != "received"
        }

    def _park_signal_writes(self) -> None:
        """The signal batch's writes so far, as rows (built now, from the pairs' state now),
        into ``_unwritten``; the batch collects its next slice afresh."""
        writes, self._writes = self._writes, None
        if writes:
            self._unwritten.add(writes.freeze())

    def _commit_unwritten(self) -> None:
        """Commit what a sliced batch left unwritten (others' commits may have taken it
        already), then send what it decided."""
        if self._unwritten:
            self._commit(Rows())
        else:
            self.desk.send()

    def _commit(self, fn: Callable[[Session], object]) -> None:
        """Commit state changes already applied in memory. If that fails for good (transient
        lock errors are retried inside), memory is ahead of the store: the only safe move is to
        die and let Ray restart the host, which rebuilds from the store and re-applies the
        signals still marked received. Nobody was answered for them yet.

        The rows a sliced batch has not written yet (``_unwritten``) go first, in the same
        transaction: they are older than ``fn``'s, and the orders about to be sent may depend
        on them (a fill booked in an earlier slice, then an exit on a tick in between).

        :class:`Rows` go through the raw SQLite cursor when the store is SQLite (the same
        rows, a third of the CPU: :mod:`actors.store.repo.bulk`)."""
        if self._unwritten:
            older, self._unwritten = self._unwritten, Rows()
            fn = older.add(fn) if isinstance(fn, Rows) else Sequential(older, fn)
        try:
            self._write(fn)
        except Exception:
            log.critical("host %s could not persist applied state; restarting", self.index)
            os._exit(1)
        self.desk.send()  # orders go out only once what decided them is durable

    def _write(self, fn: Callable[[Session], object]) -> None:
        if isinstance(fn, Rows) and self.store.is_sqlite:
            self.store.run_sqlite_write(fn.sqlite())
        else:
            self.store.run_write(fn)

    def _evaluate_and_apply(
        self, signal_id: int, h: Hosted, intent: dict[str, Any]
    ) -> dict[str, Any]:
        if self.recorders.get(h.id) is not h:  # reloaded meanwhile (a delayed signal)
            h = self.recorders.get(h.id, h)
        now = float(intent["received_at"])
        sig_time = intent.get("signal_time")
        verdict = evaluate(
            h.settings.filters,
            enabled=h.enabled,
            now=now,
            signal_time=datetime.fromisoformat(sig_time) if sig_time else None,
            state=h.filters,
            root=spec_for(intent["symbol"]).root,
        )
        if verdict.stop:
            return self._finish(signal_id, h, "filtered", verdict.reason)
        return self._apply(signal_id, h, intent, verdict, now)

    def _apply(
        self, signal_id: int, h: Hosted, intent: dict[str, Any], verdict: Verdict, now: float
    ) -> dict[str, Any]:
        symbol = intent["symbol"]
        f = h.settings.filters
        price = intent.get("price")
        if price is None and symbol in self.last_price:
            price = self.last_price[symbol][1]
        cols = self._cols(symbol)
        cols.fold_pair(h.pair.key)  # exact excursions before the fill price is observed
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
            return self._finish(signal_id, h, "rejected", "invalid_signal", str(exc))
        except Exception as exc:  # a bug in one pair's logic: that pair only
            return self._pair_failed(signal_id, h, exc)
        cols.sync(h.pair, h.pair.book(symbol))
        try:
            live = self.desk.on_signal(h.id, signal_id, intent, verdict.entry_sides, now)
        except Exception as exc:
            return self._pair_failed(signal_id, h, exc)
        if out.status == "applied":
            entered = any(fl.kind in ("entry", "add") for fl in out.fills)
            h.filters.note_applied(now, entered)
            return self._finish(signal_id, h, "applied", verdict.reason, None, out, symbol, live)
        if out.status == "blocked":
            reason = verdict.reason or "blocked"
            return self._finish(signal_id, h, "filtered", reason, None, out, symbol, live)
        if out.status == "no_price":
            return self._finish(
                signal_id, h, "rejected", "no_price", "no price yet", out, None, live
            )
        return self._finish(signal_id, h, "ignored", out.status, None, out, symbol, live)

    def _pair_failed(self, signal_id: int, h: Hosted, exc: Exception) -> dict[str, Any]:
        """An exception inside one recorder's pairs (virtual or live): its in-memory state may
        be half changed, so it is rebuilt from the store (its last committed state) and the
        signal is stored as rejected with the error; the other recorders of this host are not
        touched. Writes of this batch already decided are committed first, so the rebuild sees
        them."""
        self.counters["errors"] += 1
        self.counters["pair_reloads"] = self.counters.get("pair_reloads", 0) + 1
        log.exception("recorder %s: pair logic failed on signal %s; reloading it", h.id, signal_id)
        if self._writes:
            writes, self._writes = self._writes, SignalWrites()
            self._commit(writes.freeze())
        self._uninstall(h.id, keep_state=False)
        with self.store.read() as s:
            r = s.get(models.Recorder, h.id)
            reloaded = self._install(s, r) if r is not None and not r.deleted else None
        detail = f"{type(exc).__name__}: {exc}"[:300]
        self._note_pair_failure(h.id, detail)
        return self._finish(signal_id, reloaded, "rejected", "pair_error", detail)

    def _note_pair_failure(self, recorder_id: int, detail: str) -> None:
        """Past ``PAIR_FAILURE_BUDGET`` failures in ``PAIR_FAILURE_WINDOW_S`` the recorder is
        FAILED: its signals are stored as rejected without touching its pairs, its live pairs
        are HALTED. Changing the recorder through the API (a reload) clears it."""
        now = time.time()
        times = [
            t for t in self.pair_failures.get(recorder_id, []) if now - t < PAIR_FAILURE_WINDOW_S
        ]
        times.append(now)
        self.pair_failures[recorder_id] = times
        if len(times) < PAIR_FAILURE_BUDGET or recorder_id in self.failed_recorders:
            return
        reason = f"recorder {recorder_id} FAILED: {len(times)} errors in its pair logic ({detail})"
        self.failed_recorders[recorder_id] = reason
        log.error(reason)
        write = self.desk.halt_all(reason, now, recorder_id=recorder_id)
        if write is not None:
            self._commit(write)

    def _finish(
        self,
        signal_id: int,
        h: Hosted | None,
        status: str,
        reason: str | None,
        detail: str | None = None,
        out: Outcome | None = None,
        symbol: str | None = None,
        live: Rows | None = None,
    ) -> dict[str, Any]:
        out = out or Outcome()
        now = time.time()
        if h is not None:
            self.applied_max[h.id] = max(self.applied_max.get(h.id, 0), signal_id)

        batch = self._writes
        writes = batch if batch is not None else SignalWrites()
        writes.mark(signal_id, status, reason, detail, now)
        if h is not None and symbol is not None:
            writes.outcomes.append((h.pair, h.id, symbol, out, signal_id))
        if live is not None:
            writes.live.add(live)
        if batch is None:  # else committed with the batch, before anyone is answered
            self._commit(writes.freeze())
        if h is not None:
            self._count_trades(h, out)
        return {
            "status": status,
            "reason": reason,
            "detail": detail,
            "trades": len(out.trades),
            "fills": [fill_row(fl) for fl in out.fills],
        }

    def _count_trades(self, h: Hosted, out: Outcome) -> None:
        for t in out.trades:
            h.filters.note_pnl(t.close_ts, float(t.pnl))
        self.counters["trades"] += len(out.trades)

    # -- ticks ----------------------------------------------------------------------------------

    def _needs_bars(self) -> bool:
        """Shared minute bars are kept only while some recorder uses ATR-step DCA."""
        return any(
            h.settings.dca is not None and h.settings.dca.unit == DcaUnit.atr
            for h in self.recorders.values()
        )

    async def on_ticks(
        self,
        batch: Batch,
        seqs: dict[str, int] | None = None,
        epoch: float | None = None,
        recv: dict[str, list[float]] | None = None,
    ) -> int:
        """A feed batch: per symbol, timestamps and prices in time order; ``seqs`` gives the
        feed's number of each symbol's first tick (ticks applied already are dropped);
        ``recv`` when the feed received each tick (its clock), which tells a new live position
        the ticks that came before its entry order was sent (:meth:`LiveTicks.on_batch`)."""
        self._ensure_flusher()
        if recv:  # one receive time per tick, or none used for that symbol
            recv = {
                sym: r
                for sym, (tss, _) in batch.items()
                if (r := recv.get(sym)) is not None and len(r) == len(tss)
            }
        if seqs is not None:
            batch = self._fresh(batch, seqs, epoch)
        if recv:  # aligned with what is left: _fresh drops a prefix
            recv = {
                sym: recv[sym][len(recv[sym]) - len(tss) :]
                for sym, (tss, _) in batch.items()
                if sym in recv
            }
        return self._apply_ticks(batch, recv=recv)

    def _apply_ticks(
        self,
        batch: Batch,
        skip: set[str] | frozenset[str] = frozenset(),
        recv: dict[str, list[float]] | None = None,
    ) -> int:
        """Apply a batch to every pair except those in ``skip`` (catch-up: states that saw
        these ticks already).

        Live pairs go first, in a commit of their own: their exit orders are sent before the
        virtual pairs' bookkeeping runs (when 20 recorders and their 20 traders exited on one
        batch, the orders waited 5.4 ms for the recorders' exits, bench.live_latency). Nothing
        in one depends on the other, and each state carries its own tick mark, so a crash
        between the two commits leaves the virtual pairs to replay the batch like any state
        whose mark is behind."""
        n = 0
        prepared: list[tuple[str, list[float], np.ndarray]] = []
        for symbol, (tss, prices) in batch.items():
            if not tss:
                continue
            n += len(tss)
            self.last_price[symbol] = (tss[-1], prices[-1])
            ticks = to_tick_array(prices, spec_for(symbol).tick_size)
            if self.atr_users:
                bars = self._bars(symbol)
                for ts, p in zip(tss, ticks.tolist(), strict=True):
                    bars.add(ts, p)
            prepared.append((symbol, list(tss), ticks))
        self.counters["ticks"] += n
        self.counters["batches"] += 1
        if self.desk.by_key:
            live = Rows()
            for symbol, tss, ticks in prepared:
                w = self.desk.on_ticks(
                    symbol, tss, ticks.tolist(), skip, None if recv is None else recv.get(symbol)
                )
                if w is not None:
                    live.add(w)
            if live:
                self._commit(live)
        exits: list[tuple[Hosted, str, Outcome]] = []
        for symbol, tss, ticks in prepared:
            cols = self._cols(symbol)
            held = [self.by_key[k] for k in skip if k in cols.index and k in self.by_key]
            for h in held:
                cols.fold_pair(h.pair.key)
                cols.drop(h.pair.key)
            for row, out in cols.apply(tss, ticks):
                exits.append((self.by_key[row.pair.key], symbol, out))
            for h in held:
                cols.sync(h.pair, h.pair.book(symbol))
        if exits:
            rows = Rows().add_outcomes([(h.pair, h.id, sym, out, None) for h, sym, out in exits])
            self._commit(rows)
            for h, _symbol, out in exits:
                self._count_trades(h, out)
        return n

    # -- persistence ----------------------------------------------------------------------------

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                if self.desk.by_key:
                    self._beat()
                self.flush()
                self._sweep_orphans(time.time())
            except Exception:  # keep flushing; the next round retries the same rows
                log.exception("excursion flush failed")
                self.counters["errors"] += 1

    def flush(self) -> int:
        """Write every position whose excursions changed since it was last written."""
        moved = [(symbol, row) for symbol, c in self.columns.items() for row in c.fold_all()]
        rows = Rows()  # built before the transaction: other writers wait while it is open
        for symbol, row in moved:
            h = self.by_key.get(row.pair.key)
            if h is not None:
                rows.positions[(row.pair.key, symbol)] = {
                    "pair_key": row.pair.key,
                    "symbol": symbol,
                    **position_fields(h.pair, h.id, symbol),
                }
        if self._unwritten:  # a sliced batch's rows (older): in the same transaction, first
            self._commit(rows)
        elif rows:
            self._write(rows)
        return len(moved)

    # -- reads ----------------------------------------------------------------------------------

    async def positions(self, recorder_id: int | None = None) -> list[dict[str, Any]]:
        """Open positions with exact live excursions (folded before reading)."""
        out = []
        for h in self.recorders.values():
            if recorder_id is not None and h.id != recorder_id:
                continue
            for symbol in h.pair.open_symbols():
                self._cols(symbol).fold_pair(h.pair.key)
                view = h.pair.view(symbol)
                if view is not None:
                    out.append({"recorder_id": h.id, "pair_key": h.pair.key, **view})
        return out

    async def ping(self) -> dict[str, Any]:
        return {"index": self.index, "ok": True, "started": self.started, "pid": os.getpid()}

    async def status(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "recorders": len(self.recorders),
            "open_positions": sum(len(c) for c in self.columns.values()),
            "symbols": sorted(self.columns),
            "last_prices": {k: v[1] for k, v in self.last_price.items()},
            "counters": dict(self.counters),
            "failed_recorders": dict(self.failed_recorders),
            "live": self.desk.status(),
            "uptime_s": time.time() - self.started,
        }
