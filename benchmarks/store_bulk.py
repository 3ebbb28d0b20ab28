"""Rows per second when one run stores its snapshot, on SQLite and PostgreSQL.

    python benchmarks/store_bulk.py [--jobs 10000] [--smoke]

PostgreSQL is found as the tests find it (DRS_REPORT_TEST_POSTGRES_URL, else
127.0.0.1:5432); without it that line says why and the SQLite one still prints.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from common import emit


def snapshot(jobs: int):  # type: ignore[no-untyped-def]
    from drs_report.models import (
        CompareFullInfo,
        CompareIncreInfo,
        CompareProgress,
        CompareReading,
        JobProgress,
        JobReading,
        Snapshot,
    )

    readings = []
    for n in range(jobs):
        job_id = f"{n:08d}-0000-4000-8000-00000000jb21"
        readings.append(JobReading(job_id, f"job {n}", JobProgress(
            job_id=job_id, progress=100.0, incre_trans_delay=2.0, incre_trans_delay_millis=2042,
            task_mode="FULL_INCR_TRANS", transfer_status="INCRE_TRANSFER_STARTED",
            process_time=1763625600000, remaining_time=0, apply_rows_rate=1200,
            apply_bytes_rate=2_000_000, raw={"job_id": job_id, "progress": "100"}),
            comparisons=[CompareReading(f"{n:08d}-1111-4000-8000-000000000001",
                                        CompareProgress(CompareFullInfo(100.0, "0.00B/s", 0.0, 0),
                                                        CompareIncreInfo(2.5, "1KB/s", 1024.0, 3,
                                                                         "lp:1", 0)))]))
    return Snapshot(taken_at=datetime.now(timezone.utc), jobs=readings)


def measure(url: str, backend: str, jobs: int) -> dict[str, object]:
    from drs_report.store import Store

    store = Store.open(url, in_functiongraph=False)
    store.upgrade()
    data = snapshot(jobs)
    run_id = store.begin_run(trigger="bench", started_at=data.taken_at)
    started = time.perf_counter()
    store.save_snapshot(run_id, data)
    seconds = time.perf_counter() - started
    store.close()
    rows = jobs * 2  # a job snapshot and a comparison snapshot each
    return {"benchmark": "store_bulk", "backend": backend, "job_snapshots": jobs,
            "rows": rows, "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds)}


def postgres_database() -> tuple[str, str] | None:
    import os

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    admin = os.environ.get("DRS_REPORT_TEST_POSTGRES_URL",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    name = f"drs_report_bench_{uuid.uuid4().hex[:8]}"
    try:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
    except (SQLAlchemyError, ImportError) as e:
        emit({"benchmark": "store_bulk", "backend": "postgresql",
              "skipped": f"PostgreSQL not reachable ({type(e).__name__})"})
        return None
    return admin, make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop(admin: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    jobs = 200 if args.smoke else args.jobs
    with tempfile.TemporaryDirectory() as tmp:
        emit(measure(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", jobs))
    pg = postgres_database()
    if pg is not None:
        admin, url = pg
        try:
            emit(measure(url, "postgresql", jobs))
        finally:
            drop(admin, url)


if __name__ == "__main__":
    main()
