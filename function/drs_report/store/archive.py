"""Read-only queries of the report archive: stored runs, their reports, a job's readings.

The HTTP side (chat-ops commands, the archive pages) reads through these and never writes.
Each function takes a SQLAlchemy Session; `Store` exposes them through a few thin methods.
They select only the columns they show, so a page of a 5,000-job history stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drs_report.store.engine import StoreBase
from drs_report.store.schema import JobSnapshot, RenderedReport, Run


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ArchivedRun:
    """One run that kept its report: the line of `GET /reports`."""

    run_id: int
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    partial: bool
    counts: dict[str, Any]


@dataclass(frozen=True)
class SeriesPoint:
    """One stored reading of a job, reduced to what the charts and `history` show."""

    taken_at: datetime
    progress: float | None
    delay: float | None  # seconds; incre_trans_delay_millis preferred, as the analysis does
    transfer_status: str | None
    name: str | None


def _has_report() -> Any:
    return (select(RenderedReport.id)
            .where(RenderedReport.run_id == Run.id, RenderedReport.format == "html")
            .exists())


def report_runs(session: Session, *, offset: int, limit: int) -> tuple[list[ArchivedRun], int]:
    """The runs with a stored HTML report, newest first, one page of them, and how many."""
    total = session.scalar(select(func.count()).select_from(Run).where(_has_report())) or 0
    rows = session.execute(
        select(Run.id, Run.trigger, Run.started_at, Run.finished_at, Run.outcome, Run.partial,
               Run.counts)
        .where(_has_report()).order_by(Run.id.desc()).offset(offset).limit(limit))
    runs = [ArchivedRun(run_id=r.id, trigger=r.trigger, started_at=_utc(r.started_at),
                        finished_at=r.finished_at and _utc(r.finished_at), outcome=r.outcome,
                        partial=bool(r.partial), counts=dict(r.counts or {}))
            for r in rows]
    return runs, int(total)


def latest_report_run(session: Session, fmt: str = "json") -> int | None:
    """The newest run that stored a report in this format (the index makes it one probe)."""
    return session.scalar(select(func.max(RenderedReport.run_id))
                          .where(RenderedReport.format == fmt))


def job_series(session: Session, job_id: str, since: datetime) -> list[SeriesPoint]:
    """A job's readings since `since`, oldest first (served by ix_job_snapshots_job_taken)."""
    rows = session.execute(
        select(JobSnapshot.taken_at, JobSnapshot.progress, JobSnapshot.incre_trans_delay,
               JobSnapshot.incre_trans_delay_millis, JobSnapshot.transfer_status,
               JobSnapshot.name)
        .where(JobSnapshot.job_id == job_id, JobSnapshot.taken_at >= since)
        .order_by(JobSnapshot.taken_at, JobSnapshot.id))
    points = []
    for r in rows:
        delay = (r.incre_trans_delay_millis / 1000.0 if r.incre_trans_delay_millis is not None
                 else r.incre_trans_delay)
        points.append(SeriesPoint(taken_at=_utc(r.taken_at), progress=r.progress, delay=delay,
                                  transfer_status=r.transfer_status, name=r.name))
    return points


class ArchiveMixin(StoreBase):
    """The archive queries on the Store face (read-only, for the HTTP side)."""

    def archive_runs(self, *, offset: int, limit: int) -> tuple[list[ArchivedRun], int]:
        """Runs with a stored report, newest first: one page of ArchivedRun, and the total."""
        with self._session("reading the report archive") as s:
            return report_runs(s, offset=offset, limit=limit)

    def latest_report_run(self, fmt: str = "json") -> int | None:
        with self._session("reading the report archive") as s:
            return latest_report_run(s, fmt)

    def job_series(self, job_id: str, since: datetime) -> list[SeriesPoint]:
        """One job's readings since `since` as SeriesPoint, oldest first."""
        with self._session("reading a job's readings") as s:
            return job_series(s, job_id, since)
