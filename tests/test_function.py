"""The FunctionGraph handler with a fake context (FunctionGraph itself cannot run here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drs_report import environment
from drs_report.emulator import Emulator, Faults, generated_fleet
from drs_report.errors import ConfigError
from drs_report.function import FunctionEnvironment, parse_event
from tests.fixtures.emulator import (
    CANARY_AK,
    CANARY_SK,
    CANARY_TOKEN,
    PROJECT_ID,
    make_emulator,
)

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"


class FakeLogger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(f"INFO {message}")

    def warn(self, message: str) -> None:
        self.lines.append(f"WARN {message}")

    def error(self, message: str) -> None:
        self.lines.append(f"ERROR {message}")

    def debug(self, message: str) -> None:
        self.lines.append(f"DEBUG {message}")


class FakeContext:
    """The context methods FunctionGraph's Python runtime offers, as its docs name them."""

    def __init__(self, *, remaining_ms: int = 60_000, user_data: dict[str, str] | None = None,
                 agency: bool = True) -> None:
        self.logger = FakeLogger()
        self._remaining_ms = remaining_ms
        self._user_data = user_data or {}
        self._agency = agency

    def getRequestID(self) -> str:
        return "req-7f3a"

    def getRemainingTimeInMilliSeconds(self) -> int:
        return self._remaining_ms

    def getSecurityAccessKey(self) -> str:
        return CANARY_AK if self._agency else ""

    def getSecuritySecretKey(self) -> str:
        return CANARY_SK if self._agency else ""

    def getSecurityToken(self) -> str:
        return CANARY_TOKEN if self._agency else ""

    def getUserData(self, key: str) -> str:
        return self._user_data.get(key, "")

    def getLogger(self) -> FakeLogger:
        return self.logger


TIMER_EVENT = {"version": "v1.0", "time": "2026-11-22T08:00:00+08:00", "trigger_type": "TIMER",
               "trigger_name": "drs-report-every-10-minutes", "user_event": ""}


def write_config(directory: Path, emulator: Emulator, extra: str = "") -> Path:
    jobs = "\n".join(
        f'[[jobs]]\nid = "{j["id"]}"\ncompare_jobs = {json.dumps(j["compare_jobs"])}\n'
        for j in emulator.jobs_config())
    path = directory / "config.toml"
    path.write_text(f'[drs]\nregion = "cn-north-4"\nendpoint = "{emulator.url}"\n'
                    f'backoff_base = 0.01\n\n{jobs}\n[store]\nurl = "sqlite:///history.db"\n'
                    f'[report]\noutput_dir = "out"\n{extra}', encoding="utf-8")
    return path


def handle(event: Any, context: Any, code_dir: Path) -> dict[str, Any]:
    from drs_report.function import handle as real_handle

    return real_handle(event, context, code_dir=code_dir)


def test_timer_event_runs_a_cycle_with_agency_credentials(emulator: Emulator,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.delenv("HUAWEICLOUD_SDK_AK", raising=False)
    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)  # FunctionGraph sets it
    write_config(tmp_path, emulator)
    context = FakeContext()
    summary = handle(TIMER_EVENT, context, tmp_path)
    assert summary["status"] == "ok", summary
    assert summary["counts"] == {"CRITICAL": 2, "WARNING": 3, "UNKNOWN": 2, "OK": 3}
    assert summary["request_id"] == "req-7f3a" and summary["partial"] is False
    json.dumps(summary)  # JSON-serialisable, as FunctionGraph needs
    # The emulator requires the security token: the agency's token was signed and sent.
    assert emulator.statuses.get(401) is None
    # The runtime's logger stamps time, request id and level: our lines do not repeat them.
    assert "INFO drs_report.function: timer invocation by drs-report-every-10-minutes" in \
        context.logger.lines
    assert not any("req-7f3a" in line or line.count("INFO") > 1
                   for line in context.logger.lines if "summary:" not in line)
    (last,) = [line for line in context.logger.lines if "summary:" in line]
    assert last == context.logger.lines[-1]
    assert "status=ok" in last and "jobs=10" in last and "duration=" in last
    assert (tmp_path / "out" / "report.html").is_file()


def test_a_short_time_budget_gives_a_partial_report(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)
    with make_emulator(scenario=generated_fleet(60, 1),
                       faults=Faults(latency_ms=200)) as slow:
        write_config(tmp_path, slow, "[run]\nsafety_margin_seconds = 1\n")
        text = (tmp_path / "config.toml").read_text().replace(
            "backoff_base = 0.01", "backoff_base = 0.01\nbatch_size = 5\nmax_workers = 2")
        (tmp_path / "config.toml").write_text(text)
        summary = handle({}, FakeContext(remaining_ms=2500), tmp_path)
    assert summary["status"] == "ok", summary
    assert summary["partial"] is True
    assert summary["counts"]["UNKNOWN"] > 0
    assert summary["duration_seconds"] < 2.5


