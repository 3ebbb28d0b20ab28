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
    terminal  (history, the CLI's lines) escape sequences and every C0/C1 control removed

One string from the API is also cut to a readable length with a mark, in every format
(TEXT_CHARS, CHAT_CHARS, JSON_CHARS): a 4 KB stack trace in `error_msg` would otherwise
fold the only failed job out of a chat message, and a 1 MB one make a multi-megabyte email.
Words of our own that carry API text (`t.state` of a state the catalogue does not know)
go through the same escaper as the rest.

Sizes: HTML at most 100 KB (mail clients clip larger bodies), chat Markdown at most the
channel's limit (4,096 bytes for report.md), measured the way the channel's vendor measures
it. What does not fit is folded, worst first: healthy jobs into counts, the lists of what
changed, then the service's error details shortened and our per-job links dropped before
any problem is left out, and what is left out is counted ("and 12 more, 3 critical") --
never cut mid-line.

Links (`web.base_url` set): "open the full report" (this run's archived report) and "open
this job" on each problem, signed and expiring (web/auth.py); they are ours, so they are
not defanged, while the API text beside them still is.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drs_report import __version__
from drs_report.analysis import Health, Problem, ProblemChanges, Report, split_key
from drs_report.config import Settings
from drs_report.errors import ConfigError, DrsReportError
from drs_report.readiness import Check, Readiness

if TYPE_CHECKING:
    from drs_report.config import WebConfig

HTML_MAX_BYTES = 100 * 1024
MARKDOWN_MAX_BYTES = 4096
# "fanout": Markdown-looking text that a service forwards to mailboxes and chats alike (SMN).
DIALECTS = ("markdown", "slack", "teams", "feishu", "dingtalk", "wecom", "fanout")
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# `drs-report package` puts the shipped templates here compiled to Python (and bytecode), so
# a cold start in FunctionGraph's read-only code directory does not compile them again.
COMPILED_TEMPLATES_DIR = Path(__file__).resolve().parent / "templates_compiled"

# How much of one API string each medium shows, in characters, before the cut mark: enough
# for the exception line and the first frames of a stack trace, little enough that one long
# message cannot crowd every other job out of a message.
TEXT_CHARS = 1000  # the email (HTML and text parts), report.html, report.txt
CHAT_CHARS = 300  # chat messages, report.md
JSON_CHARS = 4096  # report.json and the webhook's body: data, cut only when very long
CUT_MARK = " … (cut)"  # the catalogue's "cut" is used where the language is known

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064"
                      r"\u2066-\u2069\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]+")
_URL_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(//)")
# Schemes that link without "//" (mailto:x@y, javascript:...), when something follows.
_BARE_SCHEME = re.compile(r"(?i)\b(mailto|tel|sms|javascript|vbscript|data|file):(?=\S)")
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
# What a terminal acts on: CSI (colours, cursor, clear screen), OSC (titles, hyperlinks,
# OSC 52 which writes the clipboard) ended by BEL or ST, DCS/SOS/PM/APC strings, their
# 8-bit C1 forms, and two-character escapes. Removed whole, so no payload is left behind.
_C1 = re.compile("[\x80-\x9f]")
_TERMINAL_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?|\x9b[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P^_X]|[\x9d\x90\x9e\x9f\x98])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?")


# -- making API text inert -------------------------------------------------------------------


def plain(value: Any) -> str:
    """One line of text: no control or bidi characters, whitespace collapsed."""
    text = "" if value is None else str(value)
    return " ".join(_CONTROL.sub(" ", text).split())


def cut(value: Any, limit: int = TEXT_CHARS, mark: str = CUT_MARK) -> str:
    """One line of API text of at most `limit` characters, and the mark when it was longer."""
    text, was_cut = _cut(value, limit)
    return text + mark if was_cut else text


def _cut(value: Any, limit: int) -> tuple[str, bool]:
    """The line and whether it was cut. Only a window of the value is read (a 1 MB message
    costs no more than a short one, however often a fold renders it); the cut prefers a
    word boundary near the end."""
    text = "" if value is None else str(value)
    window = limit * 4 + 256
    longer = len(text) > window
    line = plain(text[:window] if longer else text)
    if not longer and len(line) <= limit:
        return line, False
    kept = line[:max(limit, 0)]
    space = kept.rfind(" ", limit * 4 // 5)
    return (kept[:space] if space > 0 else kept).rstrip(), True


def defang(text: str) -> str:
    """'http://x' -> 'http[:]//x', 'www.x' -> 'www[.]x': no client turns these into links."""
    text = _BARE_SCHEME.sub(r"\1[:]", _URL_SCHEME.sub(r"\1[:]\2", text))
    return _WWW.sub("www[.]", text)


# Each escaper cuts, escapes what it kept, then appends the mark as it is: the mark is our
# words (the catalogue's "cut"), written to need no escaping in any medium.


def text_inert(value: Any, limit: int = TEXT_CHARS, mark: str = CUT_MARK) -> str:
    text, was_cut = _cut(value, limit)
    return defang(text) + (mark if was_cut else "")


def md_inert(value: Any, limit: int = CHAT_CHARS, mark: str = CUT_MARK) -> str:
    """CommonMark: every character that could format, link, or embed is escaped."""
    text, was_cut = _cut(value, limit)
    text = _MD_SPECIAL.sub(r"\\\1", defang(text))
    # A word joiner after '@': '@all' no longer reads as a mention.
    return text.replace("@", "@\u2060") + (mark if was_cut else "")


def chat_inert(value: Any, limit: int = CHAT_CHARS, mark: str = CUT_MARK) -> str:
    """Chat apps: look-alike characters, since not every app honours backslash escapes."""
    text, was_cut = _cut(value, limit)
    text = _LONE_UNDERSCORE.sub(_FULLWIDTH_LOW_LINE, defang(text).translate(_LOOKALIKE))
    return text + (mark if was_cut else "")


def slack_inert(value: Any, limit: int = CHAT_CHARS, mark: str = CUT_MARK) -> str:
    """Slack mrkdwn: & < > escaped as Slack asks, the rest as for other chat apps."""
    text, was_cut = _cut(value, limit)
    text = defang(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _LONE_UNDERSCORE.sub(_FULLWIDTH_LOW_LINE, text.translate(_SLACK_LOOKALIKE))
    return text + (mark if was_cut else "")


def terminal_inert(value: Any, *, keep_newlines: bool = False) -> str:
    """Text for a terminal: escape sequences (ESC, CSI, OSC 52, ...) and every C0/C1
    control removed, so what an API or a vendor said cannot recolour, retitle or clear the
    screen, write the clipboard, or forge lines. One line unless `keep_newlines`."""
    text = _TERMINAL_SEQUENCE.sub("", "" if value is None else str(value))
    if keep_newlines:
        return "\n".join(_CONTROL.sub(" ", line).rstrip() for line in text.split("\n"))
    return plain(text)


def json_inert(data: Any, limit: int = JSON_CHARS, mark: str = CUT_MARK) -> Any:
    """JSON data with every string longer than `limit` cut (and marked); nothing else
    changes: JSON quoting already makes the API's text inert."""
    if isinstance(data, str):
        return data if len(data) <= limit else data[:limit] + mark
    if isinstance(data, dict):
        return {key: json_inert(value, limit, mark) for key, value in data.items()}
    if isinstance(data, list):
        return [json_inert(value, limit, mark) for value in data]
    return data


def json_text(data: Any, indent: int | None = 2, *, compact: bool = False) -> str:
    """JSON for files and terminals: UTF-8 as it is, but the C1 controls (U+0080..U+009F,
    the 8-bit CSI among them), which json.dumps leaves raw with ensure_ascii off, written as
    \\u escapes like the C0 ones. The data read back is the same."""
    text = json.dumps(data, ensure_ascii=False, indent=None if compact else indent,
                      separators=(",", ":") if compact else None, default=str)
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def report_json(report: Report, mark: str | None = None) -> dict[str, Any]:
    """report.json's data (also the webhook's body), long API strings cut."""
    data: dict[str, Any] = json_inert(report.to_json(), JSON_CHARS,
                                      mark or catalogue(report.language).get("cut", CUT_MARK))
    return data


def fanout_inert(value: Any, limit: int = TEXT_CHARS, mark: str = CUT_MARK) -> str:
    """Plain text that may be forwarded into chats (SMN delivers to DingTalk, Lark and WeCom
    bots as well as to mailboxes): chat look-alikes, at the length of a text report."""
    return chat_inert(value, limit, mark)


_ESCAPERS: dict[str, Callable[..., str]] = {
    "markdown": md_inert, "slack": slack_inert, "teams": chat_inert, "feishu": chat_inert,
    "dingtalk": chat_inert, "wecom": chat_inert, "text": text_inert, "fanout": fanout_inert,
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
    """`t("reason.stalled", duration="40m")` in templates, in the report's language.

    `esc` is the medium's escaper: words that carry API text (a state the catalogue does not
    know, `t.state("<!channel>")`) go through it, so no template can forget to. Without
    one, such text is made plain and defanged, and the caller escapes it for its medium.
    """

    def __init__(self, language: str, time_zone: str,
                 esc: Callable[[Any], str] | None = None) -> None:
        self.language = language
        self.messages = catalogue(language)
        self.time_zone = time_zone
        self.esc: Callable[[Any], str] = esc or text_inert

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
        known = self.messages.get(f"state.{value}")
        return known if known is not None else self.esc(value)

    def more(self, key: str, hidden: Any, critical: int | None = None) -> str:
        """"and 12 more" (key), "and 12 more (3 critical)" (key.critical) when CRITICAL
        problems or jobs are among what was left out. `hidden`: the items left out (problems,
        jobs, or keys of resolved problems, which count as no health), or their number."""
        if isinstance(hidden, int):
            count = hidden
        else:
            items = list(hidden)
            count = len(items)
            critical = sum(1 for i in items if getattr(i, "health", None) is Health.CRITICAL)
        if critical:
            return self(f"{key}.critical", n=count, critical=critical)
        return self(key, n=count)

    def when(self, value: datetime) -> str:
        """'2026-11-22 16:00 UTC+8': abbreviations such as CST mean several zones."""
        from zoneinfo import ZoneInfo

        local = value.astimezone(ZoneInfo(self.time_zone))
        return local.strftime("%Y-%m-%d %H:%M ") + utc_offset(local)

    def problem_name(self, code: Any, compare_job_id: Any = None) -> str:
        """A problem in a few words ('task failed'), for lists of what changed."""
        known = self.messages.get(f"code.{code}")
        name = known if known is not None else self.esc(code)
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
        """The service's own words for a problem (error code and message), if any.

        A very long message is shortened to a window every escaper cuts further (with its
        mark): a 1 MB stack trace is not copied on every render of a fold.
        """
        p = problem.params
        code, message = p.get("error_code"), p.get("error_msg")
        if isinstance(message, str) and len(message) > _DETAIL_WINDOW:
            message = message[:_DETAIL_WINDOW]
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
# Longer than any escaper's window (cut() reads limit * 4 + 256 characters), so a message
# shortened to it is still seen as longer than its medium's limit and marked as cut.
_DETAIL_WINDOW = TEXT_CHARS * 4 + 1024


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


@dataclass(frozen=True)
class Links:
    """Our links in a report, a digest or an alert: this run's archived report and each
    job's page, signed to expire after web.link_expiry_hours (web/auth.py). Empty without
    web.base_url. One moment (`at`) for all of them, so every fold of a message measures
    the same links."""

    report: str | None = None
    web: WebConfig | None = None
    at: float = 0.0

    def job(self, job_id: Any) -> str | None:
        if self.web is None or not job_id:
            return None
        from drs_report.web.auth import job_link

        return job_link(self.web, str(job_id), now=self.at)


NO_LINKS = Links()


def links_for(settings: Settings | None, run_id: int | None, *, now: float | None = None
              ) -> Links:
    """The links of run `run_id`'s messages; no report link without a run (a dry run has
    no archived report), none at all without web.base_url."""
    web = settings.web if settings is not None else None
    if web is None or web.base_url is None or web.link_secret is None:
        return NO_LINKS
    from drs_report.web.auth import report_link

    at = time.time() if now is None else now
    return Links(report=report_link(web, run_id, now=at) if run_id is not None else None,
                 web=web, at=at)


def _link_target(url: str, unsafe: str) -> str:
    """A link target with the characters that would end it in the markup percent-encoded."""
    return "".join(f"%{ord(c):02X}" if c in unsafe or c.isspace() else c for c in url)


def _chat_link(dialect: str, esc: Callable[[Any], str]) -> Callable[[str, str], str]:
    """(label, url) -> the chat's link markup; the label (our words) still escaped."""
    if dialect == "slack":
        return lambda label, url: f"<{_link_target(url, '|<>')}|{esc(label)}>"
    return lambda label, url: f"[{esc(label)}]({_link_target(url, '()<>[]')})"


# An alert's sections: its problems (the first three), then the cutover news, then what went.
_ALERT_SECTIONS = ("new", "escalated", "reminder", "became_ready", "no_longer_ready",
                   "resolved", "no_longer_monitored")


def _context(report: Report, settings: Settings | None, language: str, *,
             medium: str = "text", links: Links = NO_LINKS, **extra: Any) -> dict[str, Any]:
    """What every template sees. `esc` is `medium`'s escaper, with the cut mark in the
    report's language; `t` uses it too (t.state of an unknown state)."""
    time_zone = settings.report.time_zone if settings else "UTC"
    words = Words(language, time_zone)
    esc = partial(_ESCAPERS[medium], mark=words.messages.get("cut", CUT_MARK))
    words.esc = esc
    return {
        "report": report, "t": words, "counts": report.counts(), "version": __version__,
        "project": settings.drs.project_id if settings else "",
        "title": report.title or words("title"), "esc": esc, "links": links,
        "detail_chars": TEXT_CHARS if medium in ("text", "fanout") else CHAT_CHARS,
        "job_links": True,
        "limits": dict.fromkeys(_ALERT_SECTIONS), "detailed": None, **extra,
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


def render_all(report: Report, settings: Settings, *, run_id: int | None = None
               ) -> dict[str, str]:
    """report.html, report.md, report.txt and report.json as text (+ html_full if folded).

    `run_id`: the run whose archived report the "open the full report" links point to.
    """
    language = report.language
    links = links_for(settings, run_id)
    html, html_full = _render_html(report, settings, language, links)
    outputs = {
        "html": html,
        "md": render_chat(report, dialect="markdown", max_bytes=MARKDOWN_MAX_BYTES,
                          settings=settings, links=links),
        "txt": _render_text(report, settings, language, links),
        "json": json_text(report_json(report)) + "\n",
    }
    if html_full is not None:
        outputs["html_full"] = html_full
    return outputs


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def _fold(render: Callable[[int | None, Mapping[str, Any]], str], fits: Callable[[str], bool],
          total: int, levels: Sequence[Mapping[str, Any]],
          first_keys: Callable[[int], frozenset[str]] | None = None) -> str:
    """The most items that fit, worst first, at the most detailed level that shows them all.

    `render(n, level)` shows the first n items (None: all) at a level; levels go from the most
    detailed to the most compact. The most compact one says how many items can fit at all,
    then the most detailed level that still shows that many wins: names first, details
    second. When that is the compact one and it shows no error details, the first items
    (worst first; `first_keys(m)`: the keys of the first m problems) get theirs, as many as
    the room left allows. When not even the frame fits, its lines are cut to fit, never
    mid-line.
    """
    compact = levels[-1]
    count: int | None = None
    if not fits(render(None, compact)):
        low, high, count = 0, total - 1, -1
        while low <= high:
            middle = (low + high) // 2
            if fits(render(middle, compact)):
                count, low = middle, middle + 1
            else:
                high = middle - 1
        if count < 0:
            return _cut_to_fit(render(0, compact), fits)
    for level in levels[:-1]:
        text = render(count, level)
        if fits(text):
            return text
    best = render(count, compact)
    shortest = min((lv["detail_chars"] for lv in levels if lv.get("detail_chars")), default=0)
    if first_keys is None or compact.get("detail_chars") or not shortest:
        return best
    partial = {**compact, "detail_chars": shortest}
    low, high = 1, total if count is None else count
    while low <= high:
        middle = (low + high) // 2
        text = render(count, {**partial, "detailed": first_keys(middle)})
        if fits(text):
            best, low = text, middle + 1
        else:
            high = middle - 1
    return best


def _cut_to_fit(text: str, fits: Callable[[str], bool]) -> str:
    """The most whole lines of `text` that fit, then "…"."""
    lines = text.rstrip("\n").split("\n")
    low, high, best = 0, len(lines), "…\n"
    while low <= high:
        middle = (low + high) // 2
        candidate = "\n".join([*lines[:middle], "…"]) + "\n"
        if fits(candidate):
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


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
# Then fewer problem jobs (worst first) at these levels: the service's error details
# shortened, then no "open this job" link on each job.
_HTML_LEVELS: list[dict[str, Any]] = [
    {"detail_chars": TEXT_CHARS, "job_links": True},
    {"detail_chars": 300, "job_links": True},
    {"detail_chars": 120, "job_links": True},
    {"detail_chars": 120, "job_links": False},
]
_CHAT_LEVELS: list[dict[str, Any]] = [
    {"detail_chars": CHAT_CHARS, "job_links": True},
    {"detail_chars": 100, "job_links": True},
    {"detail_chars": 100, "job_links": False},
    {"detail_chars": 0, "job_links": False},
]


def _render_html(report: Report, settings: Settings | None, language: str,
                 links: Links = NO_LINKS) -> tuple[str, str | None]:
    env = environment(_templates_dir(settings))

    def render(step: Mapping[str, Any]) -> str:
        html = _render_template(env, "html/report.html.j2", settings,
                                _context(report, settings, language, links=links, **step))
        return _inline_css(html)

    def fits(html: str) -> bool:
        # As the email carries it: every line ending becomes CRLF on the wire.
        return _utf8_size(html) + html.count("\n") <= HTML_MAX_BYTES

    full = render(_HTML_STEPS[0])
    if fits(full):
        return full, None
    for step in _HTML_STEPS[1:]:
        html = render(step)
        if fits(html):
            return html, full
    last = {**_HTML_STEPS[-1], "max_changes": 0}
    return _fold(lambda n, level: render({**last, **level, "max_problem_jobs": n}), fits,
                 len(report.problem_jobs), _HTML_LEVELS), full


def _inline_css(html: str) -> str:
    import css_inline  # heavy-ish and only for HTML: imported here, not at cold start

    return str(css_inline.inline(html))


def _render_text(report: Report, settings: Settings | None, language: str,
                 links: Links = NO_LINKS, medium: str = "text") -> str:
    env = environment(_templates_dir(settings))
    return _render_template(env, "txt/report.txt.j2", settings,
                            _context(report, settings, language, medium=medium, links=links,
                                     max_changes=None))


def render_text(report: Report, *, settings: Settings | None = None,
                language: str | None = None, run_id: int | None = None,
                medium: str = "text") -> str:
    """The text report; medium "fanout" for text that may be forwarded into chats (SMN)."""
    return _render_text(report, settings, language or report.language,
                        links_for(settings, run_id), medium)


def _worst_first(changes: ProblemChanges) -> ProblemChanges:
    """The alert's lists with CRITICAL problems first (stable: names stay in order)."""
    def ordered(items: list[Problem]) -> list[Problem]:
        return sorted(items, key=lambda p: -p.health.severity)

    return replace(changes, new=ordered(changes.new), escalated=ordered(changes.escalated),
                   reminder=ordered(changes.reminder))


def _alert_limits(changes: ProblemChanges, count: int | None) -> dict[str, int | None]:
    """How many lines of each alert section show when `count` lines fit in all: problems
    by health (CRITICAL first, whichever section they are in), then the jobs that became
    ready for cutover or fell back, then what was resolved, then what is no longer
    monitored."""
    if count is None:
        return dict.fromkeys(_ALERT_SECTIONS)
    order: list[tuple[int, int, str]] = []
    for rank, name in enumerate(_ALERT_SECTIONS[:3]):
        order += [(-p.health.severity, rank, name) for p in getattr(changes, name)]
    order.sort(key=lambda entry: entry[:2])
    for rank, name in enumerate(_ALERT_SECTIONS[3:], start=3):
        order += [(0, rank, name)] * len(getattr(changes, name))
    shown = [name for _, _, name in order[:count]]
    return {name: shown.count(name) for name in _ALERT_SECTIONS}


def _alert_problems(changes: ProblemChanges) -> list[Problem]:
    """The alert's problems in the order they are given room: CRITICAL first."""
    ranked = [(-p.health.severity, rank, p) for rank, name in enumerate(_ALERT_SECTIONS[:3])
              for p in getattr(changes, name)]
    ranked.sort(key=lambda entry: entry[:2])
    return [p for _, _, p in ranked]


def _alert_lines(changes: ProblemChanges) -> int:
    return sum(len(getattr(changes, name)) for name in _ALERT_SECTIONS)


def render_chat(
    report: Report,
    *,
    dialect: str,
    max_bytes: int,
    changes: ProblemChanges | None = None,
    language: str | None = None,
    settings: Settings | None = None,
    measure: Callable[[str], int] | None = None,
    run_id: int | None = None,
    links: Links | None = None,
) -> str:
    """The report (or, with `changes`, an alert) in a chat app's Markdown, within max_bytes.

    `measure(text)` is how the vendor counts (default: the text's UTF-8 bytes); a channel
    whose limit is on the whole request passes one that builds the request around `text`.
    `run_id` (or `links`) puts in the "open the full report" and "open this job" links.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown chat dialect {dialect!r}")
    language = language or report.language
    env = environment(_templates_dir(settings))
    links = links if links is not None else links_for(settings, run_id)
    size = measure or _utf8_size
    slack = dialect == "slack"
    alert = changes is not None
    shown_changes = _worst_first(changes) if changes is not None else None

    def fits(text: str) -> bool:
        return size(text) <= max_bytes

    def render(count: int | None, level: Mapping[str, Any], show_healthy: bool = False,
               max_changes: int | None = 0, show_readiness: bool = False) -> str:
        problems = report.problems
        limits: dict[str, int | None] = dict.fromkeys(_ALERT_SECTIONS)
        if shown_changes is not None:
            limits = _alert_limits(shown_changes, count)
        elif count is not None:
            problems = report.problems[:count]
        hidden = report.problems[len(problems):]
        esc = partial(_ESCAPERS[dialect], mark=catalogue(language).get("cut", CUT_MARK))
        return _render_template(env, "chat/message.md.j2", settings, _context(
            report, settings, language, medium=dialect, links=links, dialect=dialect,
            bold=(lambda s: f"*{s}*") if slack else (lambda s: f"**{s}**"),
            heading=(lambda s: f"*{s}*") if slack else (lambda s: f"### {s}"),
            link=_chat_link(dialect, esc), show_healthy=show_healthy, problems=problems,
            hidden_problems=len(hidden),
            hidden_critical=sum(1 for p in hidden if p.health is Health.CRITICAL),
            changes=shown_changes, max_changes=max_changes, limits=limits,
            show_readiness=show_readiness, **level,
        )).strip() + "\n"

    if not alert:
        # Healthy jobs fold first, then the readiness list (its one-line verdict stays), then
        # the lists of what changed, then the problems. A readiness list whose names alone
        # overflow is not rendered to find that out (a large fleet's list is long).
        names = sum(len(item.label.encode()) + 12 for item in report.readiness)
        for show_healthy, show_readiness, max_changes in (
                (True, True, None), (False, True, None), (False, False, None),
                (False, False, 5)):
            if show_readiness and names > max_bytes:
                continue
            text = render(None, _CHAT_LEVELS[0], show_healthy, max_changes, show_readiness)
            if fits(text):
                return text
    total = _alert_lines(shown_changes) if shown_changes is not None else len(report.problems)
    ranked = _alert_problems(shown_changes) if shown_changes is not None else report.problems
    return _fold(render, fits, total, _CHAT_LEVELS,
                 first_keys=lambda m: frozenset(p.key for p in ranked[:m]))


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
