"""Fetch time against the round-trip floor, and the official SDK over the same work.

    python benchmarks/fetch_scaling.py [--jobs 500] [--latency-ms 50] [--concurrency 16]
        [--sweep] [--throttle R] [--memory] [--skip-sdk-sequential] [--smoke]
        [--targets N]

`--targets N` (default jobs 1,000 each): N targets, each its own emulator process with the
latency, read side by side as one run; prints wall_s, slowest_alone_s (the slowest target
read on its own in the same run), ratio (goal <= 1.1) and peak_rss_mb.

Prints one JSON line per measurement: jobs, compare_tasks, requests, latency_ms,
concurrency, wall_s, floor_s (= ceil(requests / concurrency) * latency), ratio (wall / floor),
cpu_ms_per_request, sdk_sequential_s, sdk_pool_s, sdk_cpu_ms_per_request. The emulator runs
in its own process with the latency injected, so the figures describe the client.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import (
    AK,
    PROJECT_ID,
    SK,
    emit,
    emulator_process,
    fleet_jobs,
    peak_rss_mb,
    settings_for,
)


def ours(url: str, jobs: list[dict[str, Any]], concurrency: int) -> dict[str, float]:
    from drs_report.client import DrsClient
    from drs_report.secrets import Credentials

    settings = settings_for(url, jobs, max_workers=concurrency)
    with DrsClient(settings.drs, Credentials.of(AK, SK)) as client:
        cpu, wall = time.process_time(), time.perf_counter()
        snapshot = client.fetch(settings.jobs, settings.discovery)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    failed = sum(1 for j in snapshot.jobs if j.error) + sum(
        1 for j in snapshot.jobs for c in j.comparisons if c.error)
    return {"wall_s": wall, "cpu_s": cpu, "requests": snapshot.requests, "failed": failed}


def sdk_calls(url: str, jobs: list[dict[str, Any]]) -> list[Any]:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkdrs.v3 import BatchListProgressesRequest, BatchQueryProgressReq
    from huaweicloudsdkdrs.v3 import DrsClient as V3
    from huaweicloudsdkdrs.v5 import DrsClient as V5
    from huaweicloudsdkdrs.v5 import ShowCompareProgressRequest

    creds = BasicCredentials(AK, SK, PROJECT_ID)
    v3 = V3.new_builder().with_credentials(creds).with_endpoints([url]).build()
    v5 = V5.new_builder().with_credentials(creds).with_endpoints([url]).build()
    calls: list[Any] = []
    ids = [j["id"] for j in jobs]
    for i in range(0, len(ids), 100):
        body = BatchQueryProgressReq(jobs=ids[i:i + 100])
        calls.append(lambda b=body: v3.batch_list_progresses(
            BatchListProgressesRequest(x_language="en-us", body=b)))
    for job in jobs:
        for compare in job["compare_jobs"]:
            calls.append(lambda j=job["id"], c=compare: v5.show_compare_progress(
                ShowCompareProgressRequest(job_id=j, compare_job_id=c)))
    return calls


def sdk(url: str, jobs: list[dict[str, Any]], concurrency: int | None) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calls = sdk_calls(url, jobs)
        cpu, wall = time.process_time(), time.perf_counter()
        if concurrency is None:
            for call in calls:
                call()
        else:
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda c: c(), calls))
        return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                "requests": len(calls)}


def measure(n: int, latency_ms: float, concurrency: int, *, sdk_sequential: bool,
            with_sdk: bool = True) -> dict[str, Any]:
    jobs = fleet_jobs(n)
    with emulator_process(n, 1, latency_ms=latency_ms) as url:
        ours(url, jobs[:5], concurrency)  # warm up: imports, connections
        result = ours(url, jobs, concurrency)
        row: dict[str, Any] = {"jobs": n, "compare_tasks": n, "requests": result["requests"],
                               "latency_ms": latency_ms, "concurrency": concurrency}
        floor = math.ceil(result["requests"] / concurrency) * latency_ms / 1000.0
        row.update(wall_s=round(result["wall_s"], 3), floor_s=round(floor, 3),
                   ratio=round(result["wall_s"] / floor, 3) if floor else None,
                   cpu_ms_per_request=round(result["cpu_s"] * 1000 / result["requests"], 3),
                   failed=result["failed"])
        if with_sdk:
            pooled = sdk(url, jobs, concurrency)
            row["sdk_pool_s"] = round(pooled["wall_s"], 3)
            row["sdk_cpu_ms_per_request"] = round(pooled["cpu_s"] * 1000 / pooled["requests"],
                                                  3)
            row["sdk_sequential_s"] = (round(sdk(url, jobs, None)["wall_s"], 3)
                                       if sdk_sequential else None)
    return row


def throttled(n: int, rate: float, concurrency: int) -> dict[str, Any]:
    jobs = fleet_jobs(n)
    with emulator_process(n, 1, rate_limit=rate) as url:
        result = ours(url, jobs, concurrency)
    work = math.ceil(n / 100) + n  # the requests the fetch needs, retries not counted
    floor = work / rate
    # The emulator's bucket starts full, so the first second's worth of requests is free:
    # the stricter floor leaves it out, and the ratio to it shows how close we really are.
    strict_floor = max(work - rate, 0) / rate
    return {"jobs": n, "rate_limit": rate, "requests": work,
            "requests_sent": result["requests"],
            "wall_s": round(result["wall_s"], 3), "floor_s": round(floor, 3),
            "throttled_ratio": round(result["wall_s"] / floor, 3),
            "floor_after_burst_s": round(strict_floor, 3),
            "ratio_after_burst": (round(result["wall_s"] / strict_floor, 3)
                                  if strict_floor else None),
            "failed": result["failed"]}


def _project(n: int) -> str:
    return f"{n:x}".rjust(2, "0") * 16


def _children_cpu_s() -> float:
    """CPU seconds used so far by this process's children (the emulators), from /proc."""
    import os

    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            total += int(fields[11]) + int(fields[12])
    return total / tick


