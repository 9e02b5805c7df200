"""What a signal does to a position, as a list of legs: the one decision both pairs share.

A virtual pair (:mod:`.pair`) executes the legs at once at the signal's price; a live pair
(:mod:`.live`) turns them into broker orders and changes its book only when the broker reports
fills. Keeping the decision in one pure function is what makes "the live pair mirrors its
recorder" true by construction instead of by two copies of the rules agreeing.

``current`` is the signed position (contracts, + long, − short) the decision starts from: the
virtual book for a virtual pair; for a live pair, its broker-confirmed position plus the orders
already under way, so a second close for a position that is already closing plans nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from actors.recorder.book import LONG, SHORT
from actors.recorder.config import Sizing

LegAction = Literal["open", "add", "close"]


@dataclass(slots=True, frozen=True)
class Leg:
    """One step: ``open`` a new position on ``side``, ``add`` to it, or ``close`` ``qty`` of it.

    ``side`` is always the position's side (LONG/SHORT), not the order's. ``reason`` is the exit
    reason of a close (``signal``, ``reverse``, ``close``, ``strategy``) and the fill kind of an
    open/add (``entry``, ``add``).
    """

    action: LegAction
    side: int
    qty: int
    reason: str


@dataclass(slots=True, frozen=True)
class Plan:
    status: str  # applied | no_add | blocked | flat | in_sync
    legs: tuple[Leg, ...] = ()


def _identity(qty: int) -> int:
    return qty


def plan_signal(
    current: int,
    kind: str,
    sizing: Sizing,
    quantity: int | None = None,
    target: int | None = None,
    entry_sides: frozenset[int] = frozenset((LONG, SHORT)),
    scale: Callable[[int], int] = _identity,
) -> Plan:
    """The legs signal ``kind`` (buy, sell, close, add, target) makes from position ``current``.

    ``entry_sides`` limits which sides may be opened or added to (filters, close-only traders);
    exits always go through. ``scale`` maps a recorder quantity (an explicit quantity, a default
    size, a target's size) to this pair's contracts (a trader's multiplier); closes are never
    scaled, they close what is held.
    """
    side = (current > 0) - (current < 0)
    held = abs(current)
    if kind in ("buy", "sell"):
        want = LONG if kind == "buy" else SHORT
        if side == 0:
            if want not in entry_sides:
                return Plan("blocked")
            return Plan(
                "applied", (Leg("open", want, scale(quantity or sizing.initial_size), "entry"),)
            )
        if side == want:
            if not sizing.allow_add:
                return Plan("no_add")
            if want not in entry_sides:
                return Plan("blocked")
            return Plan("applied", (Leg("add", want, scale(quantity or sizing.add_size), "add"),))
        reverse = not sizing.close_only and want in entry_sides
        close = Leg("close", side, held, "reverse" if reverse else "signal")
        if not reverse:
            return Plan("applied", (close,))
        opened = Leg("open", want, scale(quantity or sizing.initial_size), "entry")
        return Plan("applied", (close, opened))
    if kind == "close":
        if side == 0:
            return Plan("flat")
        return Plan("applied", (Leg("close", side, held, "close"),))
    if kind == "add":
        if side == 0:
            return Plan("flat")
        if side not in entry_sides:
            return Plan("blocked")
        return Plan("applied", (Leg("add", side, scale(quantity or sizing.add_size), "add"),))
    if kind == "target":
        if target is None:
            raise ValueError("a target signal needs a target")
        sign = (target > 0) - (target < 0)
        return _to_target(current, sign * scale(abs(target)) if target else 0, entry_sides)
    raise ValueError(f"unknown signal kind {kind!r}")


def _to_target(current: int, target: int, entry_sides: frozenset[int]) -> Plan:
    """Legs from ``current`` to the signed ``target`` (TradingView's strategy position size)."""
    if target == current:
        return Plan("in_sync")
    if target != 0 and (LONG if target > 0 else SHORT) not in entry_sides:
        same_side = current != 0 and (current > 0) == (target > 0)
        if same_side and abs(target) < abs(current):
            pass  # a reduction is an exit: allowed
        elif same_side or current == 0:
            return Plan("blocked")
        else:
            target = 0  # the close goes through, the new side is not opened
    legs: list[Leg] = []
    side = (current > 0) - (current < 0)
    if current != 0 and (target == 0 or (target > 0) != (current > 0)):
        legs.append(Leg("close", side, abs(current), "strategy"))
        current, side = 0, 0
    if target != current:
        if current == 0:
            legs.append(Leg("open", LONG if target > 0 else SHORT, abs(target), "entry"))
        elif abs(target) > abs(current):
            legs.append(Leg("add", side, abs(target) - abs(current), "add"))
        else:
            legs.append(Leg("close", side, abs(current) - abs(target), "strategy"))
    return Plan("applied", tuple(legs))


def cap_legs(cap: int | None, current: int, legs: tuple[Leg, ...]) -> list[Leg]:
    """``legs`` from ``current`` within ``cap`` contracts: an entry is trimmed to the cap, an
    add to the room left (or dropped); closes always pass."""
    if cap is None:
        return list(legs)
    out: list[Leg] = []
    for leg in legs:
        if leg.action == "close":
            current -= leg.side * leg.qty
            out.append(leg)
            continue
        room = cap - abs(current) if leg.action == "add" else cap
        qty = min(leg.qty, room)
        if qty > 0:
            out.append(Leg(leg.action, leg.side, qty, leg.reason))
            current += leg.side * qty
    return out
