"""Whole cycles through the real CLI: demo, run against the emulator and against a foreign
server that merely speaks the documented API, history on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from drs_report.emulator import DEMO_AK, DEMO_SK, Emulator
from drs_report.store import Store
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN, PROJECT_ID

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
             "backoff_base = 0.01", "max_retries = 1", ""]
    for job in jobs:
        compare = ", ".join(f'"{c}"' for c in job.get("compare_jobs", []))
        lines += ["[[jobs]]", f'id = "{job["id"]}"', f"compare_jobs = [{compare}]"]
        if job.get("name"):
            lines.append(f"name = {json.dumps(job['name'])}")
        lines.append("")
    lines += ["[store]", f'url = "{store_url}"', "", "[report]", 'output_dir = "out"', "",
              extra]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


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


# -- the demo: a simulated day, and the lines it prints work again --------------------------

ORDERS = "9a470239-2308-4bb5-a6bc-1040402fjb21"
PAYMENTS = "dc67695a-ee3e-49b8-a022-a099bd81jb21"
INVENTORY = "a3d5f4a8-dc97-4581-8071-e4977309jb21"
CUSTOMERS = "5c1e2f9b-7a64-4d2e-9b11-3f0a6c2djb21"
ARCHIVE = "7e0b4d3c-1f2a-4b5c-8d6e-9f0a1b2cjb21"
BILLING = "3f6a9c2e-4b8d-4e1f-a7c5-2d9e8b1fjb21"
AUDIT = "8b2c5d1e-6f3a-4e7b-9c0d-1a2b3c4djb21"
WAREHOUSE = "4e6a8c0b-2d1f-4e3a-8b5c-9d0e1f2ajb21"
LEGACY = "2d4f6a8c-0e1b-4c3d-8e5f-7a9b1c3djb21"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = cli("demo", "--out", str(out), "--port", "0")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return out, proc.stdout


def test_demo_writes_all_four_reports(demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    for name in ("report.html", "report.md", "report.txt", "report.json"):
        path = out / name
        assert path.is_file() and path.stat().st_size > 200
        assert str(path.resolve()) in stdout


def test_demo_shows_a_day_of_readings(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    data = json.loads((out / "report.json").read_text())
    assert data["counts"] == {"CRITICAL": 4, "WARNING": 1, "UNKNOWN": 1, "OK": 4}
    generated = datetime.fromisoformat(data["generated_at"])
    assert generated <= datetime.now(timezone.utc)  # not in the future
    jobs = {j["job_id"]: j for j in data["jobs"]}
    # A stalled job: audit-log's progress marker froze 14 hours before the end of the day.
    stalled = [r for r in jobs[AUDIT]["reasons"] if r["code"] == "stalled"]
    assert stalled and stalled[0]["params"]["minutes"] == 14 * 60
    # An ETA from a day's rate (0.02 %/min, 8.2 % to go: about 6 h 50 min) ...
    assert jobs[ARCHIVE]["health"] == "OK"
    assert jobs[ARCHIVE]["eta_seconds"] == pytest.approx(410 * 60, rel=0.01)
    # ... and none for a job that finished its full phase hours ago.
    assert jobs[WAREHOUSE]["transfer_status"] == "INCRE_TRANSFER_STARTED"
    assert jobs[WAREHOUSE]["eta_seconds"] is None
    # Since the reading before: one problem new, one resolved, two grew.
    changes = data["changes"]
    assert changes["new"] == [f"{ORDERS}:failed"]
    assert [r["key"] for r in changes["resolved"]] == [f"{PAYMENTS}:delay_warning",
                                                       f"{LEGACY}:missing"]
    assert [(g["job_id"], g["measure"], round(g["before"]), round(g["after"]))
            for g in changes["growth"]] == [(INVENTORY, "delay", 448, 819),
                                            (BILLING, "inconsistent_rows", 17, 84)]
    # The trend covers the day.
    trend = jobs[INVENTORY]["trend"]
    span = (datetime.fromisoformat(trend[-1]["at"]) - datetime.fromisoformat(trend[0]["at"]))
    assert len(trend) == 24 and span.total_seconds() >= 23 * 3600
    assert "delay over the last 1d: 7m to 13m 39s" in (out / "report.html").read_text()


def test_demo_shows_who_is_ready_for_cutover(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    readiness = json.loads((out / "report.json").read_text())["readiness"]
    verdicts = {j["job_id"]: {**j, "missing": [m["code"] for m in j["missing"]]}
                for j in readiness["jobs"]}
    # The warehouse became ready during the day: full phase done after 30 minutes, then
    # steady ever since (the trend window's 24 hours, less that first hour).
    assert verdicts[WAREHOUSE]["verdict"] == "ready"
    assert verdicts[WAREHOUSE]["steady_seconds"] == 23 * 3600 + 1800
    assert readiness["jobs"][0]["job_id"] == WAREHOUSE  # closest to ready first
    # Billing's delay is fine all day; its comparison's inconsistent rows hold it back.
    assert verdicts[BILLING]["verdict"] == "not_ready"
    assert verdicts[BILLING]["missing"] == ["compare_inconsistent"]
    # Legacy-crm is back in the batch answer for one reading: not enough history.
    assert verdicts[LEGACY]["verdict"] == "unknown"
    assert verdicts[LEGACY]["missing"] == ["not_enough_history"]
    assert readiness["counts"] == {"ready": 1, "not_ready": 7, "unknown": 2}
    md = (out / "report.md").read_text()
    assert "Cutover readiness: 1 ready (warehouse: MySQL -\\> GaussDB \\(full+incremental\\))" in md
    txt = (out / "report.txt").read_text()
    assert "comparison c24d7e1b: 84 inconsistent rows (full 0, incremental 84), needs 0" in txt
    assert "readings cover 0s of the 30m needed; the 48 readings before could not be read" \
        in txt
    html = (out / "report.html").read_text()
    assert ">Cutover readiness</h2>" in html
    _, stdout = demo_run
    assert "cutover readiness: 1 ready (warehouse: MySQL -> GaussDB (full+incremental)), " \
           "7 not ready, 2 unknown; `drs-report readiness --config " in stdout
    # A runbook asks the same history, and waits on the answer.
    config = str(out / "config.toml")
    assert cli("readiness", "--config", config, "--job", WAREHOUSE).returncode == 0
    assert cli("readiness", "--config", config, "--job", BILLING).returncode == 6
    assert cli("readiness", "--config", config, "--job", LEGACY).returncode == 7


def test_demo_readings_are_the_simulated_interval_apart(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    proc = cli("history", "--config", str(out / "config.toml"), "--job", ARCHIVE,
               "--since", "2d", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    readings = json.loads(proc.stdout)
    assert len(readings) == 49
    times = [datetime.fromisoformat(r["taken_at"]) for r in readings]
    assert {(b - a).total_seconds() for a, b in pairwise(times)} == {1800.0}
    assert readings[-1]["progress"] > readings[0]["progress"]


def _printed_commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line.strip()[2:]) for line in stdout.splitlines()
            if line.startswith("  $ ")]


def _as_module(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """A printed command line, run with this interpreter: VAR=value prefixes become env."""
    env: dict[str, str] = {}
    while "=" in argv[0] and not argv[0].startswith("-"):
        name, _, value = argv.pop(0).partition("=")
        env[name] = value
    assert argv[0] == "drs-report", argv
    return [sys.executable, "-m", "drs_report", *argv[1:]], env


def _start_emulator(argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_REPORT_",
                                                                      "HUAWEICLOUD_"))}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**base, "PYTHONPATH": str(FUNCTION_DIR), **env})
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # up to the banner's last line
        lines.append(line)
        if line.startswith("serving; Ctrl-C stops"):
            break
    return proc, "".join(lines)


def _stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    server.communicate(timeout=10)  # also closes its pipes


def test_the_demo_prints_its_config_and_commands_that_work_again(
        demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    config_text = (out / "config.toml").read_text()
    for line in config_text.splitlines():
        assert f"  {line}".rstrip() in stdout  # the config, as it is in the file
    emulator_line, run_line = _printed_commands(stdout)
    argv, env = _as_module(emulator_line)
    server, banner = _start_emulator(argv, env)
    try:
        assert banner.startswith("listening on http://127.0.0.1:")
        port = banner.split()[2].rsplit(":", 1)[1]
        assert f'endpoint = "http://127.0.0.1:{port}"' in config_text
        assert f"export HUAWEICLOUD_SDK_SK={DEMO_SK}" in banner  # the demo key, said in full
        assert ORDERS in banner and PROJECT_ID in banner
        argv, env = _as_module(run_line)
        assert env == {"HUAWEICLOUD_SDK_AK": DEMO_AK, "HUAWEICLOUD_SDK_SK": DEMO_SK}
        again = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                               env={**{k: v for k, v in os.environ.items()
                                       if not k.startswith(("DRS_REPORT_", "HUAWEICLOUD_"))},
                                    "PYTHONPATH": str(FUNCTION_DIR), **env})
        assert again.returncode == 0, again.stderr
        data = json.loads((out / "report.json").read_text())
        # The emulator picked up the day where the demo left it: orders is still failed.
        assert next(j for j in data["jobs"] if j["job_id"] == ORDERS)["health"] == "CRITICAL"
        assert data["counts"]["UNKNOWN"] == 1  # and nothing else became unreadable
    finally:
        _stop(server)


def test_the_emulator_says_what_it_accepts(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "drs_report", "emulator", "--port", "0"]
    server, banner = _start_emulator(list(argv), {})
    _stop(server)
    assert "accepts the built-in demo key" in banner
    assert f"export HUAWEICLOUD_SDK_AK={DEMO_AK}" in banner
    assert f"project id: {PROJECT_ID}" in banner
    assert all(job in banner for job in (ORDERS, PAYMENTS, WAREHOUSE))
    # A real key is named by its access key; the secret key is never printed.
    server, banner = _start_emulator(list(argv), {"HUAWEICLOUD_SDK_AK": CANARY_AK,
                                                  "HUAWEICLOUD_SDK_SK": CANARY_SK})
    _stop(server)
    assert f"accepts access key {CANARY_AK} with the secret key from " \
           "$HUAWEICLOUD_SDK_AK/$HUAWEICLOUD_SDK_SK (not shown)" in banner
    assert CANARY_SK not in banner and DEMO_SK not in banner


@pytest.mark.parametrize(("args", "flag"), [
    (["emulator", "--port", "99999"], "--port"),
    (["emulator", "--port", "http"], "--port"),
    (["demo", "--port", "70000"], "--port"),
    (["emulator", "--start", "yesterday"], "--start"),
])
def test_bad_flags_are_one_line_naming_the_flag(args: list[str], flag: str) -> None:
    proc = cli(*args, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and f"{flag}" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_demo_out_must_be_a_directory(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("mine")
    for target in (taken, taken / "below"):
        proc = cli("demo", "--out", str(target))
        assert proc.returncode == 2
        assert proc.stderr.startswith("drs-report: error: --out: ")
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert taken.read_text() == "mine"
    config = write_config(tmp_path / "c.toml", "http://127.0.0.1:9", [{"id": ORDERS}],
                          f"sqlite:///{tmp_path / 'h.db'}")
    proc = cli("run", "--config", str(config), "--dry-run", "--out", str(taken),
               env=CREDENTIALS)
    assert proc.returncode == 2 and proc.stderr.startswith("drs-report: error: --out: ")
    assert not (tmp_path / "h.db").exists()  # refused before anything was read


# -- scoped runs ---------------------------------------------------------------------------

def _channels(hooks: dict[str, Any]) -> str:
    return (f'[[channels]]\ntype = "wecom"\nurl = "{hooks["wecom"].url}"\n\n'
            f'[[channels]]\ntype = "slack"\nmode = "alert"\nurl = "{hooks["slack"].url}"\n')


def _outcomes(stdout: str) -> dict[str, tuple[str, str]]:
    """'sent: wecom-0 (wecom, digest) -> ...: reason' -> {channel: (status, reason)}."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^(sent|skipped|failed|dry-run): (\S+) \(.*?\) -> .*?: (.*)$", line)
        if match:
            found[match.group(2)] = (match.group(1), match.group(3))
    return found


