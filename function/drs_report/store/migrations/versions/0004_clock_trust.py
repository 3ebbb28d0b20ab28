"""Clock trust: delivery claims ordered by a sequence, runs that say until when they may run.

A sender's clock no longer orders the claims (a run 24 h ahead used to stay "the latest
alert" for a day); `runs.lease_until` lets the next run close a killed run's row.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("runs", sa.Column("lease_until", TS))
    op.add_column("delivery_claims", sa.Column("seq", sa.BigInteger()))
    # Claims from before: numbered in the order they were sent (or claimed).
    op.execute(
        "UPDATE delivery_claims SET seq = (SELECT n FROM (SELECT idempotency_key AS k, "
        "ROW_NUMBER() OVER (ORDER BY COALESCE(sent_at, claimed_at), idempotency_key) AS n "
        "FROM delivery_claims) numbered WHERE numbered.k = delivery_claims.idempotency_key)")
    op.drop_index("ix_delivery_claims_channel_mode", table_name="delivery_claims")
    op.create_index("ix_delivery_claims_channel_mode_seq", "delivery_claims",
                    ["channel", "mode", "seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE delivery_claims_seq")
        op.execute("SELECT setval('delivery_claims_seq', "
                   "(SELECT COALESCE(MAX(seq), 0) + 1 FROM delivery_claims), false)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE delivery_claims_seq")
    op.drop_index("ix_delivery_claims_channel_mode_seq", table_name="delivery_claims")
    op.create_index("ix_delivery_claims_channel_mode", "delivery_claims",
                    ["channel", "mode", "sent_at"])
    with op.batch_alter_table("delivery_claims") as batch:
        batch.drop_column("seq")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("lease_until")
