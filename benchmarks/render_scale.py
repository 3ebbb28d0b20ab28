"""Rendering time and sizes for a large fleet, in every format.

    python benchmarks/render_scale.py [--jobs 1000] [--smoke]

Prints one JSON line per fleet size (1,000 jobs, and 500 for the size limits): seconds per
format and bytes per format, with the limits (HTML <= 100 KB, Markdown <= 4,096 bytes).
Then one line for a region-wide failure (every job failed, each with a 4 KB stack trace,
one with a 1 MB error_msg): the time of render_all and of each chat's alert folded to its
limit, the bytes, and how many failed jobs each alert names before "and N more".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import emit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure(jobs: int, problems: int) -> dict[str, object]:
    from drs_report.analysis import analyse
    from drs_report.render import HTML_MAX_BYTES, MARKDOWN_MAX_BYTES, render_all, render_chat
    from tests.report_fixtures import NOW, large_fleet

    snapshot, settings = large_fleet(jobs, problems)
    started = time.perf_counter()
    report = analyse(snapshot, {}, None, settings, now=NOW)
    analysed = time.perf_counter()
    rendered = render_all(report, settings)
    done = time.perf_counter()
    chat = render_chat(report, dialect="wecom", max_bytes=4096)
    sizes = {fmt: len(text.encode()) for fmt, text in rendered.items()}
    return {"benchmark": "render_scale", "jobs": jobs, "problems": problems,
            "analyse_s": round(analysed - started, 3), "render_all_s": round(done - analysed, 3),
            "bytes": sizes, "wecom_bytes": len(chat.encode()),
            "html_within_limit": sizes["html"] <= HTML_MAX_BYTES,
            "md_within_limit": sizes["md"] <= MARKDOWN_MAX_BYTES,
            "html_summarised": "html_full" in rendered}


def measure_failure(jobs: int) -> dict[str, object]:
    import re

    from drs_report.analysis import analyse, diff_problems
    from drs_report.config import parse_settings
    from drs_report.models import JobProgress, JobReading, Snapshot
    from drs_report.render import render_all, render_chat
    from tests.report_fixtures import NOW, jid

    trace = "java.sql.SQLException: binlog purged\n" + "".join(
        f"\tat com.huawei.drs.Applier.apply{n}(Applier.java:{n})\n" for n in range(100))
    readings = [JobReading(jid(n), f"failed job {n:05d}", JobProgress(
        job_id=jid(n), progress=100.0, transfer_status="INCRE_TRANSFER_FAILED",
        error_code="DRS.M05004", error_msg="x" * (1 << 20) if n == 0 else trace))
        for n in range(jobs)]
    settings = parse_settings({"drs": {"region": "cn-north-4",
                                       "project_id": "5237e10fe9aa4ad5b16b6a5245248314"},
                               "jobs": [{"id": r.job_id} for r in readings]}, {})
    report = analyse(Snapshot(taken_at=NOW, jobs=readings), {}, None, settings, now=NOW)
    changes = diff_problems({}, report)
    started = time.perf_counter()
    rendered = render_all(report, settings)
    result: dict[str, object] = {
        "benchmark": "render_failure", "failed_jobs": jobs,
        "render_all_s": round(time.perf_counter() - started, 3),
        "bytes": {fmt: len(text.encode()) for fmt, text in rendered.items()}}
    for dialect, limit in (("slack", 3000), ("wecom", 4096), ("dingtalk", 18000)):
        started = time.perf_counter()
        text = render_chat(report, dialect=dialect, max_bytes=limit, changes=changes)
        result[f"{dialect}_alert"] = {
            "s": round(time.perf_counter() - started, 3), "bytes": len(text.encode()),
            "named": len(set(re.findall(r"failed job \d{5}", text)))}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        emit(measure(50, 5))
        emit(measure_failure(20))
        return
    emit(measure(args.jobs, args.jobs // 10))
    emit(measure(500, 50))
    emit(measure_failure(200))


if __name__ == "__main__":
    main()
