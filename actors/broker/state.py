"""Merging order states as the broker actor learns them (answers to its calls and sync events)."""

from __future__ import annotations

import logging
from dataclasses import replace

from actors.broker.base import OrderState

__all__ = ["STATUS_RANK", "merge_state"]

log = logging.getLogger("justtrades.broker")

STATUS_RANK = {"pending": 0, "working": 1, "filled": 2, "rejected": 2, "cancelled": 2}


def merge_state(old: OrderState | None, state: OrderState) -> OrderState | None:
    """What to store after ``old`` when ``state`` arrives; None when it is older news than what
    is known (or no change).

    Older news: a non-final state after a final one, or ``working`` after ``pending`` went
    past it (the answer to ``place`` can arrive after the fill event). A final state is never
    replaced by a different final state: an order that filled stays filled whatever a late
    cancel answer says.
    """
    if old is not None:
        if old.is_terminal and state.status != old.status:
            if state.is_terminal:
                log.warning("ignoring %s after %s for %s", state.status, old.status, old.cl_ord_id)
            return None
        if STATUS_RANK[state.status] < STATUS_RANK[old.status]:
            return None
        if not state.account and old.account:  # adapters may omit what we already know
            state = replace(state, account=old.account, symbol=old.symbol)
        if old == state:
            return None
    return state
