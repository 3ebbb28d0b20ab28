"""The report archive's pages: the list of stored reports, one stored report, a job's page.

    GET /reports            date, counts and partial flag of each stored run, paginated
    GET /reports/latest     the newest stored report (its HTML, as it was mailed)
    GET /reports/{run}      one run's stored HTML (the full one when the mail was folded)
    GET /jobs/{job_id}      the job's latest status and 7 days of delay and progress charts

Everything is rendered here; the page carries no script and loads nothing from elsewhere.
When a page was opened through a signed link, the links on it are signed with the same
expiry, so the reader can move around the archive until the link expires.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from drs_report import __version__
from drs_report.analysis import Health
from drs_report.config import Settings
from drs_report.render import environment, text_inert
from drs_report.web.auth import Access, signed_query
from drs_report.web.charts import line_chart
from drs_report.web.commands import ChatWords, _problem
from drs_report.web.http import HttpError, Request, Response
from drs_report.web.source import ArchiveSource

JOB_WINDOW = timedelta(days=7)
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
# A stored report is the mail's HTML: inline style attributes, no script. It gets a sandbox
# too, so nothing in it could run even if an old template had let something through.
STORED_REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                     "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox")


def page_csp(html: str) -> str:
    """Only this page's own <style> element (by hash) and data: images (the blank icon)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE.findall(html))
    return (f"default-src 'none'; style-src {hashes or chr(39) + 'none' + chr(39)}; "
            "img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class Pages:
    def __init__(self, settings: Settings, source: ArchiveSource) -> None:
        self.settings = settings
        self.source = source
        self.words = ChatWords(settings.drs.language, settings.report.time_zone)

    def _href(self, access: Access) -> Callable[..., str]:
        secret = self.settings.web.link_secret

        def href(path: str, **query: Any) -> str:
            params = {k: str(v) for k, v in query.items()}
            if access.by == "link" and access.expires is not None and secret is not None:
                signed = signed_query(secret, path, access.expires)
                return f"{path}?{urlencode(params) + '&' if params else ''}{signed}"
            return f"{path}?{urlencode(params)}" if params else path

        return href

    def _render(self, template: str, access: Access, page_title: str, **context: Any
                ) -> Response:
        env = environment(None)
        html = env.get_template(template).render(
            t=self.words, href=self._href(access), lang=self.settings.drs.language,
            version=__version__, page_title=page_title, **context)
        return Response.html(html, csp=page_csp(html))

    # -- routes ------------------------------------------------------------------------------

    def reports(self, request: Request, access: Access) -> Response:
        page_text = request.arg("page") or "1"
        if not page_text.isdigit() or not 1 <= int(page_text) <= 1_000_000:
            raise HttpError(400, "page: expected a whole number from 1")
        page = int(page_text)
        size = self.settings.web.page_size
        runs, total = self.source.store.archive_runs(offset=(page - 1) * size, limit=size)
        if page > 1 and not runs:
            raise HttpError(404, "no such page")
        return self._render(
            "web/reports.html.j2", access, self.words.web("page.reports"), runs=runs,
            total=total, first=(page - 1) * size + 1, last=(page - 1) * size + len(runs),
            prev_page=page - 1 if page > 1 else None,
            next_page=page + 1 if page * size < total else None,
            healths=[h.value for h in (Health.CRITICAL, Health.WARNING, Health.UNKNOWN,
                                       Health.OK)])

    def latest(self, request: Request, access: Access) -> Response:
        run_id = self.source.store.latest_report_run("html")
        if run_id is None:
            raise HttpError(404, self.words.web("no_report"))
        return self._stored(run_id)

    def report(self, request: Request, access: Access, run: str) -> Response:
        return self._stored(int(run))

    def _stored(self, run_id: int) -> Response:
        store = self.source.store
        html = store.report(run_id, "html_full") or store.report(run_id, "html")
        if html is None:
            raise HttpError(404, "no stored report for that run")
        return Response.html(html, csp=STORED_REPORT_CSP)

    def job(self, request: Request, access: Access, job_id: str) -> Response:
        now = datetime.now(timezone.utc)
        start = now - JOB_WINDOW
        points = self.source.store.job_series(job_id, start)
        latest = self.source.latest_report()
        job = None
        if latest is not None:
            job = next((j for j in latest[1].get("jobs") or []
                        if isinstance(j, dict) and j.get("job_id") == job_id), None)
        if not points and job is None:
            raise HttpError(404, "no such job in the stored history")
        w = self.words
        name = text_inert((job or {}).get("name") or next(
            (p.name for p in reversed(points) if p.name), None) or job_id)
        reasons = []
        for data in (job or {}).get("reasons") or []:
            problem = _problem(data, name) if isinstance(data, dict) else None
            if problem is not None:
                # Autoescape escapes the HTML; text_inert also defangs URLs, as in the mail.
                reasons.append({"health": problem.health.value,
                                "text": w.reason(problem, text_inert)})
        config = next((j for j in self.settings.jobs if j.id == job_id), None)
        thresholds = config.thresholds if config else self.settings.thresholds
        from markupsafe import Markup

        def day(at: datetime) -> str:
            return w.when(at)[5:10]  # MM-DD in the report's time zone

        delay_chart = Markup(line_chart(
            [(p.taken_at, p.delay) for p in points], start=start, end=now,
            title=w.web("chart.delay"), y_label=lambda v: w.duration(v), x_label=day,
            threshold=thresholds.delay_crit_seconds))
        progress_chart = Markup(line_chart(
            [(p.taken_at, p.progress) for p in points], start=start, end=now,
            title=w.web("chart.progress"), y_label=lambda v: f"{v:.0f}%", y_max=100.0,
            x_label=day, colour="#1a7f37"))
        return self._render("web/job.html.j2", access, str(name), job=job, job_id=job_id,
                            name=name, reasons=reasons, readings=len(points),
                            delay_chart=delay_chart, progress_chart=progress_chart)
