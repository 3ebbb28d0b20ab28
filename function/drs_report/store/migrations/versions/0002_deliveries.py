"""Delivery attempts and the exactly-once claims of digests and alerts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", Id, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("channel_type", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_deliveries_run_id", "deliveries", ["run_id"])
    op.create_index("ix_deliveries_idempotency_key", "deliveries", ["idempotency_key"])
    op.create_index("ix_deliveries_at", "deliveries", ["at"])
    op.create_table(
        "delivery_claims",
        sa.Column("idempotency_key", sa.String(256), primary_key=True),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("fingerprint", sa.String(128)),
        sa.Column("problems", sa.JSON()),
    )
    op.create_index("ix_delivery_claims_channel_mode", "delivery_claims",
                    ["channel", "mode", "sent_at"])


def downgrade() -> None:
    op.drop_table("delivery_claims")
    op.drop_table("deliveries")
