"""One trader per (recorder, sub-account): a unique index, so two concurrent requests can never
link the same strategy to the same account twice (the API's check alone could race).

A unique index rather than a constraint: SQLite cannot add a constraint to an existing table,
and the index enforces the same rule on both databases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ux_traders_recorder_id_sub_account_id",
        "traders",
        ["recorder_id", "sub_account_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_traders_recorder_id_sub_account_id", table_name="traders")
