""":class:`ParsedSignal` → :class:`Intent`: the rules that reduce what a body said to the one
thing the position book must do, and the consistency checks that reject contradictory bodies.

Kept apart from parsing: the webhook route calls :func:`intent_of` on the parsed signal it has
already stored, and the rules (SPEC §3: the strategy's target is authoritative) are a decision of
their own, separate from how values are read.
"""

from __future__ import annotations

from actors.recorder.signals.errors import SignalError
from actors.recorder.signals.model import Intent, MarketPosition, ParsedSignal


def intent_of(sig: ParsedSignal) -> Intent:
    """Reduce a parsed signal to one intent. Rules, first match wins:

    1. ``position_size`` given **and** (``market_position`` given or the payload carries other
       strategy fields: ``prev_market_position``, ``market_position_size`` or a ``strategy.*``
       key) → ``target = round(position_size)``. This is ``{{strategy.position_size}}``, the
       signed strategy position *after* the order; SPEC §3 makes the strategy's target
       authoritative, which also repairs a missed or duplicated earlier alert. Without any
       strategy context a bare ``position_size`` is ambiguous (indicator templates use the name
       for "order size"), so it is ignored.
    2. ``market_position == "flat"`` → ``close`` (flat means close everything, whatever
       ``action`` says: a Pine "sell 1 while long 1" and TradersPost ``sell`` + ``sentiment:
       flat`` both mean exit without reversing).
    3. ``market_position`` long/short and ``market_position_size`` given →
       ``target = ±round(market_position_size)``.
    4. ``action`` given → that action with ``quantity`` (``close`` never carries a quantity: it
       closes the whole position; a partial exit is not expressible as an intent).
    5. ``market_position`` long/short alone → ``buy``/``sell`` with ``quantity``.
    6. otherwise ``missing_action``.

    ``inconsistent_position`` when ``position_size``, ``market_position`` and
    ``market_position_size`` disagree (e.g. short with position_size 2, flat with size 3).
    """
    _check_consistency(sig)
    mp = sig.market_position
    if sig.position_size is not None and (mp is not None or _has_strategy_context(sig)):
        return Intent("target", target=round(sig.position_size))
    if mp == "flat":
        return Intent("close")
    if mp is not None and sig.market_position_size is not None:
        size = round(sig.market_position_size)
        return Intent("target", target=size if mp == "long" else -size)
    if sig.action == "close":
        return Intent("close")
    if sig.action is not None:
        return Intent(sig.action, quantity=sig.quantity)
    if mp is not None:
        return Intent("buy" if mp == "long" else "sell", quantity=sig.quantity)
    raise SignalError(
        "missing_action",
        "action",
        "no action: send action (buy/sell/close/exit/add), data, command, or a market position",
    )


def _has_strategy_context(sig: ParsedSignal) -> bool:
    return (
        sig.prev_market_position is not None
        or sig.market_position_size is not None
        or any(key.startswith("strategy.") for key in sig.fields)
    )


def _check_consistency(sig: ParsedSignal) -> None:
    mp = sig.market_position
    target = round(sig.position_size) if sig.position_size is not None else None
    size = round(sig.market_position_size) if sig.market_position_size is not None else None
    if mp is not None and target is not None and not _sign_matches(mp, target):
        raise SignalError(
            "inconsistent_position",
            "position_size",
            f"position_size {sig.position_size:g} contradicts market_position {mp}",
        )
    if mp is not None and size is not None and (size == 0) != (mp == "flat"):
        raise SignalError(
            "inconsistent_position",
            "market_position_size",
            f"market_position_size {sig.market_position_size:g} contradicts market_position {mp}",
        )
    if target is not None and size is not None and abs(target) != size:
        raise SignalError(
            "inconsistent_position",
            "position_size",
            f"position_size {sig.position_size:g} contradicts market_position_size "
            f"{sig.market_position_size:g}",
        )


def _sign_matches(mp: MarketPosition, signed: int) -> bool:
    if mp == "long":
        return signed > 0
    if mp == "short":
        return signed < 0
    return signed == 0
