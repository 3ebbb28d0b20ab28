"""The emulator itself: signatures, scenario time, control endpoint, the CLI command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from drs_report.emulator import Emulator, Faults
from drs_report.secrets import Credentials
from drs_report.signing import RequestSigner
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN, PROJECT_ID

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"
WAREHOUSE = "4e6a8c0b-2d1f-4e3a-8b5c-9d0e1f2ajb21"


def signed_post(emulator: Emulator, body: bytes, *, tamper: bytes | None = None,
                now: datetime | None = None) -> requests.Response:
    url = f"{emulator.url}/v3/{PROJECT_ID}/jobs/batch-progress"
    signer = RequestSigner(Credentials.of(CANARY_AK, CANARY_SK, CANARY_TOKEN), PROJECT_ID)
    headers = signer.sign("POST", url, headers={"Content-Type": "application/json"}, body=body,
                          now=now)
    return requests.post(url, data=tamper if tamper is not None else body, headers=headers,
                         timeout=5)


def test_a_tampered_body_is_refused(emulator: Emulator) -> None:
    body = json.dumps({"jobs": [WAREHOUSE]}).encode()
    assert signed_post(emulator, body).status_code == 200
    refused = signed_post(emulator, body, tamper=body.replace(b"4e6a", b"4e6b"))
    assert refused.status_code == 401
    assert refused.json()["error_code"] == "APIG.0301"


def test_an_old_signature_is_refused(emulator: Emulator) -> None:
    body = json.dumps({"jobs": [WAREHOUSE]}).encode()
    stale = signed_post(emulator, body, now=datetime.now(timezone.utc) - timedelta(minutes=20))
    assert stale.status_code == 401
    assert "15 minutes" in stale.json()["error_msg"]


def test_invalid_job_ids_are_a_400(emulator: Emulator) -> None:
    answer = signed_post(emulator, json.dumps({"jobs": ["not-an-id"]}).encode())
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "DRS.10000001"


def test_unknown_jobs_answer_200_with_an_error_code(emulator: Emulator) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    answer = signed_post(emulator, json.dumps({"jobs": [unknown]}).encode())
    assert answer.status_code == 200
    (result,) = answer.json()["results"]
    assert result["job_id"] == unknown and result["error_code"]


def test_time_moves_the_scenario(emulator: Emulator) -> None:
    body = json.dumps({"jobs": [WAREHOUSE]}).encode()
    before = float(signed_post(emulator, body).json()["results"][0]["progress"])
    emulator.advance(600)  # 10 minutes at 2 %/min
    after = float(signed_post(emulator, body).json()["results"][0]["progress"])
    assert 19.0 <= after - before <= 21.0
    emulator.advance(3600)
    done = signed_post(emulator, body).json()["results"][0]
    assert done["progress"] == "100" and done["transfer_status"] == "INCRE_TRANSFER_STARTED"


def test_faults_can_be_set_over_http(emulator: Emulator) -> None:
    answer = requests.post(f"{emulator.url}/_emulator/faults",
                           json={"error_rate": 1.0}, timeout=5)
    assert answer.status_code == 200 and answer.json()["faults"]["error_rate"] == 1.0
    body = json.dumps({"jobs": [WAREHOUSE]}).encode()
    assert signed_post(emulator, body).status_code in (500, 502, 503)
    bad = requests.post(f"{emulator.url}/_emulator/faults", json={"nope": 1}, timeout=5)
    assert bad.status_code == 400
    emulator.set_faults(Faults())
    assert signed_post(emulator, body).status_code == 200


def test_the_emulator_command_serves_until_stopped() -> None:
    env = dict(os.environ, PYTHONPATH=str(FUNCTION_DIR))
    proc = subprocess.Popen(
        [sys.executable, "-m", "drs_report", "emulator", "--port", "0", "--ak", CANARY_AK,
         "--sk", CANARY_SK, "--project-id", PROJECT_ID],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        state = requests.get(f"{url}/_emulator/state", timeout=5).json()
        assert len(state["jobs"]) == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)  # also closes the pipes
    assert proc.returncode == 0, err


def _emulator_cli_error(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "drs_report", "emulator", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_a_busy_port_is_one_line_naming_the_flag(emulator: Emulator) -> None:
    port = emulator.url.rsplit(":", 1)[1]
    line = _emulator_cli_error("--port", port)
    assert line.startswith(f"drs-report: error: --port: cannot listen on 127.0.0.1:{port}: ")
    assert "choose another --port" in line


def test_a_bad_scenario_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[jobs]]\nid = 'x'\nstaled = true\n", encoding="utf-8")
    line = _emulator_cli_error("--port", "0", "--scenario", str(broken))
    assert "--scenario:" in line and "unknown scenario key(s) ['staled']" in line
    missing = _emulator_cli_error("--port", "0", "--scenario", str(tmp_path / "none.toml"))
    assert "cannot read" in missing and "none.toml" in missing