def test_a_scoped_run_leaves_the_fleet_alone(emulator: Emulator, tmp_path: Path,
                                             webhooks: dict[str, Any]) -> None:
    config = write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(),
                          f"sqlite:///{tmp_path / 'h.db'}", extra=_channels(webhooks))
    first = cli("run", "--config", str(config), env=CREDENTIALS)
    assert first.returncode == 0, first.stderr
    assert {c: o[0] for c, o in _outcomes(first.stdout).items()} == {
        "wecom-0": "sent", "slack-1": "sent"}
    scoped = cli("run", "--config", str(config), "--job", PAYMENTS, env=CREDENTIALS)
    assert scoped.returncode == 0, scoped.stderr
    for status, reason in _outcomes(scoped.stdout).values():
        assert status == "skipped" and "narrowed to some jobs (--job) sends nothing" in reason
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["scope"] == [PAYMENTS] and [j["job_id"] for j in data["jobs"]] == [PAYMENTS]
    assert data["changes"]["resolved"] == [] and data["changes"]["no_longer_monitored"] == []
    assert "Only 1 job of the configuration" in (tmp_path / "out" / "report.txt").read_text()
    # The next full run finds the fleet's state as the first run left it: no false
    # all-clear went out, nothing is re-alerted as new, the digest is still today's.
    after = cli("run", "--config", str(config), env=CREDENTIALS)
    assert after.returncode == 0, after.stderr
    outcomes = _outcomes(after.stdout)
    assert outcomes["wecom-0"][0] == "skipped" and "already sent" in outcomes["wecom-0"][1]
    assert outcomes["slack-1"] == ("skipped", "no change in problems since the last alert")
    assert len(webhooks["wecom"].received) == 1 and len(webhooks["slack"].received) == 1
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["scope"] is None and data["changes"]["new"] == []
    assert data["changes"]["resolved"] == []


