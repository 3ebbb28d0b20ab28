"""Health analysis and the rendered reports: reasons, changes, goldens, injection, sizes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from drs_report.analysis import Health, Report, analyse, diff_problems
from drs_report.render import (
    DIALECTS,
    HTML_MAX_BYTES,
    MARKDOWN_MAX_BYTES,
    render_all,
    render_chat,
    render_subject,
)
from tests.report_fixtures import HOSTILE, NOW, fleet, jid, large_fleet, settings

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DRS_REPORT_UPDATE_GOLDEN") == "1"


def report(language: str = "en-us", previous: dict[str, object] | None = None) -> Report:
    snapshot, history = fleet()
    return analyse(snapshot, history, previous, settings(language), now=NOW)


def reasons(r: Report) -> dict[str, list[str]]:
    return {j.job_id: [p.code for p in j.reasons] for j in r.jobs}


def test_every_health_state_with_its_reason() -> None:
    r = report()
    by_job = {j.job_id: j for j in r.jobs}
    expected = {
        jid(1): (Health.OK, []),
        jid(2): (Health.WARNING, ["delay_warning"]),
        jid(3): (Health.CRITICAL, ["delay_critical"]),
        jid(4): (Health.CRITICAL, ["failed"]),
        jid(5): (Health.CRITICAL, ["stalled"]),
        jid(6): (Health.WARNING, ["inconsistent_rows"]),
        jid(7): (Health.WARNING, ["compare_not_found"]),
        jid(8): (Health.UNKNOWN, ["missing"]),
        jid(9): (Health.UNKNOWN, ["api_error"]),
        jid(10): (Health.OK, []),
        jid(11): (Health.WARNING, ["paused"]),
    }
    for job_id, (health, codes) in expected.items():
        assert by_job[job_id].health is health, job_id
        assert [p.code for p in by_job[job_id].reasons] == codes, job_id
    assert r.counts() == {"CRITICAL": 3, "WARNING": 4, "UNKNOWN": 2, "OK": 2}
    # Problems first, most severe first.
    assert [j.health for j in r.jobs][:3] == [Health.CRITICAL] * 3
    assert r.problems[0].health is Health.CRITICAL


def test_per_job_thresholds_win_over_global_ones() -> None:
    snapshot, history = fleet()
    custom = settings(jobs=[{"id": jid(n)} for n in range(1, 12) if n != 2]
                      + [{"id": jid(2), "delay_warn_seconds": 200}])
    r = analyse(snapshot, history, None, custom, now=NOW)
    assert reasons(r)[jid(2)] == []


def test_eta_from_the_history_beside_the_service_estimate() -> None:
    warehouse = next(j for j in report().jobs if j.job_id == jid(10))
    assert warehouse.eta_seconds == pytest.approx(7200, rel=0.01)  # 15 %/45 min, 40 % left
    assert warehouse.remaining_time == 1800
    assert len(warehouse.trend) == 4


def test_changes_since_the_previous_report() -> None:
    first = report()
    previous = first.to_json()
    previous["problems"] = [p for p in previous["problems"] if p["job_id"] != jid(2)] + [
        {"key": f"{jid(1)}:delay_warning", "code": "delay_warning", "job_id": jid(1),
         "job_name": "orders", "health": "WARNING"}]
    for job in previous["jobs"]:
        if job["job_id"] == jid(4):
            job["transfer_status"] = "INCRE_TRANSFER_STARTED"
    second = report(previous=previous)
    assert [p.key for p in second.changes.new] == [f"{jid(2)}:delay_warning"]
    assert [r["key"] for r in second.changes.resolved] == [f"{jid(1)}:delay_warning"]
    assert second.changes.state_changes == [{"job_id": jid(4), "name": "customers",
                                             "from": "INCRE_TRANSFER_STARTED",
                                             "to": "INCRE_TRANSFER_FAILED"}]


def test_diff_problems_for_alerts() -> None:
    r = report()
    assert diff_problems(r.problem_map(), r).empty()
    before = dict(r.problem_map())
    before[f"{jid(3)}:delay_critical"] = "WARNING"  # it was only a warning
    before.pop(f"{jid(2)}:delay_warning")  # it is new
    before["gone:missing"] = "UNKNOWN"  # it went away
    changes = diff_problems(before, r)
    assert [p.key for p in changes.escalated] == [f"{jid(3)}:delay_critical"]
    assert [p.key for p in changes.new] == [f"{jid(2)}:delay_warning"]
    assert changes.resolved == ["gone:missing"]


@pytest.mark.parametrize("language", ["en-us", "zh-cn"])
def test_golden_files(language: str) -> None:
    rendered = render_all(report(language), settings(language))
    for fmt in ("html", "md", "txt", "json"):
        path = GOLDEN / f"report.{language}.{fmt}"
        text = rendered[fmt].replace(f"drs-report {__import__('drs_report').__version__}",
                                     "drs-report VERSION")
        if UPDATE or not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert text == path.read_text(encoding="utf-8"), (
            f"{path.name} changed; rerun with DRS_REPORT_UPDATE_GOLDEN=1 if intended")


def test_both_languages_use_their_catalogue() -> None:
    zh = render_all(report("zh-cn"), settings("zh-cn"))
    en = render_all(report("en-us"), settings("en-us"))
    assert "增量时延" in zh["txt"] and "严重" in zh["md"] and "Asia/Shanghai" not in zh["txt"]
    assert "incremental delay" in en["txt"]
    assert "增量" not in en["html"]


HOSTILE_FRAGMENTS = ["<script>", "](http", "![", "http://evil", "<!channel>", "<@U123>",
                     "<at user_id", "www.evil"]


def test_hostile_text_is_inert_in_html() -> None:
    html = render_all(report(), settings())["html"]
    assert "<script" not in html and "href=" not in html and "<img" not in html
    assert "http://evil" not in html and "www.evil" not in html
    assert "&lt;script&gt;" in html  # shown, escaped, not dropped


def test_hostile_text_is_inert_in_markdown_and_text() -> None:
    rendered = render_all(report(), settings())
    md = rendered["md"]
    for fragment in HOSTILE_FRAGMENTS:
        assert fragment not in md, fragment
    assert "@all" not in md  # a word joiner breaks the mention
    headings = {line for line in md.splitlines() if line.startswith("#")}
    assert headings <= {"### DRS status report", "### Problems", "### Healthy jobs",
                        "### Run errors", "### Since the previous report"}
    assert "http://evil" not in rendered["txt"]
    # JSON carries the API's text as data, exactly as it came.
    data = json.loads(rendered["json"])
    assert HOSTILE in {j["name"] for j in data["jobs"]}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_hostile_text_is_inert_in_every_chat_dialect(dialect: str) -> None:
    r = report()
    for changes in (None, diff_problems({}, r)):
        text = render_chat(r, dialect=dialect, max_bytes=20000, changes=changes)
        if dialect == "markdown":  # backslash-escaped characters are plain text there
            text = re.sub(r"\\.", "·", text)
        for fragment in [*HOSTILE_FRAGMENTS, "@all", "[click", "**bold**", "```"]:
            assert fragment not in text, (dialect, fragment)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("limit", [600, 1500, 4096])
def test_chat_messages_fold_to_fit(dialect: str, limit: int) -> None:
    snapshot, config = large_fleet(300, 40)
    r = analyse(snapshot, {}, None, config, now=NOW)
    text = render_chat(r, dialect=dialect, max_bytes=limit)
    assert len(text.encode()) <= limit
    assert text.endswith("\n")
    assert "and " in text and "more problems" in text  # folded, and says so
    for line in text.splitlines():
        assert line.count("**") % 2 == 0  # no line cut inside its formatting


def test_sizes_at_five_hundred_jobs() -> None:
    snapshot, config = large_fleet(500, 60)
    r = analyse(snapshot, {}, None, config, now=NOW)
    rendered = render_all(r, config)
    assert len(rendered["html"].encode()) <= HTML_MAX_BYTES
    assert rendered["html"].rstrip().endswith("</html>")
    assert len(rendered["md"].encode()) <= MARKDOWN_MAX_BYTES
    assert "500 jobs" in rendered["md"]


def test_a_large_fleet_is_summarised_with_the_full_report_kept() -> None:
    snapshot, config = large_fleet(2000, 400)
    r = analyse(snapshot, {}, None, config, now=NOW)
    rendered = render_all(r, config)
    assert len(rendered["html"].encode()) <= HTML_MAX_BYTES
    assert "html_full" in rendered and len(rendered["html_full"]) > len(rendered["html"])
    assert "fleet job 1999" in rendered["html_full"]
    assert rendered["html"].count("<html") == 1 and rendered["html"].rstrip().endswith("</html>")


def test_subject_lines() -> None:
    assert render_subject(report()) == "[DRS] 3 critical, 4 warning, 2 unknown - 11 jobs"
    assert render_subject(report("zh-cn")) == "[DRS] 3 严重，4 警告，2 未知 - 11 个任务"
    snapshot, config = large_fleet(5, 0)
    healthy = analyse(snapshot, {}, None, config, now=NOW)
    assert render_subject(healthy) == "[DRS] all 5 jobs OK - 5 jobs"


def test_user_templates_override_the_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "report.txt.j2").write_text("custom {{ counts.CRITICAL }} critical\n")
    config = settings(report={"templates_dir": str(tmp_path)})
    rendered = render_all(report(), config)
    assert rendered["txt"] == "custom 3 critical\n"
    assert "<html" in rendered["html"]  # the others still come from the shipped set


def test_report_json_schema_fields() -> None:
    data = report().to_json()
    assert data["schema_version"] == 1
    assert set(data) >= {"generated_at", "language", "partial", "counts", "jobs", "problems",
                         "changes", "errors"}
    job = data["jobs"][0]
    assert set(job) >= {"job_id", "name", "health", "reasons", "progress", "transfer_status",
                        "incre_trans_delay", "remaining_time", "eta_seconds", "comparisons"}
    assert data["generated_at"] == NOW.isoformat()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("DRS_REPORT_CI"):
            pytest.fail("CI must have Chromium (Debian package 'chromium')")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    page = tmp_path / "report.html"
    page.write_text(render_all(report(), settings())["html"], encoding="utf-8")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-quic", "--no-first-run",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'u'}",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-500:]
    assert 'id="counts"' in dom and 'id="headline"' in dom
    assert re.search(r'data-health="CRITICAL"[^>]*>\s*<span[^>]*>3</span>', dom)
    assert "9 of 11 jobs need attention" in dom
    assert "<script>alert" not in dom
