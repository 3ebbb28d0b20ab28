"""Digests and alerts carry "open the full report" and "open this job" when web.base_url is set.

A real cycle against the emulator delivers to the vendor stand-ins and an SMTP relay and
writes the report files; every link found in them is then opened through the web
application on loopback with the signature it carries, and refused once tampered with or
expired. Without web.base_url nothing carries a link.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from drs_report.analysis import analyse
from drs_report.config import Settings
from drs_report.pipeline import run_cycle
from drs_report.render import render_all
from tests.fixtures.emulator import canary_credentials, make_emulator, make_settings
from tests.fixtures.hostile import HostileSMTP
from tests.fixtures.receivers import FEISHU_SECRET, Receiver
from tests.report_fixtures import NOW, fleet
from tests.report_fixtures import settings as fixture_settings
from tests.test_folding import text_of

BASE_URL = "https://drs.example.com/report"
LINK_SECRET = "canary-link-secret-for-digests-5f7a9c"
WEB = {"base_url": BASE_URL, "link_secret": LINK_SECRET,
       "token": "canary-archive-token-2b4d6f8h"}
LINK = re.compile(re.escape(BASE_URL) + r"/(?:reports|jobs)/[^\s|)>\"'<\]]+")
WEEK = 168 * 3600


def links_in(text: str) -> set[str]:
    return {html.unescape(m) for m in LINK.findall(text)}


def channels(hooks: dict[str, Receiver], relay_port: int) -> list[dict[str, Any]]:
    return [
        {"type": "slack", "name": "slack", "mode": "digest", "url": hooks["slack"].url},
        {"type": "wecom", "name": "wecom", "mode": "alert", "url": hooks["wecom"].url},
        {"type": "feishu", "name": "feishu", "mode": "alert", "url": hooks["feishu"].url,
         "secret": FEISHU_SECRET},
        {"type": "teams", "name": "teams", "mode": "digest", "url": hooks["teams"].url},
        {"type": "smtp", "name": "mail", "mode": "digest", "host": "127.0.0.1",
         "port": relay_port, "security": "none", "from": "drs@example.com",
         "to": ["dba@example.com"]},
        {"type": "smtp", "name": "mail-alert", "mode": "alert", "host": "127.0.0.1",
         "port": relay_port, "security": "none", "from": "drs@example.com",
         "to": ["dba@example.com"]},
    ]


class Delivered:
    def __init__(self, settings: Settings, run_id: int, texts: dict[str, str],
                 problem_jobs: list[str]) -> None:
        self.settings = settings
        self.run_id = run_id
        self.texts = texts  # where -> what a reader sees
        self.problem_jobs = problem_jobs


def run_and_collect(tmp_path: Path, hooks: dict[str, Receiver], web: dict[str, Any] | None
                    ) -> Delivered:
    with make_emulator() as emu, HostileSMTP() as relay:
        sections: dict[str, Any] = {"channels": channels(hooks, relay.port),
                                    "delivery": {"max_attempts": 1}}
        if web is not None:
            sections["web"] = web
        settings = make_settings(emu, tmp_path, **sections)
        result = run_cycle(settings, canary_credentials())
        assert all(o.status == "sent" for o in result.deliveries), \
            [o.reason for o in result.deliveries]
        mails = list(relay.messages)
    assert result.run_id is not None
    texts = {f"file:{fmt}": Path(path).read_text(encoding="utf-8")
             for fmt, path in result.outputs.items()}
    for kind in ("slack", "wecom", "feishu", "teams"):
        (message,) = hooks[kind].received
        texts[kind] = text_of(kind, message)
    for n, raw in enumerate(mails):
        mail = message_from_bytes(raw, policy=policy.default)
        for part in mail.walk():
            if part.get_content_maintype() == "text":
                texts[f"mail{n}:{part.get_content_type()}"] = part.get_content()
    data = json.loads(texts["file:json"])
    problem_jobs = list(dict.fromkeys(p["job_id"] for p in data["problems"]))
    return Delivered(settings, result.run_id, texts, problem_jobs)


@pytest.fixture
def delivered(tmp_path: Path, webhooks: dict[str, Receiver]) -> Delivered:
    return run_and_collect(tmp_path, webhooks, WEB)


@pytest.fixture
def archive(delivered: Delivered) -> Iterator[str]:
    """The web application over the run's store, on loopback."""
    from drs_report.web.app import App
    from drs_report.web.server import make

    app = App(delivered.settings, credentials=canary_credentials())
    server = make(app, "127.0.0.1", 0, timeout=2.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        app.close()


def open_link(archive: str, link: str) -> requests.Response:
    """What a reader's click does: the link's path and query, at the archive."""
    parts = urlsplit(link)
    path = parts.path.removeprefix(urlsplit(BASE_URL).path)
    return requests.get(f"{archive}{path}?{parts.query}", timeout=10, allow_redirects=False)


def test_every_message_and_file_carries_the_report_link(delivered: Delivered) -> None:
    report_link = f"{BASE_URL}/reports/{delivered.run_id}?"
    for where, text in delivered.texts.items():
        if where == "file:json":
            continue  # data, not a message
        found = {link for link in links_in(text) if link.startswith(report_link)}
        assert len(found) == 1, (where, links_in(text), text[:500])
        (link,) = found
        expires = int(parse_qs(urlsplit(link).query)["expires"][0])
        assert abs(expires - (time.time() + WEEK)) < 300  # web.link_expiry_hours: 7 days


def test_problem_jobs_carry_their_own_link(delivered: Delivered) -> None:
    assert delivered.problem_jobs
    for where in ("file:html", "file:txt", "file:md", "slack", "teams", "wecom", "feishu"):
        jobs = {urlsplit(link).path.rsplit("/", 1)[-1]
                for link in links_in(delivered.texts[where]) if "/jobs/" in link}
        assert jobs, where
        assert jobs <= set(delivered.problem_jobs), where  # problems only, not healthy jobs
        if where.startswith("file:") and where != "file:md":
            assert jobs == set(delivered.problem_jobs), where


def test_the_links_open_with_their_signature_and_refuse_tampering(
        delivered: Delivered, archive: str) -> None:
    links = set().union(*(links_in(t) for t in delivered.texts.values()))
    report_links = {link for link in links if "/reports/" in link}
    job_links = {link for link in links if "/jobs/" in link}
    assert report_links and job_links
    for link in report_links:
        page = open_link(archive, link)
        assert page.status_code == 200, (link, page.text[:200])
        assert "DRS status report" in page.text  # this run's archived report
    for link in list(job_links)[:5]:
        page = open_link(archive, link)
        assert page.status_code == 200, (link, page.text[:200])
        assert urlsplit(link).path.rsplit("/", 1)[-1] in page.text
    link = sorted(report_links)[0]
    query = parse_qs(urlsplit(link).query)
    signature, expires = query["signature"][0], query["expires"][0]
    other = "A" if signature[0] != "A" else "B"
    tampered = [
        link.replace(f"signature={signature}", f"signature={other}{signature[1:]}"),
        link.replace(f"expires={expires}", f"expires={int(expires) + 1}"),
        link.replace(f"/reports/{delivered.run_id}?", f"/reports/{delivered.run_id + 1}?"),
        link.replace(f"/reports/{delivered.run_id}?", "/reports/latest?"),
        link.split("&signature=")[0],
    ]
    for bad in tampered:
        refused = open_link(archive, bad)
        assert refused.status_code == 401, bad
        assert refused.text.strip() == "unauthorized"


def test_the_delivered_links_expire_after_a_week(delivered: Delivered) -> None:
    """The gate asked at the link's own expiry and a second after it."""
    from drs_report.web.auth import authorize
    from drs_report.web.http import HttpError, Request

    links = set().union(*(links_in(t) for t in delivered.texts.values()))
    assert links
    for link in links:
        parts = urlsplit(link)
        request = Request("GET", parts.path.removeprefix(urlsplit(BASE_URL).path),
                          query=parse_qs(parts.query))
        expires = int(parse_qs(parts.query)["expires"][0])
        assert authorize(request, delivered.settings.web, now=expires).by == "link"
        with pytest.raises(HttpError) as refused:
            authorize(request, delivered.settings.web, now=expires + 1)
        assert refused.value.status == 401


def test_without_a_base_url_nothing_carries_a_link(tmp_path: Path,
                                                   webhooks: dict[str, Receiver]) -> None:
    plain = run_and_collect(tmp_path, webhooks, None)
    for where, text in plain.texts.items():
        assert "signature=" not in text and "drs.example.com" not in text, where
        assert "Open the full report" not in text and "Open this job" not in text, where


def test_api_text_next_to_a_link_stays_defanged() -> None:
    snapshot, history = fleet()
    settings = fixture_settings(web=WEB)
    report = analyse(snapshot, history, None, settings, now=NOW)
    rendered = render_all(report, settings, run_id=7)
    for fmt in ("html", "txt", "md"):
        text = rendered[fmt]
        assert f"{BASE_URL}/reports/7?expires=" in html.unescape(text), fmt
        assert "http://evil" not in text and "www.evil" not in text, fmt
        if fmt != "txt":  # in plain text "<!channel>" is only text
            assert "<!channel>" not in text, fmt
        if fmt == "md":  # the only Markdown links are ours
            targets = re.findall(r"(?<!\\)\]\((\S+?)\)", text)
            assert targets and all(t.startswith(BASE_URL) for t in targets), targets
    assert 'href="https://drs.example.com/report/reports/7?' in rendered["html"]


def test_a_dry_run_and_a_scoped_run_link_no_archived_report(tmp_path: Path) -> None:
    """A dry run stores no report, and a run narrowed with --job keeps none to open."""
    with make_emulator() as emu:
        settings = make_settings(emu, tmp_path, web=WEB)
        dry = run_cycle(settings, canary_credentials(), dry_run=True,
                        output_dir=tmp_path / "dry")
        scoped = run_cycle(settings, canary_credentials(),
                           job_ids=[emu.jobs_config()[0]["id"]])  # type: ignore[list-item]
    for result in (dry, scoped):
        text = Path(result.outputs["txt"]).read_text(encoding="utf-8")
        assert "/reports/" not in text
    assert "/jobs/" in Path(dry.outputs["txt"]).read_text(encoding="utf-8")
