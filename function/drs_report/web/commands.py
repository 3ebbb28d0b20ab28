"""The chat commands, answered from the latest stored run (report.json), never re-analysed:

    status                              counts, and the jobs needing attention
    status <job id prefix | name words> one job: health, reasons, delay, progress, ETA, trend,
           [live]                       comparisons; `live` reads it fresh from DRS in time
    problems                            every problem of the latest report
    history <job> [24h]                 the job's stored readings over a window
    help                                the list; anything else answers with it too

`in_channel` (or `public`) anywhere asks Slack to show the answer to the whole channel.
An answer is chat-neutral (`Answer`: a title and blocks of lines); each chat's adapter
formats it with its `Dialect` — its escaper from render.py, so API text and the asker's own
words stay inert — and `fit` folds it into the chat's size limits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

from drs_report.analysis import Health, Problem
from drs_report.config import Settings
from drs_report.errors import StoreError
from drs_report.render import Words, short_id
from drs_report.web.auth import job_link, report_link
from drs_report.web.source import ArchiveSource

MAX_COMMAND_CHARS = 300  # a slash command's text is short; longer is not a command of ours
_PUBLIC_WORDS = frozenset({"in_channel", "public"})
_WINDOW = re.compile(r"^(\d{1,4})([mhdw])$")
_WINDOW_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_WINDOW_SECONDS = 31 * 86400
_ID_PREFIX = re.compile(r"^[0-9a-z][0-9a-z-]{3,35}$")
_SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Dialect:
    """How one chat writes: its escaper, emphasis, links and size limits (in bytes)."""

    name: str
    esc: Callable[[Any], str]
    bold: Callable[[str], str]
    link: Callable[[str, str], str]  # (label, url) -> markup
    max_bytes: int  # the whole answer
    block_bytes: int  # one block (Slack: a section's text)
    max_blocks: int = 1000
    line_sep: str = "\n"  # DingTalk's Markdown joins single newlines into one paragraph
    words: Callable[[str], str] = str  # our own words: escape only what the chat would parse


def html_brackets(text: str) -> str:
    """Markdown chats read <...> as HTML and drop it: our words' brackets become look-alikes."""
    return text.replace("<", "\u2039").replace(">", "\u203a")


@dataclass
class Block:
    lines: list[str]
    more: Callable[[int], str] | None = None  # "and N more" when lines must be folded
    foldable: bool = False
    hidden: int = 0  # lines left out before formatting: they could never fit anyway


@dataclass
class Answer:
    title: str  # already in the dialect (escaped where it holds API or user text)
    blocks: list[Block] = field(default_factory=list)
    public: bool = False


@lru_cache(maxsize=4)
def _messages(language: str) -> dict[str, str]:
    text = resources.files("drs_report.web").joinpath(f"locales/{language}.json").read_text(
        "utf-8")
    data: dict[str, str] = json.loads(text)
    if language != "en-us":
        # English fills a missing key, but not its singular form: a language without one
        # (Chinese has no plural) says "1" with its own words.
        english = {k: v for k, v in _messages("en-us").items() if not k.endswith(".one")}
        return {**english, **data}
    return data


class ChatWords(Words):
    """The report catalogue (health, states, reasons, units) plus the chat-ops words."""

    def __init__(self, language: str, time_zone: str) -> None:
        super().__init__(language, time_zone)
        self.messages = {**self.messages, **{f"web.{k}": v for k, v in
                                             _messages(language).items()}}

    def web(self, key: str, **params: Any) -> str:
        return self(f"web.{key}", **params)

    def say(self, dialect: Dialect, key: str, **params: Any) -> str:
        """Our words in the chat's markup, with every value (API text, the asker's words)
        made inert by the chat's escaper."""
        singular = f"web.{key}.one" if params.get("n") == 1 else None
        chosen = singular if singular in self.messages else f"web.{key}"
        template = dialect.words(self.messages.get(chosen, key))
        try:
            return template.format(**{k: dialect.esc(v) for k, v in params.items()})
        except (KeyError, IndexError, ValueError):
            return template


def _problem(data: dict[str, Any], job_name: str | None = None) -> Problem | None:
    try:
        return Problem(key=str(data.get("key")), health=Health(data.get("health")),
                       code=str(data.get("code")), job_id=str(data.get("job_id") or ""),
                       compare_job_id=data.get("compare_job_id"),
                       params=dict(data.get("params") or {}),
                       job_name=data.get("job_name", job_name))
    except ValueError:
        return None


def _parse_at(text: Any) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


