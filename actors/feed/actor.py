"""FeedActor: owns a price source, coalesces ticks per symbol and fans batches out.

Every target (recorder hosts, the paper broker) gets every batch: hosts need the last price of
symbols they are flat in (a signal without a price fills there) and the minute bars for ATR. Each
target has at most one batch in flight; ticks that arrive meanwhile join the next batch, so a slow
host sees larger batches instead of an unbounded queue, and every target sees ticks in order.

Nothing is dropped for a target that is down: a batch that fails goes back in front of the
target's queue and is sent again once it answers (up to ``MAX_BACKLOG`` ticks a symbol). Ticks
are numbered per symbol (:mod:`actors.feed.ring`) so a host drops what it already applied, and a
restarted host asks :meth:`FeedActor.history` for the ticks after its persisted state.

Sources (``JT_FEED``, :mod:`actors.feed.options`): ``simulated`` and ``replay:<csv>`` are paced
iterators; ``none`` takes ticks only from :meth:`FeedActor.push`; ``tradingview``, ``tradovate``
and explicit chains (``tradovate>scanner``) run live sources with per-symbol failover
(:mod:`actors.feed.live`, :mod:`actors.feed.failover`). ``status()["per_symbol"]`` shows, per
symbol, the source in use, the last tick's age, delayed or real-time, and CME market hours.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import ray

from actors.channel import Direct, drop
from actors.feed.live import LiveFeed, market_status
from actors.feed.options import FeedOptions
from actors.feed.ring import TickRing, history
from actors.feed.sources.base import Tick
from actors.feed.sources.replay import ReplaySource
from actors.feed.sources.simulated import SimulatedSource
from actors.instruments import normalize, spec_for
from actors.runtime import FEED_CHANNEL, HEALTH, Beat, admit

log = logging.getLogger("justtrades.feed")

#: symbol -> [timestamps, prices, first sequence number, receive times]
Batch = dict[str, list[Any]]

MAX_BACKLOG = 200_000  # ticks a symbol kept for a target that is down (then the oldest go)
RETRY_S = 0.2  # pause before sending again to a target whose last call failed

#: Plausible start prices for the simulated feed, by contract root.
START_PRICES = {
    "MNQ": 21000.0, "NQ": 21000.0, "MES": 6000.0, "ES": 6000.0, "M2K": 2300.0, "RTY": 2300.0,
    "MYM": 44000.0, "YM": 44000.0, "CL": 70.0, "MCL": 70.0, "GC": 2650.0, "MGC": 2650.0,
    "SI": 31.0, "6E": 1.08, "ZB": 117.0, "ZN": 110.0,
}  # fmt: skip


def contract(symbol: str) -> str:
    return normalize(symbol, datetime.now(UTC).date())


class FeedActor:
    """Actor body; ``ray.remote`` is applied by :mod:`actors.runtime`."""

    def __init__(
        self,
        namespace: str,
        source: str | dict[str, Any],
        symbols: list[str],
        targets: list[str],
        rate_hz: float = 4.0,
        speed: float = 1.0,
        batch_ms: float = 5.0,
        seed: int = 0,
    ) -> None:
        # back-off, or refusal: before starting anything
        self._admitted = admit(namespace=namespace) is not None
        self.namespace = namespace
        self.options = FeedOptions.from_source(source)
        self.source_spec = self.options.spec
        self.chain = self.options.chain  # validates the spec: a bad JT_FEED fails at once
        self.live: LiveFeed | None = None
        self.symbols = [contract(s) for s in symbols]
        self.rate_hz, self.speed, self.batch_s, self.seed = rate_hz, speed, batch_ms / 1000, seed
        self.targets: dict[str, Any] = {}
        self.pending: dict[str, Batch] = {}
        self.wake: dict[str, asyncio.Event] = {}
        self.senders: dict[str, asyncio.Task[None]] = {}
        self.inflight: dict[str, bool] = {}
        self.last: dict[str, tuple[float, float]] = {}
        self.rings: dict[str, TickRing] = {}
        self.down: dict[str, str] = {}  # target -> last error while it does not answer
        self.dropped = 0
        self.ticks_in = 0
        self.batches_out = 0
        self.errors = 0
        self.pump: asyncio.Task[None] | None = None
        self.calendar: asyncio.Task[Any] | None = None
        self.started = time.time()
        self.epoch = self.started  # numbering of this incarnation (see actors.feed.ring)
        self._target_names = list(targets)
        self._beat = Beat().start()

    # -- wiring ---------------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        for name in self._target_names:
            self._add_target(name)
        if self.calendar is None and self.symbols:  # ~1 s of pandas import: off the loop
            self.calendar = asyncio.create_task(
                asyncio.to_thread(market_status, self.symbols[0], time.time())
            )
        if self.pump is None and self.source_spec != "none":
            if self.chain:
                self.live = LiveFeed(self.options, self.symbols, self._publish)
            run = self._run_live() if self.chain else self._run_source()
            self.pump = asyncio.get_running_loop().create_task(run)
        return await self.status()

    def _add_target(self, name: str) -> None:
        if name in self.targets:
            return
        self.targets[name] = self._lookup(name)
        self.pending[name] = {}
        self.wake[name] = asyncio.Event()
        self.senders[name] = asyncio.get_running_loop().create_task(self._send_loop(name))

    def _lookup(self, name: str) -> Any:
        """A target's handle; its batches go over the target's direct channel when it runs on
        this node (:mod:`actors.channel`)."""
        return Direct(ray.get_actor(name, namespace=self.namespace), FEED_CHANNEL)

    async def set_targets(self, names: list[str]) -> None:
        for name in names:
            self._add_target(name)

    async def retarget(self, name: str) -> bool:
        """Look ``name`` up again: the supervisor re-created that actor (a new actor id), and
        the cached handle still points at the dead one. False when it is not a target."""
        if name not in self.targets:
            return False
        drop(self.targets[name])
        self.targets[name] = self._lookup(name)
        return True

    # -- sources --------------------------------------------------------------------------------

    def _iter_source(self) -> Iterator[Tick]:
        if self.source_spec == "simulated":
            table = {
                s: (START_PRICES.get(spec_for(s).root, 100.0), spec_for(s).tick_size)
                for s in self.symbols
            }
            return iter(SimulatedSource(table, seed=self.seed, rate_hz=self.rate_hz))
        if self.source_spec.startswith("replay:"):
            src = ReplaySource(self.source_spec[7:], lambda s: spec_for(s).tick_size)
            return iter(src)
        raise ValueError(f"unknown feed source {self.source_spec!r}")

    async def _run_source(self) -> None:
        """Pace the source in (scaled) real time and publish ticks as they come due."""
        try:
            it = self._iter_source()
            t0_wall, t0_src = time.monotonic(), None
            for tick in it:
                if t0_src is None:
                    t0_src = tick.ts
                if self.speed > 0:
                    due = t0_wall + (tick.ts - t0_src) / self.speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                self._publish([Tick(contract(tick.symbol), tick.ts, tick.price)])
                if self.speed <= 0 and self.ticks_in % 1000 == 0:
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.errors += 1
            log.exception("feed source failed")

    async def _run_live(self) -> None:
        """Live sources with failover; runs until the actor dies."""
        assert self.live is not None
        try:
            await self.live.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.errors += 1
            log.exception("live feed failed")

    async def reload_login(self) -> dict[str, Any]:
        """The stored TradingView cookies changed: log in again and reconnect with the result."""
        if self.live is None:
            return {"state": "not running", "detail": f"feed {self.source_spec!r} has no login"}
        return await self.live.reload_login()

    # -- fan-out --------------------------------------------------------------------------------

    def _publish(self, ticks: Iterable[Tick]) -> None:
        now = time.time()  # when these ticks reached us (see ``on_ticks``'s ``recv``)
        for t in ticks:
            self.ticks_in += 1
            self.last[t.symbol] = (t.ts, t.price)
            ring = self.rings.get(t.symbol)
            if ring is None:
                ring = self.rings[t.symbol] = TickRing(MAX_BACKLOG)
            seq = ring.append(t.ts, t.price)
            for name, pend in self.pending.items():
                col = pend.get(t.symbol)
                if col is None:
                    pend[t.symbol] = col = [[], [], seq, []]
                col[0].append(t.ts)
                col[1].append(t.price)
                col[3].append(now)
                self.wake[name].set()

    async def _send_loop(self, name: str) -> None:
        """Send ``name`` its batches: at most one per ``batch_s`` window and one in flight.

        The window is counted from the previous batch, not from the tick that woke the loop:
        a tick that finds the window over goes at once (a lone tick in a quiet market, often
        the one that crosses a stop, used to wait the whole window out), and ticks that arrive
        within a window of the last batch, or while it is in flight, go together when it ends.
        The call rate per target is bounded as before."""
        last_sent = -float("inf")
        while True:
            await self.wake[name].wait()
            wait = last_sent + self.batch_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # coalesce what arrives in the rest of the window
            self.wake[name].clear()
            batch, self.pending[name] = self.pending[name], {}
            if not batch:
                continue
            last_sent = time.monotonic()
            self.inflight[name] = True
            try:
                await self.targets[name].on_ticks.remote(
                    {sym: (col[0], col[1]) for sym, col in batch.items()},
                    {sym: col[2] for sym, col in batch.items()},
                    self.epoch,
                    {sym: col[3] for sym, col in batch.items()},
                )
                self.batches_out += 1
                self.down.pop(name, None)
            except Exception as exc:  # down or restarting: keep the batch, send it again
                self.errors += 1
                if name not in self.down:
                    log.warning("sending ticks to %s failed (%r); keeping them", name, exc)
                self.down[name] = repr(exc)
                self._requeue(name, batch)
                await asyncio.sleep(RETRY_S)
            finally:
                self.inflight[name] = False

    def _requeue(self, name: str, batch: Batch) -> None:
        """Put a batch that was not delivered back in front of what arrived meanwhile."""
        pend = self.pending[name]
        for sym, (tss, pxs, first, recv) in batch.items():
            later = pend.get(sym)
            if later is not None:
                tss, pxs, recv = tss + later[0], pxs + later[1], recv + later[3]
            over = len(tss) - MAX_BACKLOG
            if over > 0:  # down for very long: the oldest go (the host sees the gap)
                self.dropped += over
                tss, pxs, first, recv = tss[over:], pxs[over:], first + over, recv[over:]
            pend[sym] = [tss, pxs, first, recv]
        self.wake[name].set()

    async def history(self, since: dict[str, dict[str, float]]) -> dict[str, Any]:
        """Ticks a restarted host may have lost (see :func:`actors.feed.ring.history`)."""
        return history(self.rings, self.epoch, since)

    async def push(self, ticks: list[dict[str, Any]]) -> int:
        """Publish ticks given by a caller (API ``POST /feed/ticks``, replays in tests). A feed
        Ray just restarted has not been started again by the supervisor yet: its targets are
        wired here first, or these ticks would reach nobody (and ``drain`` would say done)."""
        for name in self._target_names:
            try:
                self._add_target(name)
            except ValueError:  # not created yet: start() wires it later
                log.warning("feed target %s not found", name)
        items = [Tick(contract(t["symbol"]), float(t["ts"]), float(t["price"])) for t in ticks]
        self._publish(items)
        return len(items)

    def _busy(self) -> bool:
        return any(
            self.pending[n] or self.wake[n].is_set() or self.inflight.get(n) for n in self.pending
        )

    async def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every published tick has been delivered to (and processed by) every target."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._busy():
                return True
            await asyncio.sleep(0.002)
        return False

    # -- status ---------------------------------------------------------------------------------

    @ray.method(concurrency_group=HEALTH)
    async def ping(self) -> dict[str, Any]:
        """On the ``health`` group's loop; ``loop_lag_s``: how long the default loop has not run."""
        lag = self._beat.lag()
        return {
            "ok": True,
            "started": self.started,
            "loop_lag_s": lag,
            "admitted": self._admitted,
            "pid": os.getpid(),
        }

    async def status(self) -> dict[str, Any]:
        now = time.time()
        out: dict[str, Any] = {
            "source": self.source_spec,
            "chain": list(self.chain) if self.chain else None,
            "running": self.pump is not None and not self.pump.done(),
            "symbols": self.symbols,
            "targets": sorted(self.targets),
            "ticks_in": self.ticks_in,
            "batches_out": self.batches_out,
            "errors": self.errors,
            "targets_down": dict(self.down),
            "ticks_dropped": self.dropped,
            "last": {
                s: {"ts": ts, "price": px, "age_s": round(now - ts, 3)}
                for s, (ts, px) in self.last.items()
            },
        }
        if self.live is not None:
            live = self.live.status()
            out["per_symbol"] = live.pop("symbols")
            out["live"] = live
        else:
            out["per_symbol"] = {s: self._plain_symbol_status(s, now) for s in self.symbols}
        return out

    def _plain_symbol_status(self, symbol: str, now: float) -> dict[str, Any]:
        """Per-symbol status of a non-live source (simulated, replay, pushed ticks)."""
        last = self.last.get(symbol)
        ready = self.calendar is not None and self.calendar.done()
        return {
            "source": self.source_spec,
            "delayed": None,  # a simulation or a replay is neither delayed nor real time
            "last_price": last[1] if last else None,
            "last_tick_ts": last[0] if last else None,
            "market": market_status(symbol, now) if ready else None,
        }
