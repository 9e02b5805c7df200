"""Reconciliation, pure: does a broker position agree with the live pairs that trade it, and if
not, what does each trader's policy say to do (SPEC §5, issue #6).

The unit is one (broker actor, account, contract): the broker nets every order on it, so the
expected position is the sum of the books of every live pair trading it there, plus positions a
user declared external ("ignore": opened by hand, not ours). Only settled groups are judged (no
order under way, exit machines idle): an exit in flight is not drift.

Verdicts:
* ``in_sync`` — broker == expected.
* ``unexplained`` — the pairs hold nothing and expect nothing, yet the broker holds a position:
  someone else opened it. Fails closed: every pair of the group is HALTED until a user chooses
  (adopt it, or declare it external). It is never flattened silently.
* ``drift`` — the pairs hold a position and the broker holds a different one. With exactly one
  pair in the group its trader's policy applies: ``alert`` (show and count), ``adopt`` (the book
  takes the broker's position), ``correct`` (a market order brings the broker to the book).
  With several pairs nobody can tell whose contracts differ: alert only.

A difference must persist (``confirm_s``) before anything is done: a fill can reach the pair a
moment after the position report that already includes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Policy = Literal["alert", "adopt", "correct"]
POLICIES: tuple[str, ...] = ("alert", "adopt", "correct")


@dataclass(slots=True, frozen=True)
class Group:
    """What is known of one (broker, account, contract)."""

    broker_net: int | None  # None: no position report yet
    books: tuple[int, ...]  # signed booked position of each pair
    external: int = 0  # declared not ours
    settled: bool = True  # no order under way in any pair


@dataclass(slots=True, frozen=True)
class Verdict:
    kind: Literal["in_sync", "unknown", "unsettled", "unexplained", "drift"]
    expected: int = 0
    broker: int = 0

    @property
    def difference(self) -> int:
        """Broker minus expected: what the broker holds that the pairs do not."""
        return self.broker - self.expected


def assess(g: Group) -> Verdict:
    if g.broker_net is None:
        return Verdict("unknown")
    expected = sum(g.books) + g.external
    if not g.settled:
        return Verdict("unsettled", expected, g.broker_net)
    if g.broker_net == expected:
        return Verdict("in_sync", expected, g.broker_net)
    if not any(g.books):
        return Verdict("unexplained", expected, g.broker_net)
    return Verdict("drift", expected, g.broker_net)


Action = Literal["none", "halt", "alert", "adopt", "correct"]


def decide(v: Verdict, pairs: int, policy: str, persisted_s: float, confirm_s: float) -> Action:
    """What to do about verdict ``v`` for a group of ``pairs`` live pairs under ``policy``."""
    if v.kind in ("in_sync", "unknown", "unsettled"):
        return "none"
    if persisted_s < confirm_s:
        return "none"  # wait: the fill explaining it may still be on its way
    if v.kind == "unexplained":
        return "halt"
    if pairs != 1 or policy not in POLICIES:
        return "alert"
    return policy  # type: ignore[return-value]
