"""FunctionGraph, as faithfully as this machine allows: the deployment zip in a read-only
code directory, a private /tmp per instance, `env -i` with only the RUNTIME_* variables the
platform sets, settings only through the context's user data (plain and encrypted), agency
credentials with a security token, and history kept in OBS (the OBS emulator).

Two fresh instances run one after the other: the second sees the first's history and sends
nothing twice. It runs for the 3.10 and the 3.12 zip, built with pyenv's interpreters; a
missing interpreter skips with the reason (in CI, DRS_REPORT_CI=1, a version that pyenv lists
but cannot be found is a failure).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drs_report.emulator import Emulator
from drs_report.emulator.obs import ObsEmulator
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN, PROJECT_ID
from tests.fixtures.obs import BUCKET, KEY
from tests.fixtures.receivers import WEBHOOK_SECRET, Receiver

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"
CODE_ROOT = "/mnt"  # where an instance sees its code (a read-only bind mount)
VERSIONS = ("3.10", "3.12")


def _in_ci() -> bool:
    return bool(os.environ.get("DRS_REPORT_CI"))


def _skip_or_fail(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI needs this: {reason}")
    pytest.skip(reason)


def interpreter(version: str) -> str:
    """pyenv's interpreter for this FunctionGraph runtime, or skip saying why."""
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
    listed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True,
                            check=False) if root.returncode == 0 else None
    if root.returncode == 0:
        found = sorted(glob.glob(f"{root.stdout.strip()}/versions/{version}.*/bin/python"))
        if found:
            return found[-1]
    if listed is not None and any(v.startswith(f"{version}.") for v in listed.stdout.split()):
        pytest.fail(f"pyenv lists Python {version} but its interpreter was not found")
    pytest.skip(f"Python {version} is not installed (no pyenv interpreter); the {version} "
                "zip is not tested here")
    raise AssertionError  # unreachable


def _namespaces_work() -> str | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "needs root and unshare(1) for a private mount namespace"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"mount namespaces are not permitted here: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def built_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`drs-report package` once per runtime per test session."""
    return {"dir": tmp_path_factory.mktemp("function-zips")}


def zip_for(cache: dict[str, Path], version: str) -> Path:
    if version in cache:
        return cache[version]
    output = cache["dir"] / f"drs-report-{version}.zip"
    proc = subprocess.run(
        [sys.executable, "-m", "drs_report", "package", "--python", version, "--output",
         str(output)], capture_output=True, text=True, timeout=900, check=False,
        env=dict(os.environ, PYTHONPATH=str(FUNCTION_DIR)))
    if proc.returncode != 0:
        _skip_or_fail(f"building the {version} zip failed: {proc.stderr.strip()[-300:]}")
    cache[version] = output
    return output


INSTANCE = r"""
import json, sys
sys.path.insert(0, CODE_ROOT)
import index

class Logger:
    lines = []
    def info(self, m): self.lines.append("INFO " + m)
    def warn(self, m): self.lines.append("WARN " + m)
    def warning(self, m): self.lines.append("WARN " + m)
    def error(self, m): self.lines.append("ERROR " + m)
    def debug(self, m): self.lines.append("DEBUG " + m)

class Context:
    _logger = Logger()
    def getRequestID(self): return REQUEST_ID
    def getRemainingTimeInMilliSeconds(self): return 60000
    def getSecurityAccessKey(self): return AK
    def getSecuritySecretKey(self): return SK
    def getSecurityToken(self): return TOKEN
    def getUserData(self, key): return USER_DATA.get(key, ENCRYPTED.get(key, ""))
    def getLogger(self): return self._logger
    def getFunctionName(self): return "drs-report"

event = {"version": "v1.0", "time": "2026-11-22T08:00:00+08:00", "trigger_type": "TIMER",
         "trigger_name": "drs-report-timer", "user_event": ""}
summary = index.handler(event, Context())
import os
print(json.dumps({"summary": summary, "lines": Logger.lines, "environ": sorted(os.environ)}))
"""


def run_instance(python: str, code_dir: Path, instance_tmp: Path, *, request_id: str,
                 user_data: dict[str, str], encrypted: dict[str, str],
                 with_userdata_variable: bool) -> dict[str, Any]:
    script = (f"CODE_ROOT = {CODE_ROOT!r}; REQUEST_ID = {request_id!r}; AK = {CANARY_AK!r}; "
              f"SK = {CANARY_SK!r}; TOKEN = {CANARY_TOKEN!r}; USER_DATA = {user_data!r}; "
              f"ENCRYPTED = {encrypted!r}\n" + INSTANCE)
    runtime = {"RUNTIME_CODE_ROOT": CODE_ROOT, "RUNTIME_PROJECT_ID": PROJECT_ID,
               "RUNTIME_FUNC_NAME": "drs-report", "RUNTIME_FUNC_VERSION": "latest",
               "RUNTIME_HANDLER": "index.handler", "RUNTIME_TIMEOUT": "60",
               "RUNTIME_MEMORY": "512", "RUNTIME_CPU": "300",
               "RUNTIME_ROOT": "/home/snuser/runtime", "RUNTIME_LOG_DIR": "/tmp/log"}
    if with_userdata_variable:
        runtime["RUNTIME_USERDATA"] = json.dumps({**user_data, **encrypted})
    env_args = [f"{k}={v}" for k, v in runtime.items()]
    # A private mount namespace: the code read-only at /mnt, this instance's own /tmp.
    shell = ('set -e; mount --bind "$1" /mnt; mount -o remount,bind,ro /mnt; '
             'mount --bind "$2" /tmp; shift 2; exec env -i "$@"')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", shell, "sh", str(code_dir),
                           str(instance_tmp), *env_args, python, "-c", script],
                          capture_output=True, text=True, timeout=300, check=False, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stderr"] = proc.stderr
    return result


