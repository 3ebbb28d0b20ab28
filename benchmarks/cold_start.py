"""Cold start of the FunctionGraph handler: import time, a whole cold invocation, peak RSS.

    python benchmarks/cold_start.py [--jobs 100] [--rss-jobs 1000] [--smoke]

Each figure comes from a new interpreter, as a new function instance would start:
  import_ms        `import index` (the entry point) alone
  invocation_s     a new process importing index and running one whole cycle: N jobs with
                   one comparison each, the emulator in another process, SQLite history
  peak_rss_mb      the same for a larger fleet (target: well inside the 128 MB tier)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import AK, FUNCTION_DIR, PROJECT_ID, SK, emit, emulator_process, fleet_jobs

_INVOKE = """
import json, resource, sys, time
started = time.perf_counter()
sys.path.insert(0, {function_dir!r})
import index
imported = time.perf_counter()
class Context:
    def getRemainingTimeInMilliSeconds(self): return 300000
    def getSecurityAccessKey(self): return {ak!r}
    def getSecuritySecretKey(self): return {sk!r}
    def getSecurityToken(self): return ""
    def getUserData(self, key): return ""
    def getRequestID(self): return "bench"
summary = index.handler({{}}, Context())
done = time.perf_counter()
print(json.dumps({{"status": summary["status"], "import_ms": (imported - started) * 1000,
                  "handler_s": done - imported,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def write_config(directory: Path, url: str, jobs: int) -> Path:
    lines = ["[drs]", 'region = "cn-north-4"', f'project_id = "{PROJECT_ID}"',
             f'endpoint = "{url}"', "max_workers = 16", ""]
    for job in fleet_jobs(jobs):
        compare = json.dumps(job["compare_jobs"])
        lines += ["[[jobs]]", f'id = "{job["id"]}"', f"compare_jobs = {compare}"]
    lines += ["", "[store]", f'url = "sqlite:///{directory / "history.db"}"',
              "[report]", f'output_dir = "{directory / "out"}"']
    path = directory / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def invoke(jobs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, emulator_process(jobs, 1) as url:
        config = write_config(Path(tmp), url, jobs)
        env = {"PATH": "/usr/bin:/bin", "RUNTIME_PROJECT_ID": PROJECT_ID,
               "DRS_REPORT_CONFIG": str(config), "DRS_REPORT_LOG_LEVEL": "WARNING"}
        code = _INVOKE.format(function_dir=str(FUNCTION_DIR), ak=AK, sk=SK)
        # The first instance creates the schema; measure the second, like every later one.
        subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = wall
    return result


def import_only() -> float:
    code = (f"import sys, time; t = time.perf_counter(); sys.path.insert(0, {str(FUNCTION_DIR)!r});"
            " import index; print((time.perf_counter() - t) * 1000)")
    runs = [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                 text=True).stdout) for _ in range(5)]
    return sorted(runs)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rss-jobs", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    jobs, rss_jobs = (10, 20) if args.smoke else (args.jobs, args.rss_jobs)
    cold = invoke(jobs)
    large = invoke(rss_jobs)
    emit({"benchmark": "cold_start", "import_index_ms": round(import_only(), 1),
          "jobs": jobs, "invocation_s": round(cold["process_s"], 3),
          "handler_s": round(cold["handler_s"], 3),
          "rss_jobs": rss_jobs, "peak_rss_mb": round(large["peak_rss_mb"], 1),
          "status": large["status"]})


if __name__ == "__main__":
    main()
