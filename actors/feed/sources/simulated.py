"""Seeded random-walk tick source for demos and tests."""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Iterator, Mapping
from itertools import islice

from actors.feed.sources.base import Tick, price_to_ticks, ticks_to_price

__all__ = ["SimulatedSource"]

# Probability that a step carries an extra jump (news print, sweep of the book) on top of the
# ordinary Gaussian step; keeps the walk fat-tailed like real futures without dominating it.
_JUMP_PROB = 0.01
# Mean extra size of a jump, in units of ``volatility_ticks``.
_JUMP_MEAN = 4.0


class SimulatedSource:
    """Seeded random walk per symbol at a realistic tick size and rate. Deterministic for a seed.

    Each symbol is an independent Poisson process (exponential inter-arrival times with mean
    ``1 / rate_hz``); the iterator merges them, so ``ts`` is non-decreasing across the whole stream
    (ties go to the symbol listed first). Each symbol has its own RNG derived from ``(seed, symbol)``,
    so adding or removing a symbol does not change the other symbols' paths.

    Price model, in integer ticks: the first tick of a symbol is its (snapped) start price; after
    that each step is ``round(gauss(0, volatility_ticks))`` — with the default volatility about 38%
    zero, 48% ±1, 13% ±2 — plus, with probability 1%, a jump of ``1 + Exp(mean 4·volatility)``
    ticks in a random direction. The price is clamped so it never goes below one tick.

    Every ``iter()`` starts over from the seed, so ``take(n)`` always returns the first ``n`` ticks.
    When ``start_ts`` is None the wall clock *at construction* is the origin, so repeated iterations
    of one instance are identical; pass ``start_ts`` for results that are identical across instances.
    """

    def __init__(
        self,
        symbols: Mapping[str, tuple[float, float]],  # symbol -> (start_price, tick_size)
        seed: int = 0,
        rate_hz: float = 20.0,
        start_ts: float | None = None,
        volatility_ticks: float = 1.0,
    ) -> None:
        if not symbols:
            raise ValueError("SimulatedSource needs at least one symbol")
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        if not volatility_ticks >= 0:
            raise ValueError(f"volatility_ticks must be >= 0, got {volatility_ticks!r}")
        self._symbols: list[tuple[str, int, float]] = []  # (symbol, start in ticks, tick_size)
        for symbol, (start_price, tick_size) in symbols.items():
            start = price_to_ticks(start_price, tick_size)  # also validates tick_size > 0
            if start < 1:
                raise ValueError(
                    f"{symbol}: start_price {start_price!r} is below one tick ({tick_size!r})"
                )
            self._symbols.append((symbol, start, float(tick_size)))
        self.seed = seed
        self.rate_hz = float(rate_hz)
        self.start_ts = float(time.time() if start_ts is None else start_ts)
        self.volatility_ticks = float(volatility_ticks)

    def _step(self, rng: random.Random) -> int:
        step = round(rng.gauss(0.0, self.volatility_ticks)) if self.volatility_ticks else 0
        if self.volatility_ticks and rng.random() < _JUMP_PROB:
            size = 1 + round(rng.expovariate(1.0 / (_JUMP_MEAN * self.volatility_ticks)))
            step += size if rng.random() < 0.5 else -size
        return step

    def __iter__(self) -> Iterator[Tick]:
        """Infinite, time-ordered stream of ticks interleaving all symbols."""
        rngs = [random.Random(f"{self.seed}:{sym}") for sym, _, _ in self._symbols]
        levels = [start for _, start, _ in self._symbols]
        first = [True] * len(self._symbols)
        # Heap of (next arrival ts, symbol index); the index breaks ts ties deterministically.
        heap = [(self.start_ts + rng.expovariate(self.rate_hz), i) for i, rng in enumerate(rngs)]
        heapq.heapify(heap)
        while True:
            ts, i = heap[0]
            symbol, _, tick_size = self._symbols[i]
            rng = rngs[i]
            if first[i]:
                first[i] = False
            else:
                levels[i] = max(1, levels[i] + self._step(rng))
            yield Tick(symbol, ts, ticks_to_price(levels[i], tick_size))
            heapq.heapreplace(heap, (ts + rng.expovariate(self.rate_hz), i))

    def take(self, n: int) -> list[Tick]:
        """The first ``n`` ticks of the stream (always from the start; see class docstring)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return list(islice(iter(self), n))
