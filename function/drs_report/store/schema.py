"""The history database's tables, as SQLAlchemy 2 typed models.

Column names are the API's field names, so a DBA can query the history with plain SQL.
Changing a table means a new Alembic revision in store/migrations/versions/.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Sequence,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BigInteger ids on PostgreSQL; SQLite only autoincrements a plain INTEGER primary key.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Run(Base):
    """One cycle: when, why, how it ended."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(32), default="running")
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    # Until when the run may still be going (its time budget): a `running` row past it was
    # killed or timed out, and the next run closes it as `abandoned`.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobSnapshot(Base):
    """One job in one run: every batch-progress field, typed, and the raw answer.

    Two indexes only, because every index is paid for on every row (and a synced file
    travels twice a run): (run_id, job_id) finds a run's rows, (job_id, taken_at) a job's
    history. Pruning goes through the run (runs.started_at is indexed).
    """

    __tablename__ = "job_snapshots"
    __table_args__ = (
        UniqueConstraint("run_id", "project_id", "job_id", name="uq_job_snapshots_run_job"),
        Index("ix_job_snapshots_job_taken", "job_id", "taken_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    job_id: Mapped[str] = mapped_column(String(64))
    # The target's project (revision 0005); '' for readings stored before targets and not
    # attributed on upgrade: they count for whichever target lists the job.
    project_id: Mapped[str] = mapped_column(String(64), server_default="")
    name: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float | None] = mapped_column(Float)
    incre_trans_delay: Mapped[float | None] = mapped_column(Float)
    incre_trans_delay_millis: Mapped[int | None] = mapped_column(BigInteger)
    task_mode: Mapped[str | None] = mapped_column(String(64))
    transfer_status: Mapped[str | None] = mapped_column(String(64))
    process_time: Mapped[int | None] = mapped_column(BigInteger)
    remaining_time: Mapped[int | None] = mapped_column(BigInteger)
    progress_map: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_msg: Mapped[str | None] = mapped_column(Text)
    apply_rows_rate: Mapped[int | None] = mapped_column(BigInteger)
    apply_bytes_rate: Mapped[int | None] = mapped_column(BigInteger)
    fetch_error_kind: Mapped[str | None] = mapped_column(String(32))
    fetch_error_message: Mapped[str | None] = mapped_column(Text)
    fetch_error_status: Mapped[int | None] = mapped_column(Integer)
    fetch_error_code: Mapped[str | None] = mapped_column(String(64))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CompareSnapshot(Base):
    """One comparison of one job in one run: every compare-progress field.

    One index: (run_id, job_id, compare_job_id). A job's comparisons are found through its
    job reading (same run_id and job_id), never by time on their own.
    """

    __tablename__ = "compare_snapshots"
    __table_args__ = (
        UniqueConstraint("run_id", "project_id", "job_id", "compare_job_id",
                         name="uq_compare_snapshots_run"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    job_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(64), server_default="")
    compare_job_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)  # order within the job
    has_full_info: Mapped[bool] = mapped_column(Boolean, default=False)
    full_progress: Mapped[float | None] = mapped_column(Float)
    full_src_speed: Mapped[str | None] = mapped_column(String(64))
    full_src_speed_bytes: Mapped[float | None] = mapped_column(Float)
    full_recheck_entities: Mapped[int | None] = mapped_column(BigInteger)
    has_incre_info: Mapped[bool] = mapped_column(Boolean, default=False)
    incre_delay: Mapped[float | None] = mapped_column(Float)
    incre_src_speed: Mapped[str | None] = mapped_column(String(64))
    incre_src_speed_bytes: Mapped[float | None] = mapped_column(Float)
    incre_rps: Mapped[int | None] = mapped_column(BigInteger)
    incre_log_point: Mapped[str | None] = mapped_column(Text)
    incre_recheck_entities: Mapped[int | None] = mapped_column(BigInteger)
    has_global_info: Mapped[bool] = mapped_column(Boolean, default=False)
    global_src_speed: Mapped[str | None] = mapped_column(String(64))
    global_src_speed_bytes: Mapped[float | None] = mapped_column(Float)
    fetch_error_kind: Mapped[str | None] = mapped_column(String(32))
    fetch_error_message: Mapped[str | None] = mapped_column(Text)
    fetch_error_status: Mapped[int | None] = mapped_column(Integer)
    fetch_error_code: Mapped[str | None] = mapped_column(String(64))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RenderedReport(Base):
    """Each run's rendered outputs: the product's report storage.

    `packed` holds the output zlib-compressed (a 1,000-job report.json shrinks about 15
    times) and `content` is then empty; rows written before revision 0003 have `content`
    and no `packed`. Read them through the store (store/reports.py), which knows both.
    """

    __tablename__ = "reports"
    __table_args__ = (UniqueConstraint("run_id", "format", name="uq_reports_run_format"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    content: Mapped[str] = mapped_column(Text)
    packed: Mapped[bytes | None] = mapped_column(LargeBinary)


class DeliveryAttempt(Base):
    """Every attempt to deliver to a channel, successful or not."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(128))
    channel_type: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(256), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# The order in which claims were taken and sends confirmed: assigned by the database, so a
# sender whose clock is wrong cannot reorder them (PostgreSQL: this sequence; SQLite: the
# largest value + 1, under SQLite's one-writer lock).
CLAIM_SEQUENCE = Sequence("delivery_claims_seq", metadata=Base.metadata)


class DeliveryClaim(Base):
    """One digest or alert that is being, or has been, sent: the exactly-once guard.

    `problems` and `fingerprint` are written when the claim is taken, so a claim whose run
    died mid-send still says what it may have sent (delivery.py compares against it).
    """

    __tablename__ = "delivery_claims"
    __table_args__ = (Index("ix_delivery_claims_channel_mode_seq", "channel", "mode", "seq"),)

    idempotency_key: Mapped[str] = mapped_column(String(256), primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))  # claimed | sent
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fingerprint: Mapped[str | None] = mapped_column(String(128))
    problems: Mapped[list[Any] | None] = mapped_column(JSON)
    seq: Mapped[int | None] = mapped_column(BigInteger)
