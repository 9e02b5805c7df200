"""A partial index over the signals still ``received``: a host looks for them every few
seconds (orphans of a restart), and with one query per recorder over ``(recorder_id, id)`` that
read grew with every recorder and every stored signal (200 recorders: 200 queries, 100-200 ms
of the host's loop every 5 s, bench.ingest).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_signals_received",
        "signals",
        ["id"],
        sqlite_where=sa.text("status = 'received'"),
        postgresql_where=sa.text("status = 'received'"),
    )


def downgrade() -> None:
    op.drop_index("ix_signals_received", table_name="signals")
