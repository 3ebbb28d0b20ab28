"""Downsampling: fewer old readings, so a store synced through OBS stays small.

A synced SQLite file travels twice a run, so its size is the run's cost. After each run the
synced copy keeps, of each job (its comparisons go with its job reading):

    within report.trend_hours   every reading (health, stall detection, ETA and trends
                                read only this window, so they read exactly as before)
    up to 7 days                the latest reading per 4 hours (the archive's job page
                                charts 7 days: six points a day beyond the trend window)
    up to 31 days               the latest reading per day (`history` in chat reaches 31)
    beyond                      the latest reading per week, until store.retention_days

The raw API answers only of the newest run (every field is also kept typed, in its column).
Rendered reports: report.html (and the full one of a folded mail) of every run within the
trend window and one run's a day beyond it, for the archive; report.json, .md and .txt only
of the newest run (the next run's "what changed" and chat-ops read that one). Freed pages
go back to the file system (SQLite's incremental auto-vacuum), so the file shrinks with its
content. Ages are measured from this run's clock but never from later than the newest
reading an earlier run stored (retention.age_reference with no lead): a run whose clock is
far ahead cannot thin the real trend window, and a normal run keeps one run more at full
resolution. PostgreSQL and an SQLite file that is not
synced keep every reading.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text

from drs_report import logs
from drs_report.store.engine import StoreBase
from drs_report.store.retention import age_reference

log = logs.get_logger("store")

FOUR_HOURLY_UNTIL = timedelta(days=7)
DAILY_UNTIL = timedelta(days=31)
ARCHIVED_FORMATS = ("html", "html_full")  # what the archive shows of an older run

# The period a reading belongs to, from the text SQLAlchemy stores SQLite datetimes as
# ("2026-11-22 08:00:00.000000"): the same periods in every run, so a reading kept once
# stays kept until it moves to a coarser tier. Weeks run Monday to Sunday.
_PERIOD = ("CASE WHEN taken_at >= :four_hourly"
           " THEN substr(taken_at, 1, 11) || (CAST(substr(taken_at, 12, 2) AS INTEGER) / 4)"
           " WHEN taken_at >= :daily THEN substr(taken_at, 1, 10)"
           " ELSE 'week ' || CAST((julianday(substr(taken_at, 1, 10)) + 0.5) / 7 AS INTEGER)"
           " END")


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _stamp(value: datetime) -> str:
    # The text form SQLAlchemy stores SQLite datetimes in, so comparisons are plain text ones.
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


class DownsamplingMixin(StoreBase):
    def downsample(self, *, now: datetime, trend_hours: float,
                   run_id: int | None = None) -> dict[str, int]:
        """Thin readings and reports older than the trend window (SQLite only).

        `run_id`: the run downsampling, whose own readings do not vouch for its clock.
        """
        if self.engine.dialect.name != "sqlite":
            return {}
        done: dict[str, int] = {}
        with self._session("downsampling readings") as s:
            reference = age_reference(s, now, except_run=run_id, lead=timedelta(0))
            trend = timedelta(hours=trend_hours)
            params = {"full": _stamp(reference - trend),
                      "four_hourly": _stamp(reference - max(FOUR_HOURLY_UNTIL, trend)),
                      "daily": _stamp(reference - max(DAILY_UNTIL, trend))}
            done["job_snapshots"] = _count(s.execute(text(
                "DELETE FROM job_snapshots WHERE taken_at < :full AND id NOT IN ("
                " SELECT MAX(id) FROM job_snapshots WHERE taken_at < :full"
                f" GROUP BY job_id, {_PERIOD})"), params))
            # A comparison reading goes with the job reading of its run.
            done["compare_snapshots"] = _count(s.execute(text(
                "DELETE FROM compare_snapshots WHERE taken_at < :full AND NOT EXISTS ("
                " SELECT 1 FROM job_snapshots j WHERE j.run_id = compare_snapshots.run_id"
                " AND j.job_id = compare_snapshots.job_id)"), params))
            newest = s.execute(text("SELECT MAX(run_id) FROM job_snapshots")).scalar()
            if newest is not None:
                for table in ("job_snapshots", "compare_snapshots"):
                    s.execute(text(f"UPDATE {table} SET raw = NULL WHERE raw IS NOT NULL "
                                   "AND run_id != :newest"), {"newest": newest})
            formats = ", ".join(f"'{f}'" for f in ARCHIVED_FORMATS)
            done["reports"] = _count(s.execute(text(
                f"DELETE FROM reports WHERE format IN ({formats}) AND created_at < :full"
                " AND run_id NOT IN (SELECT MAX(run_id) FROM reports WHERE created_at < :full"
                " GROUP BY substr(created_at, 1, 10))"), params))
            done["reports"] += _count(s.execute(text(
                f"DELETE FROM reports WHERE format NOT IN ({formats}) AND run_id < ("
                " SELECT MAX(run_id) FROM reports WHERE format = 'json')")))
        done["pages_freed"] = self._give_back_free_pages()
        if any(done.values()):
            log.info("downsampled %s", ", ".join(f"{n} {t}" for t, n in done.items() if n))
        return done

    def _give_back_free_pages(self) -> int:
        """Shrink the file to its content: SQLite's incremental auto-vacuum, switched on
        once (one VACUUM) for a file made before it was the default."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            if conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() != 2:
                conn.exec_driver_sql("PRAGMA auto_vacuum = INCREMENTAL")
                conn.exec_driver_sql("VACUUM")
            elif free:
                # It frees one page per step, and only sqlite3_exec (executescript) steps
                # a statement that returns no rows to its end.
                raw = conn.connection.dbapi_connection
                assert raw is not None
                raw.executescript("PRAGMA incremental_vacuum")
        return free
