"""Catching up after a restart: the order in which a host replays what it missed (pure).

A host that died lost what it held only in memory: excursions since its last flush and every
tick and signal that came while it was down. When it starts again it has, from the store, each
position's state together with the feed *mark* it was written at (the number of the last tick
that state had seen) and the signals stored but never applied; from the feed's history
(:mod:`actors.feed.ring`), the numbered ticks after those marks.

:func:`merge` puts both in the order they happened: a signal goes after every tick stamped
before it arrived and before the rest, so a take-profit crossed while the host was down is
taken before the reversal signal that came later, exactly as without the crash.

:func:`segments` cuts one symbol's ticks at the marks of the states that already saw part of
them: a state written after tick ``n`` must not see ticks ``<= n`` again (they came before the
signal that opened or changed it).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any


class FeedMarks(dict[str, list[float]]):
    """A host's feed marks: symbol -> [feed epoch, number of the last tick applied]."""

    epoch: float | None = None  # the numbering the host currently receives (None: no feed yet)

    def of(self, symbol: str) -> list[float] | None:
        """The mark a state written now carries: ``[epoch, 0]`` when no tick of ``symbol`` in
        the current numbering was applied yet (every such tick comes after this state)."""
        mark = self.get(symbol)
        if self.epoch is None or (mark is not None and mark[0] == self.epoch):
            return mark
        return [self.epoch, 0]


@dataclass(slots=True)
class TickStep:
    symbol: str
    ts: list[float]
    prices: list[float]
    first: int  # feed number of ts[0]


@dataclass(slots=True)
class SignalStep:
    signal_id: int
    recorder_id: int
    intent: dict[str, Any] | None


Step = TickStep | SignalStep


def merge(
    ticks: dict[str, tuple[list[float], list[float], int]],
    signals: list[tuple[int, int, dict[str, Any] | None]],
) -> list[Step]:
    """Ticks (per symbol, in number order) and pending signals (in arrival order) as one
    sequence: before each signal, every symbol's ticks stamped at or before its arrival."""
    cursor = {sym: 0 for sym in ticks}
    steps: list[Step] = []

    def upto(t: float | None) -> None:
        for sym, (tss, pxs, first) in ticks.items():
            i = cursor[sym]
            j = len(tss) if t is None else max(i, bisect_right(tss, t, lo=i))
            if j > i:
                steps.append(TickStep(sym, tss[i:j], pxs[i:j], first + i))
                cursor[sym] = j

    for signal_id, recorder_id, intent in signals:
        arrived = None if intent is None else intent.get("received_at")
        if arrived is not None:
            upto(float(arrived))
        steps.append(SignalStep(signal_id, recorder_id, intent))
    upto(None)
    return steps


def segments(first: int, count: int, marks: list[int]) -> list[tuple[int, int]]:
    """Cut ticks numbered ``first .. first+count-1`` at every mark inside that range: returns
    ``(start, stop)`` index ranges such that each state's mark is either before a range's first
    tick or at/after its last (the caller leaves out the states whose mark is at/after it)."""
    cuts = sorted({m - first + 1 for m in marks if first <= m < first + count - 1})
    out, start = [], 0
    for c in cuts:
        out.append((start, c))
        start = c
    out.append((start, count))
    return [(a, b) for a, b in out if b > a]
