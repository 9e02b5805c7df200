"""Initial schema: users, recorders, signals, positions, trades, fills, orders, accounts,
sub-accounts, traders.

Generated once with ``alembic revision --autogenerate`` against ``actors.store.models`` and then
edited by hand: plain ``sa.String()`` instead of sqlmodel's ``AutoString`` (so migrations never
import sqlmodel), tables in foreign-key order, explicit constraint and index names (the
``NAMING_CONVENTION`` of ``actors.store.models``).

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )

    op.create_table(
        "recorders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_recorders_owner_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_recorders"),
        sa.UniqueConstraint("owner_id", "name", name="uq_recorders_owner_id_name"),
    )
    op.create_index("ix_recorders_owner_id", "recorders", ["owner_id"], unique=False)
    op.create_index("ix_recorders_token", "recorders", ["token"], unique=True)

    op.create_table(
        "signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("raw_body", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=True),
        sa.Column("remote_addr", sa.String(), nullable=True),
        sa.Column("dedupe_key", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("parsed", sa.JSON(), nullable=True),
        sa.Column("action", sa.String(), nullable=True),
        sa.Column("ticker", sa.String(), nullable=True),
        sa.Column("symbol", sa.String(), nullable=True),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("applied_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["recorder_id"], ["recorders.id"], name="fk_signals_recorder_id_recorders"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_signals"),
    )
    op.create_index("ix_signals_dedupe_key", "signals", ["dedupe_key"], unique=False)
    op.create_index("ix_signals_received_at", "signals", ["received_at"], unique=False)
    op.create_index("ix_signals_recorder_id_id", "signals", ["recorder_id", "id"], unique=False)

    op.create_table(
        "positions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_key", sa.String(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=False),
        sa.Column("trader_id", sa.Integer(), nullable=True),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("avg_price", sa.Float(), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=True),
        sa.Column("last_price", sa.Float(), nullable=True),
        sa.Column("unrealised", sa.Float(), nullable=False),
        sa.Column("worst_unrealised", sa.Float(), nullable=False),
        sa.Column("best_unrealised", sa.Float(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_positions"),
        sa.UniqueConstraint("pair_key", "symbol", name="uq_positions_pair_key_symbol"),
    )
    op.create_index("ix_positions_recorder_id", "positions", ["recorder_id"], unique=False)

    op.create_table(
        "trades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=False),
        sa.Column("trader_id", sa.Integer(), nullable=True),
        sa.Column("pair_key", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        sa.Column("exit_price", sa.Float(), nullable=False),
        sa.Column("pnl", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=False),
        sa.Column("mfe_points", sa.Float(), nullable=False),
        sa.Column("mae_points", sa.Float(), nullable=False),
        sa.Column("mfe_usd", sa.Float(), nullable=False),
        sa.Column("mae_usd", sa.Float(), nullable=False),
        sa.Column("signal_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trades"),
    )
    op.create_index("ix_trades_closed_at", "trades", ["closed_at"], unique=False)
    op.create_index(
        "ix_trades_recorder_id_closed_at", "trades", ["recorder_id", "closed_at"], unique=False
    )

    op.create_table(
        "fills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_key", sa.String(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=False),
        sa.Column("trader_id", sa.Integer(), nullable=True),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("signal_id", sa.Integer(), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
    )
    op.create_index("ix_fills_recorder_id", "fills", ["recorder_id"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_key", sa.String(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=True),
        sa.Column("trader_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sub_account_id", sa.Integer(), nullable=True),
        sa.Column("cl_ord_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("order_type", sa.String(), nullable=False),
        sa.Column("stop_price", sa.Float(), nullable=True),
        sa.Column("limit_price", sa.Float(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("broker_order_id", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("cl_ord_id", name="uq_orders_cl_ord_id"),
    )
    op.create_index("ix_orders_account_id_status", "orders", ["account_id", "status"], unique=False)
    op.create_index("ix_orders_broker_order_id", "orders", ["broker_order_id"], unique=False)

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("broker", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), nullable=False),
        sa.Column("credentials_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_accounts_owner_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
    )
    op.create_index("ix_accounts_owner_id", "accounts", ["owner_id"], unique=False)

    op.create_table(
        "sub_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("broker_account_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_sub_accounts_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_sub_accounts"),
        sa.UniqueConstraint(
            "account_id",
            "broker_account_id",
            name="uq_sub_accounts_account_id_broker_account_id",
        ),
    )
    op.create_index("ix_sub_accounts_account_id", "sub_accounts", ["account_id"], unique=False)

    op.create_table(
        "traders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("recorder_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sub_account_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("multiplier", sa.Float(), nullable=False),
        sa.Column("max_contracts", sa.Integer(), nullable=True),
        sa.Column("close_only", sa.Boolean(), nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name="fk_traders_owner_id_users"),
        sa.ForeignKeyConstraint(
            ["recorder_id"], ["recorders.id"], name="fk_traders_recorder_id_recorders"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_traders_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["sub_account_id"], ["sub_accounts.id"], name="fk_traders_sub_account_id_sub_accounts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_traders"),
    )
    op.create_index("ix_traders_owner_id", "traders", ["owner_id"], unique=False)
    op.create_index("ix_traders_recorder_id", "traders", ["recorder_id"], unique=False)
    op.create_index("ix_traders_account_id", "traders", ["account_id"], unique=False)


def downgrade() -> None:
    for table in (
        "traders",
        "sub_accounts",
        "accounts",
        "orders",
        "fills",
        "trades",
        "positions",
        "signals",
        "recorders",
        "users",
    ):
        op.drop_table(table)  # drops the table's indexes with it
