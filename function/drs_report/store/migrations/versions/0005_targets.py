"""Targets: each reading names the project (and so the region) it was read from.

A job is (project_id, job_id) from here on. Readings stored before are attributed to the
project the upgrading run passes in (the configured single target's); without one they
keep '' and count for whichever configured target lists the job.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    project = str(context.config.attributes.get("project_id") or "")

    def column() -> sa.Column[str]:
        return sa.Column("project_id", sa.String(64), nullable=False, server_default="")

    with op.batch_alter_table("job_snapshots") as batch:
        batch.add_column(column())
        batch.drop_constraint("uq_job_snapshots_run_job", type_="unique")
        batch.create_unique_constraint("uq_job_snapshots_run_job",
                                       ["run_id", "project_id", "job_id"])
    with op.batch_alter_table("compare_snapshots") as batch:
        batch.add_column(column())
        batch.drop_constraint("uq_compare_snapshots_run", type_="unique")
        batch.create_unique_constraint("uq_compare_snapshots_run",
                                       ["run_id", "project_id", "job_id", "compare_job_id"])
    if project:
        for table in ("job_snapshots", "compare_snapshots"):
            op.execute(sa.text(f"UPDATE {table} SET project_id = :p WHERE project_id = ''")
                       .bindparams(p=project))


def downgrade() -> None:
    with op.batch_alter_table("compare_snapshots") as batch:
        batch.drop_constraint("uq_compare_snapshots_run", type_="unique")
        batch.create_unique_constraint("uq_compare_snapshots_run",
                                       ["run_id", "job_id", "compare_job_id"])
        batch.drop_column("project_id")
    with op.batch_alter_table("job_snapshots") as batch:
        batch.drop_constraint("uq_job_snapshots_run_job", type_="unique")
        batch.create_unique_constraint("uq_job_snapshots_run_job", ["run_id", "job_id"])
        batch.drop_column("project_id")
