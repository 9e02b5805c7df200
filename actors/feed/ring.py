"""Numbered tick history per symbol: what lets a restarted host catch up exactly (pure).

Every tick the feed publishes gets the next sequence number of its symbol. The feed keeps the
last ``capacity`` ticks of each symbol in a :class:`TickRing`; a host that restarts asks for the
ticks after the sequence number its persisted state was written at and replays them, so the
excursions and exits it lost with its memory come back exactly, in order. Sequence numbers
belong to one feed incarnation (its *epoch*): a restarted feed starts a new numbering.

Storage is two ``array('d')`` columns (16 bytes a tick) trimmed in halves, not a deque of
tuples (~100 bytes a tick): 200,000 ticks of history cost ~3 MiB per symbol.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Any

#: A batch for one symbol: timestamps, prices, sequence number of the first tick.
Numbered = tuple[list[float], list[float], int]


class TickRing:
    """The last ``capacity`` (at least) ticks of one symbol, numbered from 1."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self.ts = array("d")
        self.px = array("d")
        self.base = 1  # sequence number of ts[0]

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest tick (0 before the first)."""
        return self.base + len(self.ts) - 1

    def append(self, ts: float, price: float) -> int:
        """Append one tick; returns its sequence number."""
        self.ts.append(ts)
        self.px.append(price)
        if len(self.ts) > 2 * self.capacity:
            self._trim()
        return self.base + len(self.ts) - 1

    def _trim(self) -> None:
        cut = len(self.ts) - self.capacity
        del self.ts[:cut]
        del self.px[:cut]
        self.base += cut

    def extend(self, tss: list[float], prices: list[float]) -> int:
        """Append ticks; returns the sequence number of the first one appended."""
        first = self.last_seq + 1
        self.ts.extend(tss)
        self.px.extend(prices)
        if len(self.ts) > 2 * self.capacity:
            self._trim()
        return first

    def since(self, seq: int) -> Numbered:
        """Ticks numbered after ``seq`` that are still kept (all kept ones if ``seq`` is older
        than the history: the caller sees the gap from the first number)."""
        i = max(0, seq + 1 - self.base)
        return list(self.ts[i:]), list(self.px[i:]), self.base + i

    def before(self, seq: int) -> tuple[float, float] | None:
        """The tick numbered ``seq`` if kept (the price a position last saw at that mark)."""
        i = seq - self.base
        if 0 <= i < len(self.ts):
            return self.ts[i], self.px[i]
        return None

    def seq_before(self, ts: float) -> int:
        """Number of the last kept tick stamped before ``ts`` (``base - 1`` if none is)."""
        return self.base - 1 + bisect_left(self.ts, ts)

    def minutes_back(self, seq: int, minutes: int) -> int:
        """Number of the first kept tick of the minute ``minutes`` minutes before that of tick
        ``seq`` (its own minute when 0), counting only minutes that have ticks, as one-minute
        bars do (bucket ``ts // 60``). The oldest kept tick's number if fewer are kept, then
        that minute may be cut (trimmed history); ``seq + 1`` if tick ``seq`` is not kept."""
        i = min(seq - self.base, len(self.ts) - 1)
        if i < 0:
            return seq + 1
        start = self._minute_start(i)
        for _ in range(minutes):
            if start == 0:
                break
            start = self._minute_start(start - 1)  # the minute of the tick just before
        return self.base + start

    def _minute_start(self, i: int) -> int:
        """Index of the first kept tick of the minute of ``ts[i]``."""
        return bisect_left(self.ts, self.ts[i] // 60, hi=i + 1, key=_minute)

    def between(self, first: int, last: int) -> Numbered:
        """Kept ticks numbered ``first .. last``."""
        i, j = max(0, first - self.base), max(0, last + 1 - self.base)
        return list(self.ts[i:j]), list(self.px[i:j]), self.base + i


def _minute(ts: float) -> float:
    return ts // 60


def history(
    rings: dict[str, TickRing], epoch: float, since: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """What a restarted host asks for, per symbol: ``since[symbol]`` is either
    ``{"epoch": e, "seq": n}`` (its state was written after tick ``n`` of epoch ``e``) or
    ``{"ts": t}`` (it only needs prices from time ``t`` on). Answers the ticks after that (all
    kept ones when ``e`` is another incarnation's numbering), each symbol's with the number of
    its first tick, the tick just before them (the last price the host knew), and the number of
    the newest tick of every symbol (where the restarted host's numbering starts) with its time
    and price (the price a signal without one fills at).

    A host keeping one-minute bars (ATR) adds ``"minutes": m`` (alone: nothing to replay, only
    bars): ``lookback[symbol]`` then has the ticks just before those answered, from the start
    of the ``m``-th minute with ticks before the minute of the last of them, so that its bars
    continue exactly where one that never stopped would be (see :meth:`TickRing.minutes_back`).
    It never overlaps ``ticks``; it is shorter when the ring no longer holds that far back."""
    ticks: dict[str, Numbered] = {}
    before: dict[str, tuple[float, float]] = {}
    lookback: dict[str, Numbered] = {}
    for sym, mark in since.items():
        ring = rings.get(sym)
        if ring is None:
            continue
        if "seq" in mark:
            after = int(mark["seq"]) if mark.get("epoch") == epoch else 0
        elif "ts" in mark:
            after = ring.seq_before(mark["ts"])
        elif "minutes" in mark:
            after = ring.last_seq
        else:
            after = 0
        ticks[sym] = ring.since(after)
        prev = ring.before(after)
        if prev is not None:
            before[sym] = prev
        if mark.get("minutes"):
            lookback[sym] = ring.between(ring.minutes_back(after, int(mark["minutes"])), after)
    last = {sym: ring.last_seq for sym, ring in rings.items()}
    latest = {sym: (ring.ts[-1], ring.px[-1]) for sym, ring in rings.items() if ring.ts}
    return {
        "epoch": epoch,
        "ticks": ticks,
        "before": before,
        "last": last,
        "latest": latest,
        "lookback": lookback,
    }
