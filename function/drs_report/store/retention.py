"""Retention: old rows deleted in bounded batches, so no statement holds locks for long.

Age is measured from `age_reference`: this run's clock, but never more than a day past the
newest reading an earlier run stored. A run whose clock is 100 days ahead would otherwise
prune all history; a run after a long pause loses nothing by it (the next run prunes).
Downsampling measures from the same reference with no lead at all (downsampling.py).
Readings are found through their run (runs.started_at is indexed; the readings' own time
is not, see schema.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session, aliased

from drs_report import logs
from drs_report.store.engine import StoreBase, utc
from drs_report.store.schema import (
    CompareSnapshot,
    DeliveryAttempt,
    DeliveryClaim,
    JobSnapshot,
    RenderedReport,
    Run,
)

log = logs.get_logger("store")

CLOCK_LEAD_LIMIT = timedelta(days=1)  # how far past the stored readings a clock is believed


def age_reference(session: Session, now: datetime, *, except_run: int | None,
                  lead: timedelta = CLOCK_LEAD_LIMIT) -> datetime:
    """The "now" that ages are measured from: `now`, or the newest earlier run's start plus
    `lead` when `now` is further ahead than that."""
    query = select(func.max(Run.started_at))
    if except_run is not None:
        query = query.where(Run.id != except_run)
    newest = session.scalar(query)
    if newest is None:
        return now
    return min(now, utc(newest) + lead)


class RetentionMixin(StoreBase):
    def prune(self, *, retention_days: int, report_retention_days: int, batch_size: int,
              now: datetime, run_id: int | None = None) -> dict[str, int]:
        """Delete old rows in bounded batches, so no statement holds locks for long.

        `run_id`: the run pruning, whose own readings do not vouch for its clock.
        """
        with self._session("pruning") as s:
            reference = age_reference(s, now, except_run=run_id)
        if reference < now:
            log.warning("pruning measures age from %s, not from this machine's clock (%s): "
                        "no earlier run stored a reading after %s",
                        reference.isoformat(timespec="seconds"),
                        now.isoformat(timespec="seconds"),
                        (reference - CLOCK_LEAD_LIMIT).isoformat(timespec="seconds"))
        cutoff = reference - timedelta(days=retention_days)
        report_cutoff = reference - timedelta(days=report_retention_days)
        old_runs = select(Run.id).where(Run.started_at < cutoff)
        # Each channel and mode keeps its latest sent claim however old: the alert
        # de-duplication compares against it.
        latest = aliased(DeliveryClaim)
        newest_sent = (select(func.max(func.coalesce(latest.seq, 0)))
                       .where(latest.channel == DeliveryClaim.channel,
                              latest.mode == DeliveryClaim.mode, latest.state == "sent")
                       .scalar_subquery())
        deleted = {
            "compare_snapshots": self._prune(CompareSnapshot.id,
                                             CompareSnapshot.run_id.in_(old_runs),
                                             CompareSnapshot.taken_at < cutoff,
                                             batch_size=batch_size),
            "job_snapshots": self._prune(JobSnapshot.id, JobSnapshot.run_id.in_(old_runs),
                                         JobSnapshot.taken_at < cutoff, batch_size=batch_size),
            "reports": self._prune(RenderedReport.id, RenderedReport.created_at < report_cutoff,
                                   batch_size=batch_size),
            "deliveries": self._prune(DeliveryAttempt.id, DeliveryAttempt.at < cutoff,
                                      batch_size=batch_size),
            "delivery_claims": self._prune(
                DeliveryClaim.idempotency_key, DeliveryClaim.claimed_at < cutoff,
                ~and_(DeliveryClaim.state == "sent",
                      func.coalesce(DeliveryClaim.seq, 0) == newest_sent),
                batch_size=batch_size),
            # Runs go once nothing refers to them any more.
            "runs": self._prune(
                Run.id, Run.started_at < min(cutoff, report_cutoff),
                ~select(JobSnapshot.id).where(JobSnapshot.run_id == Run.id).exists(),
                ~select(RenderedReport.id).where(RenderedReport.run_id == Run.id).exists(),
                ~select(DeliveryAttempt.id).where(DeliveryAttempt.run_id == Run.id).exists(),
                batch_size=batch_size),
        }
        if any(deleted.values()):
            log.info("pruned %s", ", ".join(f"{n} {t}" for t, n in deleted.items() if n))
        return deleted

    def _prune(self, key: Any, *conditions: Any, batch_size: int) -> int:
        """Delete the rows matching `conditions`, `batch_size` keys per transaction."""
        table = key.table
        total = 0
        while True:
            with self._session(f"pruning {table.name}") as s:
                keys = list(s.scalars(select(key).where(*conditions).limit(batch_size)))
                if not keys:
                    return total
                s.execute(delete(table).where(key.in_(keys)))
                total += len(keys)