def test_job_must_name_a_configured_id(emulator: Emulator, tmp_path: Path) -> None:
    jobs = [dict(j, name=f"job {n}") for n, j in enumerate(emulator.jobs_config())]
    config = write_config(tmp_path / "config.toml", emulator.url, jobs,
                          f"sqlite:///{tmp_path / 'h.db'}")
    by_name = cli("run", "--config", str(config), "--job", "job 2", env=CREDENTIALS)
    assert by_name.returncode == 2 and by_name.stderr.count("\n") == 1
    assert f"'job 2' is the name of a job; give its id: --job {INVENTORY}" in by_name.stderr
    unknown = "00000000-0000-4000-8000-000000000000"
    proc = cli("run", "--config", str(config), "--job", unknown, env=CREDENTIALS)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert (f"--job: '{unknown}' is not a configured job; the configuration has {ORDERS} "
            f"(job 0), {PAYMENTS} (job 1), {INVENTORY} (job 2) and 7 more") in proc.stderr
    assert not (tmp_path / "h.db").exists()  # refused before anything was read or stored


def test_a_job_that_left_the_configuration_is_no_longer_monitored(
        emulator: Emulator, tmp_path: Path, webhooks: dict[str, Any]) -> None:
    store = f"sqlite:///{tmp_path / 'h.db'}"
    names = [dict(j, name=f"job {n}") for n, j in enumerate(emulator.jobs_config())]
    config = write_config(tmp_path / "config.toml", emulator.url, names, store,
                          extra=_channels(webhooks))
    assert cli("run", "--config", str(config), env=CREDENTIALS).returncode == 0
    kept = [j for j in names if j["id"] != CUSTOMERS]  # customers (failed) is removed
    write_config(tmp_path / "config.toml", emulator.url, kept, store, extra=_channels(webhooks))
    proc = cli("run", "--config", str(config), env=CREDENTIALS)
    assert proc.returncode == 0, proc.stderr
    changes = json.loads((tmp_path / "out" / "report.json").read_text())["changes"]
    assert [e["key"] for e in changes["no_longer_monitored"]] == [f"{CUSTOMERS}:failed"]
    assert changes["resolved"] == []
    alert = webhooks["slack"].received[-1].json()["blocks"][0]["text"]["text"]
    assert "*No longer monitored (left the configuration)*\n- job 3: task failed" in alert
    assert "Resolved" not in alert


