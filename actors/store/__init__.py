"""Durable state: SQLModel tables, the engine/transaction helpers and repository functions.

Typical use::

    from actors.store import Store, insert_signal, list_trades

    store = Store("sqlite:///./var/justtrades.db")
    store.migrate()
    row, duplicate = insert_signal(store, recorder_id=rec.id, raw_body=body, ...)
    with store.read() as s:
        trades = list_trades(s, rec.id, limit=50)
    with store.write() as s:  # several changes, one transaction
        add_fills(s, fills)
        add_trades(s, trades)
        upsert_position(s, pair_key, symbol, recorder_id=rec.id, side="flat", quantity=0)
"""

from actors.store.engine import (
    Store,
    alembic_config,
    is_sqlite_url,
    is_transient_lock_error,
    make_engine,
)
from actors.store.models import (
    ALL_TABLES,
    ORDER_STATUSES,
    SIGNAL_STATUSES,
    Account,
    Fill,
    Order,
    Position,
    Recorder,
    Signal,
    SubAccount,
    Trade,
    Trader,
    User,
)
from actors.store.repo import (
    DEDUPE_IGNORED_STATUSES,
    LOCAL_USER,
    add_fills,
    add_trades,
    create_recorder,
    create_user,
    ensure_local_user,
    get_recorder,
    get_recorder_by_token,
    get_signal,
    get_user_by_name,
    insert_signal,
    list_recorders,
    list_signals,
    list_trades,
    load_positions,
    mark_signal,
    new_token,
    open_positions,
    pending_signals,
    reset_history,
    rotate_recorder_token,
    set_signal_status,
    soft_delete_recorder,
    update_recorder,
    upsert_position,
    upsert_positions,
)

__all__ = [
    "ALL_TABLES",
    "DEDUPE_IGNORED_STATUSES",
    "LOCAL_USER",
    "ORDER_STATUSES",
    "SIGNAL_STATUSES",
    "Account",
    "Fill",
    "Order",
    "Position",
    "Recorder",
    "Signal",
    "Store",
    "SubAccount",
    "Trade",
    "Trader",
    "User",
    "add_fills",
    "add_trades",
    "alembic_config",
    "create_recorder",
    "create_user",
    "ensure_local_user",
    "get_recorder",
    "get_recorder_by_token",
    "get_signal",
    "get_user_by_name",
    "insert_signal",
    "is_sqlite_url",
    "is_transient_lock_error",
    "list_recorders",
    "list_signals",
    "list_trades",
    "load_positions",
    "make_engine",
    "mark_signal",
    "new_token",
    "open_positions",
    "pending_signals",
    "reset_history",
    "rotate_recorder_token",
    "set_signal_status",
    "soft_delete_recorder",
    "update_recorder",
    "upsert_position",
    "upsert_positions",
]
