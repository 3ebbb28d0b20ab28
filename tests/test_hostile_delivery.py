"""Delivery against receivers of the tests' own that misbehave on purpose.

Copies are counted at the receiver; times are measured against the attempt's deadline;
each test would fail without the fix it names.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from drs_report import logs
from drs_report.delivery import DeliveryOutcome
from drs_report.store import Store
from tests.fixtures.emulator import CANARY_AK, CANARY_TOKEN, canary_credentials
from tests.fixtures.hostile import (
    Behaviour,
    Connection,
    HostileHTTP,
    HostileSMTP,
    RawRequest,
    answer,
    answer_late,
    bad_chunks,
    deep_json,
    drip_json,
    echo_request,
    redirect,
    silent,
)
from tests.test_channels import NOW, make_settings, the_report
from tests.test_channels import store as store  # the fixture: a SQLite history

# What each vendor says when it took the message.
ACCEPTED: dict[str, Behaviour] = {
    "webhook": answer(200, {"ok": True}),
    "slack": answer(200, "ok"),
    "teams": answer(202, ""),
    "feishu": answer(200, {"code": 0, "msg": "success"}),
    "dingtalk": answer(200, {"errcode": 0, "errmsg": "ok"}),
    "wecom": answer(200, {"errcode": 0, "errmsg": "ok"}),
    "smn": answer(200, {"request_id": "r1", "message_id": "m1"}),
}
HOOK_PATH = {"webhook": "/hook/drs", "slack": "/services/T0/B0/canaryslacktoken1f2e",
             "teams": "/workflows/canaryteams3d4c",
             "feishu": "/open-apis/bot/v2/hook/canaryfeishuhook0a1b2c3d",
             "dingtalk": "/robot/send?access_token=canarydingtalktoken4e5f6a",
             "wecom": "/cgi-bin/webhook/send?key=canary-wecom-key-7b8c9d0e"}


def channel_for(kind: str, url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"type": kind, "name": f"{kind}-hook", "mode": "digest"}
    if kind == "smn":
        config.update(topic_urn="urn:smn:cn-north-4:5237e10fe9aa4ad5b16b6a5245248314:drs",
                      endpoint=url)
    else:
        config["url"] = url + HOOK_PATH[kind]
    config.update(extra)
    return config


def send(settings: Any, store: Store, *, now: Any = NOW, deadline: float | None = None
         ) -> list[DeliveryOutcome]:
    """One run's deliveries, as the pipeline makes them (secrets registered first)."""
    from drs_report.delivery import deliver
    from drs_report.render import render_all

    logs.add_secrets(settings.secret_values())
    logs.add_secrets(canary_credentials().secrets())
    report = the_report(settings)
    run_id = store.begin_run(trigger="test", started_at=now)
    return deliver(report, render_all(report, settings), settings, store, run_id, now=now,
                   deadline=deadline, force=False, dry_run=False,
                   credentials=canary_credentials())


def timed_send(settings: Any, store: Store, **kwargs: Any) -> tuple[DeliveryOutcome, float]:
    started = time.monotonic()
    (outcome,) = send(settings, store, **kwargs)
    return outcome, time.monotonic() - started


# -- item 2: no channel follows a redirect ------------------------------------------------------


@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("kind", sorted(ACCEPTED))
def test_a_redirect_is_a_failure_naming_its_host_and_is_not_followed(
        kind: str, status: int, store: Store) -> None:
    with HostileHTTP(ACCEPTED[kind]) as elsewhere:
        # localhost is 127.0.0.1 too: following the redirect would reach `elsewhere`.
        moved = redirect(status, f"http://localhost:{elsewhere.port}/steal")
        with HostileHTTP(moved) as receiver:
            settings = make_settings(channel_for(kind, receiver.url))
            outcome, _ = timed_send(settings, store)
            copies = len(receiver.requests)
        stolen = list(elsewhere.requests)
    assert stolen == []  # neither the message nor, for SMN, the signed request went there
    assert outcome.status == "failed" and outcome.attempts == 1
    assert f"HTTP {status} from http://127.0.0.1:{receiver.port}/…: a redirect to localhost, " \
           "not followed" in outcome.reason
    assert copies == 1
    (attempt,) = store.attempts()
    assert attempt["permanent"] is True


# -- item 6: every attempt ends by its deadline --------------------------------------------------