LiveFetch = Callable[[dict[str, Any], float], dict[str, Any]]


class Commands:
    """Parses one command and answers it; `live` is the only path that leaves the store."""

    def __init__(self, settings: Settings, source: ArchiveSource, *,
                 live: LiveFetch | None = None) -> None:
        self.settings = settings
        self.source = source
        self.live = live
        self.words = ChatWords(settings.drs.language, settings.report.time_zone)

    # -- entry -----------------------------------------------------------------------------

    def answer(self, text: str, dialect: Dialect, *, deadline: float | None = None,
               now: datetime | None = None) -> Answer:
        words = " ".join(str(text or "").split())[:MAX_COMMAND_CHARS].split(" ")
        words = [w for w in words if w]
        public = any(w.lower() in _PUBLIC_WORDS for w in words)
        words = [w for w in words if w.lower() not in _PUBLIC_WORDS]
        command = words[0].lower() if words else "help"
        args = words[1:]
        current = now or datetime.now(timezone.utc)
        try:
            if command == "status" and not args:
                answer = self.status(dialect)
            elif command == "status":
                answer = self.job(args, dialect, deadline=deadline)
            elif command == "problems":
                answer = self.problems(dialect)
            elif command == "history" and args:
                answer = self.history(args, dialect, now=current)
            elif command == "help" or not words:
                answer = self.help(dialect)
            else:
                answer = self.help(dialect, unknown=" ".join(words))
        except StoreError as e:
            answer = Answer(dialect.bold(self.words.web("status.title")),
                            [Block([self.words.say(dialect, "store_failed",
                                                               reason=str(e))])])
        answer.public = public
        return answer

    # -- commands ----------------------------------------------------------------------------

    def help(self, dialect: Dialect, *, unknown: str | None = None) -> Answer:
        w = self.words
        lines = [w.say(dialect, key) for key in
                 ("help.status", "help.status_job", "help.problems", "help.history",
                  "help.help")]
        blocks = [Block(lines), Block([w.say(dialect, "help.public")])]
        if unknown is not None:
            blocks.insert(0, Block([w.say(dialect, "unknown", text=unknown)]))
        return Answer(dialect.bold(w.say(dialect, "help.title")), blocks)

    def _latest(self, dialect: Dialect) -> tuple[int, dict[str, Any]] | Answer:
        latest = self.source.latest_report()
        if latest is None:
            return Answer(dialect.bold(self.words.web("status.title")),
                          [Block([self.words.say(dialect, "no_report")])])
        return latest

    def _counts_line(self, report: dict[str, Any], dialect: Dialect) -> str:
        w = self.words
        counts = report.get("counts") or {}
        parts = [f"{dialect.bold(w('badge.' + h.value))} {int(counts.get(h.value, 0))}"
                 for h in (Health.CRITICAL, Health.WARNING, Health.UNKNOWN, Health.OK)]
        return " · ".join(parts) + " · " + w("jobs_count", n=len(report.get("jobs") or []))

    def _run_line(self, run_id: int, report: dict[str, Any], dialect: Dialect) -> list[str]:
        w = self.words
        lines = []
        at = _parse_at(report.get("generated_at"))
        if at is not None:
            lines.append(w.say(dialect, "status.from_run", time=w.when(at), run=run_id))
        if report.get("partial"):
            lines.append(dialect.esc(w("partial")))
        return lines

    def _job_line(self, job: dict[str, Any], dialect: Dialect) -> str:
        w = self.words
        reasons = []
        for reason in job.get("reasons") or []:
            problem = _problem(reason, job.get("name"))
            if problem is not None and problem.health is not Health.OK:
                reasons.append(w.reason(problem, dialect.esc))
        label = dialect.esc(job.get("name") or job.get("job_id"))
        health = str(job.get("health"))
        return (f"• {dialect.bold(w('badge.' + health))} {label} "
                f"({dialect.esc(short_id(job.get('job_id')))}): " + "; ".join(reasons))

    def _report_link_line(self, run_id: int | None, dialect: Dialect) -> list[str]:
        url = report_link(self.settings.web, run_id)
        return [dialect.link(self.words.web("open_report"), url)] if url else []

    def status(self, dialect: Dialect) -> Answer:
        latest = self._latest(dialect)
        if isinstance(latest, Answer):
            return latest
        run_id, report = latest
        w = self.words
        jobs = [j for j in report.get("jobs") or [] if isinstance(j, dict)]
        attention = [j for j in jobs if j.get("health") != Health.OK.value]
        head = [self._counts_line(report, dialect), *self._run_line(run_id, report, dialect)]
        blocks = [Block(head)]
        if attention:
            shown = attention[:_most_lines(dialect)]
            blocks.append(Block(
                [dialect.bold(w.say(dialect, "status.attention"))]
                + [self._job_line(j, dialect) for j in shown],
                more=lambda n: w.say(dialect, "status.more", n=n), foldable=True,
                hidden=len(attention) - len(shown)))
        else:
            blocks.append(Block([w.say(dialect, "status.all_ok", n=len(jobs))]))
        links = self._report_link_line(run_id, dialect)
        if links:
            blocks.append(Block(links))
        return Answer(dialect.bold(w.say(dialect, "status.title")), blocks)

    def problems(self, dialect: Dialect) -> Answer:
        latest = self._latest(dialect)
        if isinstance(latest, Answer):
            return latest
        run_id, report = latest
        w = self.words
        lines = []
        problems = [p for p in report.get("problems") or [] if isinstance(p, dict)]
        for data in problems[:_most_lines(dialect)]:
            problem = _problem(data) if isinstance(data, dict) else None
            if problem is None:
                continue
            detail = Words.detail(problem)
            line = (f"• {dialect.bold(w('badge.' + problem.health.value))} "
                    f"{dialect.esc(problem.job_name or problem.job_id)}: "
                    f"{w.reason(problem, dialect.esc)}")
            if detail:
                line += f" ({dialect.esc(detail)})"
            lines.append(line)
        blocks = [Block([self._counts_line(report, dialect),
                         *self._run_line(run_id, report, dialect)])]
        if lines:
            blocks.append(Block(lines, more=lambda n: w.say(dialect, "problems.more", n=n),
                                foldable=True, hidden=len(problems) - len(lines)))
        else:
            blocks.append(Block([w.say(dialect, "problems.none")]))
        links = self._report_link_line(run_id, dialect)
        if links:
            blocks.append(Block(links))
        return Answer(dialect.bold(w.say(dialect, "problems.title")), blocks)

    def find_jobs(self, report: dict[str, Any], query: Sequence[str]) -> list[dict[str, Any]]:
        """By id (exact, then prefix) or by every word appearing in the name."""
        jobs = [j for j in report.get("jobs") or [] if isinstance(j, dict)]
        terms = [q.lower() for q in query if q]
        if not terms:
            return []
        if "/" in terms[0]:  # TARGET/JOB: the job among that target's (several targets)
            target, _, rest = terms[0].partition("/")
            jobs = [j for j in jobs if str(j.get("target") or "").lower() == target]
            terms = [rest, *terms[1:]] if rest else terms[1:]
            if not terms:
                return []
        if len(terms) == 1 and _ID_PREFIX.match(terms[0]):
            exact = [j for j in jobs if j.get("job_id") == terms[0]]
            if exact:
                return exact
            by_id = [j for j in jobs if str(j.get("job_id", "")).startswith(terms[0])]
            if by_id:
                return by_id
        return [j for j in jobs if all(t in str(j.get("name") or "").lower() for t in terms)]

    def _job_of_latest(self, query: list[str], dialect: Dialect
                       ) -> tuple[dict[str, Any], dict[str, Any]] | Answer:
        """(the latest report, the one job the query names), or the answer saying why not."""
        latest = self._latest(dialect)
        if isinstance(latest, Answer):
            return latest
        report = latest[1]
        picked = self._pick(report, query, dialect)
        return picked if isinstance(picked, Answer) else (report, picked)

    def _pick(self, report: dict[str, Any], query: list[str], dialect: Dialect
              ) -> dict[str, Any] | Answer:
        w = self.words
        shown = " ".join(query)
        matches = self.find_jobs(report, query)
        if not matches:
            return Answer(dialect.bold(w.say(dialect, "status.title")),
                          [Block([w.say(dialect, "no_match", query=shown)])])
        if len(matches) > 1:
            lines = [f"• {dialect.esc(j.get('name') or j.get('job_id'))} "
                     f"({dialect.esc(j.get('job_id'))})" for j in matches]
            return Answer(dialect.bold(w.say(dialect, "status.title")), [
                Block([w.say(dialect, "many_matches", n=len(matches), query=shown)]),
                Block(lines, more=lambda n: w.say(dialect, "many_more", n=n),
                      foldable=True)])
        return matches[0]

    def job(self, args: list[str], dialect: Dialect, *, deadline: float | None) -> Answer:
        want_live = any(a.lower() == "live" for a in args)
        query = [a for a in args if a.lower() != "live"] if want_live else args
        found = self._job_of_latest(query, dialect)
        if isinstance(found, Answer):
            return found
        report, job = found
        w = self.words
        note: str
        at = _parse_at(report.get("generated_at"))
        note = w.web("job.stored", time=w.when(at) if at else "?")
        if want_live:
            if self.live is None or deadline is None:
                note = w.web("job.live_unavailable") + " " + note
            else:
                fresh = self.live(job, deadline)
                failure = fresh.get("live_failure")
                if failure:
                    note = w.web("job.live_failed", reason=failure) + " " + note
                else:
                    job = fresh
                    live_at = _parse_at(fresh.get("live_at")) or datetime.now(timezone.utc)
                    note = w.web("job.live", time=w.when(live_at))
        return self._job_answer(job, note, dialect, report)

    def _job_answer(self, job: dict[str, Any], note: str, dialect: Dialect,
                    report: dict[str, Any]) -> Answer:
        w = self.words
        esc = dialect.esc
        health = str(job.get("health"))
        title = f"{dialect.bold(w('badge.' + health))} {esc(job.get('name') or job.get('job_id'))}"
        facts = [w.say(dialect, "job.id", id=job.get("job_id")),
                 w.say(dialect, "job.state", state=w.state(job.get("transfer_status")),
                           progress=w.percent(job.get("progress")))]
        if job.get("incre_trans_delay") is not None:
            facts.append(w.say(dialect, "job.delay", delay=w.duration(job["incre_trans_delay"])))
        if job.get("eta_seconds") is not None or job.get("remaining_time"):
            facts.append(w.say(dialect, "job.eta", eta=w.duration(job.get("eta_seconds")),
                                   remaining=w.duration(job.get("remaining_time"))))
        trend = [t for t in job.get("trend") or [] if isinstance(t, dict)]
        if len(trend) >= 2:
            first, last = trend[0], trend[-1]
            facts.append(w.say(dialect, 
                "job.trend", hours=f"{self.settings.report.trend_hours:g}",
                d0=w.duration(first.get("delay")), d1=w.duration(last.get("delay")),
                p0=w.percent(first.get("progress")), p1=w.percent(last.get("progress"))))
        facts.append(esc(note))
        reasons = []
        for reason in job.get("reasons") or []:
            problem = _problem(reason, job.get("name")) if isinstance(reason, dict) else None
            if problem is not None:
                detail = Words.detail(problem)
                line = f"• {dialect.bold(w('badge.' + problem.health.value))} " + \
                    w.reason(problem, esc)
                reasons.append(line + (f" ({esc(detail)})" if detail else ""))
        comparisons = []
        for comp in job.get("comparisons") or []:
            if not isinstance(comp, dict):
                continue
            cid = short_id(comp.get("compare_job_id"))
            chealth = w("health." + str(comp.get("health")))
            if comp.get("not_found") or comp.get("error"):
                error = w("reason.compare_not_found", compare=cid) if comp.get("not_found") \
                    else str(comp.get("error"))
                comparisons.append("• " + w.say(dialect, "job.comparison_missing", id=cid,
                                                    health=chealth, error=error))
            else:
                comparisons.append("• " + w.say(dialect, 
                    "job.comparison", id=cid, health=chealth,
                    progress=w.percent(comp.get("progress")),
                    rows=comp.get("recheck_entities") if comp.get("recheck_entities")
                    is not None else w("none"),
                    delay=w.duration(comp.get("delay"))))
        blocks = [Block(facts), Block(reasons or [w.say(dialect, "job.no_reasons")],
                                      more=lambda n: w.say(dialect, "many_more", n=n),
                                      foldable=True)]
        if comparisons:
            blocks.append(Block(comparisons, more=lambda n: w.say(dialect, "many_more", n=n),
                                foldable=True))
        url = job_link(self.settings.web, str(job.get("job_id")))
        if url:
            blocks.append(Block([dialect.link(w.web("open_job"), url)]))
        return Answer(title, blocks)

    def history(self, args: list[str], dialect: Dialect, *, now: datetime) -> Answer:
        w = self.words
        window, notes, query = 86400, [], list(args)
        if len(query) > 1 and re.match(r"^\d", query[-1]):
            text = query.pop()
            match = _WINDOW.match(text.lower())
            seconds = int(match.group(1)) * _WINDOW_UNITS[match.group(2)] if match else 0
            if 0 < seconds <= _MAX_WINDOW_SECONDS:
                window = seconds
            else:
                notes.append(w.say(dialect, "history.bad_window", text=text))
        found = self._job_of_latest(query, dialect)
        if isinstance(found, Answer):
            return found
        picked = found[1]
        job_id = str(picked.get("job_id"))
        name = picked.get("name") or job_id
        span = w.duration(window)
        points = self.source.store.job_series(job_id, now - timedelta(seconds=window))
        title = dialect.bold(w.say(dialect, "history.title", name=name, window=span))
        if not points:
            return Answer(title, [Block([*notes, w.say(dialect, "history.none", window=span)])])
        lines = [w.say(dialect, "history.readings", n=len(points), first=w.when(points[0].taken_at),
                           last=w.when(points[-1].taken_at))]
        progress = [p.progress for p in points if p.progress is not None]
        if progress:
            lines.append(w.say(dialect, "history.progress", p0=w.percent(progress[0]),
                                   p1=w.percent(progress[-1])))
        delays = [p.delay for p in points if p.delay is not None]
        if delays:
            lines.append(w.say(dialect, "history.delay", now=w.duration(delays[-1]),
                                   low=w.duration(min(delays)), high=w.duration(max(delays))))
            lines.append(w.say(dialect, "history.sparkline", line=sparkline(delays)))
        states: list[str] = []
        for p in points:
            state = w.state(p.transfer_status)
            if not states or states[-1] != state:
                states.append(state)
        lines.append(w.say(dialect, "history.states", states=" → ".join(states[-8:])))
        blocks = [Block([*notes, *lines])]
        url = job_link(self.settings.web, job_id)
        if url:
            blocks.append(Block([dialect.link(w.web("open_job"), url)]))
        return Answer(title, blocks)


