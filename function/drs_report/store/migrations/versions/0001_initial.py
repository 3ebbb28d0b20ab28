"""Runs, job and comparison snapshots, rendered reports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _error_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("fetch_error_kind", sa.String(32)),
        sa.Column("fetch_error_message", sa.Text()),
        sa.Column("fetch_error_status", sa.Integer()),
        sa.Column("fetch_error_code", sa.String(64)),
        sa.Column("raw", sa.JSON()),
    ]


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_table(
        "job_snapshots",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", Id, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("taken_at", TS, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text()),
        sa.Column("progress", sa.Float()),
        sa.Column("incre_trans_delay", sa.Float()),
        sa.Column("incre_trans_delay_millis", sa.BigInteger()),
        sa.Column("task_mode", sa.String(64)),
        sa.Column("transfer_status", sa.String(64)),
        sa.Column("process_time", sa.BigInteger()),
        sa.Column("remaining_time", sa.BigInteger()),
        sa.Column("progress_map", sa.JSON()),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_msg", sa.Text()),
        sa.Column("apply_rows_rate", sa.BigInteger()),
        sa.Column("apply_bytes_rate", sa.BigInteger()),
        *_error_columns(),
        sa.UniqueConstraint("run_id", "job_id", name="uq_job_snapshots_run_job"),
    )
    op.create_index("ix_job_snapshots_job_taken", "job_snapshots", ["job_id", "taken_at"])
    op.create_index("ix_job_snapshots_taken_at", "job_snapshots", ["taken_at"])
    op.create_table(
        "compare_snapshots",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", Id, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("taken_at", TS, nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("compare_job_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("has_full_info", sa.Boolean(), nullable=False),
        sa.Column("full_progress", sa.Float()),
        sa.Column("full_src_speed", sa.String(64)),
        sa.Column("full_src_speed_bytes", sa.Float()),
        sa.Column("full_recheck_entities", sa.BigInteger()),
        sa.Column("has_incre_info", sa.Boolean(), nullable=False),
        sa.Column("incre_delay", sa.Float()),
        sa.Column("incre_src_speed", sa.String(64)),
        sa.Column("incre_src_speed_bytes", sa.Float()),
        sa.Column("incre_rps", sa.BigInteger()),
        sa.Column("incre_log_point", sa.Text()),
        sa.Column("incre_recheck_entities", sa.BigInteger()),
        sa.Column("has_global_info", sa.Boolean(), nullable=False),
        sa.Column("global_src_speed", sa.String(64)),
        sa.Column("global_src_speed_bytes", sa.Float()),
        *_error_columns(),
        sa.UniqueConstraint("run_id", "job_id", "compare_job_id",
                            name="uq_compare_snapshots_run"),
    )
    op.create_index("ix_compare_snapshots_job_taken", "compare_snapshots",
                    ["job_id", "taken_at"])
    op.create_index("ix_compare_snapshots_taken_at", "compare_snapshots", ["taken_at"])
    op.create_table(
        "reports",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", Id, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.UniqueConstraint("run_id", "format", name="uq_reports_run_format"),
    )
    op.create_index("ix_reports_run_id", "reports", ["run_id"])
    op.create_index("ix_reports_created_at", "reports", ["created_at"])


def downgrade() -> None:
    for table in ("reports", "compare_snapshots", "job_snapshots", "runs"):
        op.drop_table(table)
