"""Whole cycles through the real CLI: demo, run against the emulator and against a foreign
server that merely speaks the documented API, history on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from drs_report.emulator import Emulator
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_REPORT_",
                                                                      "HUAWEICLOUD_"))}
    base["PYTHONPATH"] = str(FUNCTION_DIR)
    return subprocess.run([sys.executable, "-m", "drs_report", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, cwd=cwd, timeout=timeout,
                          check=False)


CREDENTIALS = {"HUAWEICLOUD_SDK_AK": CANARY_AK, "HUAWEICLOUD_SDK_SK": CANARY_SK,
               "HUAWEICLOUD_SDK_SECURITY_TOKEN": CANARY_TOKEN}


def write_config(path: Path, endpoint: str, jobs: list[dict[str, Any]], store_url: str,
                 extra: str = "") -> Path:
    lines = ["[drs]", 'region = "cn-north-4"',
             'project_id = "5237e10fe9aa4ad5b16b6a5245248314"', f'endpoint = "{endpoint}"',
             "backoff_base = 0.01", ""]
    for job in jobs:
        compare = ", ".join(f'"{c}"' for c in job.get("compare_jobs", []))
        lines += ["[[jobs]]", f'id = "{job["id"]}"', f"compare_jobs = [{compare}]", ""]
    lines += ["[store]", f'url = "{store_url}"', "", "[report]", 'output_dir = "out"', "",
              extra]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_demo_writes_all_four_reports(tmp_path: Path) -> None:
    proc = cli("demo", "--out", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    for name in ("report.html", "report.md", "report.txt", "report.json"):
        path = tmp_path / "demo" / name
        assert path.is_file() and path.stat().st_size > 200
        assert str(path) in proc.stdout
    data = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert data["counts"] == {"CRITICAL": 2, "WARNING": 3, "UNKNOWN": 2, "OK": 3}
    codes = {r["code"] for j in data["jobs"] for r in j["reasons"]}
    assert {"failed", "delay_critical", "delay_warning", "inconsistent_rows",
            "compare_not_found", "missing", "api_error"} <= codes
    assert "Traceback" not in proc.stderr


def test_run_then_history_on_both_backends(emulator: Emulator, tmp_path: Path,
                                           store_url: str) -> None:
    config = write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(),
                          store_url)
    for _ in range(2):
        proc = cli("run", "--config", str(config), env=CREDENTIALS)
        assert proc.returncode == 0, proc.stderr
        emulator.advance(300)
    warehouse = "4e6a8c0b-2d1f-4e3a-8b5c-9d0e1f2ajb21"
    proc = cli("history", "--config", str(config), "--job", warehouse, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    readings = json.loads(proc.stdout)
    assert len(readings) == 2
    assert readings[0]["job_id"] == warehouse
    assert readings[0]["transfer_status"] == "FULL_TRANSFER_STARTED"
    assert readings[0]["progress"] < readings[1]["progress"]  # newest last, progress rose
    assert readings[0]["comparisons"][0]["full_info"]["progress"] is not None
    table = cli("history", "--config", str(config), "--job", warehouse, "--since", "1h")
    assert table.returncode == 0 and "FULL_TRANSFER_STARTED" in table.stdout
    for name in ("report.html", "report.md", "report.txt", "report.json"):
        assert (tmp_path / "out" / name).is_file()
    # A job without readings in the window is an empty answer, not an error.
    unknown = "00000000-0000-4000-8000-000000000000"
    empty = cli("history", "--config", str(config), "--job", unknown)
    assert empty.returncode == 0 and empty.stdout.startswith(f"no readings of {unknown} since ")
    empty_json = cli("history", "--config", str(config), "--job", unknown, "--format", "json")
    assert empty_json.returncode == 0 and json.loads(empty_json.stdout) == []


def test_db_upgrade_command(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "http://127.0.0.1:9", [
        {"id": "9a470239-2308-4bb5-a6bc-1040402fjb21"}], f"sqlite:///{tmp_path / 'h.db'}")
    proc = cli("db", "upgrade", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "schema is up to date" in proc.stdout


def test_run_without_credentials_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "http://127.0.0.1:9", [
        {"id": "9a470239-2308-4bb5-a6bc-1040402fjb21"}], f"sqlite:///{tmp_path / 'h.db'}")
    proc = cli("run", "--config", str(config))
    assert proc.returncode == 2
    assert "HUAWEICLOUD_SDK_AK" in proc.stderr and "Traceback" not in proc.stderr


# -- a server that is not ours, answering with the documentation's own examples -------------

DOC_JOB = "a3d5f4a8-dc97-4581-8071-e4977309jb21"
DOC_COMPARE = "b13b233a-4b9e-4b06-a928-19a0c93f6109"


class _DocExampleHandler(BaseHTTPRequestHandler):
    """Answers exactly the example responses of the API reference, checks no signature."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._json(200, {"results": [{
            "job_id": DOC_JOB, "progress": "0", "incre_trans_delay": "1",
            "task_mode": "FULL_INCR_TRANS", "transfer_status": "INCRE_TRANSFER_STARTED",
            "process_time": "0", "remaining_time": "0"}]})

    def do_GET(self) -> None:
        self._json(200, {
            "full_info": {"progress": 100, "src_speed": "0.00B/s", "recheck_entities": 0},
            "incre_info": {"delay": 9.58, "src_speed": "0.00B/s", "rps": 0,
                           "log_point": "951de1d2-61ee-11f0-8081-fa163ef20ddd:51",
                           "recheck_entities": 0},
            "global_info": {"src_speed": "0.00B/s"}})


@pytest.fixture
def doc_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DocExampleHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_run_against_any_server_speaking_the_documented_api(doc_server: str,
                                                            tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", doc_server,
                          [{"id": DOC_JOB, "compare_jobs": [DOC_COMPARE]}],
                          f"sqlite:///{tmp_path / 'h.db'}")
    proc = cli("run", "--config", str(config), env=CREDENTIALS)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    (job,) = data["jobs"]
    assert job["health"] == "OK" and job["incre_trans_delay"] == 1.0
    assert job["comparisons"][0]["delay"] == 9.58
    for name in ("report.html", "report.md", "report.txt"):
        assert (tmp_path / "out" / name).is_file()


def test_dry_run_shows_what_would_go_where(emulator: Emulator, tmp_path: Path,
                                           webhooks: dict[str, Any]) -> None:
    hook = webhooks["wecom"]
    config = write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(),
                          f"sqlite:///{tmp_path / 'h.db'}",
                          extra=f'[[channels]]\ntype = "wecom"\nurl = "{hook.url}"\n')
    proc = cli("run", "--config", str(config), "--dry-run", env=CREDENTIALS)
    assert proc.returncode == 0, proc.stderr
    assert "dry-run: wecom-0 (wecom, digest)" in proc.stdout
    assert "canary-wecom-key" not in proc.stdout + proc.stderr
    assert hook.received == []
    sent = cli("run", "--config", str(config), env=CREDENTIALS)
    assert sent.returncode == 0 and "sent: wecom-0" in sent.stdout
    assert len(hook.received) == 1
