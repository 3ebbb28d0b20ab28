"""Run every benchmark and print one table (CI runs it with --smoke to keep them working).

    python benchmarks/run_all.py [--smoke]

Figures vary by machine; compare runs on the same one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["fetch_scaling.py", "store_bulk.py", "render_scale.py", "cold_start.py",
           "obs_sync.py", "chatops_latency.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    failed = 0
    for script in SCRIPTS:
        command = [sys.executable, str(HERE / script)]
        if args.smoke:
            command.append("--smoke")
        elif script == "fetch_scaling.py":
            command.append("--skip-sdk-sequential")
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, cwd=HERE, check=False)
        if proc.returncode != 0:
            failed += 1
            rows.append((script, f"FAILED: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"))
            continue
        for line in proc.stdout.strip().splitlines():
            data = json.loads(line)
            rows.append((script, ", ".join(f"{k}={v}" for k, v in data.items()
                                           if k != "benchmark")))
        rows.append((script, f"(took {time.perf_counter() - started:.1f}s)"))
    width = max(len(name) for name, _ in rows)
    print(f"{'benchmark'.ljust(width)}  figures")
    for name, figures in rows:
        print(f"{name.ljust(width)}  {figures}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