# -- dry runs ------------------------------------------------------------------------------

def _store_rows(url: str) -> tuple[int, int]:
    store = Store.open(url)
    try:
        return len(store.runs()), len(store.attempts())
    finally:
        store.close()


def test_a_dry_run_on_a_history_an_older_drs_report_wrote_says_to_upgrade_first(
        emulator: Emulator, tmp_path: Path) -> None:
    from drs_report.store import Store

    db = tmp_path / "h.db"
    old = Store.open(f"sqlite:///{db}", in_functiongraph=False)
    old.upgrade("0002")
    old.close()
    config = write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(),
                          f"sqlite:///{db}")
    proc = cli("run", "--config", str(config), "--dry-run", env=CREDENTIALS)
    assert proc.returncode == 1, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert "schema revision 0002" in line and "drs-report db upgrade" in line
    with sqlite3.connect(db) as conn:  # not migrated, nothing written: a dry run changes nothing
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_dry_run_writes_nothing_and_predicts_the_real_run(
        emulator: Emulator, tmp_path: Path, webhooks: dict[str, Any]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    config = write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(), url,
                          extra=_channels(webhooks))

    def dry(*extra: str) -> dict[str, str]:
        proc = cli("run", "--config", str(config), "--dry-run", *extra, env=CREDENTIALS)
        assert proc.returncode == 0, proc.stderr
        return {c: "sent" if r.startswith("would send") else "skipped"
                for c, (status, r) in _outcomes(proc.stdout).items() if status == "dry-run"}

    def real() -> dict[str, str]:
        proc = cli("run", "--config", str(config), env=CREDENTIALS)
        assert proc.returncode == 0, proc.stderr
        return {c: status for c, (status, _) in _outcomes(proc.stdout).items()}

    # A fresh start: the dry run creates neither the history nor the report files.
    predicted = dry()
    assert not (tmp_path / "h.db").exists() and not (tmp_path / "out").exists()
    assert predicted == real() == {"wecom-0": "sent", "slack-1": "sent"}
    # Now today's digest is sent and the problems are unchanged: both would be skipped.
    before = _store_rows(url)
    report_time = (tmp_path / "out" / "report.json").stat().st_mtime_ns
    proc = cli("run", "--config", str(config), "--dry-run", "--out", str(tmp_path / "preview"),
               env=CREDENTIALS)
    outcomes = _outcomes(proc.stdout)
    assert outcomes["wecom-0"][1].startswith("would skip: already sent (digest:wecom-0:")
    assert outcomes["slack-1"][1] == "would skip: no change in problems since the last alert"
    assert (tmp_path / "preview" / "report.html").is_file()  # asked for, so written there
    assert _store_rows(url) == before  # no run, no reading, no claim, no attempt
    assert (tmp_path / "out" / "report.json").stat().st_mtime_ns == report_time
    predicted = dry()
    assert predicted == real() == {"wecom-0": "skipped", "slack-1": "skipped"}
    # Late in the day orders fails: an alert would go out again, the digest still not.
    emulator.advance(1430 * 60)
    predicted = dry()
    assert predicted == real() == {"wecom-0": "skipped", "slack-1": "sent"}
    assert len(webhooks["slack"].received) == 2 and len(webhooks["wecom"].received) == 1


