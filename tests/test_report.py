"""Health analysis and the rendered reports: reasons, changes, goldens, injection, sizes."""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from drs_report.analysis import Health, Report, analyse, diff_problems
from drs_report.errors import ConfigError
from drs_report.models import FetchError, FetchErrorKind, JobReading, Snapshot
from drs_report.render import (
    DIALECTS,
    HTML_MAX_BYTES,
    MARKDOWN_MAX_BYTES,
    render_all,
    render_chat,
    render_subject,
)
from tests.report_fixtures import (
    HOSTILE,
    NOW,
    cid,
    compare,
    fleet,
    incremental,
    jid,
    large_fleet,
    settings,
)

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
    before[f"{jid(1)}:delay_warning"] = "WARNING"  # read again, and gone: resolved
    gone = "99999999-aaaa-4bbb-8ccc-0000000djb99:failed"
    before[gone] = "CRITICAL"  # its job left the configuration
    before[f"{jid(8)}:failed"] = "CRITICAL"  # its job could not be read this time
    changes = diff_problems(before, r)
    assert [p.key for p in changes.escalated] == [f"{jid(3)}:delay_critical"]
    assert [p.key for p in changes.new] == [f"{jid(2)}:delay_warning"]
    assert changes.resolved == [f"{jid(1)}:delay_warning"]
    assert changes.no_longer_monitored == [gone]
    assert changes.carried == {f"{jid(8)}:failed": "CRITICAL"}


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
                        "### Run errors", "### Since the previous report",
                        "### Cutover readiness"}
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
    assert data["schema_version"] == 2
    assert set(data) >= {"generated_at", "language", "partial", "counts", "jobs", "problems",
                         "changes", "errors"}
    job = data["jobs"][0]
    assert set(job) >= {"job_id", "name", "health", "reasons", "progress", "transfer_status",
                        "incre_trans_delay", "remaining_time", "eta_seconds", "comparisons"}
    assert data["generated_at"] == NOW.isoformat()



# -- what changed, by name --------------------------------------------------------------------

GONE = "99999999-aaaa-4bbb-8ccc-0000000djb99"


def previous_report(language: str = "en-us") -> dict[str, Any]:
    """The report before `report()`: payments was fine, orders lagged, a job since removed
    had failed, inventory's delay was lower and billing had fewer inconsistent rows."""
    data = report(language).to_json()
    data["problems"] = [p for p in data["problems"] if p["job_id"] != jid(2)] + [
        {"key": f"{jid(1)}:delay_warning", "code": "delay_warning", "job_id": jid(1),
         "job_name": "orders: MySQL -> GaussDB", "health": "WARNING", "compare_job_id": None},
        {"key": f"{GONE}:failed", "code": "failed", "job_id": GONE, "job_name": "old-crm",
         "health": "CRITICAL", "compare_job_id": None},
        {"key": f"{jid(8)}:failed", "code": "failed", "job_id": jid(8), "job_name": "legacy",
         "health": "CRITICAL", "compare_job_id": None}]
    for job in data["jobs"]:
        if job["job_id"] == jid(3):
            job["incre_trans_delay"] = 200.0  # now 420 s: grew past x1.5 and +60 s
        if job["job_id"] == jid(2):
            job["incre_trans_delay"] = 80.0  # now 95 s: not enough to call out
        if job["job_id"] == jid(6):
            job["comparisons"][0]["recheck_entities"] = 5  # now 17: grew by 12
    return data


def changed(language: str = "en-us") -> Report:
    return report(language, previous=previous_report(language))


def test_a_job_that_left_the_configuration_is_no_longer_monitored_not_resolved() -> None:
    r = changed()
    assert [e["key"] for e in r.changes.resolved] == [f"{jid(1)}:delay_warning"]
    assert [e["key"] for e in r.changes.no_longer_monitored] == [f"{GONE}:failed"]
    # legacy could not be read (missing from the answer): its failure is not "resolved".
    keys = [e["key"] for e in r.changes.resolved + r.changes.no_longer_monitored]
    assert f"{jid(8)}:failed" not in keys


