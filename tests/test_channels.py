"""Delivery to real receivers on loopback: payloads, signatures, success codes, modes,
exactly-once, retries, independence, secrets."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from drs_report import logs
from drs_report.analysis import Report, analyse
from drs_report.config import Settings, parse_settings
from drs_report.delivery import DeliveryOutcome, deliver
from drs_report.errors import ConfigError
from drs_report.render import render_all
from drs_report.store import Store
from tests.fixtures.emulator import canary_credentials
from tests.fixtures.receivers import (
    DINGTALK_SECRET,
    FEISHU_SECRET,
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_SECRET,
    MailServer,
    Receiver,
)
from tests.report_fixtures import NOW, fleet, jid, large_fleet

BASE: dict[str, Any] = {
    "drs": {"region": "cn-north-4", "project_id": "5237e10fe9aa4ad5b16b6a5245248314"},
    "jobs": [{"id": jid(n)} for n in range(1, 12)],
    "delivery": {"max_attempts": 3},
}


def channel(kind: str, hooks: dict[str, Receiver], **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"type": kind, "name": f"{kind}-chat", "mode": "digest"}
    if kind == "smn":
        config.update(topic_urn="urn:smn:cn-north-4:5237e10fe9aa4ad5b16b6a5245248314:drs",
                      endpoint=hooks["smn"].url.rstrip("/"))
    else:
        config["url"] = hooks[kind].url
    if kind == "feishu":
        config["secret"] = FEISHU_SECRET
    if kind == "dingtalk":
        config["secret"] = DINGTALK_SECRET
    if kind == "webhook":
        config["secret"] = WEBHOOK_SECRET
    config.update(extra)
    return config


def make_settings(*channels: dict[str, Any], **sections: Any) -> Settings:
    return parse_settings({**BASE, "channels": list(channels), **sections}, {})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'h.db'}", in_functiongraph=False)
    opened.upgrade()
    yield opened
    opened.close()


def the_report(settings: Settings) -> Report:
    snapshot, history = fleet()
    return analyse(snapshot, history, None, settings, now=NOW)


def send(settings: Settings, store: Store, *, report: Report | None = None,
         now: datetime = NOW, force: bool = False, dry_run: bool = False
         ) -> list[DeliveryOutcome]:
    report = report or the_report(settings)
    run_id = store.begin_run(trigger="test", started_at=now)
    return deliver(report, render_all(report, settings), settings, store, run_id, now=now,
                   deadline=None, force=force, dry_run=dry_run,
                   credentials=canary_credentials())


CHAT_CHECKS = {
    "feishu": lambda m: m.json()["card"]["elements"][0]["content"],
    "dingtalk": lambda m: m.json()["markdown"]["text"],
    "wecom": lambda m: m.json()["markdown"]["content"],
    "slack": lambda m: m.json()["blocks"][0]["text"]["text"],
    "teams": lambda m: m.json()["attachments"][0]["content"]["body"][1]["text"],
    "webhook": lambda m: str(m.json()["counts"]),
    "smn": lambda m: m.json()["message_structure"],
}


@pytest.mark.parametrize("kind", sorted(CHAT_CHECKS))
def test_one_correct_message_per_receiver(kind: str, webhooks: dict[str, Receiver],
                                          store: Store) -> None:
    settings = make_settings(channel(kind, webhooks))
    (outcome,) = send(settings, store)
    assert outcome.status == "sent", outcome.reason
    (message,) = webhooks[kind].received
    text = CHAT_CHECKS[kind](message)
    assert "CRITICAL" in text or "critical" in text.lower()
    assert "http://evil" not in text
    if kind != "smn":  # SMN carries the plain-text report, where <script> is just text
        assert "<script>" not in text
    assert store.attempts()[0]["ok"] is True


def test_feishu_card_and_signature(webhooks: dict[str, Receiver], store: Store) -> None:
    send(make_settings(channel("feishu", webhooks)), store)
    data = webhooks["feishu"].received[0].json()
    assert data["card"]["header"]["template"] == "red"
    assert data["card"]["header"]["title"]["content"].startswith("[DRS] 3 critical")
    assert data["timestamp"].isdigit() and data["sign"]


def test_dingtalk_sign_is_url_encoded_exactly_once(webhooks: dict[str, Receiver],
                                                   store: Store) -> None:
    send(make_settings(channel("dingtalk", webhooks)), store)
    (message,) = webhooks["dingtalk"].received
    assert message.query["access_token"] == ["canarydingtalktoken4e5f6a"]
    sign = message.query["sign"][0]
    assert "%" not in sign  # decoded once by the receiver: nothing left encoded


@pytest.mark.parametrize(("kind", "bad", "said"), [
    ("feishu", {"secret": "wrong-feishu-secret"}, "19021"),
    ("dingtalk", {"secret": "SECwrong-dingtalk-secret"}, "310000"),
    ("webhook", {"secret": "wrong-webhook-secret"}, "HTTP 401"),
])
def test_a_vendor_error_is_a_permanent_failure(kind: str, bad: dict[str, str], said: str,
                                               webhooks: dict[str, Receiver],
                                               store: Store) -> None:
    (outcome,) = send(make_settings(channel(kind, webhooks, **bad)), store)
    assert outcome.status == "failed" and outcome.attempts == 1
    assert said in outcome.reason
    (attempt,) = store.attempts()
    assert attempt["ok"] is False and attempt["permanent"] is True


def test_http_200_with_a_rate_limit_code_is_retried(webhooks: dict[str, Receiver],
                                                    store: Store) -> None:
    webhooks["wecom"].scripted = [(200, {"errcode": 45009, "errmsg": "api freq out of limit"})]
    (outcome,) = send(make_settings(channel("wecom", webhooks)), store)
    assert outcome.status == "sent" and outcome.attempts == 2
    assert [a["ok"] for a in store.attempts()] == [False, True]


def test_transient_failures_are_retried_then_reported(webhooks: dict[str, Receiver],
                                                      store: Store) -> None:
    webhooks["slack"].scripted = [(503, "busy"), (503, "busy"), (503, "busy")]
    (outcome,) = send(make_settings(channel("slack", webhooks)), store)
    assert outcome.status == "failed" and outcome.attempts == 3
    assert "gave up after 3 attempts" in outcome.reason
    # The claim was released: the next run may deliver this digest.
    (again,) = send(make_settings(channel("slack", webhooks)), store)
    assert again.status == "sent"


def test_a_broken_channel_does_not_stop_the_others(webhooks: dict[str, Receiver],
                                                   store: Store) -> None:
    broken = {"type": "webhook", "name": "nowhere", "url": "http://127.0.0.1:9/hook",
              "mode": "digest"}
    settings = make_settings(broken, channel("wecom", webhooks), channel("slack", webhooks))
    outcomes = send(settings, store)
    assert [o.status for o in outcomes] == ["failed", "sent", "sent"]
    assert outcomes[0].failed and "refused the connection" in outcomes[0].reason


def test_digest_once_per_day_force_and_dry_run(webhooks: dict[str, Receiver],
                                               store: Store) -> None:
    settings = make_settings(channel("wecom", webhooks))
    assert send(settings, store)[0].status == "sent"
    second = send(settings, store, now=NOW + timedelta(hours=3))[0]
    assert second.status == "skipped" and "already sent" in second.reason
    assert send(settings, store, now=NOW + timedelta(days=1))[0].status == "sent"
    assert send(settings, store, now=NOW + timedelta(days=1), force=True)[0].status == "sent"
    dry = send(settings, store, now=NOW + timedelta(days=2), dry_run=True)[0]
    assert dry.status == "dry-run" and dry.size
    assert "canary-wecom-key" not in dry.destination  # shown masked
    assert len(webhooks["wecom"].received) == 3  # the dry run sent nothing
    assert send(settings, store, now=NOW + timedelta(days=2))[0].status == "sent"


def test_digest_waits_for_the_earliest_local_time(webhooks: dict[str, Receiver],
                                                  store: Store) -> None:
    settings = make_settings(channel("wecom", webhooks),
                             delivery={"time_zone": "Asia/Shanghai", "digest_earliest": "17:00"})
    early = send(settings, store, now=datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc))[0]
    assert early.status == "skipped" and "waits until 17:00" in early.reason
    late = send(settings, store, now=datetime(2026, 11, 22, 9, 30, tzinfo=timezone.utc))[0]
    assert late.status == "sent"


def test_alerts_only_when_problems_change(webhooks: dict[str, Receiver], store: Store) -> None:
    settings = make_settings(channel("feishu", webhooks, mode="alert"),
                             delivery={"alert_reminder_hours": 6})
    report = the_report(settings)
    assert send(settings, store, report=report)[0].status == "sent"
    first = webhooks["feishu"].received[0].json()["card"]["elements"][0]["content"]
    assert "New" in first
    quiet = send(settings, store, report=report, now=NOW + timedelta(minutes=5))[0]
    assert quiet.status == "skipped" and "no change" in quiet.reason
    # A problem resolves: one more alert, saying so.
    report.problems = [p for p in report.problems if p.job_id != jid(2)]
    assert send(settings, store, report=report, now=NOW + timedelta(minutes=10))[0].status \
        == "sent"
    resolved = webhooks["feishu"].received[1].json()["card"]["elements"][0]["content"]
    # By name and reason, not by key.
    assert "Resolved" in resolved and "- payments: incremental delay above the warning" \
        " threshold" in resolved and jid(2) not in resolved
    # Unresolved CRITICAL problems are repeated after the reminder interval.
    reminder = send(settings, store, report=report, now=NOW + timedelta(hours=7))[0]
    assert reminder.status == "sent"
    text = webhooks["feishu"].received[2].json()["card"]["elements"][0]["content"]
    assert "Still critical" in text
    assert len(webhooks["feishu"].received) == 3


def test_a_reinvoked_run_sends_nothing_twice(webhooks: dict[str, Receiver],
                                             store: Store) -> None:
    settings = make_settings(channel("dingtalk", webhooks, mode="alert"),
                             channel("wecom", webhooks))
    report = the_report(settings)
    send(settings, store, report=report)
    again = send(settings, store, report=report)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert len(webhooks["dingtalk"].received) == 1 and len(webhooks["wecom"].received) == 1


@pytest.mark.parametrize("kind", ["wecom", "slack", "dingtalk", "feishu", "teams"])
def test_size_limits_are_kept_by_folding(kind: str, webhooks: dict[str, Receiver],
                                         store: Store) -> None:
    snapshot, _ = large_fleet(800, 300)
    settings = make_settings(channel(kind, webhooks),
                             jobs=[{"id": jid(n)} for n in range(800)])
    report = analyse(snapshot, {}, None, settings, now=NOW)
    (outcome,) = send(settings, store, report=report)
    assert outcome.status == "sent", outcome.reason  # the receivers refuse oversize messages
    text = CHAT_CHECKS[kind](webhooks[kind].received[0])
    assert "more problems" in text


def test_email_multipart_subject_and_headers(mail_server: MailServer, store: Store) -> None:
    config: dict[str, Any] = {
        "type": "smtp", "name": "dba-mail", "mode": "digest", "host": mail_server.host,
        "port": mail_server.port, "security": mail_server.security, "from": "drs@example.com",
        "to": ["dba@example.com", "sre@example.com"], "cc": ["lead@example.com"],
        "timeout": 10, "ca_file": mail_server.ca_file,
    }
    if mail_server.security != "none":
        config.update(username=SMTP_USER, password=SMTP_PASSWORD)
    (outcome,) = send(make_settings(config), store)
    assert outcome.status == "sent", outcome.reason
    ((recipients, mail),) = mail_server.messages
    assert sorted(recipients) == ["dba@example.com", "lead@example.com", "sre@example.com"]
    assert mail["Subject"] == "[DRS] 3 critical, 4 warning, 2 unknown - 11 jobs"
    assert mail["Message-ID"] and mail["Date"]
    assert mail.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in mail.iter_parts()]
    assert parts == ["text/plain", "text/html"]  # text first, HTML last


def test_email_attaches_the_full_report_when_summarised(tls_files: Any, store: Store) -> None:
    from aiosmtpd.controller import Controller

    from tests.fixtures.receivers import _MailHandler, free_port

    box = MailServer("127.0.0.1", free_port(), "none", None)
    controller = Controller(_MailHandler(box), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        snapshot, _ = large_fleet(2000, 400)
        settings = make_settings({"type": "smtp", "host": "127.0.0.1", "port": box.port,
                                  "security": "none", "from": "drs@example.com",
                                  "to": ["dba@example.com"]},
                                 jobs=[{"id": jid(n)} for n in range(2000)])
        report = analyse(snapshot, {}, None, settings, now=NOW)
        (outcome,) = send(settings, store, report=report)
    finally:
        controller.stop()
    assert outcome.status == "sent", outcome.reason
    ((_, mail),) = box.messages
    assert mail.get_content_type() == "multipart/mixed"
    attachment = next(mail.iter_attachments())
    assert attachment.get_filename() == "drs-report.html"
    assert "fleet job 1999" in attachment.get_content()


def test_smtp_refusals(tls_files: Any, store: Store) -> None:
    from aiosmtpd.controller import Controller

    from tests.fixtures.receivers import _MailHandler, free_port

    box = MailServer("127.0.0.1", free_port(), "none", None, reply="451 4.3.0 try later")
    controller = Controller(_MailHandler(box), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        settings = make_settings({"type": "smtp", "host": "127.0.0.1", "port": box.port,
                                  "security": "none", "from": "drs@example.com",
                                  "to": ["dba@example.com"]}, delivery={"max_attempts": 2})
        transient = send(settings, store)[0]
        box.reply = "550 5.7.1 relaying denied"
        permanent = send(settings, store, now=NOW + timedelta(days=1))[0]
    finally:
        controller.stop()
    assert transient.status == "failed" and transient.attempts == 2 and "451" in transient.reason
    assert permanent.status == "failed" and permanent.attempts == 1 and "550" in permanent.reason


@pytest.mark.parametrize("mail_server", ["starttls"], indirect=True)
def test_wrong_smtp_password_is_permanent(mail_server: MailServer, store: Store) -> None:
    settings = make_settings({"type": "smtp", "host": mail_server.host,
                              "port": mail_server.port, "security": "starttls",
                              "username": SMTP_USER, "password": "not-the-password",
                              "from": "drs@example.com", "to": ["dba@example.com"],
                              "ca_file": mail_server.ca_file})
    (outcome,) = send(settings, store)
    assert outcome.status == "failed" and outcome.attempts == 1
    assert "authentication failed" in outcome.reason
    assert "not-the-password" not in outcome.describe()
    assert mail_server.messages == []


def test_channel_keys_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings({"type": "smtp", "host": "h", "from": "a@b", "to": ["x@y"],
                       "pasword": "p"})
    assert caught.value.key == "channels[0].pasword"
    assert "did you mean 'password'?" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        make_settings({"type": "feishu", "url": "ftp://x"})
    assert caught.value.key == "channels[0].url"
    with pytest.raises(ConfigError) as caught:
        make_settings({"type": "smtp", "host": "h", "from": "a@b", "to": ["x@y"],
                       "security": "tls"})
    assert caught.value.key == "channels[0].security"
    with pytest.raises(ConfigError) as caught:
        make_settings({"type": "wecom"})
    assert caught.value.key == "channels[0].url"


def test_secrets_never_leave(webhooks: dict[str, Receiver], store: Store) -> None:
    settings = make_settings(channel("feishu", webhooks), channel("dingtalk", webhooks),
                             channel("webhook", webhooks, secret="wrong-secret-for-logging"))
    logs.add_secrets(settings.secret_values())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logs.install(handler)  # the same redacting filter the CLI and the function install
    watched = [logging.getLogger(name) for name in ("drs_report", "urllib3")]
    saved = [(lg.level, lg.propagate) for lg in watched]
    for lg in watched:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        outcomes = send(settings, store)
    finally:
        for lg, (level, _) in zip(watched, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    text = stream.getvalue() + repr([o.to_dict() for o in outcomes]) + repr(store.attempts())
    text += "".join(o.describe() for o in outcomes)
    assert '"POST ***' in text  # urllib3 logged the request line at DEBUG, masked
    for secret in (FEISHU_SECRET, DINGTALK_SECRET, "canarydingtalktoken4e5f6a",
                   "canaryfeishuhook0a1b2c3d", "wrong-secret-for-logging"):
        assert secret not in text, secret
    assert any(o.failed for o in outcomes)  # the wrong secret was used, and failed


def test_apprise_channel(webhooks: dict[str, Receiver], store: Store) -> None:
    pytest.importorskip("apprise")
    url = webhooks["webhook"].url.replace("http://", "json://")
    webhooks["webhook"].scripted = [(200, {"ok": True})]
    (outcome,) = send(make_settings({"type": "apprise", "urls": [url]}), store)
    assert outcome.status == "sent", outcome.reason
    body = webhooks["webhook"].received[0].json()
    assert body["title"].startswith("[DRS]") and "CRITICAL" in body["message"]


@pytest.mark.parametrize("mail_server", ["starttls"], indirect=True)
def test_one_run_with_every_channel(webhooks: dict[str, Receiver], mail_server: MailServer,
                                    store: Store) -> None:
    smtp = {"type": "smtp", "name": "mail", "host": mail_server.host,
            "port": mail_server.port, "security": "starttls", "username": SMTP_USER,
            "password": SMTP_PASSWORD, "from": "drs@example.com", "to": ["dba@example.com"],
            "ca_file": mail_server.ca_file}
    chats = [channel(kind, webhooks, mode="alert") for kind in sorted(CHAT_CHECKS)]
    settings = make_settings(smtp, *chats)
    outcomes = send(settings, store)
    assert [o.status for o in outcomes] == ["sent"] * 8, [o.reason for o in outcomes]
    assert len(mail_server.messages) == 1
    for kind in CHAT_CHECKS:
        assert len(webhooks[kind].received) == 1, kind
    # Nothing new: no alert, and no second digest today.
    again = send(settings, store, now=NOW + timedelta(minutes=10))
    assert [o.status for o in again] == ["skipped"] * 8
    assert len(mail_server.messages) == 1
    assert all(len(webhooks[kind].received) == 1 for kind in CHAT_CHECKS)


def test_per_bot_rate_limits_space_the_messages() -> None:
    import time as clock

    from drs_report.channels.base import RateLimiter
    from drs_report.channels.chat import DingTalkChannel, FeishuChannel, WeComChannel

    assert DingTalkChannel.RATE_LIMIT == (20, 60.0) and WeComChannel.RATE_LIMIT == (20, 60.0)
    assert FeishuChannel.RATE_LIMIT == (5, 1.0)
    started = clock.monotonic()
    for _ in range(3):
        RateLimiter.wait("test-bot-window", 2, 0.4)
    # Two fit in the window; the third had to wait for the first to leave it.
    assert clock.monotonic() - started >= 0.4
