"""Cold start of the deployed function: the zip `drs-report package` builds, run the way
FunctionGraph runs it.

    python benchmarks/cold_start.py [--jobs 100] [--rss-jobs 1000] [--runs 3]
                                    [--python 3.12 --python 3.10] [--smoke]

For each target Python (its interpreter from PATH or pyenv; a missing one is reported and
skipped) the zip is built with `--config`, unpacked into a code directory made read-only,
and each invocation is a new interpreter (`-I -S -B`: nothing but the stdlib and the zip,
no bytecode written) that imports index and runs one whole cycle against the emulator
(another process), as a fresh instance's first invocation does. The history is kept in OBS
(`store.sync`): the OBS emulator, in a process of its own, holds an SQLite file with its
schema current (so Alembic stays unimported), put there afresh before each invocation; the
instance starts with an empty /tmp, so the measured invocation takes the lease, downloads the
file, and writes it back (see `store_sync_step`). Both emulators require the agency's
AK/SK and security token from the function's context.

Figures (one JSON line per Python; medians of --runs):
  first_invocation_s   process start to the handler's return, N jobs with one comparison each,
                       the OBS sync included (goal on 3.12: <= 1.0 s)
  sync_s               of it, the sync's own lease, download and write-back
  no_bytecode_s        the same zip without its __pycache__ directories: what every cold
                       start cost before the zip carried bytecode
  import_index_ms      `import index` alone
  peak_rss_mb          peak RSS of that invocation (goal: <= 90 MB)
  rss_jobs, peak_rss_large_mb   the same for a larger fleet
"""

from __future__ import annotations

import argparse
import json
import stat
import statistics
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import AK, FUNCTION_DIR, PROJECT_ID, SK, emit, emulator_process, fleet_jobs, served_by

GOAL_SECONDS = {"3.12": 1.0}
GOAL_RSS_MB = 90.0
# The agency's temporary credentials carry a security token; OBS and DRS both require it.
TOKEN = "bench-security-token-drs-report"
BUCKET = "drs-report"
KEY = "drs-report/history.db"

_OBS_SERVER = """
import sys
sys.path.insert(0, {function_dir!r})
from drs_report.emulator.obs import ObsEmulator
obs = ObsEmulator(ak={ak!r}, sk={sk!r}, security_token={token!r}, buckets=[{bucket!r}]).start()
print(obs.url, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
"""

_INVOKE = """
import json, resource, sys, time
started = time.perf_counter()
sys.path.insert(0, {code_dir!r})
import index
imported = time.perf_counter()
user_data = {user_data!r}
class Context:
    def getRemainingTimeInMilliSeconds(self): return 300000
    def getSecurityAccessKey(self): return {ak!r}
    def getSecuritySecretKey(self): return {sk!r}
    def getSecurityToken(self): return {token!r}
    def getUserData(self, key): return user_data.get(key, "")
    def getRequestID(self): return "bench"
summary = index.handler({{"trigger_type": "TIMER", "user_event": ""}}, Context())
done = time.perf_counter()
print(json.dumps({{"status": summary["status"], "error": summary.get("error"),
                  "jobs": summary.get("jobs"), "sync": summary.get("sync"),
                  "import_ms": (imported - started) * 1000,
                  "handler_s": done - imported, "alembic": "alembic" in sys.modules,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def function_config(jobs: int) -> str:
    """The function's config.toml: the fleet literal, the machine-specific parts ${NAME}s."""
    lines = ["[drs]", 'region = "cn-north-4"', 'endpoint = "${DRS_ENDPOINT}"',
             "max_workers = 16", ""]
    for job in fleet_jobs(jobs):
        lines += ["[[jobs]]", f'id = "{job["id"]}"',
                  f"compare_jobs = {json.dumps(job['compare_jobs'])}"]
    # [store] comes as DRS_REPORT_STORE_* from the user data (store_sync_step).
    lines += ["", "[report]", 'output_dir = "${REPORT_DIR}"', ""]
    return "\n".join(lines)


def build_zip(python: str, jobs: int, workdir: Path) -> Path:
    output = workdir / f"drs-report-py{python}-{jobs}.zip"
    if output.exists():  # one build per Python and fleet size
        return output
    from drs_report.packaging import build_package

    config = workdir / f"config-{jobs}.toml"
    config.write_text(function_config(jobs), encoding="utf-8")
    build_package(output=output, python=python, config=config, out=lambda _line: None)
    return output


