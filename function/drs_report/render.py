"""Render a Report as HTML email, chat Markdown, plain text and JSON.

Words come from the templates (reports/templates/) and the message catalogue
(drs_report/locales/); Python only chooses which template, how much fits, and how text from
the API is made inert in each format:

    html      autoescape, and URLs defanged ("http[:]//...") so mail clients do not link them
    markdown  CommonMark backslash escapes, mentions and URLs defanged
    chat      each app's own flavour; characters that would format, link or mention are
              replaced by look-alikes (apps differ in whether they honour backslashes)
    text      control and bidi characters removed, lines joined
    json      data: the API's strings as they came (JSON quoting makes them inert)

Sizes: HTML at most 100 KB (mail clients clip larger bodies), chat Markdown at most the
channel's limit (4,096 bytes for report.md). What does not fit is folded — healthy jobs into
counts, the least severe problems into "and N more" — never cut mid-line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from drs_report import __version__
from drs_report.analysis import Health, Problem, ProblemChanges, Report, split_key
from drs_report.config import Settings
from drs_report.errors import ConfigError, DrsReportError
from drs_report.readiness import Check, Readiness

HTML_MAX_BYTES = 100 * 1024
MARKDOWN_MAX_BYTES = 4096
DIALECTS = ("markdown", "slack", "teams", "feishu", "dingtalk", "wecom")
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# `drs-report package` puts the shipped templates here compiled to Python (and bytecode), so
# a cold start in FunctionGraph's read-only code directory does not compile them again.
COMPILED_TEMPLATES_DIR = Path(__file__).resolve().parent / "templates_compiled"

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]+")
_URL_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(//)")
_WWW = re.compile(r"(?i)\bwww\.")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|!~{}()])")
# Look-alikes (full-width forms and similar) that no chat app reads as markup.
# Parentheses stay: with the brackets replaced no app can read "(...)" as a link target,
# and a name such as "archive (full)" must keep its ordinary parentheses.
_LOOKALIKE = str.maketrans({
    "[": "\uff3b", "]": "\uff3d", "<": "\u2039", ">": "\u203a", "`": "\u02cb",
    "*": "\u2217", "#": "\uff03", "|": "\uff5c", "~": "\uff5e", "@": "\uff20",
    "!": "\u01c3", "\\": "\uff3c",
})
_SLACK_LOOKALIKE = {k: v for k, v in _LOOKALIKE.items() if k not in (ord("<"), ord(">"))}
_FULLWIDTH_LOW_LINE = "\uff3f"
_LONE_UNDERSCORE = re.compile(r"(?<!\w)_|_(?!\w)")


# -- making API text inert -------------------------------------------------------------------


def plain(value: Any) -> str:
    """One line of text: no control or bidi characters, whitespace collapsed."""
    text = "" if value is None else str(value)
    return " ".join(_CONTROL.sub(" ", text).split())


def defang(text: str) -> str:
    """'http://x' -> 'http[:]//x', 'www.x' -> 'www[.]x': no client turns these into links."""
    return _WWW.sub("www[.]", _URL_SCHEME.sub(r"\1[:]\2", text))


def text_inert(value: Any) -> str:
    return defang(plain(value))


def md_inert(value: Any) -> str:
    """CommonMark: every character that could format, link, or embed is escaped."""
    text = _MD_SPECIAL.sub(r"\\\1", text_inert(value))
    return text.replace("@", "@\u2060")  # word joiner: '@all' no longer reads as a mention


def chat_inert(value: Any) -> str:
    """Chat apps: look-alike characters, since not every app honours backslash escapes."""
    text = text_inert(value).translate(_LOOKALIKE)
    return _LONE_UNDERSCORE.sub(_FULLWIDTH_LOW_LINE, text)


def slack_inert(value: Any) -> str:
    """Slack mrkdwn: & < > escaped as Slack asks, the rest as for other chat apps."""
    text = text_inert(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.translate(_SLACK_LOOKALIKE)
    return _LONE_UNDERSCORE.sub(_FULLWIDTH_LOW_LINE, text)


_ESCAPERS: dict[str, Callable[[Any], str]] = {
    "markdown": md_inert, "slack": slack_inert, "teams": chat_inert, "feishu": chat_inert,
    "dingtalk": chat_inert, "wecom": chat_inert, "text": text_inert,
}


# -- the message catalogue --------------------------------------------------------------------


@lru_cache(maxsize=4)
def catalogue(language: str) -> dict[str, str]:
    """The language's words, English filling gaps (but not English singular forms).

    A key may have a singular form, `KEY.one`, used when the count `n` is 1: "1 job",
    "2 jobs". Languages without plurals (zh-cn) define only KEY.
    """
    text = resources.files("drs_report").joinpath(f"locales/{language}.json").read_text("utf-8")
    data: dict[str, str] = json.loads(text)
    if language != "en-us":
        english = {k: v for k, v in catalogue("en-us").items() if not k.endswith(".one")}
        return {**english, **data}
    return data


class Words:
    """`t("reason.stalled", duration="40m")` in templates, in the report's language."""

    def __init__(self, language: str, time_zone: str) -> None:
        self.language = language
        self.messages = catalogue(language)
        self.time_zone = time_zone

    def __call__(self, key: str, **params: Any) -> str:
        count = params.get("n")
        if isinstance(count, int) and not isinstance(count, bool) and count == 1:
            key = f"{key}.one" if f"{key}.one" in self.messages else key
        template = self.messages.get(key, key)
        try:
            return template.format(**params)
        except (KeyError, IndexError, ValueError):
            return template

    def duration(self, seconds: Any) -> str:
        if seconds is None:
            return self("none")
        total = round(float(seconds))
        if total < 0:
            total = 0
        days, rest = divmod(total, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
        parts = [f"{n}{self(f'unit.{u}')}" for n, u in units if n]
        sep = "" if self.language == "zh-cn" else " "
        return sep.join(parts[:2]) if parts else f"0{self('unit.s')}"

    def percent(self, value: Any) -> str:
        if value is None:
            return self("none")
        return f"{float(value):.1f}%".replace(".0%", "%")

    def state(self, value: Any) -> str:
        if not value:
            return self("none")
        return self.messages.get(f"state.{value}", str(value))

    def when(self, value: datetime) -> str:
        """'2026-11-22 16:00 UTC+8': abbreviations such as CST mean several zones."""
        from zoneinfo import ZoneInfo

        local = value.astimezone(ZoneInfo(self.time_zone))
        return local.strftime("%Y-%m-%d %H:%M ") + utc_offset(local)

    def problem_name(self, code: Any, compare_job_id: Any = None) -> str:
        """A problem in a few words ('task failed'), for lists of what changed."""
        name = self.messages.get(f"code.{code}", str(code))
        if compare_job_id:
            return self("problem_name.compare", compare=short_id(str(compare_job_id)),
                        name=name)
        return name

    def reason(self, problem: Problem, esc: Callable[[Any], str]) -> str:
        """The reason's sentence; API text in it goes through `esc`, our words do not."""
        p = problem.params
        values: dict[str, Any] = {}
        for key, value in p.items():
            if key in ("delay", "threshold"):
                values[key] = self.duration(value)
            elif key == "progress":
                values[key] = self.percent(value)
            elif key == "state" and f"state.{value}" in self.messages:
                values[key] = self.state(value)
            else:
                values[key] = esc(value)
        if isinstance(p.get("minutes"), (int, float)):
            values["duration"] = self.duration(float(p["minutes"]) * 60)
        if isinstance(p.get("rows"), int):
            values["n"] = p["rows"]  # singular or plural
        values["compare"] = esc(short_id(problem.compare_job_id))
        return self(f"reason.{problem.code}", **values)

    @staticmethod
    def detail(problem: Problem) -> str | None:
        """The service's own words for a problem (error code and message), if any."""
        p = problem.params
        code, message = p.get("error_code"), p.get("error_msg")
        if code and message:
            return f"{code}: {message}"
        return str(message or code) if (message or code) else None

    def growth(self, item: Mapping[str, Any], esc: Callable[[Any], str]) -> str:
        """'inventory: incremental delay 7m 28s → 13m 38s'."""
        job = esc(item.get("job_name") or item.get("job_id"))
        if item.get("measure") == "delay":
            return self("growth.delay", job=job, before=self.duration(item.get("before")),
                        after=self.duration(item.get("after")))
        return self("growth.inconsistent_rows", job=job,
                    compare=esc(short_id(item.get("compare_job_id"))),
                    before=item.get("before"), after=item.get("after"))


    # -- cutover readiness (readiness.py) ---------------------------------------------------

    def seconds(self, value: Any) -> str:
        """A delay: tenths under a minute, so 5.4 s never reads as the 5 s it exceeds."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                0 < abs(value) < 60 and not float(value).is_integer():
            return f"{float(value):.1f}{self('unit.s')}"
        return self.duration(value)

    def readiness_check(self, check: Check, esc: Callable[[Any], str]) -> str:
        """One readiness rule's outcome in a sentence; API text in it goes through `esc`."""
        p = check.params
        values: dict[str, Any] = {}
        for key, value in p.items():
            if key in _DELAY_PARAMS:
                values[key] = self.seconds(value)
            elif key in _DURATION_PARAMS:
                values[key] = self.duration(value)
            elif key == "progress":
                values[key] = self.percent(value)
            elif isinstance(value, datetime):
                values[key] = self.when(value)
            elif key == "state":
                values[key] = self.state(value)
            elif key == "message" and isinstance(value, str) and len(value) > 160:
                values[key] = esc(value[:160] + "…")  # the job's card has it in full
            else:
                values[key] = esc(value)
        if isinstance(p.get("interval"), (int, float)):
            values["max_gap"] = self.duration(2 * float(p["interval"]))
        values["compare"] = esc(short_id(check.compare_job_id))
        key = f"readiness.check.{check.code}"
        if check.code == "not_read" and f"{key}.{p.get('kind')}" in self.messages:
            key += f".{p.get('kind')}"  # the service's answer, said in the report's words
        elif check.code == "compare_stale" and p.get("at") is None:
            key += ".never"
        elif check.code == "not_enough_history" and p.get("unread_before"):
            key += ".unread"
            values["n"] = p["unread_before"]
        if isinstance(p.get("rows"), int):
            values["n"] = p["rows"]
        return self(key, **values)

    def readiness_sentences(self, item: Readiness, esc: Callable[[Any], str],
                            limit: int | None = None) -> list[str]:
        """What is still missing, the definite noes first; for a ready job, why it is."""
        if item.verdict == "ready":
            said = [self.readiness_check(c, esc) for c in item.checks
                    if c.status == "met" and c.compare_job_id is None and c.code not in
                    ("full_done",)]
            consistent = sum(1 for c in item.checks if c.code == "compare_consistent")
            if consistent:
                said.append(self("readiness.comparisons_ok", n=consistent))
            said += [self.readiness_check(c, esc) for c in item.checks if c.status == "note"]
            return said  # a few short lines: never folded
        said = [self.readiness_check(c, esc) for c in item.missing]
        if limit is not None and len(said) > limit:
            said = [*said[:limit], self("readiness.others", n=len(said) - limit)]
        return said

    def readiness_line(self, items: Sequence[Readiness], esc: Callable[[Any], str],
                       max_names: int = 3) -> str:
        """'Cutover readiness: 1 ready (warehouse), 2 not ready, 7 unknown'."""
        if not items:
            return self("readiness.line", parts=self("readiness.none"))
        parts = []
        for verdict in ("ready", "not_ready", "unknown"):
            named = [esc(i.label) for i in items if i.verdict == verdict]
            if not named:
                continue
            count = self(f"readiness.count.{verdict}", n=len(named))
            if verdict == "ready":
                names = ", ".join(named[:max_names])
                if len(named) > max_names:
                    names = self("readiness.names_more", names=names, n=len(named) - max_names)
                count = self("readiness.names", count=count, names=names)
            parts.append(count)
        return self("readiness.line", parts=self("subject.separator").join(parts))


_DELAY_PARAMS = frozenset({"delay", "max_delay", "then"})
_DURATION_PARAMS = frozenset({"needed", "steady", "age", "max_age", "gap", "interval",
                              "stalled"})


def utc_offset(local: datetime) -> str:
    """'UTC', 'UTC+8', 'UTC+5:30', 'UTC-3'."""
    offset = local.utcoffset()
    if not offset:
        return "UTC"
    minutes = round(offset.total_seconds() / 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def trend_summary(points: Any, minimum: int = 3) -> dict[str, Any] | None:
    """A delay trend worth drawing: at least `minimum` readings, with their span and range."""
    measured = [(p.at, p.delay) for p in points if isinstance(p.delay, (int, float))]
    if len(measured) < minimum:
        return None
    values = [float(v) for _, v in measured]
    return {"values": values, "low": min(values), "high": max(values),
            "span": (measured[-1][0] - measured[0][0]).total_seconds()}


def short_id(value: str | None) -> str:
    return value.split("-", 1)[0] if value else ""


# -- Jinja2 --------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def environment(templates_dir: str | None) -> Any:
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, ModuleLoader, StrictUndefined

    loaders: list[Any] = [FileSystemLoader(templates_dir)] if templates_dir else []
    if COMPILED_TEMPLATES_DIR.is_dir():
        loaders.append(ModuleLoader(str(COMPILED_TEMPLATES_DIR)))
    loaders.append(FileSystemLoader(str(TEMPLATES_DIR)))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=lambda name: name is not None and ".html" in name,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["short_id"] = short_id
    env.filters["defang"] = lambda v: defang(plain(v))
    env.globals["Health"] = Health
    env.globals["trend_summary"] = trend_summary
    env.globals["split_key"] = split_key
    env.globals["READINESS_SHORT"] = READINESS_SHORT
    return env


def _context(report: Report, settings: Settings | None, language: str, **extra: Any
             ) -> dict[str, Any]:
    time_zone = settings.report.time_zone if settings else "UTC"
    words = Words(language, time_zone)
    return {
        "report": report, "t": words, "counts": report.counts(), "version": __version__,
        "project": settings.drs.project_id if settings else "",
        "title": report.title or words("title"), **extra,
    }


def _render_template(env: Any, name: str, settings: Settings | None,
                     context: Mapping[str, Any]) -> str:
    """Render one template; its errors name the file and the line."""
    from jinja2 import TemplateError

    try:
        return str(env.get_template(name).render(context))
    except TemplateError as e:
        raise template_error(e, name, settings) from None


def template_error(error: Exception, name: str, settings: Settings | None) -> DrsReportError:
    """'report.templates_dir: txt/report.txt.j2 line 3: 'x' is undefined; fix the template'.

    A user's template is configuration (exit 2); a shipped one failing is our bug (exit 1).
    """
    import traceback

    filename, line = getattr(error, "filename", None), getattr(error, "lineno", None)
    if line is None:
        # Jinja2 rewrites tracebacks so that template frames carry the template's lines.
        for frame, lineno in traceback.walk_tb(error.__traceback__):
            if frame.f_code.co_filename.endswith(".j2"):
                filename, line = frame.f_code.co_filename, lineno
    user_dir = _templates_dir(settings)
    path = Path(filename) if filename else None
    if path is None and user_dir is not None and (Path(user_dir) / name).is_file():
        path = Path(user_dir) / name
    shown, mine = name, False
    for root, is_user in ((user_dir, True), (str(TEMPLATES_DIR), False)):
        if root is None or path is None:
            continue
        try:
            shown = str(path.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            continue
        mine = is_user
        break
    where = f"{shown} line {line}" if line else shown
    message = " ".join(str(getattr(error, "message", None) or error).split()).rstrip(".")
    if mine:
        return ConfigError("report.templates_dir", f"{where}: {message}; fix the template")
    return DrsReportError(f"template {where}: {message}")


def _templates_dir(settings: Settings | None) -> str | None:
    if settings is None or settings.report.templates_dir is None:
        return None
    return str(settings.report.templates_dir)


# -- formats -----------------------------------------------------------------------------------


def render_all(report: Report, settings: Settings) -> dict[str, str]:
    """report.html, report.md, report.txt and report.json as text (+ html_full if folded)."""
    language = report.language
    html, html_full = _render_html(report, settings, language)
    outputs = {
        "html": html,
        "md": render_chat(report, dialect="markdown", max_bytes=MARKDOWN_MAX_BYTES,
                          settings=settings),
        "txt": _render_text(report, settings, language),
        "json": json.dumps(report.to_json(), ensure_ascii=False, indent=2, default=str) + "\n",
    }
    if html_full is not None:
        outputs["html_full"] = html_full
    return outputs


# Folding ladders: each step shows less; the first that fits wins.
# `readiness`: every job with all it misses, the closest READINESS_SHORT with the first
# thing each misses, or the one-line verdict only.
_HTML_STEPS: list[dict[str, Any]] = [
    {"sparklines": True, "healthy": "table", "max_problem_jobs": None, "max_changes": None,
     "readiness": "full"},
    {"sparklines": False, "healthy": "table", "max_problem_jobs": None, "max_changes": None,
     "readiness": "full"},
    {"sparklines": False, "healthy": "names", "max_problem_jobs": None, "max_changes": 20,
     "readiness": "short"},
    {"sparklines": False, "healthy": "names", "max_problem_jobs": None, "max_changes": 20,
     "readiness": "line"},
    {"sparklines": False, "healthy": "count", "max_problem_jobs": None, "max_changes": 5,
     "readiness": "line"},
]
READINESS_SHORT = 20


def _render_html(report: Report, settings: Settings | None, language: str
                 ) -> tuple[str, str | None]:
    env = environment(_templates_dir(settings))

    def render(step: Mapping[str, Any]) -> str:
        html = _render_template(env, "html/report.html.j2", settings,
                                _context(report, settings, language, esc=text_inert, **step))
        return _inline_css(html)

    full = render(_HTML_STEPS[0])
    if len(full.encode()) <= HTML_MAX_BYTES:
        return full, None
    for step in _HTML_STEPS[1:]:
        html = render(step)
        if len(html.encode()) <= HTML_MAX_BYTES:
            return html, full
    # Still too big: fewer problem jobs, halving until it fits.
    limit = len(report.problem_jobs)
    while limit > 1:
        limit //= 2
        html = render({**_HTML_STEPS[-1], "max_problem_jobs": limit, "max_changes": 0})
        if len(html.encode()) <= HTML_MAX_BYTES:
            return html, full
    return render({**_HTML_STEPS[-1], "max_problem_jobs": 1, "max_changes": 0}), full


def _inline_css(html: str) -> str:
    import css_inline  # heavy-ish and only for HTML: imported here, not at cold start

    return str(css_inline.inline(html))


def _render_text(report: Report, settings: Settings | None, language: str) -> str:
    env = environment(_templates_dir(settings))
    return _render_template(env, "txt/report.txt.j2", settings,
                            _context(report, settings, language, esc=text_inert,
                                     max_changes=None))


def render_chat(
    report: Report,
    *,
    dialect: str,
    max_bytes: int,
    changes: ProblemChanges | None = None,
    language: str | None = None,
    settings: Settings | None = None,
) -> str:
    """The report (or, with `changes`, an alert) in a chat app's Markdown, within max_bytes."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown chat dialect {dialect!r}")
    language = language or report.language
    env = environment(_templates_dir(settings))
    esc = _ESCAPERS[dialect]
    slack = dialect == "slack"

    def render(show_healthy: bool, max_problems: int | None, max_changes: int | None,
               show_readiness: bool = False) -> str:
        problems = report.problems if max_problems is None else report.problems[:max_problems]
        return _render_template(env, "chat/message.md.j2", settings, _context(
            report, settings, language, esc=esc, dialect=dialect,
            bold=(lambda s: f"*{s}*") if slack else (lambda s: f"**{s}**"),
            heading=(lambda s: f"*{s}*") if slack else (lambda s: f"### {s}"),
            show_healthy=show_healthy, problems=problems,
            hidden_problems=len(report.problems) - len(problems), changes=changes,
            max_changes=max_changes, show_readiness=show_readiness,
        )).strip() + "\n"

    # Healthy jobs fold first, then the readiness list (its one-line verdict stays), then
    # the lists of what changed, then the mildest problems. A readiness list whose names
    # alone overflow is not rendered to find that out (a large fleet's list is long).
    names = sum(len(item.label.encode()) + 12 for item in report.readiness)
    for show_healthy, show_readiness, max_changes in (
            (True, True, None), (False, True, None), (False, False, None), (False, False, 5),
            (False, False, 0)):
        if show_readiness and names > max_bytes:
            continue
        text = render(show_healthy, None, max_changes, show_readiness)
        if len(text.encode()) <= max_bytes:
            return text
    low, high = 0, len(report.problems)
    best = render(False, 0, 0)
    while low <= high:  # the most problems that still fit
        middle = (low + high) // 2
        text = render(False, middle, 0)
        if len(text.encode()) <= max_bytes:
            best, low = text, middle + 1
        else:
            high = middle - 1
    return best


def readiness_subject(changes: ProblemChanges | None, language: str) -> str | None:
    """'Ready for cutover: ledger' for an alert that announces it (or the fall back)."""
    if changes is None or not (changes.became_ready or changes.no_longer_ready):
        return None
    words = Words(language, "UTC")
    parts = []
    for key, items in (("alert.ready", changes.became_ready),
                       ("alert.no_longer_ready", changes.no_longer_ready)):
        if items:
            names = ", ".join(text_inert(i.label) for i in items[:3])
            if len(items) > 3:
                names = words("readiness.names_more", names=names, n=len(items) - 3)
            parts.append(words("readiness.subject", what=words(key), names=names))
    return words("subject.separator").join(parts)


def render_subject(report: Report, *, language: str | None = None,
                   max_bytes: int | None = None) -> str:
    """'[DRS] 2 critical, 1 warning - 14 jobs' (words from the catalogue)."""
    words = Words(language or report.language, "UTC")
    counts = report.counts()
    total = len(report.jobs)
    parts = [f"{counts[h.value]} {words(f'health.{h.value}')}"
             for h in (Health.CRITICAL, Health.WARNING, Health.UNKNOWN) if counts[h.value]]
    sep = words("subject.separator")
    if parts:
        subject = words("subject", parts=sep.join(parts), jobs=words("jobs_count", n=total))
    else:
        subject = words("subject", parts=words("subject.all_ok", n=total),
                        jobs=words("jobs_count", n=total))
    if report.partial:
        subject += " " + words("subject.partial")
    if max_bytes is not None:
        while len(subject.encode()) > max_bytes and " " in subject:
            subject = subject.rsplit(" ", 1)[0]
    return subject