# -- nothing could be read ----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("failure", ["wrong-sk", "unreachable"])
def test_a_run_that_reads_nothing_exits_4_naming_the_cause(
        emulator: Emulator, tmp_path: Path, failure: str) -> None:
    endpoint = emulator.url if failure == "wrong-sk" else f"http://127.0.0.1:{_free_port()}"
    config = write_config(tmp_path / "config.toml", endpoint, emulator.jobs_config(),
                          f"sqlite:///{tmp_path / 'h.db'}")
    env = dict(CREDENTIALS)
    if failure == "wrong-sk":
        env["HUAWEICLOUD_SDK_SK"] = "not-the-secret-key-of-this-access-key"
    proc = cli("run", "--config", str(config), env=env)
    assert proc.returncode == 4, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("drs-report: error: nothing could be read: ")
    if failure == "wrong-sk":
        assert "authentication refused: HTTP 401" in last and "HUAWEICLOUD_SDK_AK/SK" in last
    # The console line names the cause too, and the report is still written.
    finished = next(line for line in proc.stderr.splitlines() if " finished in " in line)
    assert "10 unknown; nothing could be read: " in finished
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["counts"]["UNKNOWN"] == 10
    assert "Traceback" not in proc.stderr
    assert CANARY_SK not in proc.stdout + proc.stderr
    runs = Store.open(f"sqlite:///{tmp_path / 'h.db'}").runs()
    assert runs[-1]["outcome"] == "nothing_read"


