"""Alerts and digests folded to each vendor's documented limit, and long API text cut.

During a region-wide failure every job fails at once, and a service's error text can be a
stack trace of kilobytes or a megabyte. Every channel's payload goes to the receivers of
tests/fixtures/receivers.py, which refuse what the vendor refuses; then the message must
still name the CRITICAL jobs, worst first, count what it left out, and show the failed
job's error cut with a mark rather than fold the job away.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from drs_report.analysis import Health, Problem, ProblemChanges, Report, analyse, diff_problems
from drs_report.config import Settings, parse_settings
from drs_report.delivery import DeliveryOutcome, deliver
from drs_report.models import JobProgress, JobReading, Snapshot
from drs_report.render import (
    CHAT_CHARS,
    CUT_MARK,
    DIALECTS,
    HTML_MAX_BYTES,
    MARKDOWN_MAX_BYTES,
    TEXT_CHARS,
    cut,
    render_all,
    render_chat,
)
from drs_report.store import Store
from tests.fixtures.emulator import canary_credentials
from tests.fixtures.hostile import HostileSMTP
from tests.fixtures.receivers import DINGTALK_SECRET, FEISHU_SECRET, WEBHOOK_SECRET, Receiver
from tests.report_fixtures import NOW, incremental, jid

PROJECT = "5237e10fe9aa4ad5b16b6a5245248314"
STACK_TRACE = "java.sql.SQLException: binlog purged\n" + "".join(
    f"\tat com.huawei.drs.replay.Applier.apply{n}(Applier.java:{n * 7})\n" for n in range(90))
MEGABYTE = "ERROR " + "x" * (1 << 20)
SCENARIOS = {
    # 200 failed jobs at once, each with a short message.
    "200-failed": (200, "binlog purged: the source database no longer has the position"),
    # The only failed job, with a 4 KB stack trace.
    "stack-trace": (1, STACK_TRACE),
    # The only failed job, with a 1 MB message.
    "1MB": (1, MEGABYTE),
}
CHANNEL_KINDS = ("slack", "teams", "feishu", "dingtalk", "wecom", "smn", "webhook")


def failed_fleet(failed: int, message: str, healthy: int = 10
                 ) -> tuple[Snapshot, list[dict[str, Any]]]:
    readings = [JobReading(jid(n), f"failed job {n:04d}", JobProgress(
        job_id=jid(n), progress=100.0, task_mode="FULL_INCR_TRANS",
        transfer_status="INCRE_TRANSFER_FAILED", error_code="DRS.M05004", error_msg=message))
        for n in range(failed)]
    readings += [JobReading(jid(5000 + n), f"healthy job {n:04d}", incremental(
        jid(5000 + n), 2.0)) for n in range(healthy)]
    return Snapshot(taken_at=NOW, jobs=readings), [{"id": r.job_id} for r in readings]


def settings_for(jobs: list[dict[str, Any]], *channels: dict[str, Any]) -> Settings:
    return parse_settings({"drs": {"region": "cn-north-4", "project_id": PROJECT},
                           "jobs": jobs, "channels": list(channels),
                           "delivery": {"max_attempts": 1}}, {})


def channel(kind: str, hooks: dict[str, Receiver], mode: str) -> dict[str, Any]:
    config: dict[str, Any] = {"type": kind, "name": f"{kind}-{mode}", "mode": mode}
    if kind == "smn":
        config.update(topic_urn=f"urn:smn:cn-north-4:{PROJECT}:drs",
                      endpoint=hooks["smn"].url.rstrip("/"))
    else:
        config["url"] = hooks[kind].url
    config.update({"feishu": {"secret": FEISHU_SECRET}, "dingtalk": {"secret": DINGTALK_SECRET},
                   "webhook": {"secret": WEBHOOK_SECRET}}.get(kind, {}))
    return config


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'h.db'}", in_functiongraph=False)
    opened.upgrade()
    yield opened
    opened.close()


def send(settings: Settings, store: Store, report: Report) -> list[DeliveryOutcome]:
    run_id = store.begin_run(trigger="test", started_at=NOW)
    return deliver(report, render_all(report, settings, run_id=run_id), settings, store,
                   run_id, now=NOW, deadline=None, force=False, dry_run=False,
                   credentials=canary_credentials())


def text_of(kind: str, body: Any) -> str:
    """What a reader sees of the message each receiver took."""
    data = body.json()
    if kind == "slack":
        return "\n".join(b["text"]["text"] for b in data["blocks"])
    if kind == "teams":
        return "\n".join(b["text"] for b in data["attachments"][0]["content"]["body"])
    if kind == "feishu":
        return str(data["card"]["elements"][0]["content"])
    if kind == "dingtalk":
        return str(data["markdown"]["text"])
    if kind == "wecom":
        return str(data["markdown"]["content"])
    if kind == "smn":
        import json

        return str(json.loads(data["message_structure"])["default"])
    return body.body.decode()


# "and 12 more (3 critical)", "and 12 more problems, 3 of them critical", "and 1 more
# problem, critical"; not "and 10 more healthy jobs".
_MORE = re.compile(r"and (\d+) more(?! healthy)(?: problems?)?(?:,? \(?(\d+)(?: of them)? "
                   r"critical|, (critical))?")


def named_and_counted(text: str) -> tuple[set[str], int, int]:
    """The failed jobs a message names, and the jobs it says it left out (all, critical)."""
    names = set(re.findall(r"failed job \d{4}", text))
    hidden = critical = 0
    for match in _MORE.finditer(text):
        hidden += int(match.group(1))
        critical += int(match.group(2) or (match.group(1) if match.group(3) else 0))
    return names, hidden, critical


# -- every channel, at the receivers -----------------------------------------------------


@pytest.mark.parametrize("mode", ["digest", "alert"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("kind", CHANNEL_KINDS)
def test_every_channel_fits_its_vendor_and_names_the_failed_jobs(
        kind: str, scenario: str, mode: str, webhooks: dict[str, Receiver],
        store: Store) -> None:
    failed, message = SCENARIOS[scenario]
    snapshot, jobs = failed_fleet(failed, message)
    settings = settings_for(jobs, channel(kind, webhooks, mode))
    report = analyse(snapshot, {}, None, settings, now=NOW)
    (outcome,) = send(settings, store, report)
    # The receivers refuse what the vendor refuses (size, blocks, SMS text): sent means it fit.
    assert outcome.status == "sent", outcome.reason
    (received,) = webhooks[kind].received
    if kind == "webhook":  # report.json: every job, as data; long strings cut
        data = received.json()
        assert sum(1 for p in data["problems"] if p["health"] == "CRITICAL") == failed
        assert len(received.body) < 200_000 + 1000 * failed
        messages = {p["params"]["error_msg"] for p in data["problems"]}
        if len(message) > 4096:
            assert messages == {message[:4096] + CUT_MARK}
        return
    text = text_of(kind, received)
    names, hidden, critical = named_and_counted(text)
    # Every failed job is named or counted, and every one left out is counted as critical.
    assert len(names) + hidden == failed, (len(names), hidden, text[-300:])
    assert critical == hidden
    assert names >= {f"failed job {n:04d}" for n in range(min(failed, 5))}  # worst first
    if failed == 1:
        assert "DRS.M05004" in text  # the error's code and the start of its message
        assert ("binlog purged" in text) if scenario == "stack-trace" else "ERROR x" in text
        assert "(cut)" in text  # and the mark where it was cut
        assert len(text) < 8000  # not the megabyte
    if failed == 200 and kind in ("slack", "wecom"):
        assert len(names) >= 40  # names first: not folded to five at the first fit


def test_the_whole_smn_message_fits_and_its_sms_has_no_brackets(
        webhooks: dict[str, Receiver], store: Store) -> None:
    import json

    snapshot, jobs = failed_fleet(200, STACK_TRACE)  # the text report alone is over 256 KB
    settings = settings_for(jobs, channel("smn", webhooks, "digest"))
    report = analyse(snapshot, {}, None, settings, now=NOW)
    assert len(render_all(report, settings)["txt"].encode()) * 4 > 256 * 1024
    (outcome,) = send(settings, store, report)
    assert outcome.status == "sent", outcome.reason
    structure = json.loads(webhooks["smn"].received[0].json()["message_structure"])
    assert structure["sms"].startswith("(DRS) 200 critical")
    names, hidden, critical = named_and_counted(structure["default"])
    assert len(names) + hidden == 200 and critical == hidden


# -- email -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["digest", "alert"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_email_stays_small_and_names_the_failed_jobs(scenario: str, mode: str,
                                                     store: Store) -> None:
    failed, message = SCENARIOS[scenario]
    snapshot, jobs = failed_fleet(failed, message)
    with HostileSMTP() as relay:
        config = {"type": "smtp", "name": "mail", "mode": mode, "host": "127.0.0.1",
                  "port": relay.port, "security": "none", "from": "drs@example.com",
                  "to": ["dba@example.com"]}
        settings = settings_for(jobs, config)
        report = analyse(snapshot, {}, None, settings, now=NOW)
        (outcome,) = send(settings, store, report)
        assert outcome.status == "sent", outcome.reason
        (raw,) = relay.messages
    mail = message_from_bytes(raw, policy=policy.default)
    if failed == 1:
        assert len(raw) < 100_000  # was 3.7 MB with a 1 MB message
    parts = [mail] if mail.get_content_type() == "text/plain" else list(mail.walk())
    bodies = {p.get_content_type(): p.get_content() for p in parts
              if p.get_content_type() in ("text/plain", "text/html") and
              p.get_content_disposition() != "attachment"}
    if mode == "digest":
        assert len(bodies["text/html"].encode()) <= HTML_MAX_BYTES  # Gmail clips beyond ~102 KB
    for body in bodies.values():
        names, hidden, critical = named_and_counted(body)
        assert len(names) + hidden == failed and critical == hidden
        if failed == 1:
            assert "DRS.M05004" in body and "(cut)" in body


# -- the folding itself ------------------------------------------------------------------


def test_one_long_message_never_folds_the_only_failed_job_away() -> None:
    for message in (STACK_TRACE, MEGABYTE):
        snapshot, jobs = failed_fleet(1, message)
        settings = settings_for(jobs)
        report = analyse(snapshot, {}, None, settings, now=NOW)
        for dialect in DIALECTS:
            for changes in (None, diff_problems({}, report)):
                for limit in (600, 1500, 4096):
                    text = render_chat(report, dialect=dialect, max_bytes=limit,
                                       changes=changes)
                    assert len(text.encode()) <= limit
                    assert "failed job 0000" in text, (dialect, limit, text)
        rendered = render_all(report, settings)
        assert "failed job 0000" in rendered["md"] and "(cut)" in rendered["md"]
        for fmt, limit in (("html", 60_000), ("txt", 8_000), ("md", 4096), ("json", 30_000)):
            assert len(rendered[fmt].encode()) < limit, fmt


def test_every_format_cuts_an_api_string_to_its_length_with_the_mark() -> None:
    snapshot, jobs = failed_fleet(1, MEGABYTE)
    settings = settings_for(jobs)
    rendered = render_all(analyse(snapshot, {}, None, settings, now=NOW), settings)
    for fmt, limit in (("txt", TEXT_CHARS), ("md", CHAT_CHARS)):
        longest = max(re.findall(r"x{10,}", rendered[fmt]), key=len)
        assert limit - 20 <= len(longest) <= limit, fmt
        assert longest + CUT_MARK in rendered[fmt], fmt
    assert "x" * (TEXT_CHARS - 20) in rendered["html"] and "x" * (TEXT_CHARS + 1) not in \
        rendered["html"]
    assert "x" * 4000 in rendered["json"] and "x" * 4100 not in rendered["json"]


def test_the_zh_cn_mark_and_counts_are_in_chinese() -> None:
    snapshot, jobs = failed_fleet(200, MEGABYTE)
    settings = parse_settings({"drs": {"region": "cn-north-4", "project_id": PROJECT,
                                       "language": "zh-cn"}, "jobs": jobs}, {})
    report = analyse(snapshot, {}, None, settings, now=NOW)
    text = render_chat(report, dialect="wecom", max_bytes=4096,
                       changes=diff_problems({}, report))
    assert re.search("另有 \\d+ 项\uff08\\d+ 项严重\uff09", text), text
    md = render_all(report, settings)["md"]
    assert "其中" in md and "个严重" in md


def test_cut_reads_only_a_window_and_breaks_at_a_word() -> None:
    assert cut("short", 10) == "short"
    assert cut("word " * 100, 42) == "word " * 7 + "word" + CUT_MARK
    huge = "a" * 50_000_000  # reading all of it would take seconds on every render
    assert cut(huge, 300) == "a" * 300 + CUT_MARK
    # A window of whitespace still counts as longer than the limit.
    assert cut("x" + " " * 10_000 + "y", 10).endswith(CUT_MARK)


def problem(n: int, health: Health, code: str = "failed") -> Problem:
    return Problem(key=f"{jid(n)}:{code}", health=health, code=code, job_id=jid(n),
                   compare_job_id=None, params={"state": "INCRE_TRANSFER_FAILED"},
                   job_name=f"failed job {n:04d}")


def test_an_alert_names_critical_problems_first_whatever_section_they_are_in() -> None:
    snapshot, jobs = failed_fleet(1, "x")
    report = analyse(snapshot, {}, None, settings_for(jobs), now=NOW)
    # Many new warnings, and critical problems that got worse: the critical ones must show.
    warnings = [problem(n, Health.WARNING, "delay_warning") for n in range(100, 400)]
    critical = [problem(n, Health.CRITICAL) for n in range(10)]
    changes = ProblemChanges(new=warnings, escalated=critical,
                             resolved=[f"{jid(n)}:paused" for n in range(500, 600)])
    text = render_chat(report, dialect="slack", max_bytes=3000, changes=changes)
    assert all(f"failed job {n:04d}" in text for n in range(10)), text
    assert "*Worse*" in text and "*New*" in text
    assert re.search(r"and (\d+) more", text)
    assert len(text) <= 3000
    # The warnings that fit come after every critical one, the resolved keys after them.
    new_part = text.split("*New*")[1].split("*Worse*")[0]
    shown = len(re.findall(r"failed job \d{4}", new_part))
    assert f"and {300 - shown} more" in new_part and "critical" not in new_part.split(
        "and ")[-1]


def test_the_hard_cut_keeps_whole_lines_when_not_even_the_frame_fits() -> None:
    snapshot, jobs = failed_fleet(3, "x")
    report = analyse(snapshot, {}, None, settings_for(jobs), now=NOW)
    report.title = "a very long title " * 40
    text = render_chat(report, dialect="markdown", max_bytes=200)
    assert len(text.encode()) <= 200 and text.endswith("…\n")


def test_report_md_stays_within_its_limit_with_a_giant_run_error() -> None:
    snapshot, jobs = failed_fleet(3, "x")
    snapshot.errors = [f"listing the comparisons of job {n} failed: " + "e" * 5000
                       for n in range(300)]
    report = analyse(snapshot, {}, None, settings_for(jobs), now=NOW)
    md = render_all(report, settings_for(jobs))["md"]
    assert len(md.encode()) <= MARKDOWN_MAX_BYTES
    assert all(f"failed job {n:04d}" in md for n in range(3))


def test_a_digest_and_an_alert_a_day_later_both_fit(webhooks: dict[str, Receiver],
                                                    store: Store) -> None:
    """A second alert (resolved and new problems together) folds like the first."""
    snapshot, jobs = failed_fleet(200, STACK_TRACE)
    settings = settings_for(jobs, channel("wecom", webhooks, "alert"))
    first = analyse(snapshot, {}, None, settings, now=NOW)
    assert send(settings, store, first)[0].status == "sent"
    later_snapshot, _ = failed_fleet(100, STACK_TRACE)
    later_snapshot.jobs += [JobReading(jid(n), f"failed job {n:04d}", incremental(jid(n), 2.0))
                            for n in range(100, 200)]
    later = analyse(later_snapshot, {}, first.to_json(), settings, now=NOW + timedelta(hours=1))
    run_id = store.begin_run(trigger="test", started_at=NOW)
    (outcome,) = deliver(later, render_all(later, settings, run_id=run_id), settings, store,
                         run_id, now=NOW + timedelta(hours=1), deadline=None, force=False,
                         dry_run=False, credentials=canary_credentials())
    assert outcome.status == "sent", outcome.reason
    text = text_of("wecom", webhooks["wecom"].received[-1])
    assert "**Resolved**" in text and len(text.encode()) <= 4096


def test_room_left_after_the_names_goes_to_the_first_jobs_details() -> None:
    snapshot, jobs = failed_fleet(20, "binlog purged: " + "y" * 400)
    report = analyse(snapshot, {}, None, settings_for(jobs), now=NOW)
    for changes in (None, diff_problems({}, report)):
        text = render_chat(report, dialect="slack", max_bytes=3000, changes=changes)
        assert len(text) <= 3000
        names, hidden, _ = named_and_counted(text)
        assert len(names) == 20 and hidden == 0  # every name fits without details...
        detailed = [n for n in range(20) if re.search(
            rf"failed job {n:04d}: [^\n]*\(DRS\.M05004: binlog purged", text)]
        # ...and what room is left shows the details of the first (worst) ones.
        assert detailed and detailed == list(range(len(detailed))), text
        assert len(text) > 2600
