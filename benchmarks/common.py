"""What the benchmark scripts share: the emulator in a process of its own, credentials."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_DIR = ROOT / "function"
sys.path.insert(0, str(FUNCTION_DIR))

AK = "BENCHAKDRSREPORT00000000"
SK = "bench-sk-drs-report-emulator"
PROJECT_ID = "5237e10fe9aa4ad5b16b6a5245248314"

_SERVER = """
import sys
sys.path.insert(0, {function_dir!r})
from drs_report.emulator import Emulator, Faults, generated_fleet
faults = Faults(latency_ms={latency_ms}, rate_limit={rate_limit}, seed=1)
emulator = Emulator(ak={ak!r}, sk={sk!r}, project_id={project_id!r},
                    security_token={security_token!r},
                    scenario=generated_fleet({jobs}, {comparisons}, seed={seed}),
                    faults=faults).start()
print(emulator.url, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
"""


@contextmanager
def emulator_process(jobs: int, comparisons: int = 1, *, latency_ms: float = 0.0,
                     rate_limit: float | None = None, project_id: str = PROJECT_ID,
                     seed: int = 7, security_token: str | None = None) -> Iterator[str]:
    """The emulator in its own process, so its CPU is not counted as the client's; with
    `security_token`, every request must carry it (as agency credentials do)."""
    code = _SERVER.format(function_dir=str(FUNCTION_DIR), latency_ms=latency_ms,
                          rate_limit=rate_limit, ak=AK, sk=SK, project_id=project_id,
                          security_token=security_token,
                          jobs=jobs, comparisons=comparisons, seed=seed)
    with served_by(code) as url:
        yield url


@contextmanager
def served_by(code: str) -> Iterator[str]:
    """A server in a Python process of its own running `code`, which prints its URL and
    serves until its stdin closes: the URL, for as long as the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def settings_for(url: str, jobs: list[dict[str, Any]], **drs: Any) -> Any:
    from drs_report.config import parse_settings

    return parse_settings({"drs": {"region": "cn-north-4", "project_id": PROJECT_ID,
                                   "endpoint": url, **drs}, "jobs": jobs}, {})


def fleet_jobs(jobs: int, comparisons: int = 1, *, seed: int = 7) -> list[dict[str, Any]]:
    from drs_report.emulator import generated_fleet

    return [{"id": j.id, "compare_jobs": [c.id for c in j.comparisons]}
            for j in generated_fleet(jobs, comparisons, seed=seed).jobs]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def env_with_function() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(FUNCTION_DIR))
