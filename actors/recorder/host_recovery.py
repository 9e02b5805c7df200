"""The host's side of tick numbering and catching up after a restart (a RecorderHost mixin).

Ticks reach a host numbered per symbol by the feed (:mod:`actors.feed.ring`). The host keeps
``marks`` (symbol -> [feed epoch, last number applied]): a batch sent twice (the feed sends a
batch again when a call failed, and a restarted host also asks for history) is applied once.
Every position snapshot carries the mark it was written at. On start, :meth:`_recover` asks the
feed for the ticks after the oldest mark and replays them merged with the signals stored while
the host was down (:mod:`actors.recorder.catchup`); without a reachable feed it applies the
pending signals alone, in arrival order, as before. When some recorder uses ATR-step DCA it
also asks for a look-back of whole minutes before those ticks, which only rebuilds the shared
one-minute bars (they are not persisted).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import ray

from actors.instruments import spec_for
from actors.recorder.catchup import SignalStep, TickStep, merge, segments
from actors.recorder.columns import to_tick_array
from actors.recorder.config import DcaUnit
from actors.runtime import FEED
from actors.store import repo

if TYPE_CHECKING:
    from actors.recorder.host import Hosted, RecorderHost

log = logging.getLogger("justtrades.host")

HISTORY_TIMEOUT_S = 10.0
ORPHAN_AFTER_S = 5.0  # a stored signal nobody applied this long after its delay is an orphan
ORPHAN_SWEEP_S = 5.0
NEVER = 2**62  # the mark of a state that must see no replayed tick
Batch = dict[str, tuple[list[float], list[float]]]


class CatchUp:
    """Tick-number bookkeeping and restart recovery (mixed into RecorderHost)."""

    def _fresh(
        self: RecorderHost, batch: Batch, seqs: dict[str, int], epoch: float | None
    ) -> Batch:
        """Drop the ticks of ``batch`` this host applied already; advance the marks."""
        out: Batch = {}
        for sym, (tss, pxs) in batch.items():
            first = int(seqs.get(sym, 0))
            if not tss or not first:
                out[sym] = (tss, pxs)
                continue
            if epoch is not None:
                self.marks.epoch = epoch
            mark = self.marks.get(sym)
            done = int(mark[1]) if mark is not None and mark[0] == epoch else 0
            if done and first > done + 1:
                self.counters["tick_gaps"] = self.counters.get("tick_gaps", 0) + 1
                log.warning("%s: ticks %d..%d never reached this host", sym, done + 1, first - 1)
            skip = max(0, done - first + 1)
            self.marks[sym] = [epoch or 0.0, max(done, first + len(tss) - 1)]
            if skip < len(tss):
                out[sym] = (tss[skip:], pxs[skip:])
        return out

    def _pending(self: RecorderHost) -> list[tuple[int, int, dict[str, Any] | None]]:
        with self.store.read() as s:
            rows = [
                (sig.id, sig.recorder_id, (sig.parsed or {}).get("intent"))
                for sig in repo.pending_signals(s, self.recorders.keys())
            ]
        return sorted(
            ((sid, rid, intent) for sid, rid, intent in rows if sid is not None and rid),
            key=lambda p: p[0],
        )

    def _history_request(
        self: RecorderHost, pending: list[tuple[int, int, dict[str, Any] | None]]
    ) -> dict[str, dict[str, float]]:
        """Per symbol, what to ask the feed for: ticks after the oldest mark of a restored
        state, or (a symbol with only pending signals) prices from the first signal on."""
        since: dict[str, dict[str, float]] = {}
        for (_key, sym), mark in self.row_marks.items():
            if not mark:  # written before any numbered tick: nothing to replay for it
                continue
            old = since.get(sym)
            if old is None or (mark[0], mark[1]) < (old["epoch"], old["seq"]):
                since[sym] = {"epoch": float(mark[0]), "seq": float(mark[1])}
        for _sid, _rid, intent in pending:
            if intent is None or intent.get("symbol") in since:
                continue
            since[intent["symbol"]] = {"ts": float(intent["received_at"]) - 1.0}
        minutes = self._bar_minutes()
        if minutes:
            symbols = set(since) | {
                h.symbol for h in self.recorders.values() if self._atr_period(h) is not None
            }
            for sym in symbols:
                since.setdefault(sym, {})["minutes"] = float(minutes)
        return since

    def _bar_minutes(self: RecorderHost) -> int:
        """How many whole minutes of ticks before what is replayed rebuild the shared bars.

        The bars are not persisted. An ATR of period ``p`` is the mean true range of the last
        ``p`` completed bars, and a true range needs the close of the bar before: ``p + 1``
        whole minutes before the replay's first minute (plus that minute's earlier ticks, which
        the feed adds) give, at every point an ATR is read from then on, the same last ``p``
        ranges as a host that never stopped. 0 when no loaded recorder uses ATR-step DCA. A
        recorder given a longer period later starts with fewer bars than an uninterrupted host
        would have had (it reads the mean of those it has)."""
        periods = [p for h in self.recorders.values() if (p := self._atr_period(h)) is not None]
        return max(periods) + 1 if periods else 0

    @staticmethod
    def _atr_period(h: Hosted) -> int | None:
        dca = h.settings.dca
        return dca.atr_period if dca is not None and dca.unit == DcaUnit.atr else None

    def _history(self: RecorderHost, since: dict[str, dict[str, float]]) -> dict[str, Any] | None:
        if not ray.is_initialized() or self.namespace is None:
            return None
        try:
            feed = ray.get_actor(FEED, namespace=self.namespace)
            return ray.get(feed.history.remote(since), timeout=HISTORY_TIMEOUT_S)
        except Exception as exc:  # no feed (tests, JT_FEED=none still has one) or it is down
            log.warning("no tick history from the feed (%r): replaying signals only", exc)
            return None

    def _recover(self: RecorderHost) -> None:
        """Replay, in the order they happened, the ticks this host's stored state has not seen
        and the signals stored but never applied, before any new call is served."""
        pending = self._pending()
        history = self._history(self._history_request(pending))
        ticks: dict[str, tuple[list[float], list[float], int]] = {}
        epoch = 0.0
        if history is not None:
            epoch = self.marks.epoch = float(history["epoch"])
            for sym, (ts, px) in history["before"].items():
                self.last_price[sym] = (ts, px)
            ticks = {sym: (list(t), list(p), int(f)) for sym, (t, p, f) in history["ticks"].items()}
            for sym, (ts, px, _first) in history.get("lookback", {}).items():
                self._rebuild_bars(sym, ts, px)
        replayed = 0
        for step in merge(ticks, pending):
            if isinstance(step, TickStep):
                replayed += len(step.ts)
                self._replay(step, epoch)
            else:
                self._recover_signal(step)
        if history is not None:  # every tick numbered so far is accounted for now
            for sym, last in history.get("last", {}).items():
                mark = self.marks.get(sym)
                if mark is None or mark[0] != epoch or mark[1] < last:
                    self.marks[sym] = [epoch, int(last)]
            for sym, (ts, px) in history.get("latest", {}).items():
                self.last_price[sym] = (float(ts), float(px))
        self.row_marks.clear()
        if replayed or pending:
            log.info("caught up: %d ticks replayed, %d pending signals", replayed, len(pending))

    def _rebuild_bars(self: RecorderHost, sym: str, tss: list[float], prices: list[float]) -> None:
        """Feed look-back ticks (all before the replayed ones) to the shared minute bars only:
        positions and prices saw them before the host stopped. If the feed's ring was trimmed
        the look-back is shorter and the ATR is computed from the bars it gives (the first one
        possibly cut): a documented gap, never an error."""
        if not tss or not self.atr_users:
            return
        bars = self._bars(sym)
        for ts, p in zip(tss, to_tick_array(prices, spec_for(sym).tick_size).tolist(), strict=True):
            bars.add(ts, p)

    def _sweep_orphans(self: RecorderHost, now: float) -> int:
        """Apply signals stored while this host was restarting whose delivery failed after
        :meth:`_recover` had read the store (nobody would apply them otherwise). A signal older
        than one already applied for its recorder is not applied late out of order: it is
        rejected as ``out_of_order`` (kept, visible), since a buy applied after the close that
        followed it would open a position the strategy does not hold."""
        if now - self.orphans_at < ORPHAN_SWEEP_S:
            return 0
        if self._signal_turn.locked():
            # a signal batch is under way: the store does not show what it applied yet (its
            # rows may wait in memory between slices), so the next sweep looks again
            return 0
        self.orphans_at = now
        pending = self._pending()
        found = 0
        for sid, rid, intent in pending:
            h = self.recorders.get(rid)
            if h is None or sid in self.recovered:
                continue
            delay = h.settings.filters.signal_delay_seconds
            if intent is None or float(intent["received_at"]) > now - delay - ORPHAN_AFTER_S:
                continue
            found += 1
            if self.applied_max.get(rid, 0) > sid:
                detail = "a later signal of this recorder was applied before it arrived here"
                self._finish(sid, h, "rejected", "out_of_order", detail)
                continue
            self._recover_signal(SignalStep(sid, rid, intent))
        return found

    def _recover_signal(self: RecorderHost, step: SignalStep) -> None:
        h = self.recorders[step.recorder_id]
        if step.intent is None:
            self._finish(step.signal_id, h, "rejected", "no_intent", "stored without intent")
            return
        self.recovered.add(step.signal_id)
        self._evaluate_and_apply(step.signal_id, h, {**step.intent, "delayed": True})
        log.info("recovered pending signal %s of recorder %s", step.signal_id, step.recorder_id)

    def _replay(self: RecorderHost, step: TickStep, epoch: float) -> None:
        """Apply history ticks; a state written after some of them sees only the later ones."""
        sym = step.symbol
        ahead = {  # states that saw some of these ticks (never: written before numbering)
            key: int(mark[1]) if mark else NEVER
            for (key, s), mark in self.row_marks.items()
            if s == sym and (not mark or (float(mark[0]) == epoch and int(mark[1]) >= step.first))
        }
        for a, b in segments(step.first, len(step.ts), list(ahead.values())):
            last = step.first + b - 1
            skip = {key for key, m in ahead.items() if m >= last}
            self._apply_ticks(
                self._fresh({sym: (step.ts[a:b], step.prices[a:b])}, {sym: step.first + a}, epoch),
                skip,
            )
