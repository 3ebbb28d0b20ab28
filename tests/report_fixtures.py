"""A hand-built fleet with every health state, hostile text included, at a fixed moment."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from drs_report.config import Settings, parse_settings
from drs_report.models import (
    CompareFullInfo,
    CompareIncreInfo,
    CompareProgress,
    CompareReading,
    FetchError,
    FetchErrorKind,
    JobProgress,
    JobReading,
    Snapshot,
)

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
HOSTILE = ("<script>alert(1)</script> [click](http://evil.example) "
           "![x](http://evil.example/x.png) @all <at user_id=\"all\"></at> <!channel> "
           "<@U123> # heading ``` |a|b| **bold** _it_ ~~s~~ www.evil.example")


def jid(n: int) -> str:
    return f"{n:08d}-aaaa-4bbb-8ccc-0000000djb{n % 100:02d}"


def cid(n: int) -> str:
    return f"{n:08d}-cccc-4ddd-8eee-ffffffffff{n % 100:02d}"


def incremental(job_id: str, delay: float, *, process_time: int = 1, **kw: Any) -> JobProgress:
    return JobProgress(job_id=job_id, progress=100.0, incre_trans_delay=delay,
                       incre_trans_delay_millis=int(delay * 1000), task_mode="FULL_INCR_TRANS",
                       transfer_status="INCRE_TRANSFER_STARTED", process_time=process_time,
                       remaining_time=0, apply_rows_rate=1200, apply_bytes_rate=2_000_000, **kw)


def full(job_id: str, progress: float) -> JobProgress:
    return JobProgress(job_id=job_id, progress=progress, task_mode="FULL_TRANS",
                       transfer_status="FULL_TRANSFER_STARTED", remaining_time=1800,
                       apply_rows_rate=-1, apply_bytes_rate=-1)


def compare(n: int, recheck: int = 0, log_point: str = "lp:100") -> CompareReading:
    return CompareReading(cid(n), progress=CompareProgress(
        full_info=CompareFullInfo(100.0, "0.00B/s", 0.0, 0),
        incre_info=CompareIncreInfo(2.5, "1.20KB/s", 1228.8, 30, log_point, recheck)))


def current_readings() -> list[JobReading]:
    return [
        JobReading(jid(1), "orders: MySQL -> GaussDB", incremental(jid(1), 2.0),
                   comparisons=[compare(1)]),
        JobReading(jid(2), "payments", incremental(jid(2), 95.0)),
        JobReading(jid(3), "inventory", incremental(jid(3), 420.0)),
        JobReading(jid(4), "customers", JobProgress(
            job_id=jid(4), progress=100.0, task_mode="FULL_INCR_TRANS",
            transfer_status="INCRE_TRANSFER_FAILED", error_code="DRS.M05004",
            error_msg="binlog purged")),
        JobReading(jid(5), "archive (stalled)", full(jid(5), 63.0)),
        JobReading(jid(6), "billing", incremental(jid(6), 3.0),
                   comparisons=[compare(6, recheck=17)]),
        JobReading(jid(7), "audit", incremental(jid(7), 1.0), comparisons=[CompareReading(
            cid(7), error=FetchError(FetchErrorKind.NOT_FOUND,
                                     "HTTP 400 DRS.10000010: Task information not found.",
                                     400, "DRS.10000010"))]),
        JobReading(jid(8), "legacy", error=FetchError(FetchErrorKind.MISSING,
                                                     "the batch-progress answer did not "
                                                     "include this job")),
        JobReading(jid(9), HOSTILE, JobProgress(job_id=jid(9), error_code="DRS.10000004",
                                                error_msg=HOSTILE),
                   error=FetchError(FetchErrorKind.API_ERROR, HOSTILE,
                                    error_code="DRS.10000004")),
        JobReading(jid(10), "warehouse (rising)", full(jid(10), 60.0)),
        JobReading(jid(11), "paused job", JobProgress(job_id=jid(11), progress=100.0,
                                                     transfer_status="PAUSING")),
    ]


def fleet() -> tuple[Snapshot, dict[str, list[tuple[datetime, JobReading]]]]:
    """The snapshot at NOW, and 45 minutes of history (every 15 minutes) before it."""
    readings = current_readings()
    snapshot = Snapshot(taken_at=NOW, jobs=readings, errors=["listing the comparisons of "
                                                             "job x failed: " + HOSTILE])
    history: dict[str, list[tuple[datetime, JobReading]]] = {r.job_id: [] for r in readings}
    for minutes_ago in (45, 30, 15):
        at = NOW - timedelta(minutes=minutes_ago)
        for reading in readings:
            past = JobReading(reading.job_id, reading.name, reading.progress, reading.error,
                              list(reading.comparisons))
            if reading.job_id == jid(10):
                past.progress = full(jid(10), 60.0 - minutes_ago / 15 * 5)
            if reading.job_id == jid(3):
                past.progress = incremental(jid(3), 420.0 - minutes_ago * 4)
            if past.progress is not None and past.progress.process_time is not None:
                # The service's last-update time moves while a job is alive.
                past.progress = replace(past.progress,
                                        process_time=past.progress.process_time - minutes_ago)
            past.comparisons = [_moved_back(c, minutes_ago) for c in past.comparisons]
            history[reading.job_id].append((at, past))
    for reading in readings:
        history[reading.job_id].append((NOW, reading))
    return snapshot, history


def _moved_back(comp: CompareReading, minutes_ago: int) -> CompareReading:
    """The same comparison earlier: its incremental log point was further back."""
    p = comp.progress
    if p is None or p.incre_info is None:
        return comp
    incre = replace(p.incre_info, log_point=f"lp:{100 - minutes_ago}")
    return replace(comp, progress=replace(p, incre_info=incre))


def settings(language: str = "en-us", **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "drs": {"region": "cn-north-4", "project_id": "5237e10fe9aa4ad5b16b6a5245248314",
                "language": language},
        "jobs": [{"id": jid(n)} for n in range(1, 12)],
        "report": {"time_zone": "Asia/Shanghai" if language == "zh-cn" else "UTC"},
    }
    data.update(sections)
    return parse_settings(data, {})


def large_fleet(jobs: int, problems: int) -> tuple[Snapshot, Settings]:
    readings = []
    for n in range(jobs):
        delay = 400.0 if n < problems else 2.0
        readings.append(JobReading(jid(n), f"fleet job {n:04d}: MySQL -> GaussDB",
                                   incremental(jid(n), delay), comparisons=[compare(n)]))
    data: dict[str, Any] = {
        "drs": {"region": "cn-north-4", "project_id": "5237e10fe9aa4ad5b16b6a5245248314"},
        "jobs": [{"id": jid(n)} for n in range(jobs)],
    }
    return Snapshot(taken_at=NOW, jobs=readings), parse_settings(data, {})
