"""Downsampling: fewer old readings, so a store synced through OBS stays small.

A synced SQLite file travels twice a run, so its size is the run's cost. Older readings are
thinned, keeping the latest reading of each job per period:

    within report.trend_hours    every reading, with the raw API answers
    up to 7 days                 one reading per job per hour, without the raw answers
    beyond                       one reading per job per day, until store.retention_days

and rendered reports, beyond report.trend_hours, to one run's per day. Health, stall
detection, the ETA and the trends read only the trend window, which keeps full resolution, so
they read the same as before; `history` shows fewer points further back. PostgreSQL and an
SQLite file that is not synced keep every reading.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from drs_report import logs
from drs_report.store.engine import StoreBase

log = logs.get_logger("store")

HOURLY_UNTIL = timedelta(days=7)


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _stamp(value: datetime) -> str:
    # The text form SQLAlchemy stores SQLite datetimes in, so comparisons are plain text ones.
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


class DownsamplingMixin(StoreBase):
    def downsample(self, *, now: datetime, trend_hours: float) -> dict[str, int]:
        """Thin readings and reports older than the trend window (SQLite only)."""
        if self.engine.dialect.name != "sqlite":
            return {}
        full_until = _stamp(now - timedelta(hours=trend_hours))
        hourly_until = _stamp(now - max(HOURLY_UNTIL, timedelta(hours=trend_hours)))
        done: dict[str, int] = {}
        with self._session("downsampling readings") as s:
            params = {"full": full_until, "hourly": hourly_until}
            done["job_snapshots"] = _count(s.execute(text(
                "DELETE FROM job_snapshots WHERE taken_at < :full AND id NOT IN ("
                " SELECT MAX(id) FROM job_snapshots WHERE taken_at < :full GROUP BY job_id,"
                " CASE WHEN taken_at >= :hourly THEN substr(taken_at, 1, 13)"
                " ELSE substr(taken_at, 1, 10) END)"), params))
            # A comparison reading goes with the job reading of its run.
            done["compare_snapshots"] = _count(s.execute(text(
                "DELETE FROM compare_snapshots WHERE taken_at < :full AND NOT EXISTS ("
                " SELECT 1 FROM job_snapshots j WHERE j.run_id = compare_snapshots.run_id"
                " AND j.job_id = compare_snapshots.job_id)"), params))
            for table in ("job_snapshots", "compare_snapshots"):
                s.execute(text(f"UPDATE {table} SET raw = NULL WHERE taken_at < :full "
                               "AND raw IS NOT NULL"), params)
            done["reports"] = _count(s.execute(text(
                "DELETE FROM reports WHERE created_at < :full AND run_id NOT IN ("
                " SELECT MAX(run_id) FROM reports WHERE created_at < :full"
                " GROUP BY substr(created_at, 1, 10))"), params))
        if any(done.values()):
            log.info("downsampled %s", ", ".join(f"{n} {t}" for t, n in done.items() if n))
        return done