def test_user_event_overrides(emulator: Emulator, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)
    write_config(tmp_path, emulator)
    orders = "9a470239-2308-4bb5-a6bc-1040402fjb21"
    event = dict(TIMER_EVENT, user_event=json.dumps({"jobs": [orders], "mode": "digest"}))
    summary = handle(event, FakeContext(), tmp_path)
    assert summary["status"] == "ok" and summary["jobs"] == 1


def test_bad_user_event_is_a_config_error_summary(tmp_path: Path) -> None:
    summary = handle(dict(TIMER_EVENT, user_event='{"mdoe": "digest"}'), FakeContext(),
                     tmp_path)
    assert summary["status"] == "config_error"
    assert "user_event.mdoe" in summary["error"] and "did you mean 'mode'?" in summary["error"]


def test_bad_configuration_is_returned_not_raised(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[drs]\nregion = "nowhere"\n')
    summary = handle({}, FakeContext(), tmp_path)
    assert summary["status"] == "config_error"
    assert summary["error"].startswith("drs.region:")


def test_settings_from_user_data(emulator: Emulator, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)
    path = write_config(tmp_path, emulator)
    path.rename(tmp_path / "elsewhere.toml")
    context = FakeContext(user_data={"DRS_REPORT_CONFIG": "elsewhere.toml",
                                     "DRS_REPORT_STORE_URL": f"sqlite:///{tmp_path / 'u.db'}"})
    summary = handle({}, context, tmp_path)
    assert summary["status"] == "ok", summary
    assert (tmp_path / "u.db").is_file()


def test_environment_credentials_when_there_is_no_agency(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)
    write_config(tmp_path, emulator)
    for name, value in (("HUAWEICLOUD_SDK_AK", CANARY_AK), ("HUAWEICLOUD_SDK_SK", CANARY_SK),
                        ("HUAWEICLOUD_SDK_SECURITY_TOKEN", CANARY_TOKEN)):
        monkeypatch.setenv(name, value)
    summary = handle({}, FakeContext(agency=False), tmp_path)
    assert summary["status"] == "ok", summary


def test_no_credentials_at_all(tmp_path: Path, emulator: Emulator,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)
    monkeypatch.delenv("HUAWEICLOUD_SDK_AK", raising=False)
    write_config(tmp_path, emulator)
    summary = handle({}, FakeContext(agency=False), tmp_path)
    assert summary["status"] == "config_error" and "agency" in summary["error"]


def test_event_parsing() -> None:
    assert parse_event(TIMER_EVENT).trigger == "timer"
    invocation = parse_event(dict(TIMER_EVENT, user_event='{"force": true, "modes": ["alert"]}'))
    assert invocation.force and invocation.modes == ["alert"]
    assert parse_event({"dry_run": True}).dry_run
    assert parse_event(None).trigger == "manual"
    with pytest.raises(ConfigError):
        parse_event(dict(TIMER_EVENT, user_event="not json"))
    with pytest.raises(ConfigError):
        parse_event({"jobs": "one"})


def test_user_data_fills_the_environment() -> None:
    env = FunctionEnvironment(FakeContext(user_data={"SMTP_PASSWORD": "x",
                                                     "DRS_REPORT_STORE_URL": "sqlite://"}),
                              base={"HOME": "/root"})
    assert env["SMTP_PASSWORD"] == "x" and "DRS_REPORT_STORE_URL" in set(env)
    assert "NOPE" not in env


def test_cold_path_imports_only_what_a_run_needs(emulator: Emulator, tmp_path: Path) -> None:
    """A fresh interpreter: import index, run a SQLite cycle, list what got imported."""
    write_config(tmp_path, emulator)
    script = f"""
import json, sys
sys.path.insert(0, {str(FUNCTION_DIR)!r})
import index
class Ctx:
    def getRemainingTimeInMilliSeconds(self): return 60000
    def getSecurityAccessKey(self): return {CANARY_AK!r}
    def getSecuritySecretKey(self): return {CANARY_SK!r}
    def getSecurityToken(self): return {CANARY_TOKEN!r}
    def getUserData(self, key): return ""
    def getRequestID(self): return "r"
print(json.dumps([index.handler({{}}, Ctx())["status"], sorted(sys.modules)]))
"""
    env = {"RUNTIME_PROJECT_ID": PROJECT_ID, "PATH": "/usr/bin:/bin",
           "DRS_REPORT_CONFIG": str(tmp_path / "config.toml")}
    # The first instance creates the schema (Alembic); the second finds it current, as
    # every later cold start does.
    for _ in range(2):
        code = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120, check=False, env=env)
    status, modules = json.loads(code.stdout.strip().splitlines()[-1])
    assert status == "ok", code.stderr[-2000:]
    loaded = set(modules)
    for lazy in ("drs_report.cli", "argparse", "alembic", "drs_report.emulator", "psycopg",
                 "drs_report.channels.smtp", "drs_report.channels.chat", "aiosmtpd",
                 "huaweicloudsdkdrs", "drs_report.packaging"):
        assert lazy not in loaded, f"{lazy} was imported on the cold path"
    assert "css_inline" in loaded  # the HTML report needs it; imported only then


