"""Canary secrets never appear in logs (DEBUG included), reports, database rows, errors or
the function's return value — in a whole run with every kind of secret configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from drs_report.emulator import Emulator
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN, PROJECT_ID
from tests.fixtures.receivers import SMTP_PASSWORD, SMTP_USER, MailServer, Receiver

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"
DB_PASSWORD = "canary-db-password-8a1c3e"
WEBHOOK_SECRET = "canary-webhook-secret-1f4b7d"
WECOM_KEY = "canary-wecom-key-7b8c9d0e"


def config_text(emulator: Emulator, store_url: str, hooks: dict[str, Receiver],
                mail: MailServer, out: Path) -> str:
    jobs = "".join(f'[[jobs]]\nid = "{j["id"]}"\ncompare_jobs = {j["compare_jobs"]!r}\n'
                   .replace("'", '"') for j in emulator.jobs_config())
    return f"""
[drs]
region = "cn-north-4"
project_id = "{PROJECT_ID}"
endpoint = "{emulator.url}"
backoff_base = 0.01

{jobs}
[store]
url = "${{DB_URL}}"

[report]
output_dir = "{out}"

[[channels]]
type = "smtp"
name = "mail"
host = "{mail.host}"
port = {mail.port}
security = "starttls"
username = "{SMTP_USER}"
password = "${{SMTP_PASSWORD}}"
from = "drs@example.com"
to = ["dba@example.com"]
ca_file = "{mail.ca_file}"

[[channels]]
type = "webhook"
name = "hook"
mode = "alert"
url = "{hooks['webhook'].url}"
secret = "${{WEBHOOK_SECRET}}"

[[channels]]
type = "wecom"
name = "wecom-broken"
mode = "alert"
url = "http://127.0.0.1:9/cgi-bin/webhook/send?key={WECOM_KEY}"
"""


CANARIES = [CANARY_AK, CANARY_SK, CANARY_TOKEN, DB_PASSWORD, SMTP_PASSWORD, WEBHOOK_SECRET,
            WECOM_KEY]


def assert_clean(where: str, content: str) -> None:
    for canary in CANARIES:
        assert canary not in content, f"{canary} leaked into {where}"


def dump_database(url: str) -> str:
    engine = create_engine(url)
    parts = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            parts += [str(row) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    engine.dispose()
    return "\n".join(parts)


@pytest.mark.parametrize("mail_server", ["starttls"], indirect=True)
def test_no_canary_leaks_from_a_whole_run(emulator: Emulator, webhooks: dict[str, Receiver],
                                          mail_server: MailServer, tmp_path: Path,
                                          postgres_session_url: str) -> None:
    from tests.fixtures.databases import _reset_postgres

    _reset_postgres(postgres_session_url)
    # Trust authentication accepts any password, so the canary travels the whole way.
    db_url = postgres_session_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    assert DB_PASSWORD in db_url
    webhooks["webhook"].verify = lambda request: (200, {"ok": True})
    config = tmp_path / "config.toml"
    config.write_text(config_text(emulator, db_url, webhooks, mail_server, tmp_path / "out"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRS_REPORT_")}
    env.update(PYTHONPATH=str(FUNCTION_DIR), DB_URL=db_url, SMTP_PASSWORD=SMTP_PASSWORD,
               WEBHOOK_SECRET=WEBHOOK_SECRET, HUAWEICLOUD_SDK_AK=CANARY_AK,
               HUAWEICLOUD_SDK_SK=CANARY_SK, HUAWEICLOUD_SDK_SECURITY_TOKEN=CANARY_TOKEN)
    # Every library at DEBUG too: they log URLs and headers, which carry webhook tokens.
    levels = "DEBUG,urllib3=DEBUG,sqlalchemy=DEBUG,alembic=DEBUG,huaweicloudsdkcore=DEBUG"
    proc = subprocess.run([sys.executable, "-m", "drs_report", "--log-level", levels, "run",
                           "--config", str(config)], capture_output=True, text=True,
                          env=env, timeout=180, check=False)
    # The broken WeCom channel fails (exit 3); mail and webhook were delivered.
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert len(mail_server.messages) == 1 and len(webhooks["webhook"].received) == 1
    assert "DEBUG" in proc.stderr and "wecom-broken" in proc.stdout
    assert " DEBUG urllib3." in proc.stderr and " sqlalchemy." in proc.stderr
    assert_clean("the CLI's output and DEBUG log", proc.stdout + proc.stderr)
    for report in (tmp_path / "out").iterdir():
        assert_clean(report.name, report.read_text(encoding="utf-8"))
    assert_clean("the database", dump_database(db_url))
    _, mail = mail_server.messages[0]
    assert_clean("the email", mail.as_string())
    assert_clean("the webhook payload", webhooks["webhook"].received[0].body.decode())


def test_no_canary_in_the_function_return_value_or_its_logs(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from drs_report.function import handle
    from tests.test_function import FakeContext, write_config

    monkeypatch.setenv("RUNTIME_PROJECT_ID", PROJECT_ID)
    write_config(tmp_path, emulator, '[[channels]]\ntype = "webhook"\nmode = "alert"\n'
                                     f'url = "http://127.0.0.1:9/hook?token={WECOM_KEY}"\n'
                                     f'secret = "{WEBHOOK_SECRET}"\n')
    context = FakeContext(user_data={"DRS_REPORT_LOG_LEVEL": "DEBUG"})
    summary: dict[str, Any] = handle({}, context, code_dir=tmp_path)
    assert summary["status"] == "delivery_failed"
    assert any(line.startswith("DEBUG") for line in context.logger.lines)
    assert_clean("the function's summary", repr(summary))
    assert_clean("the function's log", "\n".join(context.logger.lines))


def test_exception_texts_are_redacted() -> None:
    from drs_report import logs
    from drs_report.store import Store

    logs.add_secrets([CANARY_SK])
    assert logs.redact(f"signature for {CANARY_SK} failed") == "signature for *** failed"
    message = Store.masked_url(f"postgresql+psycopg://u:{DB_PASSWORD}@h/db")
    assert DB_PASSWORD not in message and "u:***@h" in message


@pytest.mark.parametrize("where", ["file", "environment"])
def test_an_unencoded_at_in_the_database_password_is_refused_without_showing_it(
        tmp_path: Path, where: str) -> None:
    password = "p@ss-canary-tail-5e1d"
    url = f"postgresql+psycopg://report:{password}@db.example.invalid:5432/drs"
    config = tmp_path / "config.toml"
    store = f'[store]\nurl = "{url}"\n' if where == "file" else ""
    config.write_text('[drs]\nregion = "cn-north-4"\nproject_id = "' + PROJECT_ID + '"\n'
                      '[[jobs]]\nid = "9a470239-2308-4bb5-a6bc-1040402fjb21"\n' + store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRS_REPORT_")}
    env.update(PYTHONPATH=str(FUNCTION_DIR), HUAWEICLOUD_SDK_AK=CANARY_AK,
               HUAWEICLOUD_SDK_SK=CANARY_SK)
    if where == "environment":
        env["DRS_REPORT_STORE_URL"] = url
    proc = subprocess.run([sys.executable, "-m", "drs_report", "run", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("drs-report: error: store.url: the password holds an '@'")
    assert "%40" in line
    for part in ("ss-canary-tail", "p@ss", "db.example.invalid"):
        assert part not in proc.stdout + proc.stderr
