"""SQLModel tables: the durable state of Just.Trades (SPEC §2–5, DESIGN "State and storage").

Conventions, chosen so SQLite and PostgreSQL behave the same:

* Timestamps are ``float`` epoch seconds UTC (``time.time()``): exact ordering, no time-zone
  handling, identical on both databases. Columns that are queried by time are indexed.
* Money and prices are ``float``; contract quantities are ``int``.
* Every table has an integer autoincrement ``id``; for signals, ``id`` *is* the arrival order.
* JSON columns (``settings``, ``parsed``, ``state``, ``overrides``) are plain ``sa.JSON``.
  SQLAlchemy does not track in-place mutation of a JSON value: assign a new dict to save it.
* Foreign keys exist on the configuration tables (users, recorders, accounts, traders) and on
  ``signals.recorder_id``. The high-volume runtime tables (positions, trades, fills, orders) carry
  plain indexed ids: they are written on the hot path by the actors, and a recorder is only ever
  soft-deleted, so there is nothing for a foreign key to protect there.
* Every constraint and index has a deterministic name (``NAMING_CONVENTION``) so migrations can
  refer to them on both databases.

The migration ``migrations/versions/0001_initial.py`` must match these classes exactly;
``tests/test_store.py`` checks that with alembic's ``compare_metadata``.
"""

from __future__ import annotations

import time
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

SIGNAL_STATUSES: Final[frozenset[str]] = frozenset(
    {"received", "applied", "duplicate", "filtered", "rejected", "ignored"}
)
"""``received``: stored, not yet applied; ``applied``: changed (or was checked against) the
position book; ``duplicate``: suppressed by the dedupe window; ``filtered``: stopped by a recorder
filter (``reason`` names it); ``rejected``: unusable payload or unknown token; ``ignored``:
valid but nothing to do (e.g. recording disabled)."""

ORDER_STATUSES: Final[frozenset[str]] = frozenset(
    {"pending", "working", "filled", "rejected", "cancelled"}
)


def _now() -> float:
    return time.time()


def _empty_dict() -> dict[str, Any]:
    return {}


def _json_column(*, nullable: bool) -> sa.Column[Any]:
    """A fresh JSON column (a ``Column`` object cannot be shared between tables). Non-nullable
    ones default to ``{}`` for Core inserts too (bulk upserts bypass the model defaults)."""
    return sa.Column(sa.JSON(), nullable=nullable, default=None if nullable else _empty_dict)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    role: str = Field(default="user", description='"admin" | "user"')
    created_at: float = Field(default_factory=_now)


