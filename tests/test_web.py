"""The HTTP side over real HTTP (`serve` on loopback) and through the APIG adapter.

Every route answers both ways; chat requests are signed here from each vendor's documented
algorithm, not with the code under test; refusals are checked to say nothing about which
part was wrong; the store is shown to be read, never written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from sqlalchemy import create_engine, func, select, text

from drs_report.store.schema import JobSnapshot, RenderedReport, Run
from tests.web_fixtures import (
    BASE_URL,
    DINGTALK_SECRET,
    FEISHU_APP_ID,
    FEISHU_KEY,
    FEISHU_TOKEN,
    HOSTILE,
    LINK_SECRET,
    ORDERS,
    SLACK_SECRET,
    WAREHOUSE,
    WEB_SECRETS,
    WEB_TOKEN,
    Reply,
    Site,
    Transport,
    apig_event,
    bearer,
)

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy")


def assert_secured(reply: Reply) -> None:
    for name in SECURITY_HEADERS:
        assert name in reply.headers, (name, reply.headers)
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"


def assert_no_secret(*texts: str) -> None:
    from tests.fixtures.emulator import CANARY_SK, CANARY_TOKEN

    for value in texts:
        for secret in (*WEB_SECRETS, CANARY_SK, CANARY_TOKEN):
            assert secret not in value


# -- signing, as each vendor documents it ------------------------------------------------


def slack_request(text: str, *, secret: str = SLACK_SECRET, timestamp: int | None = None,
                  tamper: bool = False) -> tuple[dict[str, str], bytes]:
    """Slack: X-Slack-Signature = 'v0=' + hex HMAC-SHA256(secret, 'v0:' + ts + ':' + body)."""
    body = urlencode({"token": "deprecated", "team_id": "T0001", "channel_id": "C2147483705",
                      "user_id": "U2147483697", "command": "/drs", "text": text,
                      "response_url": "https://hooks.slack.com/commands/1234/5678",
                      "trigger_id": "13345224609.738474920.8088930838d88f008e0"}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    if tamper:
        body = body.replace(b"status", b"help__")
    return ({"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + digest.hexdigest(),
             "Content-Type": "application/x-www-form-urlencoded"}, body)


def dingtalk_request(text: str, *, secret: str = DINGTALK_SECRET,
                     timestamp_ms: int | None = None) -> tuple[dict[str, str], bytes]:
    """DingTalk: sign = base64(HMAC-SHA256(key=AppSecret, timestamp + '\\n' + AppSecret))."""
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    sign = base64.b64encode(hmac.new(secret.encode(), f"{ts}\n{secret}".encode(),
                                     hashlib.sha256).digest()).decode()
    body = json.dumps({
        "msgtype": "text", "text": {"content": f" {text}"}, "msgId": "XXXX",
        "createAt": int(ts), "conversationType": "2", "conversationId": "cidXXXX",
        "conversationTitle": "DBA", "senderId": "$:LWCP_v1:$XXXX", "senderNick": "dba",
        "chatbotUserId": "$:LWCP_v1:$YYYY", "isAdmin": False,
        "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=XXXX",
        "sessionWebhookExpiredTime": int(ts) + 3600000, "isInAtList": True,
    }).encode()
    return {"timestamp": ts, "sign": sign, "Content-Type": "application/json"}, body


def feishu_encrypt(data: dict[str, Any], key: str = FEISHU_KEY) -> bytes:
    """Feishu: base64(iv + AES-256-CBC(key = SHA-256(encrypt key), PKCS#7))."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(data).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()),
                       modes.CBC(iv)).encryptor()
    secret = base64.b64encode(iv + encryptor.update(plain) + encryptor.finalize()).decode()
    return json.dumps({"encrypt": secret}).encode()


def feishu_headers(body: bytes, *, key: str = FEISHU_KEY, timestamp: int | None = None
                   ) -> dict[str, str]:
    """X-Lark-Signature = hex SHA-256(timestamp + nonce + encrypt key + body)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = "1628653487"
    signature = hashlib.sha256((ts + nonce + key).encode() + body).hexdigest()
    return {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
            "X-Lark-Signature": signature, "Content-Type": "application/json"}


def feishu_message(text: str, event_id: str, *, token: str = FEISHU_TOKEN) -> dict[str, Any]:
    return {"schema": "2.0", "header": {
        "event_id": event_id, "token": token, "create_time": str(int(time.time() * 1000)),
        "event_type": "im.message.receive_v1", "tenant_key": "2ca1d211f64f6438",
        "app_id": FEISHU_APP_ID}, "event": {
        "sender": {"sender_id": {"open_id": "ou_84aad35d084aa403a838cf73ee18467"},
                   "sender_type": "user", "tenant_key": "2ca1d211f64f6438"},
        "message": {"message_id": f"om_{event_id[-12:]}", "chat_id": "oc_5ad11d72b830411d72b8",
                    "chat_type": "group", "message_type": "text",
                    "content": json.dumps({"text": f"@_user_1 {text}"}),
                    "mentions": [{"key": "@_user_1", "name": "drs-report"}]}}}


def slack_text(reply: Reply) -> str:
    return "\n".join(b["text"]["text"] for b in reply.json()["blocks"])


# -- routes, methods, headers ------------------------------------------------------------


def test_every_answer_carries_the_security_headers(call: Transport) -> None:
    for method, path, headers in (("GET", "/healthz", {}), ("GET", "/reports", bearer()),
                                  ("GET", "/reports", {}), ("GET", "/nowhere", {}),
                                  ("POST", "/reports", bearer()),
                                  ("POST", "/chat/slack", {"Content-Type": "text/plain"})):
        reply = call(method, path, headers=headers, body=b"x" if method == "POST" else b"")
        assert_secured(reply)
    assert call("GET", "/healthz").text == "ok\n"


def test_only_the_methods_each_route_needs(call: Transport) -> None:
    for path in ("/reports", "/reports/latest", "/reports/1", f"/jobs/{ORDERS}"):
        for method in ("POST", "PUT", "DELETE"):
            reply = call(method, path, headers=bearer(), body=b"{}")
            assert reply.status == 405 and reply.headers["allow"] == "GET", (method, path)
    for path in ("/chat/slack", "/chat/dingtalk", "/chat/feishu"):
        reply = call("GET", path)
        assert reply.status == 405 and reply.headers["allow"] == "POST"
    assert call("GET", "/reports/../../etc/passwd", headers=bearer()).status == 404
    assert call("GET", "/jobs/<script>", headers=bearer()).status == 404


def test_oversized_bodies_are_refused(call: Transport) -> None:
    headers, body = slack_request("status " + "x" * 5000)  # the test config caps at 4,096
    reply = call("POST", "/chat/slack", headers=headers, body=body)
    assert reply.status == 413
    assert_secured(reply)


# -- the archive: who may read it ----------------------------------------------------------


def test_no_or_wrong_credentials_get_the_same_401(call: Transport) -> None:
    from drs_report.web.auth import signed_path

    now = int(time.time())
    attempts: list[tuple[str, dict[str, str], dict[str, str] | None]] = [
        ("/reports", {}, None),
        ("/reports", {"Authorization": "Bearer wrong-token-of-some-length"}, None),
        ("/reports", {"Authorization": f"Basic {WEB_TOKEN}"}, None),
        ("/reports", {"Authorization": f"Bearer {WEB_TOKEN}x"}, None),
        ("/reports/latest", {}, {"expires": str(now + 60), "signature": "AAAA"}),
        ("/reports/latest", {}, {"expires": "soon", "signature": "AAAA"}),
    ]
    # Expired, and tampered in the path and in the expiry:
    expired = signed_path(_secret(LINK_SECRET), "/reports/latest", now - 1)
    moved = signed_path(_secret(LINK_SECRET), "/reports/latest", now + 600)
    later = signed_path(_secret(LINK_SECRET), "/reports/latest", now + 600)
    attempts.append(("/reports/latest", {}, _query(expired)))
    attempts.append(("/reports/1", {}, _query(moved)))
    attempts.append(("/reports/latest", {}, {**_query(later), "expires": str(now + 999999)}))
    attempts.append(("/reports/latest", {}, _query(signed_path(
        _secret("another-secret-of-enough-length"), "/reports/latest", now + 600))))
    bodies = set()
    for path, headers, query in attempts:
        reply = call("GET", path, headers=headers, query=query)
        assert reply.status == 401, (path, headers, query)
        assert_secured(reply)
        bodies.add(reply.body)
    assert bodies == {b"unauthorized\n"}  # never which part was wrong


def _secret(value: str) -> Any:
    from drs_report.secrets import Secret

    return Secret(value)


def _query(path_and_query: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path_and_query).query).items()}


def test_archive_pages_with_the_token(call: Transport, site: Site) -> None:
    reply = call("GET", "/reports", headers=bearer())
    assert reply.status == 200
    page = reply.text
    assert page.count('data-run="') == 2  # page_size = 2 of the 3 stored runs
    assert 'id="next"' in page and 'id="prev"' not in page
    assert ">2<" in page  # the CRITICAL count of the demo fleet
    older = call("GET", "/reports", headers=bearer(), query={"page": "2"})
    assert older.status == 200 and older.text.count('data-run="') == 1
    assert 'id="prev"' in older.text
    assert call("GET", "/reports", headers=bearer(), query={"page": "9"}).status == 404
    assert call("GET", "/reports", headers=bearer(), query={"page": "-1"}).status == 400
    # The CSP allows exactly this page's <style> element, by hash.
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in reply.headers["content-security-policy"]
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")

    latest = call("GET", "/reports/latest", headers=bearer())
    runs = [m for m in re.findall(r'data-run="(\d+)"', page)]
    assert latest.status == 200 and "need attention" in latest.text
    stored = call("GET", f"/reports/{runs[0]}", headers=bearer())
    assert stored.status == 200 and stored.body == latest.body
    assert "sandbox" in stored.headers["content-security-policy"]
    assert "need attention" in stored.text
    assert call("GET", "/reports/999999", headers=bearer()).status == 404


def test_job_page_has_charts_of_the_stored_readings(call: Transport) -> None:
    reply = call("GET", f"/jobs/{WAREHOUSE}", headers=bearer())
    assert reply.status == 200
    page = reply.text
    assert page.count("<svg") == 2
    paths = re.findall(r'<path d="([^"]+)"', page)
    assert len(paths) == 2 and all(p.startswith("M") for p in paths)
    assert "3 readings in the last 7 days" in page
    hostile = call("GET", f"/jobs/{HOSTILE}", headers=bearer()).text
    assert "<b>replica</b>" not in hostile and "<script>" not in hostile
    assert "&lt;b&gt;replica&lt;/b&gt;" in hostile and "http[:]//evil.example" in hostile
    assert call("GET", "/jobs/00000000-0000-4000-8000-000000000000",
                headers=bearer()).status == 404


def test_signed_links_open_their_page_and_sign_the_links_on_it(call: Transport,
                                                                site: Site) -> None:
    from drs_report.web.auth import job_link, report_link

    link = report_link(site.settings.web)
    assert link is not None and link.startswith(BASE_URL + "/reports/latest?expires=")
    path = urlsplit(link).path.removeprefix(urlsplit(BASE_URL).path)
    assert call("GET", path, query=_query(link)).status == 200
    index_link = site.settings.web.base_url + "/reports"  # type: ignore[operator]
    from drs_report.web.auth import link_for

    signed = link_for(site.settings.web, "/reports")
    assert signed is not None and signed.startswith(index_link)
    page = call("GET", "/reports", query=_query(signed))
    assert page.status == 200
    hrefs = re.findall(r'href="(/reports/\d+\?[^"]+)"', page.text)
    assert hrefs, page.text
    target = hrefs[0].replace("&amp;", "&")
    followed = call("GET", urlsplit(target).path, query=_query(target))
    assert followed.status == 200  # the page's own links carry a signature for their path
    job = job_link(site.settings.web, ORDERS)
    assert job is not None
    assert call("GET", f"/jobs/{ORDERS}", query=_query(job)).status == 200
    assert call("GET", f"/jobs/{WAREHOUSE}", query=_query(job)).status == 401


def test_links_are_off_without_a_base_url() -> None:
    from drs_report.config import WebConfig
    from drs_report.web.auth import job_link, report_link

    assert report_link(WebConfig()) is None and job_link(WebConfig(), ORDERS) is None


# -- Slack -----------------------------------------------------------------------------------


def test_slack_status_is_block_kit_and_ephemeral(call: Transport) -> None:
    headers, body = slack_request("status")
    reply = call("POST", "/chat/slack", headers=headers, body=body)
    assert reply.status == 200, reply.text
    data = reply.json()
    assert data["response_type"] == "ephemeral"
    assert all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in data["blocks"])
    text = slack_text(reply)
    assert "*CRITICAL* 2 · *WARNING* 3 · *UNKNOWN* 2 · *OK* 3 · 10 jobs" in text
    assert "customers: MySQL -&gt; GaussDB" in text and "task state incremental failed" in text
    assert "orders: MySQL" not in text  # healthy jobs are counted, not listed
    assert f"<{BASE_URL}/reports/" in text and "|Open the full report>" in text
    headers, body = slack_request("status in_channel")
    assert call("POST", "/chat/slack", headers=headers, body=body).json()[
        "response_type"] == "in_channel"


def test_slack_refuses_unsigned_wrongly_signed_replayed_and_tampered(call: Transport) -> None:
    headers, body = slack_request("status")
    cases = [
        ({}, body),
        ({**headers, "X-Slack-Signature": "v0=" + "0" * 64}, body),
        (slack_request("status", secret="not-the-signing-secret")[0], body),
        (slack_request("status", timestamp=int(time.time()) - 301)[0:2]),
        # Ahead by more than the window even after the request's own seconds on a loaded
        # machine (the server compares with its clock when the request arrives).
        (slack_request("status", timestamp=int(time.time()) + 330)[0:2]),
        (slack_request("status", tamper=True)),
        ({**headers, "X-Slack-Request-Timestamp": "yesterday"}, body),
    ]
    for case_headers, case_body in cases:
        reply = call("POST", "/chat/slack", headers=case_headers, body=case_body)
        assert reply.status == 401 and reply.body == b"unauthorized\n", case_headers


def test_slack_job_problems_history_help(call: Transport) -> None:
    def ask(text: str) -> str:
        headers, body = slack_request(text)
        reply = call("POST", "/chat/slack", headers=headers, body=body)
        assert reply.status == 200
        return slack_text(reply)

    orders = ask("status 9a470239")
    assert "*OK* orders: MySQL -&gt; GaussDB" in orders and f"id {ORDERS}" in orders
    assert "incremental delay" in orders and "comparison b13b233a: OK" in orders
    assert "Stored reading of" in orders and "|Open this job>" in orders
    assert ask("status warehouse gaussdb").startswith("*OK* warehouse")
    many = ask("status mysql")
    assert "jobs match “mysql”" in many
    assert "No job matches “nothing here”" in ask("status nothing here")
    problems = ask("problems")
    assert problems.count("• ") == 7 and "DRS.M05004" in problems
    history = ask("history warehouse 24h")
    assert "3 readings" in history and "progress 40% → " in history
    assert "full migration → incremental" in history
    assert "not a window" in ask("history warehouse 99y")
    helped = ask("help")
    assert "status &lt;job id prefix | name words&gt;" in helped
    unknown = ask("drop table jobs; <!channel>")
    assert "Unknown command “drop table jobs; &lt;\u01c3channel&gt;”" in unknown
    assert "<!channel>" not in unknown


def test_hostile_names_stay_inert_in_every_chat(call: Transport) -> None:
    headers, body = slack_request("status 6a8c0e2d")
    slack = slack_text(call("POST", "/chat/slack", headers=headers, body=body))
    headers, body = dingtalk_request("status 6a8c0e2d")
    ding = call("POST", "/chat/dingtalk", headers=headers, body=body).json()["markdown"]["text"]
    for answer in (slack, ding):
        assert "reporting" in answer
        # Our own signed link is the one link allowed in the answer.
        answer = "\n".join(line for line in answer.split("\n") if BASE_URL not in line)
        for live in ("<b>", "<script>", "](http", "http://", "@all", "<!channel>",
                     "**urgent**", "<at user_id"):
            assert live not in answer, (live, answer)


def test_slack_answers_fit_block_kit_limits(call: Transport, site: Site) -> None:
    from drs_report.web.commands import Answer, Block, fit
    from drs_report.web.slack import DIALECT

    many = Answer("*t*", [Block([f"• line {i} " + "x" * 200 for i in range(400)],
                                more=lambda n: f"and {n} more", foldable=True)])
    texts = fit(many, DIALECT)
    assert len(texts) <= 50 and all(len(t) <= 3000 for t in texts)
    assert texts[-1].endswith("more") and sum(len(t.encode()) for t in texts) <= 12000
    headers, body = slack_request("problems")
    blocks = call("POST", "/chat/slack", headers=headers, body=body).json()["blocks"]
    assert len(blocks) <= 50 and all(len(b["text"]["text"]) <= 3000 for b in blocks)


def test_live_reads_drs_and_stores_nothing(call: Transport, site: Site) -> None:
    before = _row_counts(site.store_url)
    served_before = site.emulator.requests_served
    headers, body = slack_request("status 9a470239 live")
    started = time.monotonic()
    reply = call("POST", "/chat/slack", headers=headers, body=body)
    assert time.monotonic() - started < 3.0  # Slack gives up after 3 seconds
    text = slack_text(reply)
    assert "Live reading of" in text and "not stored" in text, text
    assert site.emulator.requests_served > served_before  # it did ask DRS
    assert _row_counts(site.store_url) == before


def test_live_that_cannot_finish_in_time_answers_from_the_store(call: Transport,
                                                                site: Site) -> None:
    from drs_report.emulator import Faults

    site.emulator.set_faults(Faults(latency_ms=6000))
    try:
        headers, body = slack_request("status 9a470239 live")
        started = time.monotonic()
        reply = call("POST", "/chat/slack", headers=headers, body=body)
        elapsed = time.monotonic() - started
    finally:
        site.emulator.set_faults(Faults())
    assert elapsed < 3.0, elapsed
    text = slack_text(reply)
    assert "live reading did not come" in text and "Stored reading of" in text


# -- DingTalk --------------------------------------------------------------------------------


def test_dingtalk_answers_markdown(call: Transport) -> None:
    headers, body = dingtalk_request("status")
    reply = call("POST", "/chat/dingtalk", headers=headers, body=body)
    assert reply.status == 200, reply.text
    data = reply.json()
    assert data["msgtype"] == "markdown" and data["markdown"]["title"] == "DRS status"
    text = data["markdown"]["text"]
    # chat_inert: '>' in a job name becomes a look-alike DingTalk does not read as markup.
    assert "**CRITICAL** 2" in text and "customers: MySQL -\u203a GaussDB" in text
    assert "\n\n• **CRITICAL** " in text and len(text.encode()) <= 18000
    assert f"]({BASE_URL}/reports/" in text


def test_dingtalk_refuses_bad_signatures_and_old_timestamps(call: Transport) -> None:
    headers, body = dingtalk_request("status")
    now_ms = int(time.time() * 1000)
    cases = [
        ({"Content-Type": "application/json"}, body),
        ({**headers, "sign": base64.b64encode(b"0" * 32).decode()}, body),
        dingtalk_request("status", secret="SECnot-the-app-secret"),
        dingtalk_request("status", timestamp_ms=now_ms - 3600 * 1000 - 5000),
        dingtalk_request("status", timestamp_ms=now_ms + 3600 * 1000 + 5000),
    ]
    for case_headers, case_body in cases:
        reply = call("POST", "/chat/dingtalk", headers=case_headers, body=case_body)
        assert reply.status == 401 and reply.body == b"unauthorized\n"
    # Within the hour is fine: DingTalk's own rule.
    headers, body = dingtalk_request("help", timestamp_ms=now_ms - 3500 * 1000)
    assert call("POST", "/chat/dingtalk", headers=headers, body=body).status == 200


# -- Feishu ----------------------------------------------------------------------------------


def test_feishu_url_verification(call: Transport) -> None:
    challenge = {"challenge": "ajls384kdjx98XX", "token": FEISHU_TOKEN,
                 "type": "url_verification"}
    body = feishu_encrypt(challenge)
    reply = call("POST", "/chat/feishu", headers={"Content-Type": "application/json"},
                 body=body)
    assert reply.status == 200 and reply.json() == {"challenge": "ajls384kdjx98XX"}
    wrong = feishu_encrypt({**challenge, "token": "not-the-verification-token"})
    assert call("POST", "/chat/feishu", body=wrong).status == 401
    # With an encrypt key set, plain JSON is not from Feishu; a wrong key cannot decrypt.
    assert call("POST", "/chat/feishu", body=json.dumps(challenge).encode()).status == 401
    other_key = feishu_encrypt(challenge, key="a-different-encrypt-key")
    assert call("POST", "/chat/feishu", body=other_key).status in (400, 401)


def test_feishu_message_is_answered_through_the_message_api(call: Transport,
                                                            site: Site) -> None:
    event_id = f"5e3702a84e847582be8db7fb73283c02-{call.kind}-{site.backend}"
    body = feishu_encrypt(feishu_message("status 9a470239", event_id))
    reply = call("POST", "/chat/feishu", headers=feishu_headers(body), body=body)
    assert reply.status == 200 and reply.json() == {}
    message_id, sent = site.feishu.replies[-1]
    assert message_id == f"om_{event_id[-12:]}" and sent["msg_type"] == "interactive"
    card = json.loads(sent["content"])
    assert "orders" in card["header"]["title"]["content"]
    assert "comparison b13b233a" in card["elements"][0]["content"]
    assert len(sent["content"].encode()) < 30 * 1024
    assert site.feishu.token_requests[-1]["app_id"] == FEISHU_APP_ID
    # Feishu re-delivers what it thinks was lost: the same event is answered once.
    replies = len(site.feishu.replies)
    again = call("POST", "/chat/feishu", headers=feishu_headers(body), body=body)
    assert again.status == 200 and len(site.feishu.replies) == replies


def test_feishu_refuses_bad_signatures_tokens_and_replays(call: Transport, site: Site) -> None:
    body = feishu_encrypt(feishu_message("status", f"evt-refused-{call.kind}"))
    cases = [
        ({"Content-Type": "application/json"}, body),
        (feishu_headers(body, key="not-the-encrypt-key"), body),
        (feishu_headers(body, timestamp=int(time.time()) - 7200), body),
        ({**feishu_headers(body), "X-Lark-Request-Nonce": "other"}, body),
    ]
    wrong_token = feishu_encrypt(feishu_message("status", "evt-token", token="nope-nope"))
    cases.append((feishu_headers(wrong_token), wrong_token))
    replies = len(site.feishu.replies)
    for headers, case_body in cases:
        reply = call("POST", "/chat/feishu", headers=headers, body=case_body)
        assert reply.status == 401 and reply.body == b"unauthorized\n"
    assert len(site.feishu.replies) == replies


# -- never writes, never leaks -----------------------------------------------------------------


def _row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {table.__tablename__: conn.execute(
                select(func.count()).select_from(table)).scalar_one()
                for table in (Run, JobSnapshot, RenderedReport)}
    finally:
        engine.dispose()


def test_the_http_side_cannot_write_the_store(site: Site) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from drs_report.web.source import open_read_only

    store = open_read_only(site.store_url)
    try:
        with pytest.raises(SQLAlchemyError), store.engine.begin() as conn:
            conn.execute(text("DELETE FROM reports"))
    finally:
        store.close()
    assert _row_counts(site.store_url)["reports"] > 0


def test_every_route_leaves_the_store_as_it_was(call: Transport, site: Site) -> None:
    before = _row_counts(site.store_url)
    for path in ("/reports", "/reports/latest", f"/jobs/{ORDERS}"):
        assert call("GET", path, headers=bearer()).status == 200
    for text_ in ("status", "problems", "history orders", "status orders"):
        headers, body = slack_request(text_)
        assert call("POST", "/chat/slack", headers=headers, body=body).status == 200
    assert _row_counts(site.store_url) == before


def test_no_secret_in_any_answer_or_log(call: Transport, site: Site,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    texts: list[str] = []
    for path, headers in (("/reports", bearer()), ("/reports", {}),
                          ("/reports/latest", bearer()), (f"/jobs/{ORDERS}", bearer())):
        reply = call("GET", path, headers=headers)
        texts += [reply.text, json.dumps(reply.headers)]
    for ask in ("status", "status orders live", "problems"):
        headers, body = slack_request(ask)
        texts.append(call("POST", "/chat/slack", headers=headers, body=body).text)
    body = feishu_encrypt(feishu_message("status", f"evt-leak-{call.kind}-{site.backend}"))
    texts.append(call("POST", "/chat/feishu", headers=feishu_headers(body), body=body).text)
    texts += [r.getMessage() for r in caplog.records] + call.logger_lines
    assert_no_secret(*texts)


# -- the APIG adapter ---------------------------------------------------------------------------


def test_apig_bodies_plain_or_base64(site: Site) -> None:
    transport = Transport("apig", site)
    headers, body = slack_request("help")
    plain = transport.apig(apig_event("POST", "/chat/slack", headers=headers, body=body,
                                      base64_body=False))
    assert plain.status == 200 and "drs-report commands" in slack_text(plain)
    broken = apig_event("POST", "/chat/slack", headers=headers, body=body)
    broken["body"] = "%%% not base64 %%%"
    assert transport.apig(broken).status == 400
    huge = apig_event("POST", "/chat/slack", headers=headers, body=b"x" * 100_000)
    assert transport.apig(huge).status == 413


def test_apig_with_a_broken_configuration_is_a_503_not_a_traceback(site: Site,
                                                                   tmp_path: Any) -> None:
    import index

    from tests.test_function import FakeContext

    bad = tmp_path / "config.toml"
    bad.write_text(site.config.read_text().replace(f'token = "{WEB_TOKEN}"', 'token = "short"'))
    context = FakeContext(user_data={"DRS_REPORT_CONFIG": str(bad)})
    answer = index.handler(apig_event("GET", "/reports"), context)
    assert answer["statusCode"] == 503
    assert any("web.token" in line for line in context.logger.lines)
    assert not any("Traceback" in line for line in context.logger.lines)


def test_timer_events_still_run_a_cycle(site: Site, tmp_path: Any) -> None:
    import index

    from tests.test_function import TIMER_EVENT, FakeContext

    context = FakeContext(user_data={"DRS_REPORT_CONFIG": str(site.config)})
    summary = index.handler(TIMER_EVENT, context)
    assert summary["status"] == "ok" and "statusCode" not in summary
    assert summary["counts"]["CRITICAL"] == 2


def test_quoting_in_paths(call: Transport) -> None:
    reply = call("GET", "/jobs/" + quote("9a470239-2308-4bb5-a6bc-1040402fjb21"),
                 headers=bearer())
    assert reply.status == 200


def test_folding_counts_the_lines_never_formatted() -> None:
    from drs_report.web.commands import Answer, Block, fit
    from drs_report.web.slack import DIALECT

    answer = Answer("*t*", [Block(["• a job"] * 10, more=lambda n: f"and {n} more",
                                  foldable=True, hidden=990)])
    assert fit(answer, DIALECT)[-1].endswith("• a job\nand 990 more")


def test_chat_ops_say_one_job_in_the_singular_and_chinese_in_its_own_words() -> None:
    from drs_report.web.commands import ChatWords
    from drs_report.web.dingtalk import DIALECT

    english = ChatWords("en-us", "UTC")
    assert english.say(DIALECT, "status.all_ok", n=1) == "The job is healthy."
    assert english.say(DIALECT, "status.all_ok", n=3) == "All 3 jobs are healthy."
    assert english.say(DIALECT, "history.readings", n=1, first="a", last="b") == \
        "1 reading, a to b"
    assert english.say(DIALECT, "problems.more", n=1).startswith("and 1 more problem;")
    chinese = ChatWords("zh-cn", "UTC")
    for n in (1, 2):
        said = chinese.say(DIALECT, "status.all_ok", n=n)
        assert str(n) in said and "healthy" not in said, said
