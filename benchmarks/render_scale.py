"""Rendering time and sizes for a large fleet, in every format.

    python benchmarks/render_scale.py [--jobs 1000] [--smoke]

Prints one JSON line per fleet size (1,000 jobs, and 500 for the size limits): seconds per
format and bytes per format, with the limits (HTML <= 100 KB, Markdown <= 4,096 bytes).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        emit(measure(50, 5))
        return
    emit(measure(args.jobs, args.jobs // 10))
    emit(measure(500, 50))


if __name__ == "__main__":
    main()