def test_a_hanging_webhook_ends_by_the_runs_deadline(store: Store) -> None:
    with HostileHTTP(silent()) as receiver:
        settings = make_settings(channel_for("webhook", receiver.url))  # timeout 10 s
        started = time.monotonic()
        (outcome,) = send(settings, store, deadline=started + 1.5)
        took = time.monotonic() - started
        copies = len(receiver.requests)
    assert took < 1.5 + 1.0, took
    assert outcome.status == "failed" and copies == 1
    assert "no complete answer from http://127.0.0.1:" in outcome.reason
    # The claim was released: a later run may deliver this digest.
    with HostileHTTP(ACCEPTED["webhook"]) as healthy:
        (again,) = send(make_settings(channel_for("webhook", healthy.url)), store,
                        now=NOW + timedelta(minutes=5))
    assert again.status == "sent"


def test_an_answer_dripping_a_byte_at_a_time_ends_by_the_channel_timeout(store: Store) -> None:
    # Each byte comes well within the 1 s timeout, so only a deadline on the whole
    # attempt ends it; the answer would take about 40 s.
    with HostileHTTP(drip_json(200, {"errcode": 0, "errmsg": "ok"}, 0.3)) as receiver:
        settings = make_settings(channel_for("wecom", receiver.url, timeout=1))
        outcome, took = timed_send(settings, store)
        copies = len(receiver.requests)
    assert took < 2.0, took
    assert outcome.status == "failed" and outcome.attempts == 1 and copies == 1
    assert "no complete answer" in outcome.reason
    assert "not retried in this run" in outcome.reason  # it had the whole message


def test_an_smtp_relay_dripping_its_greeting_ends_by_the_timeout(store: Store) -> None:
    with HostileSMTP(drip=0.3) as relay:  # 24 bytes: about 7 s of greeting
        settings = make_settings({"type": "smtp", "host": "127.0.0.1", "port": relay.port,
                                  "security": "none", "from": "drs@example.com",
                                  "to": ["dba@example.com"], "timeout": 1},
                                 delivery={"max_attempts": 1})
        outcome, took = timed_send(settings, store)
    assert took < 2.0, took
    assert outcome.status == "failed"
    assert f"no complete answer from 127.0.0.1:{relay.port} within 1s" in outcome.reason
    assert relay.messages == []


