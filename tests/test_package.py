"""`drs-report package`: a zip that runs a whole cycle from a bare interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from drs_report.emulator import Emulator
from drs_report.packaging import write_zip
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN, PROJECT_ID

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    output = tmp_path_factory.mktemp("package") / "drs-report-function.zip"
    proc = subprocess.run(
        [sys.executable, "-m", "drs_report", "package", "--python", "local", "--output",
         str(output)], capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, PYTHONPATH=str(FUNCTION_DIR)))
    assert proc.returncode == 0, proc.stderr
    assert str(output) in proc.stdout and "MiB" in proc.stdout
    yield output


def test_zip_layout_and_fixed_metadata(built_zip: Path) -> None:
    with zipfile.ZipFile(built_zip) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert {"index.py", "config.toml.sample", "drs_report/function.py",
            "drs_report/templates/html/report.html.j2", "drs_report/locales/zh-cn.json",
            "drs_report/store/migrations/versions/0001_initial.py",
            "drs_report/scenarios/demo.toml"} <= set(names)
    assert any(n.startswith("sqlalchemy/") for n in names)
    assert any(n.startswith("huaweicloudsdkcore/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_the_zip_is_reproducible(built_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(built_zip) as archive:
        archive.extractall(tmp_path / "unpacked")
    os.utime(tmp_path / "unpacked" / "index.py", (1_900_000_000, 1_900_000_000))
    again = tmp_path / "again.zip"
    write_zip(tmp_path / "unpacked", again)
    assert again.read_bytes() == built_zip.read_bytes()


def test_the_zip_runs_a_cycle_in_a_bare_interpreter(built_zip: Path, tmp_path: Path,
                                                    emulator: Emulator) -> None:
    code_dir = tmp_path / "code"
    with zipfile.ZipFile(built_zip) as archive:
        archive.extractall(code_dir)
    jobs = "".join(f'[[jobs]]\nid = "{j["id"]}"\ncompare_jobs = {json.dumps(j["compare_jobs"])}\n'
                   for j in emulator.jobs_config())
    (code_dir / "config.toml").write_text(
        f'[drs]\nregion = "cn-north-4"\nendpoint = "{emulator.url}"\n\n{jobs}\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "h.db"}"\n'
        f'[report]\noutput_dir = "{tmp_path / "out"}"\n', encoding="utf-8")
    script = f"""
import json, sys
sys.path.insert(0, {str(code_dir)!r})
import index
class Context:
    def getRemainingTimeInMilliSeconds(self): return 30000
    def getSecurityAccessKey(self): return {CANARY_AK!r}
    def getSecuritySecretKey(self): return {CANARY_SK!r}
    def getSecurityToken(self): return {CANARY_TOKEN!r}
    def getUserData(self, key): return ""
    def getRequestID(self): return "zip-test"
summary = index.handler({{"version": "v1.0", "trigger_type": "TIMER", "user_event": ""}},
                        Context())
outside = [m.__file__ for m in list(sys.modules.values())
           if getattr(m, "__file__", None) and "site-packages" in m.__file__]
print(json.dumps({{"summary": summary, "outside": outside}}))
"""
    # -I: no PYTHONPATH, no user site; -S: no site-packages. Only the stdlib and the zip.
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                          text=True, timeout=120, check=False, cwd=tmp_path,
                          env={"RUNTIME_PROJECT_ID": PROJECT_ID, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outside"] == []
    summary = result["summary"]
    assert summary["status"] == "ok", summary
    assert summary["counts"] == {"CRITICAL": 2, "WARNING": 3, "UNKNOWN": 2, "OK": 3}
    assert (tmp_path / "out" / "report.html").is_file()
