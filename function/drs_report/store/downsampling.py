"""Downsampling: fewer old readings, so a store synced through OBS stays small.

A synced SQLite file travels twice a run, so its size is the run's cost. After each run the
synced copy keeps, of each job (its comparisons go with its job reading):

    within report.trend_hours   every reading (health, stall detection, ETA and trends
                                read only this window, so they read exactly as before)
    up to 7 days                the latest reading per 6 hours (the archive's job page
                                charts 7 days: four points a day beyond the trend window)
    up to 31 days               the latest reading per day (`history` in chat reaches 31)
    beyond                      the latest reading per week, until store.retention_days

No raw API answers (every field the API documents is kept typed, in its column): a synced
store writes none (sync.py), and rows from a file written before lose theirs here.
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

SIX_HOURLY_UNTIL = timedelta(days=7)
DAILY_UNTIL = timedelta(days=31)
ARCHIVED_FORMATS = ("html", "html_full")  # what the archive shows of an older run


def period(at: datetime, reference: datetime, trend: timedelta) -> tuple[object, ...] | None:
    """The period a reading taken at `at` is thinned to; None within the trend window.
    Periods are fixed in time (hours of the day, dates, Monday-to-Sunday weeks), so a reading
    kept once stays kept until it moves to a coarser tier."""
    at = at.astimezone(timezone.utc)
    if at >= reference - trend:
        return None
    if at >= reference - max(SIX_HOURLY_UNTIL, trend):
        return ("6h", at.date(), at.hour // 6)
    if at >= reference - max(DAILY_UNTIL, trend):
        return ("day", at.date())
    return ("week", at.date() - timedelta(days=at.weekday()))


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _stamp(value: datetime) -> str:
    # The text form SQLAlchemy stores SQLite datetimes in, so comparisons are plain text ones.
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _ids(values: list[int]) -> str:
    return ", ".join(str(int(v)) for v in values)


class DownsamplingMixin(StoreBase):
    def downsample(self, *, now: datetime, trend_hours: float,
                   run_id: int | None = None) -> dict[str, int]:
        """Thin readings and reports older than the trend window (SQLite only).

        `run_id`: the run downsampling, whose own readings do not vouch for its clock.
        Readings are thinned run by run: the runs of one period are found from the small
        runs table (a run's readings are all taken at its start), and only their rows are
        touched, through the (run_id, job_id) index, so a run pays for the few periods
        that changed, not for the whole history.
        """
        if self.engine.dialect.name != "sqlite":
            return {}
        done = {"job_snapshots": 0, "compare_snapshots": 0, "reports": 0}
        legacy = self._auto_vacuum() != 2  # a file from before: raw answers, no auto-vacuum
        with self._session("downsampling readings") as s:
            reference = age_reference(s, now, except_run=run_id, lead=timedelta(0))
            trend = timedelta(hours=trend_hours)
            full = _stamp(reference - trend)
            groups: dict[tuple[object, ...], list[int]] = {}
            for rid, started_at in s.execute(text(
                    "SELECT id, started_at FROM runs WHERE started_at < :full ORDER BY id"),
                    {"full": full}):
                at = datetime.fromisoformat(str(started_at)).replace(tzinfo=timezone.utc)
                key = period(at, reference, trend)
                if key is not None:
                    groups.setdefault(key, []).append(int(rid))
            for runs in groups.values():
                if len(runs) < 2:
                    continue
                listed = _ids(runs)  # integers from the database, inlined: no bind limit
                # The latest reading of each job in the period stays.
                done["job_snapshots"] += _count(s.execute(text(
                    f"DELETE FROM job_snapshots WHERE run_id IN ({listed}) AND id NOT IN ("
                    f" SELECT MAX(id) FROM job_snapshots WHERE run_id IN ({listed})"
                    " GROUP BY project_id, job_id)")))
                # A comparison reading goes with the job reading of its run.
                done["compare_snapshots"] += _count(s.execute(text(
                    f"DELETE FROM compare_snapshots WHERE run_id IN ({listed}) AND NOT EXISTS"
                    " (SELECT 1 FROM job_snapshots j WHERE j.run_id = compare_snapshots.run_id"
                    " AND j.project_id = compare_snapshots.project_id"
                    " AND j.job_id = compare_snapshots.job_id)")))
            if legacy:
                for table in ("job_snapshots", "compare_snapshots"):
                    s.execute(text(f"UPDATE {table} SET raw = NULL WHERE raw IS NOT NULL"))
            formats = ", ".join(f"'{f}'" for f in ARCHIVED_FORMATS)
            done["reports"] = _count(s.execute(text(
                f"DELETE FROM reports WHERE format IN ({formats}) AND created_at < :full"
                " AND run_id NOT IN (SELECT MAX(run_id) FROM reports WHERE created_at < :full"
                " GROUP BY substr(created_at, 1, 10))"), {"full": full}))
            done["reports"] += _count(s.execute(text(
                f"DELETE FROM reports WHERE format NOT IN ({formats}) AND run_id < ("
                " SELECT MAX(run_id) FROM reports WHERE format = 'json')")))
        done["pages_freed"] = self._give_back_free_pages(legacy)
        if any(done.values()):
            log.info("downsampled %s", ", ".join(f"{n} {t}" for t, n in done.items() if n))
        return done

    def _auto_vacuum(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() or 0)

    def _give_back_free_pages(self, legacy: bool) -> int:
        """Shrink the file to its content: SQLite's incremental auto-vacuum, switched on
        once (one VACUUM) for a file made before it was the default."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            if legacy:
                conn.exec_driver_sql("PRAGMA auto_vacuum = INCREMENTAL")
                conn.exec_driver_sql("VACUUM")
            elif free:
                # It frees one page per step, and only sqlite3_exec (executescript) steps
                # a statement that returns no rows to its end.
                raw = conn.connection.dbapi_connection
                assert raw is not None
                raw.executescript("PRAGMA incremental_vacuum")
        return free