def test_growth_past_the_threshold_is_called_out() -> None:
    growth = changed().changes.growth
    assert [(g["job_id"], g["measure"], g["before"], g["after"]) for g in growth] == [
        (jid(3), "delay", 200.0, 420.0), (jid(6), "inconsistent_rows", 5, 17)]


@pytest.mark.parametrize("language", ["en-us", "zh-cn"])
def test_every_format_names_the_job_and_the_reason_of_each_change(language: str) -> None:
    r = changed(language)
    rendered = render_all(r, settings(language))
    texts = {fmt: rendered[fmt] for fmt in ("html", "md", "txt")}
    texts["slack"] = render_chat(r, dialect="slack", max_bytes=20000)
    en = language == "en-us"
    expected = {
        "new": "payments: " + ("incremental delay 1m 35s" if en else "增量时延 1分35秒"),
        "resolved": "orders: MySQL -",
        "resolved_reason": "incremental delay above the warning threshold" if en
        else "增量时延超过警告阈值",
        "gone": "old-crm: " + ("task failed" if en else "任务失败"),
        "grew": ("inventory: incremental delay 3m 20s → 7m" if en
                 else "inventory\uff1a增量时延 3分20秒 → 7分"),
        "rows": "inconsistent rows 5 → 17" if en else "不一致行数 5 → 17",
    }
    for fmt, text in texts.items():
        plain_text = htmllib.unescape(re.sub(r"<[^>]+>", "", text)).replace("\\", "")
        for what, fragment in expected.items():
            assert fragment in plain_text, (fmt, what)
        # No "Resolved: 6: ..." and no raw keys like "<job id>:failed".
        assert not re.search(r"[:\uff1a] ?\d+ ?[:\uff1a]", plain_text), fmt
        assert f"{GONE}:failed" not in plain_text and ":delay_warning" not in plain_text, fmt
        assert "New problems: 1" not in plain_text and "新问题\uff1a1" not in plain_text


def test_new_problems_are_marked_on_their_cards() -> None:
    rendered = render_all(changed(), settings())
    card = rendered["html"].split("payments</span>", 1)[1].split("</table>", 1)[0]
    assert ">new</span>" in card
    others = rendered["html"].split("inventory</span>", 1)[1].split("</table>", 1)[0]
    assert ">new</span>" not in others and "grew" in others  # and the growth on its card
    assert "* [new] incremental delay 1m 35s" in rendered["txt"]
    assert "**WARNING** (new) payments" in rendered["md"]


def test_the_changes_lists_fold_to_fit_a_chat_message() -> None:
    snapshot, config = large_fleet(300, 0)
    before = analyse(*large_fleet(300, 300)[:1], {}, None, config, now=NOW).to_json()
    r = analyse(snapshot, {}, before, config, now=NOW)
    assert len(r.changes.resolved) == 300
    text = render_chat(r, dialect="markdown", max_bytes=MARKDOWN_MAX_BYTES)
    assert len(text.encode()) <= MARKDOWN_MAX_BYTES
    assert "Resolved (300)" in text and "\nand 295 more" in text  # five shown, the rest counted


# -- plurals, words, times ----------------------------------------------------------------------


def one_job(language: str = "en-us") -> tuple[Report, Any]:
    config = settings(language, jobs=[{"id": jid(1)}])
    snapshot = Snapshot(taken_at=NOW, jobs=[JobReading(jid(1), "orders",
                                                       incremental(jid(1), 2.0))])
    return analyse(snapshot, {}, None, config, now=NOW), config


def test_one_job_is_one_job_in_every_format_and_language() -> None:
    r, config = one_job()
    rendered = render_all(r, config)
    for fmt in ("html", "md", "txt"):
        assert "1 job" in rendered[fmt] and "1 jobs" not in rendered[fmt], fmt
    assert render_subject(r) == "[DRS] 1 job OK - 1 job"
    zh, zh_config = one_job("zh-cn")
    zh_rendered = render_all(zh, zh_config)
    assert "1 个任务" in zh_rendered["txt"] and " job" not in zh_rendered["txt"]
    assert render_subject(zh) == "[DRS] 1 个任务全部正常 - 1 个任务"
    several = render_all(report(), settings())
    assert "11 jobs" in several["txt"] and "9 jobs of 11 need attention" in several["html"]