def test_the_function_reports_nothing_read(emulator: Emulator, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from drs_report.function import handle

    write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(),
                 "sqlite:///h.db")
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", CANARY_AK)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "not-the-secret-key-of-this-access-key")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SECURITY_TOKEN", CANARY_TOKEN)
    summary = handle({"trigger_type": "TIMER", "user_event": ""}, None, code_dir=tmp_path)
    assert summary["status"] == "nothing_read"
    assert summary["error"].startswith("nothing could be read: authentication refused")
    assert summary["counts"]["UNKNOWN"] == 10


# -- errors a newcomer meets --------------------------------------------------------------

def test_a_broken_user_template_fails_the_run_row_not_leaves_it_running(
        emulator: Emulator, tmp_path: Path) -> None:
    (tmp_path / "templates" / "txt").mkdir(parents=True)
    (tmp_path / "templates" / "txt" / "report.txt.j2").write_text(
        "{{ title }}\n{% for job in report.jobs %}{{ job.nickname }}{% endfor %}\n")
    url = f"sqlite:///{tmp_path / 'h.db'}"
    config = write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(), url,
                          extra='templates_dir = "templates"\n')
    proc = cli("run", "--config", str(config), env=CREDENTIALS)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "drs-report: error: report.templates_dir: txt/report.txt.j2 line 2: 'drs_report."
        "analysis.JobStatus object' has no attribute 'nickname'; fix the template")
    (run,) = Store.open(url).runs()
    assert run["outcome"] == "failed" and run["finished_at"] is not None
    assert "txt/report.txt.j2 line 2" in run["errors"][0]


