"""Every broken configuration gives exit 2 and one line naming the key; no traceback.

Each file in tests/data/bad-configs/ starts with `# expect: KEY`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from drs_report.cli import main

CORPUS = Path(__file__).parent / "data" / "bad-configs"
FILES = sorted(CORPUS.glob("*.toml"))
FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("DRS_REPORT_")}


def expected_key(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path.name} lacks its '# expect: KEY' line"
    return first.removeprefix("# expect: ").strip()


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_file_exits_2_with_one_line(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("DRS_REPORT_"):
            monkeypatch.delenv(name)
    code = main(["run", "--config", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("drs-report: error: ")
    assert f"{expected_key(path)}:" in lines[0]
    assert "Traceback" not in err and out == ""


@pytest.mark.parametrize("name", ["bad-job-id", "not-toml", "unknown-key-typo"])
def test_broken_file_through_a_real_process(name: str) -> None:
    path = CORPUS / f"{name}.toml"
    env = dict(CLEAN_ENV, PYTHONPATH=str(FUNCTION_DIR))
    proc = subprocess.run(
        [sys.executable, "-m", "drs_report", "run", "--config", str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert f"{expected_key(path)}:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_did_you_mean_for_unknown_keys(capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--config", str(CORPUS / "unknown-key-typo.toml")])
    assert "did you mean 'language'?" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert main(["history", "--config", "x.toml", "--job", "j", "--since", "soon"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "--since" in err


@pytest.mark.parametrize("since", ["0", "=-3d", "nan", "inf", "0h"])
def test_since_must_be_a_positive_window(since: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    argument = f"--since{since}" if since.startswith("=") else None
    args = ["history", "--config", "x.toml", "--job", "j"]
    args += [argument] if argument else ["--since", since]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--since" in err and "positive duration" in err