def test_the_service_estimate_and_the_time_zone_say_what_they_are() -> None:
    snapshot, history = fleet()
    config = settings(report={"time_zone": "Asia/Shanghai"})
    rendered = render_all(analyse(snapshot, history, None, config, now=NOW), config)
    assert "Generated 2026-11-22 16:00 UTC+8" in rendered["txt"]
    assert "CST" not in rendered["txt"] + rendered["html"] + rendered["md"]
    assert "DRS estimates 30m" in rendered["txt"] and "service says" not in rendered["txt"]
    assert "生成于 2026-11-22 16:00 UTC+8" in render_all(report("zh-cn"),
                                                         settings("zh-cn"))["txt"]


def test_chat_apps_keep_ordinary_parentheses() -> None:
    r = report()
    for dialect in ("slack", "feishu", "dingtalk", "wecom", "teams"):
        text = render_chat(r, dialect=dialect, max_bytes=20000)
        assert "archive (stalled)" in text and "\uff08" not in text, dialect


# -- ETA, sparklines, comparisons -----------------------------------------------------------


def test_eta_belongs_to_the_full_phase_and_healthy_jobs_show_it() -> None:
    snapshot, history = fleet()
    # warehouse finished its full phase: the last reading is incremental.
    done = incremental(jid(10), 3.0)
    snapshot.jobs[9] = JobReading(jid(10), "warehouse (rising)", done)
    history[jid(10)][-1] = (NOW, snapshot.jobs[9])
    moved = analyse(snapshot, history, None, settings(), now=NOW)
    warehouse = next(j for j in moved.jobs if j.job_id == jid(10))
    assert warehouse.eta_seconds is None and warehouse.health is Health.OK
    # Still in the full phase, healthy: the ETA is in every format's healthy list.
    rendered = render_all(report(), settings())
    row = rendered["html"].split("warehouse (rising)", 1)[1].split("</tr>", 1)[0]
    assert "ETA 2h" in row
    assert "warehouse (rising) - full migration - 60% - ETA 2h" in rendered["txt"]
    assert "warehouse \\(rising\\): full migration, 60%, ETA 2h" in rendered["md"]


def test_sparklines_need_three_readings_and_say_what_they_cover() -> None:
    snapshot, history = fleet()
    html = render_all(analyse(snapshot, history, None, settings(), now=NOW), settings())["html"]
    inventory = html.split("inventory</span>", 1)[1].split("</table>\n</td>", 1)[0]
    assert 'class="spark"' in inventory
    assert "delay over the last 45m: 4m to 7m" in inventory
    short = {k: v[-2:] for k, v in history.items()}  # two readings: no line to draw
    html = render_all(analyse(snapshot, short, None, settings(), now=NOW), settings())["html"]
    assert 'class="spark"' not in html and "delay over the last" not in html


def test_a_comparison_line_says_why_it_has_no_numbers() -> None:
    snapshot, history = fleet()
    snapshot.jobs[5].comparisons.append(replace(compare(60), progress=None, error=FetchError(
        FetchErrorKind.NETWORK, "connection failed: ConnectionRefusedError")))
    rendered = render_all(analyse(snapshot, history, None, settings(), now=NOW), settings())
    for fmt in ("html", "txt"):
        assert "Comparison 00000007: not found (DRS.10000010); it was deleted or never " \
               "existed, so remove it from compare_jobs" in rendered[fmt]
        assert f"Comparison {cid(60)[:8]}: could not be read: connection failed: " \
               "ConnectionRefusedError" in rendered[fmt]
        assert "Comparison 00000007: -" not in rendered[fmt]