def read_only_code_dir(zip_path: Path, target: Path, *, bytecode: bool = True) -> Path:
    """The zip unpacked as FunctionGraph's code directory: nothing in it can be written."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            if bytecode or "__pycache__/" not in info.filename:
                archive.extract(info, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return target


def current_schema_store(path: Path) -> Path:
    """The object OBS holds once the first run has created it: an SQLite history with the
    schema at the newest migration, gzip-compressed as the synced store writes it."""
    from drs_report.store import Store
    from drs_report.store.sync import checkpoint, pack_file

    database = path.with_suffix(".db")
    store = Store.open(f"sqlite:///{database}")
    try:
        store.upgrade()
    finally:
        store.close()
    checkpoint(database)
    pack_file(database, path)
    return path


@contextmanager
def obs_process() -> Iterator[str]:
    """The OBS emulator in its own process (its CPU not counted as the function's)."""
    code = _OBS_SERVER.format(function_dir=str(FUNCTION_DIR), ak=AK, sk=SK, token=TOKEN,
                              bucket=BUCKET)
    with served_by(code) as url:
        yield url


def store_sync_step(seed: Path, instance_tmp: Path, obs_url: str) -> dict[str, str]:
    """What the instance's store starts from, as the function's user data sees it.

    The seed object is put into the OBS emulator afresh (and any lease left behind removed),
    so every invocation starts from the same history; the instance's /tmp holds no working
    copy, so the invocation fetches the object (lease, GET, inflate) and writes it back
    (checkpoint, HEAD, gzip, PUT) as a fresh FunctionGraph instance does."""
    from drs_report.obs.client import ObsClient
    from drs_report.secrets import Credentials
    from drs_report.store.sync import OBJECT_TYPE

    client = ObsClient(obs_url, Credentials.of(AK, SK, TOKEN))
    try:
        client.delete(BUCKET, f"{KEY}.lease")
        client.put_file(BUCKET, KEY, seed, content_type=OBJECT_TYPE)
    finally:
        client.close()
    return {"DRS_REPORT_STORE_URL": f"sqlite:///{instance_tmp / 'history.db'}",
            "DRS_REPORT_STORE_SYNC": f"obs://{BUCKET}/{KEY}",
            "DRS_REPORT_STORE_OBS_ENDPOINT": obs_url}


def invoke(interpreter: Path, code_dir: Path, url: str, obs_url: str,
           seed: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="drs-report-instance-") as tmp:
        instance_tmp = Path(tmp)
        user_data = {"DRS_ENDPOINT": url, "REPORT_DIR": str(instance_tmp / "out"),
                     **store_sync_step(seed, instance_tmp, obs_url)}
        code = _INVOKE.format(code_dir=str(code_dir), user_data=user_data, ak=AK, sk=SK,
                              token=TOKEN)
        env = {"PATH": "/usr/bin:/bin", "RUNTIME_PROJECT_ID": PROJECT_ID,
               "DRS_REPORT_LOG_LEVEL": "WARNING"}
        started = time.perf_counter()
        proc = subprocess.run([str(interpreter), "-I", "-S", "-B", "-c", code], env=env,
                              cwd=instance_tmp, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"invocation failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["status"] != "ok":
        raise SystemExit(f"invocation returned {result['status']}: {result['error']}")
    sync = result.get("sync") or {}
    if sync.get("fetched") != "downloaded" or not sync.get("written_back"):
        raise SystemExit(f"the invocation did not download and write back the store: {sync}")
    result["process_s"] = wall
    result["sync_s"] = (sync.get("lease_seconds") or 0) + (sync.get("fetch_seconds") or 0) \
        + (sync.get("write_back_seconds") or 0)
    return result


def measure(python: str, interpreter: Path, jobs: int, runs: int, workdir: Path,
            seed: Path, obs_url: str, *, bytecode: bool = True) -> dict[str, float]:
    zip_path = build_zip(python, jobs, workdir)
    code_dir = read_only_code_dir(zip_path, workdir / f"code-{python}-{jobs}-{bytecode}",
                                  bytecode=bytecode)
    with emulator_process(jobs, 1, security_token=TOKEN) as url:
        results = [invoke(interpreter, code_dir, url, obs_url, seed) for _ in range(runs)]
    if any(r["alembic"] for r in results):
        raise SystemExit("alembic was imported although the schema was current")
    return {"process_s": statistics.median(r["process_s"] for r in results),
            "import_ms": statistics.median(r["import_ms"] for r in results),
            "sync_s": statistics.median(r["sync_s"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "zip_mb": zip_path.stat().st_size / 1024 / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rss-jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", action="append", choices=["3.12", "3.10"])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    # Smoke: one small zip per Python, so CI keeps the script working in well under a minute.
    jobs, rss_jobs, runs = (10, 10, 1) if args.smoke else (args.jobs, args.rss_jobs, args.runs)
    from drs_report.packaging import find_interpreter

    with tempfile.TemporaryDirectory(prefix="drs-report-cold-") as tmp, \
            obs_process() as obs_url:
        workdir = Path(tmp)
        seed = current_schema_store(workdir / "seed.db.gz")
        for python in args.python or ["3.12", "3.10"]:
            interpreter = find_interpreter(python)
            if interpreter is None:
                emit({"benchmark": "cold_start", "python": python,
                      "skipped": f"no Python {python} interpreter (python{python} or pyenv)"})
                continue
            cold = measure(python, interpreter, jobs, runs, workdir, seed, obs_url)
            bare = measure(python, interpreter, jobs, runs, workdir, seed, obs_url,
                           bytecode=False)
            large = measure(python, interpreter, rss_jobs, 1, workdir, seed, obs_url)
            goal = GOAL_SECONDS.get(python)
            emit({"benchmark": "cold_start", "python": python, "jobs": jobs,
                  "first_invocation_s": round(cold["process_s"], 3),
                  "goal_s": goal,
                  "within_goal": None if goal is None else cold["process_s"] <= goal,
                  "no_bytecode_s": round(bare["process_s"], 3),
                  "import_index_ms": round(cold["import_ms"], 1),
                  "peak_rss_mb": round(cold["peak_rss_mb"], 1), "goal_rss_mb": GOAL_RSS_MB,
                  "rss_jobs": rss_jobs, "peak_rss_large_mb": round(large["peak_rss_mb"], 1),
                  "zip_mb": round(cold["zip_mb"], 1), "runs": runs,
                  "sync_s": round(cold["sync_s"], 3),
                  "store_sync": "fetched from the OBS emulator and written back"})


if __name__ == "__main__":
    main()