def many_targets(targets: int, n: int, latency_ms: float, concurrency: int) -> dict[str, Any]:
    """N targets of n jobs (one comparison each): all at once against the slowest alone."""
    from contextlib import ExitStack

    from drs_report import fleet
    from drs_report.config import parse_settings
    from drs_report.secrets import Credentials

    credentials = Credentials.of(AK, SK)
    with ExitStack() as stack:
        urls = [stack.enter_context(emulator_process(n, 1, latency_ms=latency_ms,
                                                     project_id=_project(i + 1), seed=i + 1))
                for i in range(targets)]
        tables = [{"name": f"target-{i + 1}", "region": "cn-north-4",
                   "project_id": _project(i + 1), "endpoint": url,
                   "jobs": fleet_jobs(n, seed=i + 1)} for i, url in enumerate(urls)]
        settings = parse_settings({"drs": {"max_workers": concurrency, "targets": tables}}, {})
        plans = fleet.plan(settings)
        for plan in plans:  # warm up: imports, connections
            fleet.fetch_all(settings, credentials, [(plan[0], plan[1][:5], plan[2])])
        alone = []
        for plan in plans:
            wall = time.perf_counter()
            fleet.fetch_all(settings, credentials, [plan])
            alone.append(time.perf_counter() - wall)
        served = _children_cpu_s()
        cpu, wall = time.process_time(), time.perf_counter()
        snapshot = fleet.fetch_all(settings, credentials, plans)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        served = _children_cpu_s() - served
    failed = sum(1 for j in snapshot.jobs if j.error) + sum(
        1 for j in snapshot.jobs for c in j.comparisons if c.error)
    slowest = max(alone)
    return {"targets": targets, "jobs_per_target": n, "compare_tasks": targets * n,
            "requests": snapshot.requests, "latency_ms": latency_ms,
            "concurrency_per_target": concurrency, "wall_s": round(wall, 3),
            "slowest_alone_s": round(slowest, 3),
            "alone_s": [round(a, 3) for a in alone], "ratio": round(wall / slowest, 3),
            "cpu_ms_per_request": round(cpu * 1000 / max(snapshot.requests, 1), 3),
            # Client and emulators share this machine's cores: CPU they needed in the run.
            "client_cpu_s": round(cpu, 3), "emulators_cpu_s": round(served, 3),
            "cores": os.cpu_count(), "failed": failed,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


_MEMORY = """
import json, resource, sys
sys.path.insert(0, {here!r})
from common import AK, SK, emulator_process, fleet_jobs, settings_for
from drs_report.client import DrsClient
from drs_report.secrets import Credentials
jobs = fleet_jobs({n})
with emulator_process({n}, 1) as url:
    settings = settings_for(url, jobs, max_workers=16)
    with DrsClient(settings.drs, Credentials.of(AK, SK)) as client:
        snapshot = client.fetch(settings.jobs, settings.discovery)
print(json.dumps({{"jobs": {n}, "compare_tasks": {n}, "requests": snapshot.requests,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                       / 1024, 1)}}))
"""


def memory(n: int) -> None:
    here = str(Path(__file__).resolve().parent)
    proc = subprocess.run([sys.executable, "-c", _MEMORY.format(here=here, n=n)],
                          capture_output=True, text=True, check=True)
    print(proc.stdout.strip().splitlines()[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--throttle", type=float, default=None, metavar="R")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--skip-sdk-sequential", action="store_true")
    parser.add_argument("--targets", type=int, default=None, metavar="N",
                        help="N targets side by side (--jobs each, default 1000)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to keep it working")
    args = parser.parse_args()
    if args.smoke:
        emit(measure(20, 5.0, 4, sdk_sequential=True))
        emit(throttled(20, 8.0, 4))  # 21 requests, 8 free: about 1.6 s of throttling
        memory(50)
        emit(many_targets(2, 20, 5.0, 4))
        return
    if args.targets:
        jobs = args.jobs if "--jobs" in sys.argv else 1000
        emit(many_targets(args.targets, jobs, args.latency_ms, args.concurrency))
        return
    if args.sweep:
        for n in (10, 50, 100, 500, 1000, 2000, 5000):
            emit(measure(n, args.latency_ms, args.concurrency, sdk_sequential=False,
                         with_sdk=False))
        return
    if args.throttle:
        emit(throttled(args.jobs, args.throttle, args.concurrency))
        return
    if args.memory:
        memory(5000)
        return
    emit(measure(args.jobs, args.latency_ms, args.concurrency,
                 sdk_sequential=not args.skip_sdk_sequential))


if __name__ == "__main__":
    main()