# -- nothing could be read ---------------------------------------------------------------------


def test_a_report_of_nothing_read_says_so_and_names_the_shared_cause() -> None:
    cause = "authentication refused: HTTP 401 APIG.0301; check HUAWEICLOUD_SDK_AK/SK"
    readings = [JobReading(jid(n), f"job {n}", error=FetchError(FetchErrorKind.AUTH, cause,
                                                                 401, "APIG.0301"))
                for n in range(1, 4)]
    r = analyse(Snapshot(taken_at=NOW, jobs=readings), {}, None, settings(), now=NOW)
    assert r.read_failures.nothing_read and r.read_failures.shared_cause == cause
    rendered = render_all(r, settings())
    assert f"Nothing could be read: {cause}" in rendered["txt"]
    assert f"Nothing could be read: {cause}" in htmllib.unescape(rendered["html"])
    assert "**Nothing could be read:" in rendered["md"]
    assert "could not fetch its progress: authentication refused" in rendered["txt"]
    # One job read is enough for it not to be "nothing".
    readings[0] = JobReading(jid(1), "job 1", incremental(jid(1), 2.0))
    some = analyse(Snapshot(taken_at=NOW, jobs=readings), {}, None, settings(), now=NOW)
    assert not some.read_failures.nothing_read and some.read_failures.unread == 2


# -- user templates ----------------------------------------------------------------------------