@pytest.mark.parametrize("security", ["none", "ssl"])
def test_an_smtp_relay_whose_name_takes_its_time_to_resolve_ends_by_the_timeout(
        security: str, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """smtplib looks the relay up itself, where no socket timeout reaches: a resolver
    retrying server after server (standing in at getaddrinfo, as no such DNS server runs
    here) would hold the attempt for as long as it tries."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.test":
            time.sleep(20)
        return real("127.0.0.1" if host == "slow-dns.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with HostileSMTP() as relay:
        settings = make_settings({"type": "smtp", "host": "slow-dns.test", "port": relay.port,
                                  "security": security, "from": "drs@example.com",
                                  "to": ["dba@example.com"], "timeout": 1},
                                 delivery={"max_attempts": 1})
        outcome, took = timed_send(settings, store)
    assert took < 2.5, took
    assert outcome.status == "failed"
    assert "no DNS answer for slow-dns.test within" in outcome.reason
    assert relay.messages == []


# -- item 9: a message the receiver took is not sent again at once; copies can be folded -------


def test_a_receiver_answering_late_gets_one_copy_per_run_with_one_key(store: Store) -> None:
    with HostileHTTP(answer_late(1.5, 200, {"ok": True})) as receiver:
        settings = make_settings(channel_for("webhook", receiver.url, timeout=0.5))
        first, _ = timed_send(settings, store)
        assert first.status == "failed" and first.attempts == 1
        assert len(receiver.requests) == 1  # not 3: the timeout followed the whole body
        # The next run sends the same digest again, under the same idempotency key.
        second, _ = timed_send(settings, store, now=NOW + timedelta(minutes=5))
        copies = list(receiver.requests)
    assert second.status == "failed" and len(copies) == 2
    keys = {r.headers["idempotency-key"] for r in copies}
    assert len(keys) == 1 and len(keys.pop()) == 32
    assert copies[0].json()["idempotency_key"] == copies[1].json()["idempotency_key"] == \
        copies[0].headers["idempotency-key"]  # signed, in the body, for those without headers


def test_an_smtp_relay_silent_after_data_gets_one_copy_and_the_same_message_id(
        store: Store) -> None:
    with HostileSMTP(stall_at="end-of-data") as relay:
        settings = make_settings({"type": "smtp", "host": "127.0.0.1", "port": relay.port,
                                  "security": "none", "from": "drs@example.com",
                                  "to": ["dba@example.com"], "timeout": 1},
                                 delivery={"max_attempts": 3})
        first, took = timed_send(settings, store)
        assert len(relay.messages) == 1, "retried at once after the relay took the message"
        second, _ = timed_send(settings, store, now=NOW + timedelta(minutes=5))
        mails = [message_from_bytes(m, policy=policy.default) for m in relay.messages]
    assert took < 2.0 and first.status == "failed" and first.attempts == 1
    assert "took the whole message but did not confirm it" in first.reason
    assert len(mails) == 2 and second.attempts == 1
    ids = {m["Message-ID"] for m in mails}
    assert len(ids) == 1 and ids.pop().endswith(".drs-report@example.com>")


def test_retries_after_a_refusal_keep_the_message_id(store: Store) -> None:
    """A relay refusing with 451 did not take it: retried at once, same Message-ID."""
    from aiosmtpd.controller import Controller

    from tests.fixtures.receivers import MailServer, _MailHandler, free_port

    class FirstRefused(_MailHandler):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.box.messages.append(message_from_bytes(envelope.content,
                                                        policy=policy.default))
            return "451 4.3.0 try again" if len(self.box.messages) == 1 else "250 OK"

    box = MailServer("127.0.0.1", free_port(), "none", None)
    controller = Controller(FirstRefused(box), hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        settings = make_settings({"type": "smtp", "host": "127.0.0.1", "port": box.port,
                                  "security": "none", "from": "drs@example.com",
                                  "to": ["dba@example.com"]})
        outcome, _ = timed_send(settings, store)
    finally:
        controller.stop()
    assert outcome.status == "sent" and outcome.attempts == 2
    assert box.messages[0]["Message-ID"] == box.messages[1]["Message-ID"]


# -- item 7: a Retry-After of a day is not slept --------------------------------------------------


def test_a_retry_after_of_a_day_is_left_to_the_next_run(store: Store) -> None:
    with HostileHTTP(answer(429, {"error": "slow down"}, {"Retry-After": "86400"})) as receiver:
        settings = make_settings(channel_for("webhook", receiver.url))
        outcome, took = timed_send(settings, store)
        copies = len(receiver.requests)
    assert took < 2.0, took  # it slept 60 s per attempt before
    assert outcome.status == "failed" and copies == 1
    assert "asks to wait 86400s, more than the 60s a run waits" in outcome.reason


# -- item 11: every exception ends the attempt and releases or resolves the claim -------------


def test_a_broken_chunked_answer_is_a_failure_that_releases_the_claim(store: Store) -> None:
    with HostileHTTP(bad_chunks()) as receiver:
        settings = make_settings(channel_for("slack", receiver.url),
                                 delivery={"max_attempts": 2})
        first, _ = timed_send(settings, store)
        second, _ = timed_send(settings, store, now=NOW + timedelta(minutes=1))
        copies = len(receiver.requests)
    assert first.status == "failed" and "internal error" not in first.reason
    assert "closed the connection before a whole answer arrived" in first.reason
    assert first.destination.startswith("http://127.0.0.1:")
    # The answer broke after the receiver had the whole message: once per run, and the
    # next run tries again (the claim was released), not "already sent".
    assert first.attempts == 1 and second.status == "failed" and second.attempts == 1
    assert copies == 2


@pytest.mark.parametrize(("kind", "body", "said"), [
    ("feishu", {"code": [9499], "msg": "busy"}, "Feishu answered code [9499]: busy"),
    ("dingtalk", {"errcode": {"a": 1}}, "DingTalk answered errcode {'a': 1}"),
    ("feishu", deep_json(), "Feishu answered code None"),
    ("smn", deep_json(), "SMN answered a body that is not usable JSON (JSON nested more"),
])
def test_strange_vendor_answers_are_classified_failures(kind: str, body: Any, said: str,
                                                        store: Store) -> None:
    with HostileHTTP(answer(200, body)) as receiver:
        settings = make_settings(channel_for(kind, receiver.url),
                                 delivery={"max_attempts": 2})
        outcome, _ = timed_send(settings, store)
    assert outcome.status == "failed", outcome.reason
    assert said in outcome.reason and "internal error" not in outcome.reason
    assert store.attempts()[-1]["ok"] is False


def test_a_store_failing_after_the_send_still_reports_the_delivery(tmp_path: Path,
                                                                   store: Store) -> None:
    database = tmp_path / "h.db"

    def break_the_store(request: RawRequest, conn: Connection) -> None:
        # The message arrived; then the history database loses its claims table.
        with sqlite3.connect(database) as db:
            db.execute("ALTER TABLE delivery_claims RENAME TO delivery_claims_gone")
        ACCEPTED["webhook"](request, conn)

    with HostileHTTP(break_the_store) as receiver, HostileHTTP(ACCEPTED["wecom"]) as other:
        settings = make_settings(channel_for("webhook", receiver.url),
                                 channel_for("wecom", other.url))
        first, second = send(settings, store)
        copies = len(receiver.requests)
    assert copies == 1
    assert first.status == "sent", first.reason
    assert "marking it sent failed" in first.reason and "same idempotency key" in first.reason
    assert first.destination.startswith("http://127.0.0.1:")
    assert second.status == "failed" and other.requests == []  # could not even be claimed


# -- item 1: what a receiver sends back is masked where it enters -------------------------------


def test_a_receiver_echoing_the_signed_request_leaks_no_credential(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    from drs_report.secrets import Redactor

    with HostileHTTP(echo_request(401)) as receiver:
        settings = make_settings(channel_for("smn", receiver.url))
        with caplog.at_level("DEBUG", logger="drs_report"):
            outcome, _ = timed_send(settings, store)
        echoed = receiver.requests[0].headers
    assert echoed["x-security-token"] == CANARY_TOKEN and CANARY_AK in echoed["authorization"]
    assert outcome.status == "failed" and "Incorrect IAM authentication" in outcome.reason
    seen = outcome.reason + outcome.describe() + repr(store.attempts()) + caplog.text
    for canary in (CANARY_AK, CANARY_TOKEN):
        assert canary not in seen
    # And masked where it entered, not only on the way out: the channel's own error text.
    assert Redactor([CANARY_AK, CANARY_TOKEN])(outcome.reason) == outcome.reason
    assert logs.redact(CANARY_TOKEN) == "***"


def test_a_run_killed_during_smtp_data_resends_under_the_same_message_id(
        emulator: Any, tmp_path: Path) -> None:
    """kill -9 while the relay holds the message: after the claim's lease, the next run
    sends it again, and mail clients see the same message (the same Message-ID)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.test_end_to_end import CREDENTIALS, FUNCTION_DIR, write_config

    def config_for(port: int) -> Path:
        mail = (f'[[channels]]\ntype = "smtp"\nname = "mail"\nhost = "127.0.0.1"\n'
                f'port = {port}\nsecurity = "none"\nfrom = "drs@example.com"\n'
                'to = ["dba@example.com"]\ntimeout = 30\n')
        return write_config(tmp_path / "config.toml", emulator.url, emulator.jobs_config(),
                            f"sqlite:///{tmp_path / 'h.db'}", mail)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRS_REPORT_",
                                                                     "HUAWEICLOUD_"))}
    env.update(PYTHONPATH=str(FUNCTION_DIR), **CREDENTIALS)
    with HostileSMTP(stall_at="end-of-data") as stalled:
        run = subprocess.Popen([sys.executable, "-m", "drs_report", "run", "--config",
                                str(config_for(stalled.port))], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        waited = time.monotonic() + 60
        while not stalled.messages and time.monotonic() < waited and run.poll() is None:
            time.sleep(0.05)
        assert stalled.messages, "the relay never got the message"
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        first = message_from_bytes(stalled.messages[0], policy=policy.default)
    with sqlite3.connect(tmp_path / "h.db") as db:  # the claim's lease has run out
        db.execute("UPDATE delivery_claims SET claimed_at = datetime(claimed_at, "
                   "'-11 minutes')")
    with HostileSMTP() as relay:
        again = subprocess.run([sys.executable, "-m", "drs_report", "run", "--config",
                                str(config_for(relay.port))], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr[-2000:]
        (resent,) = [message_from_bytes(m, policy=policy.default) for m in relay.messages]
    assert resent["Message-ID"] == first["Message-ID"]
    assert resent["Subject"] == first["Subject"]
