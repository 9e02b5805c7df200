"""Rate limiter for broker calls, in the style of hummingbot's ``AsyncThrottler``.

Pure asyncio, no I/O; time comes from an injectable ``clock`` and ``sleep`` so tests run on a
manual clock without wall-clock waits.

Model
-----
* Named **pools**, each ``limit`` requests per rolling ``window_s`` seconds (for Tradovate:
  per-hour and per-second user budgets, later per-endpoint pools).
* A request **draws on one or more pools** with a weight each, and goes only when *every* pool
  it draws on has room for its weight: a budget is only honoured if no pool is ever overdrawn.
* ``safety_margin`` keeps a fraction of every limit in reserve (0.2 of 5000/h leaves 4000/h)
  because our count and the broker's never agree exactly: the broker counts a request when it
  arrives, we count it when we let it go, and other clients of the same login spend the budget too.
* **Rolling windows**: a grant at time ``t`` occupies its pool until ``t + window_s``. That is
  stricter than a fixed window (which allows twice the limit across a boundary) and is how
  Tradovate describes its hourly limit ("evaluated over the previous hour").
* :meth:`RateLimiter.penalty` blocks every pool until a time, for Tradovate's ``p-time`` and for
  a 429; penalties only ever extend.
* **Priority**: waiters are served lowest priority value first (kill switch before exits before
  stops before entries), FIFO within a priority. A waiter may only be passed by a later one that
  shares *no* pool with it, so an exit never loses its place to an entry on the same budget,
  while a request on an unrelated pool is not held up by a full one.

A single timer task sleeps until the next moment something can change (the oldest grant of a
pool leaves its window, or a penalty ends), so one waiter or a thousand cost the same and a
manual clock in tests sees exactly one sleeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Pools", "RateLimit", "RateLimiter"]

#: What a request draws on: a pool name (weight 1), names (weight 1 each), or name -> weight.
Pools = str | Iterable[str] | Mapping[str, int]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests per rolling ``window_s`` seconds in pool ``pool``."""

    pool: str
    limit: int
    window_s: float

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or self.limit <= 0:
            raise ValueError(f"{self.pool}: limit must be a positive integer, got {self.limit!r}")
        if not math.isfinite(self.window_s) or self.window_s <= 0:
            raise ValueError(f"{self.pool}: window_s must be positive, got {self.window_s!r}")


@dataclass(slots=True)
class _Pool:
    limit: RateLimit
    capacity: int  # limit after the safety margin
    grants: deque[tuple[float, int]] = field(default_factory=deque)  # (time, weight), oldest first
    used: int = 0

    def expire(self, now: float) -> None:
        # Same expression as next_expiry, so a grant still held always expires after ``now``.
        while self.grants and self.grants[0][0] + self.limit.window_s <= now:
            self.used -= self.grants.popleft()[1]

    def next_expiry(self) -> float | None:
        return self.grants[0][0] + self.limit.window_s if self.grants else None


@dataclass(slots=True)
class _Waiter:
    priority: int
    seq: int
    need: dict[str, int]
    future: asyncio.Future[None]

    @property
    def key(self) -> tuple[int, int]:
        return (self.priority, self.seq)