def _most_lines(dialect: Dialect) -> int:
    """No chat shows more lines than its size allows, and no line is under 24 bytes: a fleet
    of 5,000 problem jobs formats a hundred-odd lines, not 5,000."""
    return max(1, dialect.max_bytes // 24)


def sparkline(values: Sequence[float], width: int = 24) -> str:
    """The values as block characters, averaged into at most `width` buckets."""
    if not values:
        return ""
    size = max(1, -(-len(values) // width))
    buckets = [sum(values[i:i + size]) / len(values[i:i + size])
               for i in range(0, len(values), size)]
    low, high = min(buckets), max(buckets)
    if high <= low:
        return _SPARK[0] * len(buckets)
    return "".join(_SPARK[min(7, int((b - low) / (high - low) * 7.999))] for b in buckets)


# -- fitting into a chat ---------------------------------------------------------------------


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def fit(answer: Answer, dialect: Dialect) -> list[str]:
    """The answer as blocks of text within the dialect's limits: foldable blocks lose their
    last lines into "and N more", long blocks split at line ends, never mid-line."""
    budget = dialect.max_bytes - _size(answer.title) - 2
    sep = dialect.line_sep
    fixed = sum(_size(sep.join(b.lines)) + 2 for b in answer.blocks if not b.foldable)
    room = budget - fixed
    texts: list[str] = []
    for block in answer.blocks:
        lines = [_clip(line, dialect.block_bytes) for line in block.lines]
        if block.foldable:
            lines = _fold(lines, block.more, max(room, 0), sep, block.hidden)
            room -= _size(sep.join(lines)) + 2
        texts.extend(_split(lines, dialect.block_bytes, sep))
    if len(texts) > dialect.max_blocks - 1:  # the title takes a block of its own
        texts = texts[:dialect.max_blocks - 1]
    return [answer.title, *texts]


def _clip(line: str, limit: int) -> str:
    if _size(line) <= limit:
        return line
    data = line.encode("utf-8")[:limit - 4]
    return data.decode("utf-8", "ignore") + " …"


def _fold(lines: list[str], more: Callable[[int], str] | None, room: int, sep: str,
          hidden: int = 0) -> list[str]:
    if not hidden and _size(sep.join(lines)) <= room:
        return lines
    total = len(lines) + hidden
    low, high, best = 0, len(lines), 0  # the most lines that still fit with "and N more"
    while low <= high:
        middle = (low + high) // 2
        tail = [more(total - middle)] if more else []
        if _size(sep.join(lines[:middle] + tail)) <= room:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return lines[:best] + ([more(total - best)] if more else [])


def _split(lines: list[str], limit: int, sep: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    for line in lines:
        if current and _size(sep.join([*current, line])) > limit:
            blocks.append(sep.join(current))
            current = []
        current.append(line)
    if current:
        blocks.append(sep.join(current))
    return blocks
