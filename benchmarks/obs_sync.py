"""Size and sync time of the SQLite history kept in OBS (`store.sync`), by fleet size.

    python benchmarks/obs_sync.py [--jobs 100,1000,5000] [--days 90] [--smoke]
    python benchmarks/obs_sync.py --cold-run [--cold-jobs 100]

For each fleet (one comparison per job) it writes `--days` of history at one run an hour
through the store itself, and lets the store's own downsampling decide what stays: the
readings a downsampled file can keep (every hour of the last 8 days, two a day before that
to 31 days, two a week beyond; a rendered report for each) are written in bulk and
downsampled once, then the last 24 hours are replayed run by run as the pipeline stores
them (readings, reports, prune, downsample), so the file carries a day's churn. Then,
against the OBS emulator in a process of its own at 100 MB/s and 20 ms per request, the
store's own sync code (store/sync.py) runs as a fresh instance would: the lease taken, the
file fetched (GET, inflated as it arrives), the lease confirmed, a run begun, the file
written back (checkpoint, HEAD, gzip, PUT).

One JSON line per fleet: sqlite_mb (the working copy), object_mb (the object in OBS),
fetch_s, write_back_s, sync_s (the two), lease_s (taking the lease: GET + PUT),
settle_wait_s (the part of the 0.6 s settle that fetching the file did not cover; in a run,
fetching DRS covers more of it), downsample_s (what each run's downsampling cost).

`--cold-run`: a fresh function instance's first invocation on the synced store, as
FunctionGraph starts one: a new interpreter imports index and runs one whole cycle of N jobs
(one comparison each; the DRS emulator in a process of its own, 20 ms per request) whose
history is in OBS (the emulator as above, holding the previous instance's file). One JSON
line: invocation_s (the new process, start to end), and the run's own lease_s, fetch_s,
settle_wait_s, write_back_s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import AK, FUNCTION_DIR, PROJECT_ID, SK, emit, served_by

_OBS_SERVER = """
import sys
sys.path.insert(0, {function_dir!r})
from drs_report.emulator.obs import ObsEmulator, ObsFaults
obs = ObsEmulator(ak={ak!r}, sk={sk!r}, buckets=["bench"],
                  faults=ObsFaults(latency_ms={latency_ms}, bandwidth_mbps={mbps})).start()
print(obs.url, flush=True)
sys.stdin.read()
"""
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def candidate_run_times(now: datetime, days: int) -> list[datetime]:
    """Runs whose readings the downsampled file may keep, oldest first (a superset: the
    store's downsampling chooses). Hourly for 8 days; twice a day to 31; twice a week."""
    times = set()
    for hours_ago in range(days * 24, -1, -1):
        at = now - timedelta(hours=hours_ago)
        age = now - at
        if age <= timedelta(days=8) or (age <= timedelta(days=32) and at.hour in (11, 23)) \
                or (at.weekday() in (2, 6) and at.hour == 23):
            times.add(at)
    return sorted(times)


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
    readings = fleet(jobs)
    rendered = render_all(analyse(Snapshot(NOW, readings), {}, None, settings, now=NOW),
                          settings)
    store = Store.open(f"sqlite:///{path}", in_functiongraph=False)
    store.keeps_raw_answers = False  # as synced_store opens it
    store.upgrade()
    started = time.perf_counter()
    times = candidate_run_times(NOW, days)
    replayed = [t for t in times if NOW - t < timedelta(hours=24)]

    def one_run(at: datetime) -> int:
        run_id = store.begin_run(trigger="timer", started_at=at)
        store.save_snapshot(run_id, Snapshot(at, readings))
        store.save_reports(run_id, rendered)
        with store.engine.begin() as conn:  # the report as made when its run ran
            from sqlalchemy import text

            conn.execute(text("UPDATE reports SET created_at = :at WHERE run_id = :r"),
                         {"at": at.strftime("%Y-%m-%d %H:%M:%S.%f"), "r": run_id})
        return run_id

    for at in times[:len(times) - len(replayed)]:
        one_run(at)
    store.downsample(now=replayed[0] - timedelta(hours=1), trend_hours=trend_hours)
    costs = []
    for at in replayed:  # as the pipeline does after each run
        run_id = one_run(at)
        store.prune(retention_days=days, report_retention_days=30, batch_size=5000, now=at,
                    run_id=run_id)
        began = time.perf_counter()
        store.downsample(now=at, trend_hours=trend_hours, run_id=run_id)
        costs.append(time.perf_counter() - began)
    with store.engine.connect() as conn:
        from sqlalchemy import text

        kept = conn.execute(text("SELECT COUNT(*) FROM job_snapshots")).scalar_one()
    store.close()
    checkpoint(path)
    return {"runs_written": len(times), "readings_kept_per_job": round(kept / jobs, 1),
            "generate_s": round(time.perf_counter() - started, 1),
            "report_json_kb": round(len(rendered["json"]) / 1024),
            "downsample_s": round(statistics.median(costs), 3)}


def measure(jobs: int, days: int, url: str, tmp: Path) -> dict[str, Any]:
    import shutil

    from drs_report.config import parse_settings
    from drs_report.obs.client import ObsClient
    from drs_report.secrets import Credentials
    from drs_report.store.sync import OBJECT_TYPE, pack_file, synced_store

    path = tmp / f"history-{jobs}.db"
    built = build_history(path, jobs, days)
    credentials = Credentials.of(AK, SK)
    client = ObsClient(url, credentials)
    packed = tmp / "history.db.gz"
    pack_file(path, packed)  # the state OBS holds before the run, as a run left it
    client.put_file("bench", "history.db", packed, content_type=OBJECT_TYPE)
    client.close()
    size = path.stat().st_size
    path.unlink()
    packed.unlink()
    fresh = tmp / f"fresh-{jobs}"  # a fresh instance: nothing in its /tmp
    settings = parse_settings({
        "drs": {"region": "cn-north-4", "project_id": PROJECT_ID},
        "jobs": [{"id": "00000000-2308-4bb5-a6bc-00000000jb21"}],
        "store": {"url": f"sqlite:///{fresh / 'history.db'}", "sync": "obs://bench/history.db",
                  "obs_endpoint": url}}, {})
    with synced_store(settings, credentials, trigger="timer", ttl_seconds=60) as synced:
        synced.confirm()
        run_id = synced.store.begin_run(trigger="timer", started_at=NOW)
        synced.store.finish_run(run_id, outcome="ok", counts={}, errors=[], partial=False,
                                finished_at=NOW)
    stats = synced.stats
    assert stats.fetched == "downloaded" and stats.written_back and not stats.merged
    shutil.rmtree(fresh)
    write_back = stats.write_back_seconds or 0.0
    return {"benchmark": "obs_sync", "jobs": jobs, "comparisons_per_job": 1, "days": days,
            **built, "sqlite_mb": round(size / 1e6, 1),
            "object_mb": round((stats.object_bytes or 0) / 1e6, 1),
            "fetch_s": round(stats.fetch_seconds, 2), "write_back_s": round(write_back, 2),
            "sync_s": round(stats.fetch_seconds + write_back, 2),
            "lease_s": round(stats.lease_seconds, 3),
            "settle_wait_s": round(stats.settle_wait_seconds, 3)}


_INVOKE = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, {function_dir!r})
import index
class Context:
    def getRemainingTimeInMilliSeconds(self): return 300000
    def getSecurityAccessKey(self): return {ak!r}
    def getSecuritySecretKey(self): return {sk!r}
    def getSecurityToken(self): return ""
    def getUserData(self, key): return ""
    def getRequestID(self): return "bench"