class Recorder(SQLModel, table=True):
    """A strategy configuration. ``settings`` holds ``RecorderSettings`` as JSON."""

    __tablename__ = "recorders"
    __table_args__ = (sa.UniqueConstraint("owner_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True)
    name: str
    symbol: str = Field(description='default ticker, e.g. "MNQ1!"')
    token: str = Field(unique=True, index=True, description="webhook secret; never log it")
    enabled: bool = Field(default=True, description="recording enabled")
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column(nullable=False))
    created_at: float = Field(default_factory=_now)
    updated_at: float = Field(default_factory=_now)
    deleted: bool = Field(default=False)


class Signal(SQLModel, table=True):
    """One webhook delivery, stored raw before anything else happens to it."""

    __tablename__ = "signals"
    __table_args__ = (
        sa.Index("ix_signals_recorder_id_id", "recorder_id", "id"),
        # The few signals not applied yet (hosts look for them every few seconds): a partial
        # index keeps that lookup independent of how much history the table holds.
        sa.Index(
            "ix_signals_received",
            "id",
            sqlite_where=sa.text("status = 'received'"),
            postgresql_where=sa.text("status = 'received'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    recorder_id: int | None = Field(default=None, foreign_key="recorders.id")
    received_at: float = Field(default_factory=_now, index=True)
    raw_body: bytes = Field(sa_type=sa.LargeBinary, sa_column_kwargs={"nullable": False})
    content_type: str | None = None
    remote_addr: str | None = None
    dedupe_key: str | None = Field(default=None, index=True)
    status: str = Field(default="received")
    reason: str | None = Field(default=None, description='machine code, e.g. "cooldown"')
    detail: str | None = Field(default=None, description="human-readable explanation")
    parsed: dict[str, Any] | None = Field(default=None, sa_column=_json_column(nullable=True))
    action: str | None = None
    ticker: str | None = None
    symbol: str | None = Field(default=None, description="normalised contract, e.g. MNQZ5")
    price: float | None = None
    quantity: int | None = None
    applied_at: float | None = None


class Position(SQLModel, table=True):
    """A pair's position in one contract. A flat position keeps its row with quantity 0;
    ``state`` is the pair's full snapshot (exit levels, DCA levels fired, trailing stop, …) from
    which a restarted host rebuilds the pair."""

    __tablename__ = "positions"
    __table_args__ = (sa.UniqueConstraint("pair_key", "symbol"),)

    id: int | None = Field(default=None, primary_key=True)
    pair_key: str = Field(description='"r12:virtual" or "r12:t7"')
    recorder_id: int = Field(index=True)
    trader_id: int | None = None
    symbol: str
    side: str = Field(default="flat", description='"long" | "short" | "flat"')
    quantity: int = 0
    avg_price: float = 0.0
    opened_at: float | None = None
    last_price: float | None = None
    unrealised: float = 0.0
    worst_unrealised: float = 0.0
    best_unrealised: float = 0.0
    state: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column(nullable=False))
    updated_at: float = Field(default_factory=_now)


class Trade(SQLModel, table=True):
    """One closed quantity (a whole round trip or one trimmed leg)."""

    __tablename__ = "trades"
    __table_args__ = (sa.Index("ix_trades_recorder_id_closed_at", "recorder_id", "closed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    recorder_id: int
    trader_id: int | None = None
    pair_key: str
    symbol: str
    side: str = Field(description='side of the position: "long" | "short"')
    quantity: int
    entry_price: float
    exit_price: float
    pnl: float
    reason: str = Field(description='exit reason, e.g. "tp1", "stop", "signal"')
    opened_at: float
    closed_at: float = Field(index=True)
    mfe_points: float = 0.0
    mae_points: float = 0.0
    mfe_usd: float = 0.0
    mae_usd: float = 0.0
    signal_id: int | None = None


class Fill(SQLModel, table=True):
    __tablename__ = "fills"

    id: int | None = Field(default=None, primary_key=True)
    pair_key: str
    recorder_id: int = Field(index=True)
    trader_id: int | None = None
    symbol: str
    side: str = Field(description='"buy" | "sell"')
    quantity: int
    price: float
    ts: float = Field(default_factory=_now)
    kind: str = Field(description='"entry" | "add" | "exit" | "dca"')
    signal_id: int | None = None
    order_id: int | None = None


class Order(SQLModel, table=True):
    """A broker order. ``cl_ord_id`` is our idempotency key towards the broker.
    ``recorder_id``/``trader_id`` are nullable for orders no recorder owns (kill-switch flatten of
    a position opened by hand, manual trader)."""

    __tablename__ = "orders"
    __table_args__ = (sa.Index("ix_orders_account_id_status", "account_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    pair_key: str
    recorder_id: int | None = None
    trader_id: int | None = None
    account_id: int
    sub_account_id: int | None = None
    cl_ord_id: str = Field(unique=True)
    symbol: str
    side: str = Field(description='"buy" | "sell"')
    quantity: int
    order_type: str = Field(default="market", description='"market" | "stop" | "limit"')
    stop_price: float | None = None
    limit_price: float | None = None
    status: str = Field(default="pending")
    broker_order_id: str | None = Field(default=None, index=True)
    reason: str | None = None
    created_at: float = Field(default_factory=_now)
    updated_at: float = Field(default_factory=_now)


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True)
    broker: str = Field(description='"paper" | "tradovate"')
    name: str
    environment: str = Field(description='"demo" | "live" | "paper"')
    credentials_encrypted: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    created_at: float = Field(default_factory=_now)


class SubAccount(SQLModel, table=True):
    __tablename__ = "sub_accounts"
    __table_args__ = (sa.UniqueConstraint("account_id", "broker_account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    broker_account_id: str
    name: str


class Trader(SQLModel, table=True):
    """A link recorder → (account, sub-account) with per-link overrides. One link per
    (recorder, sub-account): a second would trade the same strategy twice on one account."""

    __tablename__ = "traders"
    __table_args__ = (
        sa.Index(
            "ux_traders_recorder_id_sub_account_id", "recorder_id", "sub_account_id", unique=True
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(foreign_key="users.id", index=True)
    recorder_id: int = Field(foreign_key="recorders.id", index=True)
    account_id: int = Field(foreign_key="accounts.id", index=True)
    sub_account_id: int | None = Field(default=None, foreign_key="sub_accounts.id")
    enabled: bool = True
    multiplier: float = 1.0
    max_contracts: int | None = None
    close_only: bool = False
    overrides: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column(nullable=False))
    created_at: float = Field(default_factory=_now)


class FeedCredential(SQLModel, table=True):
    """Secrets of a price feed, sealed like broker credentials: one row per provider.

    Today only ``tradingview``: the browser cookies ``sessionid``/``sessionid_sign`` that buy
    real-time quotes (SPEC §6). A table of its own rather than an ``accounts`` row: the feed is
    one per system, not a broker account a user trades on, and must not show up in account
    lists, syncs or broker actors. ``status`` is what the last check or the feed itself found
    (``unchecked`` | ``valid`` | ``delayed`` | ``refused`` | ``expired`` | ``error``); ``detail``
    says why.
    """

    __tablename__ = "feed_credentials"

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(unique=True)
    secret_encrypted: bytes = Field(sa_type=sa.LargeBinary)
    status: str = Field(default="unchecked")
    detail: str | None = None
    checked_at: float | None = None
    created_at: float = Field(default_factory=_now)
    updated_at: float = Field(default_factory=_now)


ALL_TABLES: Final[tuple[type[SQLModel], ...]] = (
    User,
    Recorder,
    Signal,
    Position,
    Trade,
    Fill,
    Order,
    Account,
    SubAccount,
    Trader,
    FeedCredential,
)
