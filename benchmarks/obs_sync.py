"""Size and sync time of the SQLite history kept in OBS (`store.sync`), by fleet size.

    python benchmarks/obs_sync.py [--jobs 100,1000,5000] [--days 90] [--smoke]

For each fleet (one comparison per job) it writes 90 days of history at one run an hour,
as the synced store keeps it after downsampling (every reading within report.trend_hours,
with raw answers; hourly to 7 days; daily beyond; reports of the trend window's runs and one
run's a day beyond), rows written in bulk. Then, against the OBS emulator in a process of its
own at 100 MB/s and 20 ms per request, a fresh instance's fetch (GET) and the write-back (HEAD
+ PUT) are timed. One JSON line per fleet: sqlite_mb, fetch_s, write_back_s, sync_s, and
lease_s (the lease's fixed settle wait, paid once a run, beside the sync).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import AK, FUNCTION_DIR, PROJECT_ID, SK, emit

_OBS_SERVER = """
import sys
sys.path.insert(0, {function_dir!r})
from drs_report.emulator.obs import ObsEmulator, ObsFaults
obs = ObsEmulator(ak={ak!r}, sk={sk!r}, buckets=["bench"],
                  faults=ObsFaults(latency_ms={latency_ms}, bandwidth_mbps={mbps})).start()
print(obs.url, flush=True)
sys.stdin.read()
"""


def kept_run_times(now: datetime, days: int, trend_hours: float) -> list[datetime]:
    """The run times whose readings survive downsampling, oldest first (one run an hour)."""
    kept = []
    for hours_ago in range(days * 24, -1, -1):
        at = now - timedelta(hours=hours_ago)
        age = now - at
        if age <= timedelta(hours=trend_hours) or age <= timedelta(days=7):
            kept.append(at)  # full resolution / hourly: at one run an hour, every run
        elif at.hour == 23:
            kept.append(at)  # daily: the day's last reading
    return kept


def fleet(jobs: int):  # type: ignore[no-untyped-def]
    from drs_report.models import (
        CompareFullInfo,
        CompareGlobalInfo,
        CompareIncreInfo,
        CompareProgress,
        CompareReading,
        JobProgress,
        JobReading,
        ProgressInfo,
    )

    readings = []
    for n in range(jobs):
        job_id = f"{n:08x}-2308-4bb5-a6bc-{n:08x}jb21"
        raw = {"job_id": job_id, "progress": "100", "incre_trans_delay": "1",
               "incre_trans_delay_millis": "1000", "task_mode": "FULL_INCR_TRANS",
               "transfer_status": "INCRE_TRANSFER_STARTED", "process_time": "1796110612241",
               "remaining_time": "0", "progress_map": {"data": {"completed": "100%",
                                                                "remaining_time": "0"}}}
        readings.append(JobReading(job_id, f"orders {n}: MySQL -> GaussDB", JobProgress(
            job_id=job_id, progress=100.0, incre_trans_delay=1.0 + n % 7,
            incre_trans_delay_millis=1000 + n % 7000, task_mode="FULL_INCR_TRANS",
            transfer_status="INCRE_TRANSFER_STARTED", process_time=1796110612241 + n,
            remaining_time=0, progress_map={"data": ProgressInfo(100.0, "0")},
            apply_rows_rate=1200 + n, apply_bytes_rate=2_400_000, raw=raw),
            comparisons=[CompareReading(f"{n:08x}-4b9e-4b06-a928-{n:012x}", CompareProgress(
                CompareFullInfo(100.0, "0.00B/s", 0.0, 0),
                CompareIncreInfo(1.5, "1.20KB/s", 1228.8, 35, f"951de1d2-61ee:{n}", 0),
                CompareGlobalInfo("0.00B/s", 0.0),
                raw={"full_info": {"progress": 100.0}, "incre_info": {"delay": 1.5}}))]))
    return readings


def build_history(path: Path, jobs: int, days: int) -> dict[str, object]:
    from drs_report.analysis import analyse
    from drs_report.config import parse_settings
    from drs_report.models import Snapshot
    from drs_report.render import render_all
    from drs_report.store import Store
    from drs_report.store.sync import checkpoint

    settings = parse_settings({"drs": {"region": "cn-north-4", "project_id": PROJECT_ID},
                               "jobs": [{"id": "00000000-2308-4bb5-a6bc-00000000jb21"}]}, {})
    trend_hours = settings.report.trend_hours
    now = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
    readings = fleet(jobs)
    rendered = render_all(analyse(Snapshot(now, readings), {}, None, settings, now=now),
                          settings)
    store = Store.open(f"sqlite:///{path}", in_functiongraph=False)
    store.upgrade()
    started = time.perf_counter()
    times = kept_run_times(now, days, trend_hours)
    raws = [(r.progress.raw if r.progress else {},
             [c.progress.raw if c.progress else {} for c in r.comparisons]) for r in readings]
    for at in times:
        recent = now - at <= timedelta(hours=trend_hours)
        for r, (job_raw, compare_raws) in zip(readings, raws, strict=True):
            # Raw answers only within the trend window.
            assert r.progress is not None
            r.progress.raw = job_raw if recent else {}
            for c, compare_raw in zip(r.comparisons, compare_raws, strict=True):
                assert c.progress is not None
                c.progress.raw = compare_raw if recent else {}
        run_id = store.begin_run(trigger="timer", started_at=at)
        store.save_snapshot(run_id, Snapshot(at, readings))
        if recent or (at.hour == 23 and now - at <= timedelta(days=30)):
            store.save_reports(run_id, rendered)
    store.close()
    checkpoint(path)
    return {"runs_kept": len(times), "generate_s": round(time.perf_counter() - started, 1),
            "report_json_kb": round(len(rendered["json"]) / 1024)}


def measure(jobs: int, days: int, url: str, tmp: Path) -> dict[str, object]:
    from drs_report.obs.client import ObsClient
    from drs_report.secrets import Credentials
    from drs_report.store import lease

    path = tmp / f"history-{jobs}.db"
    built = build_history(path, jobs, days)
    client = ObsClient(url, Credentials.of(AK, SK))
    client.put_file("bench", "history.db", path)  # the state OBS holds before the run
    fresh = tmp / f"fresh-{jobs}.db"
    started = time.perf_counter()
    info = client.get_to_file("bench", "history.db", fresh)
    fetch = time.perf_counter() - started
    assert info is not None
    started = time.perf_counter()
    head = client.head("bench", "history.db")
    assert head is not None and head.etag == info.etag
    client.put_file("bench", "history.db", fresh)
    write_back = time.perf_counter() - started
    client.close()
    size = path.stat().st_size
    path.unlink()
    fresh.unlink()
    return {"benchmark": "obs_sync", "jobs": jobs, "comparisons_per_job": 1, "days": days,
            **built, "sqlite_mb": round(size / 1e6, 1), "fetch_s": round(fetch, 2),
            "write_back_s": round(write_back, 2), "sync_s": round(fetch + write_back, 2),
            "lease_s": lease.SETTLE_SECONDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default="100,1000,5000")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--mbps", type=float, default=100.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    sizes = [20] if args.smoke else [int(n) for n in args.jobs.split(",")]
    days = 9 if args.smoke else args.days
    code = _OBS_SERVER.format(function_dir=str(FUNCTION_DIR), ak=AK, sk=SK,
                              latency_ms=args.latency_ms, mbps=args.mbps)
    server = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            for jobs in sizes:
                emit(measure(jobs, days, url, Path(tmp)))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