class RateLimiter:
    """Multi-pool rolling-window limiter with priorities and penalties (module docstring).

    ``limits`` is a list of :class:`RateLimit` or a mapping ``pool -> (limit, window_s)``.
    The effective capacity of a pool is ``floor(limit * (1 - safety_margin))``, at least 1.
    """

    def __init__(
        self,
        limits: Iterable[RateLimit] | Mapping[str, tuple[int, float]],
        safety_margin: float = 0.2,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not 0 <= safety_margin < 1:
            raise ValueError(f"safety_margin must be in [0, 1), got {safety_margin}")
        if isinstance(limits, Mapping):
            items = [RateLimit(name, int(lim), float(win)) for name, (lim, win) in limits.items()]
        else:
            items = list(limits)
        if not items:
            raise ValueError("at least one pool is required")
        self.safety_margin = safety_margin
        self._clock = clock
        self._sleep = sleep
        self._pools: dict[str, _Pool] = {}
        for item in items:
            if item.pool in self._pools:
                raise ValueError(f"duplicate pool {item.pool!r}")
            capacity = max(1, math.floor(item.limit * (1 - safety_margin) + 1e-9))
            self._pools[item.pool] = _Pool(item, capacity)
        self._waiters: list[_Waiter] = []  # kept sorted by (priority, seq)
        self._seq = itertools.count()
        self._blocked_until = -math.inf
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = math.inf
        self.granted = 0

    # ------------------------------------------------------------------ public API

    @property
    def pools(self) -> list[str]:
        return list(self._pools)

    def capacity(self, pool: str) -> int:
        return self._pools[pool].capacity

    def budget_left(self) -> dict[str, int]:
        """Requests of weight 1 each pool could grant now (0 for every pool under a penalty)."""
        now = self._clock()
        penalised = now < self._blocked_until
        out: dict[str, int] = {}
        for name, pool in self._pools.items():
            pool.expire(now)
            out[name] = 0 if penalised else pool.capacity - pool.used
        return out

    def penalty_remaining(self) -> float:
        """Seconds until the current penalty ends (0 without one)."""
        return max(0.0, self._blocked_until - self._clock())

    @property
    def waiting(self) -> int:
        """Requests queued in :meth:`acquire`."""
        return len(self._waiters)

    def waiting_by_priority(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for waiter in self._waiters:
            counts[waiter.priority] = counts.get(waiter.priority, 0) + 1
        return counts

    def penalty(self, seconds: float) -> None:
        """Grant nothing, to anyone, for ``seconds`` from now (extends, never shortens)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"penalty must be a finite, non-negative time, got {seconds}")
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
        self._reschedule()

    def try_acquire(self, pools: Pools) -> bool:
        """Take the budget now if it is free *and* nobody sharing a pool is queued; no waiting."""
        need = self._need(pools)
        now = self._clock()
        if now < self._blocked_until or not self._fits(need, now):
            return False
        if any(set(w.need) & set(need) for w in self._waiters):
            return False
        self._take(need, now)
        return True

    async def acquire(self, pools: Pools, priority: int = 3) -> None:
        """Wait until every pool in ``pools`` has room, then take it.

        Served in (priority, arrival) order among waiters that share a pool. Cancelling the
        caller while it waits gives its place up; a request heavier than a pool's capacity can
        never be served and raises ``ValueError`` at once.
        """
        need = self._need(pools)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(int(priority), next(self._seq), need, loop.create_future())
        self._insert(waiter)
        self._pump()
        if not waiter.future.done():
            self._reschedule()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # Granted in the same instant the caller was cancelled: the budget is spent
                # (counting too much is the safe error); nothing else to undo.
                raise
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            self._pump()  # whoever it was holding up may go now
            self._reschedule()
            raise

    # ------------------------------------------------------------------ internals

    def _need(self, pools: Pools) -> dict[str, int]:
        if isinstance(pools, str):
            need = {pools: 1}
        elif isinstance(pools, Mapping):
            need = {str(name): int(weight) for name, weight in pools.items()}
        else:
            need = {}
            for name in pools:
                need[name] = need.get(name, 0) + 1
        if not need:
            raise ValueError("a request must draw on at least one pool")
        for name, weight in need.items():
            if name not in self._pools:
                raise KeyError(f"unknown rate-limit pool {name!r}")
            if weight <= 0:
                raise ValueError(f"weight for {name!r} must be positive, got {weight}")
            if weight > self._pools[name].capacity:
                raise ValueError(
                    f"weight {weight} exceeds the capacity {self._pools[name].capacity} of {name!r}"
                )
        return need

    def _insert(self, waiter: _Waiter) -> None:
        index = len(self._waiters)
        while index > 0 and self._waiters[index - 1].key > waiter.key:
            index -= 1
        self._waiters.insert(index, waiter)

    def _fits(self, need: dict[str, int], now: float) -> bool:
        for name, weight in need.items():
            pool = self._pools[name]
            pool.expire(now)
            if pool.used + weight > pool.capacity:
                return False
        return True

    def _take(self, need: dict[str, int], now: float) -> None:
        for name, weight in need.items():
            pool = self._pools[name]
            pool.grants.append((now, weight))
            pool.used += weight
        self.granted += 1

    def _pump(self) -> None:
        """Grant every waiter that fits, in order; a blocked waiter blocks its pools for all
        waiters behind it (that is what makes the priority order hold per budget)."""
        now = self._clock()
        if now < self._blocked_until or not self._waiters:
            return
        blocked: set[str] = set()
        remaining: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.future.done():  # cancelled by its caller; removed in acquire
                continue
            if blocked.isdisjoint(waiter.need) and self._fits(waiter.need, now):
                self._take(waiter.need, now)
                waiter.future.set_result(None)
            else:
                blocked.update(waiter.need)
                remaining.append(waiter)
        self._waiters = remaining

    def _next_wake(self) -> float:
        now = self._clock()
        if now < self._blocked_until:
            return self._blocked_until
        expiries: list[float] = []
        for name in {n for w in self._waiters for n in w.need}:
            pool = self._pools[name]
            pool.expire(now)
            if (t := pool.next_expiry()) is not None:
                expiries.append(t)
        # No expiry to wait for means the waiters fit now; _pump will take them.
        return min(expiries) if expiries else now

    def _reschedule(self) -> None:
        """Make sure the timer wakes no later than the next moment anything can change."""
        if not self._waiters:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_at = math.inf
            return
        wake = self._next_wake()
        if self._timer is not None and not self._timer.done() and self._timer_at <= wake:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = wake
        self._timer = asyncio.get_running_loop().create_task(self._run_timer(wake))

    async def _run_timer(self, wake: float) -> None:
        while True:
            delay = wake - self._clock()
            if delay > 0:
                await self._sleep(delay)
            else:
                await asyncio.sleep(0)  # never spin without yielding
            self._pump()
            if not self._waiters:
                break
            wake = self._next_wake()
            self._timer_at = wake
        self._timer = None
        self._timer_at = math.inf