@pytest.fixture
def harness_ready() -> Iterator[None]:
    why = _namespaces_work()
    if why is not None:
        _skip_or_fail(why)
    yield


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_two_fresh_instances_share_history_through_obs(
        version: str, built_zips: dict[str, Path], harness_ready: None, emulator: Emulator,
        obs: ObsEmulator, webhooks: dict[str, Receiver], tmp_path: Path) -> None:
    python = interpreter(version)
    package = zip_for(built_zips, version)
    code_dir = tmp_path / "code"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(code_dir)
    jobs = "".join(f'[[jobs]]\nid = "{j["id"]}"\ncompare_jobs = {json.dumps(j["compare_jobs"])}\n'
                   for j in emulator.jobs_config())
    # The deployed config.toml: no endpoint, no secrets; those come from user data.
    (code_dir / "config.toml").write_text(
        '[drs]\nregion = "cn-north-4"\n\n' + jobs +
        '\n[[channels]]\ntype = "webhook"\nname = "team-hook"\nmode = "digest"\n'
        'url = "${TEAM_HOOK_URL}"\nsecret = "${TEAM_HOOK_SECRET}"\n'
        '\n[[channels]]\ntype = "webhook"\nname = "team-alerts"\nmode = "alert"\n'
        'url = "${TEAM_HOOK_URL}"\nsecret = "${TEAM_HOOK_SECRET}"\n', encoding="utf-8")
    for path in [code_dir, *code_dir.rglob("*")]:  # readable by anyone, as the platform does
        path.chmod(0o755 if path.is_dir() else 0o644)
    shipped = sorted(str(p.relative_to(code_dir)) for p in code_dir.rglob("*"))
    user_data = {"DRS_REPORT_CONFIG": "config.toml",
                 "DRS_REPORT_DRS_ENDPOINT": emulator.url,
                 "DRS_REPORT_DRS_BACKOFF_BASE": "0.01",
                 "DRS_REPORT_STORE_SYNC": f"obs://{BUCKET}/{KEY}",
                 "DRS_REPORT_STORE_OBS_ENDPOINT": obs.url,
                 "TEAM_HOOK_URL": webhooks["webhook"].url}
    encrypted = {"TEAM_HOOK_SECRET": WEBHOOK_SECRET}
    outputs = []
    for n, with_variable in enumerate((False, True)):
        instance_tmp = tmp_path / f"instance-{n}-tmp"
        instance_tmp.mkdir()
        instance_tmp.chmod(0o1777)
        outputs.append(run_instance(python, code_dir, instance_tmp, request_id=f"req-{n}",
                                    user_data=user_data, encrypted=encrypted,
                                    with_userdata_variable=with_variable))
        emulator.advance(600)
        # What the instance wrote stayed in its own /tmp: the working copy and the reports.
        assert (instance_tmp / "drs-report" / "history.db").is_file()
        assert (instance_tmp / "drs-report" / "reports" / "out" / "report.html").is_file()
    first, second = (o["summary"] for o in outputs)
    assert first["status"] == "ok", outputs[0]
    assert second["status"] == "ok", outputs[1]
    assert first["sync"]["fetched"] == "new" and second["sync"]["fetched"] == "downloaded"
    assert [d["status"] for d in first["deliveries"]] == ["sent", "sent"]
    assert [d["status"] for d in second["deliveries"]] == ["skipped", "skipped"]
    kinds = sorted(m.json()["kind"] for m in webhooks["webhook"].messages())
    assert kinds == ["alert", "digest"]  # nothing twice
    assert second["run_id"] == 2  # the second instance continued the first one's history
    # Nothing was written into the code directory (it is read-only: no .pyc either; the zip
    # ships its own bytecode).
    assert sorted(str(p.relative_to(code_dir)) for p in code_dir.rglob("*")) == shipped
    for output in outputs:
        # LC_CTYPE: Python's own C-locale coercion (PEP 538), set by the interpreter.
        assert all(name.startswith("RUNTIME_") or name == "LC_CTYPE"
                   for name in output["environ"]), output["environ"]
        text = json.dumps(output["lines"]) + json.dumps(output["summary"]) + output["stderr"]
        for secret in (CANARY_SK, CANARY_TOKEN, WEBHOOK_SECRET, webhooks["webhook"].url):
            assert secret not in text
        assert "RUNTIME_USERDATA" not in text
        assert output["lines"][-1].startswith("INFO drs_report.function: summary: status=ok")