summary = index.handler({{}}, Context())
print(json.dumps({{"status": summary["status"], "sync": summary.get("sync"),
                  "handler_s": time.perf_counter() - started}}))
"""


def cold_run(jobs: int, obs_url: str, tmp: Path, drs_latency_ms: float) -> dict[str, Any]:
    import json

    from common import emulator_process, fleet_jobs

    with emulator_process(jobs, 1, latency_ms=drs_latency_ms) as drs_url:
        def instance(name: str) -> tuple[float, dict[str, Any]]:
            directory = tmp / name  # a fresh instance: its own empty /tmp
            directory.mkdir()
            lines = ["[drs]", 'region = "cn-north-4"', f'project_id = "{PROJECT_ID}"',
                     f'endpoint = "{drs_url}"', "max_workers = 16", ""]
            for job in fleet_jobs(jobs):
                lines += ["[[jobs]]", f'id = "{job["id"]}"',
                          f"compare_jobs = {json.dumps(job['compare_jobs'])}"]
            lines += ["", "[store]", f'url = "sqlite:///{directory / "history.db"}"',
                      'sync = "obs://bench/cold/history.db"', f'obs_endpoint = "{obs_url}"',
                      "[report]", f'output_dir = "{directory / "out"}"']
            config = directory / "config.toml"
            config.write_text("\n".join(lines), encoding="utf-8")
            env = {"PATH": "/usr/bin:/bin", "RUNTIME_PROJECT_ID": PROJECT_ID,
                   "DRS_REPORT_CONFIG": str(config), "DRS_REPORT_LOG_LEVEL": "WARNING"}
            code = _INVOKE.format(function_dir=str(FUNCTION_DIR), ak=AK, sk=SK)
            began = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                  capture_output=True, text=True)
            wall = time.perf_counter() - began
            return wall, json.loads(proc.stdout.strip().splitlines()[-1])

        instance("first")  # the history the fresh instance finds in OBS
        wall, result = instance("second")
    sync = result["sync"] or {}
    assert result["status"] == "ok" and sync.get("fetched") == "downloaded", result
    return {"benchmark": "obs_sync_cold_run", "jobs": jobs, "drs_latency_ms": drs_latency_ms,
            "invocation_s": round(wall, 3),
            "handler_s": round(result["handler_s"], 3), "lease_s": sync.get("lease_seconds"),
            "fetch_s": sync.get("fetch_seconds"),
            "settle_wait_s": sync.get("settle_wait_seconds"),
            "write_back_s": sync.get("write_back_seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default="100,1000,5000")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--mbps", type=float, default=100.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--cold-run", action="store_true")
    parser.add_argument("--cold-jobs", type=int, default=100)
    parser.add_argument("--drs-latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    sizes = [20] if args.smoke else [int(n) for n in args.jobs.split(",")]
    days = 40 if args.smoke else args.days
    code = _OBS_SERVER.format(function_dir=str(FUNCTION_DIR), ak=AK, sk=SK,
                              latency_ms=args.latency_ms, mbps=args.mbps)
    with served_by(code) as url, tempfile.TemporaryDirectory() as tmp:
        if args.cold_run:
            emit(cold_run(10 if args.smoke else args.cold_jobs, url, Path(tmp),
                          args.drs_latency_ms))
            return
        for jobs in sizes:
            emit(measure(jobs, days, url, Path(tmp)))


if __name__ == "__main__":
    main()