def test_only_the_secret_key_missing_names_it(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "http://127.0.0.1:9", [
        {"id": ORDERS}], f"sqlite:///{tmp_path / 'h.db'}")
    proc = cli("run", "--config", str(config), env={"HUAWEICLOUD_SDK_AK": CANARY_AK})
    assert proc.returncode == 2
    assert proc.stderr == ("drs-report: error: HUAWEICLOUD_SDK_SK: is not set, but "
                           "HUAWEICLOUD_SDK_AK is; export the secret key of that access key\n")


def test_history_never_creates_the_file_it_reads(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "http://127.0.0.1:9", [{"id": ORDERS}],
                          "sqlite:///no-such-history.db")
    proc = cli("history", "--config", str(config), "--job", ORDERS)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "store.url: no history at " in proc.stderr and "does not exist" in proc.stderr
    assert not (tmp_path / "no-such-history.db").exists()


@pytest.mark.parametrize(("since", "says"), [
    ("1M", "unknown unit 'M' in '1M'; use s, m, h, d or w (for months write days, e.g. 30d)"),
    ("90", "'90' has no unit"),
])
def test_since_takes_only_the_documented_units(tmp_path: Path, since: str, says: str) -> None:
    proc = cli("history", "--config", str(tmp_path / "x.toml"), "--job", ORDERS,
               "--since", since)
    assert proc.returncode == 2 and says in proc.stderr and proc.stderr.count("\n") == 1


def test_an_unresolvable_database_host_says_where_to_look(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", "http://127.0.0.1:9", [{"id": ORDERS}],
                          "postgresql+psycopg://drs:hunter2-canary@no-such-host.invalid/drs")
    proc = cli("db", "upgrade", "--config", str(config))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "failed to resolve host 'no-such-host.invalid'" in proc.stderr
    assert proc.stderr.rstrip().endswith("check [store] url and that the database is reachable")
    assert "hunter2-canary" not in proc.stderr


def test_log_level_after_the_command_and_libraries_quiet_at_debug(
        emulator: Emulator, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(),
                          f"sqlite:///{tmp_path / 'h.db'}")
    quiet = cli("run", "--config", str(config), "--log-level", "DEBUG", env=CREDENTIALS)
    assert quiet.returncode == 0, quiet.stderr
    assert " DEBUG drs_report." in quiet.stderr
    assert " sqlalchemy." not in quiet.stderr and " urllib3." not in quiet.stderr
    asked = cli("run", "--config", str(config), "--log-level", "DEBUG,sqlalchemy=INFO",
                env=CREDENTIALS)
    assert asked.returncode == 0, asked.stderr
    assert " INFO sqlalchemy.engine" in asked.stderr
    bad = cli("run", "--config", str(config), "--log-level", "LOUD", env=CREDENTIALS)
    assert bad.returncode == 2 and "--log-level: 'LOUD' is not one of" in bad.stderr


# -- help ----------------------------------------------------------------------------------

COMMANDS = [["run"], ["demo"], ["emulator"], ["history"], ["readiness"], ["db"],
            ["db", "upgrade"], ["package"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example_and_its_exit_codes(command: list[str]) -> None:
    from drs_report.cli import build_parser

    parser = build_parser()
    proc = cli(*command, "--help", timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    text = proc.stdout
    description = text.split("\n\n")[1]
    assert description.strip() and "\n" not in description.strip()  # one line
    assert "\nexample:\n  drs-report " in text or "\nexamples:\n  drs-report " in text
    codes = text.split("\nexit codes:\n", 1)[1]
    assert re.search(r"^  0  \S", codes, re.M) and re.search(r"^  2  \S", codes, re.M)
    sub = parser
    for name in command:  # the parser of this command, to list its options
        sub = next(a for a in sub._actions
                   if isinstance(a, __import__("argparse")._SubParsersAction)).choices[name]
    for action in sub._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, (command, action.dest)
        flag = action.option_strings[0]
        entry = text.split(f"  {flag}", 1)[1].split("\n  -", 1)[0]
        assert "default" in entry or "required" in entry, (command, flag, entry)