def test_secrets_from_encrypted_user_data_through_index_handler(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        webhooks: dict[str, Any]) -> None:
    """An empty os.environ: every setting and ${NAME} comes from getUserData."""
    import os

    from tests.fixtures.receivers import WEBHOOK_SECRET

    sys.path.insert(0, str(FUNCTION_DIR))
    import index

    for name in list(os.environ):
        monkeypatch.delenv(name)
    hook = webhooks["webhook"]
    write_config(tmp_path, emulator,
                 '\n[[channels]]\ntype = "webhook"\nurl = "${HOOK_URL}"\n'
                 'secret = "${HOOK_SECRET}"\n')
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace(f'endpoint = "{emulator.url}"\n', ""))
    plain = {"DRS_REPORT_CONFIG": str(config), "DRS_REPORT_DRS_ENDPOINT": emulator.url,
             "DRS_REPORT_STORE_URL": f"sqlite:///{tmp_path / 'h.db'}",
             "DRS_REPORT_DRS_PROJECT_ID": PROJECT_ID, "HOOK_URL": hook.url}
    encrypted = {"HOOK_SECRET": WEBHOOK_SECRET}  # only getUserData answers these
    context = FakeContext(user_data={**plain, **encrypted})
    summary = index.handler(TIMER_EVENT, context)
    assert summary["status"] == "ok", summary
    assert [d["status"] for d in summary["deliveries"]] == ["sent"]
    assert len(hook.messages()) == 1  # the receiver checked the signature made with it
    text = json.dumps(summary) + "\n".join(context.logger.lines)
    assert WEBHOOK_SECRET not in text and hook.url not in text


def test_runtime_userdata_is_read_but_never_logged(tmp_path: Path) -> None:
    from drs_report import logs

    everything = json.dumps({"SMTP_PASSWORD": "canary-userdata-password-81f2",
                             "DRS_REPORT_STORE_URL": "sqlite://"})
    env = FunctionEnvironment(FakeContext(), base={"RUNTIME_USERDATA": everything})
    assert env["SMTP_PASSWORD"] == "canary-userdata-password-81f2"
    assert "DRS_REPORT_STORE_URL" in set(env)
    assert logs.redact(f"env: {everything}") == "env: ***"
    assert logs.redact("password canary-userdata-password-81f2") == "password ***"


def test_in_functiongraph_sqlite_without_sync_is_a_config_error(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)
    monkeypatch.setenv("RUNTIME_CODE_ROOT", str(tmp_path))
    # The instance's /tmp/drs-report, private to this test (another process may use the real
    # one at the same time).
    instance_tmp = tmp_path / "instance-tmp" / "drs-report"
    monkeypatch.setattr(environment, "FUNCTIONGRAPH_TMP", str(instance_tmp))
    write_config(tmp_path, emulator)
    summary = handle({}, FakeContext(), tmp_path)
    assert summary["status"] == "config_error"
    assert summary["error"].startswith("store.url: an SQLite file in FunctionGraph dies with "
                                       "the instance; set store.sync")
    text = (tmp_path / "config.toml").read_text().replace(
        'url = "sqlite:///history.db"', 'url = "sqlite:///history.db"\nephemeral = true')
    (tmp_path / "config.toml").write_text(text)
    summary = handle({}, FakeContext(), tmp_path)
    assert summary["status"] == "ok", summary
    assert any("history is not kept" in e for e in summary["errors"])
    # Relative paths went under /tmp, not into the code directory.
    assert summary["outputs"]["html"] == str(instance_tmp / "out" / "report.html")
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_dir_is_a_config_error_naming_the_key(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)
    write_config(tmp_path, emulator)
    text = (tmp_path / "config.toml").read_text().replace(
        'output_dir = "out"', 'output_dir = "/proc/drs-report-out"')
    (tmp_path / "config.toml").write_text(text)
    summary = handle({}, FakeContext(), tmp_path)
    assert summary["status"] == "config_error", summary
    assert summary["error"].startswith("report.output_dir: cannot write to /proc/drs-report-out")
    assert "internal error" not in summary["error"]
