"""A smaller history: rendered reports stored compressed, two indexes fewer per reading.

Every index costs bytes on every reading, and a synced SQLite file travels twice a run.
The time-only indexes of the readings served nothing but pruning, which now goes through
the run (runs.started_at is indexed); a job's comparisons are found through its job reading.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reports", sa.Column("packed", sa.LargeBinary()))
    op.drop_index("ix_job_snapshots_taken_at", table_name="job_snapshots")
    op.drop_index("ix_compare_snapshots_taken_at", table_name="compare_snapshots")
    op.drop_index("ix_compare_snapshots_job_taken", table_name="compare_snapshots")


def downgrade() -> None:
    op.create_index("ix_compare_snapshots_job_taken", "compare_snapshots",
                    ["job_id", "taken_at"])
    op.create_index("ix_compare_snapshots_taken_at", "compare_snapshots", ["taken_at"])
    op.create_index("ix_job_snapshots_taken_at", "job_snapshots", ["taken_at"])
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("packed")