def test_a_broken_user_template_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "txt").mkdir()
    template = tmp_path / "txt" / "report.txt.j2"
    template.write_text("title\n{{ counts.CRITICAL }}\n{{ no_such_thing }}\n")
    config = settings(report={"templates_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as caught:
        render_all(report(), config)
    assert str(caught.value) == ("report.templates_dir: txt/report.txt.j2 line 3: "
                                 "'no_such_thing' is undefined; fix the template")


# -- the look, measured in a browser ------------------------------------------------------------

# Runs inside each report (an iframe of the width under test) and posts its measurements:
# every element sticking out of the viewport, and the padding of every table cell.
MEASURE = """<script>
(function () {
  var vw = document.documentElement.clientWidth, wide = [], cells = [], tiles = [];
  var all = document.body.getElementsByTagName("*");
  for (var i = 0; i < all.length; i++) {
    var r = all[i].getBoundingClientRect();
    if (r.width > 0 && (r.right > vw + 0.5 || r.left < -0.5)) {
      wide.push([all[i].tagName, String(all[i].className), Math.round(r.right),
                 (all[i].textContent || "").trim().slice(0, 40)]);
    }
  }
  var tds = document.querySelectorAll("table.healthy td, table.healthy th");
  for (var j = 0; j < tds.length; j++) {
    var cs = getComputedStyle(tds[j]);
    cells.push([parseFloat(cs.paddingLeft), parseFloat(cs.paddingRight),
                parseFloat(cs.paddingTop), parseFloat(cs.paddingBottom)]);
  }
  var counts = document.querySelectorAll("#counts td");
  for (var k = 0; k < counts.length; k++) {
    var b = counts[k].getBoundingClientRect();
    tiles.push([Math.round(b.left), Math.round(b.right),
                counts[k].scrollWidth <= counts[k].clientWidth]);
  }
  parent.postMessage(JSON.stringify({viewport: vw, wide: wide, cells: cells, tiles: tiles,
                                     scroll_width: document.documentElement.scrollWidth}), "*");
})();
</script>"""
WIDTHS = (320, 390, 1280)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser() -> str:
    found = _chromium()
    if found is None:
        if os.environ.get("DRS_REPORT_CI"):
            pytest.fail("CI must have Chromium (Debian package 'chromium')")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


def chromium_dom(page: Path, profile: Path) -> str:
    proc = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-quic", "--no-first-run",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
         "--window-size=1400,900", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-500:]
    return proc.stdout


def measure_layout(html: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The report laid out at each of WIDTHS (one iframe each: headless windows cannot be
    narrower than 500 px), measured by MEASURE."""
    doc = html.replace("</body>", MEASURE + "</body>")
    frames = "".join(f'<iframe width="{w}" height="9000" style="border:0;display:block" '
                     f'srcdoc="{htmllib.escape(doc, quote=True)}"></iframe>' for w in WIDTHS)
    page = tmp_path / "measure.html"
    page.write_text(
        '<!DOCTYPE html><html><body style="margin:0"><pre id="out"></pre><script>'
        'var got = []; addEventListener("message", function (e) { got.push(JSON.parse(e.data));'
        ' document.getElementById("out").textContent = JSON.stringify(got); });</script>'
        + frames + "</body></html>", encoding="utf-8")
    dom = chromium_dom(page, tmp_path / "profile")
    match = re.search(r'<pre id="out">([^<]*)</pre>', dom)
    assert match, dom[-500:]
    found: list[dict[str, Any]] = json.loads(htmllib.unescape(match.group(1)))
    return sorted(found, key=lambda m: m["viewport"])


@pytest.mark.parametrize("language", ["en-us", "zh-cn"])
def test_the_report_fits_phones_and_desktops(language: str, tmp_path: Path) -> None:
    html = render_all(changed(language), settings(language))["html"]
    measured = measure_layout(html, tmp_path)
    assert [m["viewport"] for m in measured] == list(WIDTHS)
    for m in measured:
        width = m["viewport"]
        assert m["wide"] == [], (width, m["wide"][:5])
        assert m["scroll_width"] <= width, width
        # Healthy-job cells are padded on every side, so rows do not run together.
        assert m["cells"] and all(min(cell) >= 4 for cell in m["cells"]), (width, m["cells"])
        # Four count tiles side by side, inside the page, none with clipped text.
        assert len(m["tiles"]) == 4
        assert all(0 <= left < right <= width and fits for left, right, fits in m["tiles"])


def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_all(report(), settings())["html"], encoding="utf-8")
    dom = chromium_dom(page, tmp_path / "u")
    assert 'id="counts"' in dom and 'id="headline"' in dom
    assert re.search(r'data-health="CRITICAL"[^>]*>\s*<span[^>]*>3</span>', dom)
    assert "9 jobs of 11 need attention" in dom
    assert "<script>alert" not in dom


def test_the_layout_check_sees_an_overflow(tmp_path: Path) -> None:
    """The measurement finds what it is looking for: a page with a 600 px table."""
    html = ('<!DOCTYPE html><html><body><table class="healthy" style="width:600px"><tr>'
            '<td>x</td></tr></table></body></html>')
    small = measure_layout(html, tmp_path)[0]
    assert small["viewport"] == 320 and small["wide"] and small["scroll_width"] > 320
    assert small["cells"] == [[1.0, 1.0, 1.0, 1.0]]  # the browser's default, not padded


def test_the_run_line_names_the_failure_unread_jobs_share() -> None:
    from drs_report.pipeline import RunResult

    refused = "connection failed: NewConnectionError"
    readings = [JobReading(jid(1), "a", incremental(jid(1), 2.0))] + [
        JobReading(jid(n), f"job {n}", error=FetchError(FetchErrorKind.NETWORK, refused))
        for n in (2, 3)]
    r = analyse(Snapshot(taken_at=NOW, jobs=readings), {}, None, settings(), now=NOW)
    assert RunResult(run_id=1, report=r, outputs={}).cause() == \
        f"2 jobs could not be read: {refused}"
    readings[2] = JobReading(jid(3), "job 3", error=FetchError(FetchErrorKind.AUTH, "refused"))
    r = analyse(Snapshot(taken_at=NOW, jobs=readings), {}, None, settings(), now=NOW)
    assert RunResult(run_id=1, report=r, outputs={}).cause() == \
        "2 jobs could not be read: 2 different failures, see the report"
    fine = analyse(Snapshot(taken_at=NOW, jobs=readings[:1]), {}, None, settings(), now=NOW)
    assert RunResult(run_id=1, report=fine, outputs={}).cause() is None
