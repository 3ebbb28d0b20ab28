"""Retention: old rows deleted in bounded batches, so no statement holds locks for long."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import aliased

from drs_report import logs
from drs_report.store.engine import StoreBase
from drs_report.store.schema import (
    CompareSnapshot,
    DeliveryAttempt,
    DeliveryClaim,
    JobSnapshot,
    RenderedReport,
    Run,
)

log = logs.get_logger("store")


class RetentionMixin(StoreBase):
    def prune(self, *, retention_days: int, report_retention_days: int, batch_size: int,
              now: datetime) -> dict[str, int]:
        """Delete old rows in bounded batches, so no statement holds locks for long."""
        cutoff = now - timedelta(days=retention_days)
        report_cutoff = now - timedelta(days=report_retention_days)
        # Each channel and mode keeps its latest sent claim however old: the alert
        # de-duplication compares against it.
        latest = aliased(DeliveryClaim)
        newest_sent = (select(func.max(latest.sent_at))
                       .where(latest.channel == DeliveryClaim.channel,
                              latest.mode == DeliveryClaim.mode, latest.state == "sent")
                       .scalar_subquery())
        deleted = {
            "compare_snapshots": self._prune(CompareSnapshot.id,
                                             CompareSnapshot.taken_at < cutoff,
                                             batch_size=batch_size),
            "job_snapshots": self._prune(JobSnapshot.id, JobSnapshot.taken_at < cutoff,
                                         batch_size=batch_size),
            "reports": self._prune(RenderedReport.id, RenderedReport.created_at < report_cutoff,
                                   batch_size=batch_size),
            "deliveries": self._prune(DeliveryAttempt.id, DeliveryAttempt.at < cutoff,
                                      batch_size=batch_size),
            "delivery_claims": self._prune(
                DeliveryClaim.idempotency_key, DeliveryClaim.claimed_at < cutoff,
                ~and_(DeliveryClaim.state == "sent", DeliveryClaim.sent_at == newest_sent),
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

