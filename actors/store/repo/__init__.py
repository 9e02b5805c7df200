"""Repository functions: the only SQL the rest of the system needs.

Functions that form a transaction of their own take ``target: Store | Session``: given a
:class:`~actors.store.engine.Store` they run in their own write transaction (retried whole on a
transient lock error); given a write :class:`Session` they join the caller's transaction, so
several calls can be committed atomically. Functions that only make sense inside a larger
transaction, or only read, take a ``Session``.

Returned model objects are detached snapshots once their session has closed (the store turns
``expire_on_commit`` off), so they can be handed to other code freely.

One module per resource — :mod:`.users`, :mod:`.recorders`, :mod:`.signals`, :mod:`.positions`,
:mod:`.trades` (trades, fills and :func:`reset_history`) — with the shared transaction helper in
:mod:`._base`. Import from this package (or :mod:`actors.store`), not from the modules.
"""

from __future__ import annotations

from actors.store.repo.accounts import (
    AccountInUse,
    create_account,
    create_trader,
    delete_account,
    delete_trader,
    get_account,
    get_sub_account,
    get_trader,
    list_accounts,
    list_sub_accounts,
    list_traders,
    update_account,
    update_trader,
    upsert_sub_accounts,
)
from actors.store.repo.orders import list_orders, upsert_orders
from actors.store.repo.positions import (
    load_positions,
    open_positions,
    upsert_position,
    upsert_positions,
)
from actors.store.repo.recorders import (
    create_recorder,
    get_recorder,
    get_recorder_by_token,
    list_recorders,
    new_token,
    rotate_recorder_token,
    soft_delete_recorder,
    update_recorder,
)
from actors.store.repo.signals import (
    DEDUPE_IGNORED_STATUSES,
    MARK_SIGNAL,
    check_signal_status,
    get_signal,
    insert_signal,
    list_signals,
    mark_signal,
    pending_signals,
    set_signal_status,
)
from actors.store.repo.trades import add_fills, add_trades, list_trades, reset_history
from actors.store.repo.users import LOCAL_USER, create_user, ensure_local_user, get_user_by_name

__all__ = [
    "DEDUPE_IGNORED_STATUSES",
    "LOCAL_USER",
    "MARK_SIGNAL",
    "AccountInUse",
    "add_fills",
    "add_trades",
    "check_signal_status",
    "create_account",
    "create_recorder",
    "create_trader",
    "create_user",
    "delete_account",
    "delete_trader",
    "ensure_local_user",
    "get_account",
    "get_recorder",
    "get_recorder_by_token",
    "get_signal",
    "get_sub_account",
    "get_trader",
    "get_user_by_name",
    "insert_signal",
    "list_accounts",
    "list_orders",
    "list_recorders",
    "list_signals",
    "list_sub_accounts",
    "list_traders",
    "list_trades",
    "load_positions",
    "mark_signal",
    "new_token",
    "open_positions",
    "pending_signals",
    "reset_history",
    "rotate_recorder_token",
    "set_signal_status",
    "soft_delete_recorder",
    "update_account",
    "update_recorder",
    "update_trader",
    "upsert_orders",
    "upsert_position",
    "upsert_positions",
    "upsert_sub_accounts",
]
