"""Judge each job's health from its reading and its history.

Health, worst first: CRITICAL > WARNING > UNKNOWN > OK (the Nagios order DBAs know: a job we
could not read is less alarming than one we know is failing or lagging).

Reasons are codes with parameters; the words come from the message catalogue
(drs_report/locales/*.json), never from here:

    job:        failed, paused, deleted, delay_critical, delay_warning, stalled,
                api_error, fetch_failed, missing, skipped, no_state, unknown_state,
                unreadable, out_of_range
    comparison: inconsistent_rows, compare_not_found, compare_stalled, compare_failed

A problem's key ("<job_id>:<code>" or "<job_id>/<compare_job_id>:<code>") is stable across
runs, so "what changed" and alert mode compare keys, not sentences. A previous problem is
"resolved" only when its job or comparison was read again and the problem is gone; when the
job left the configuration it is "no longer monitored", and when it could not be read this
time it stays as it was (we do not know).

Growth between two reports is called out when a job's incremental delay or a comparison's
inconsistent rows rose by at least half (x1.5) and by at least GROWTH_MIN_DELAY_SECONDS /
GROWTH_MIN_ROWS: a lag that doubles is news even while the health stays the same.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from drs_report import readiness as cutover
from drs_report.config import JobConfig, Settings, Thresholds
from drs_report.models import (
    CompareReading,
    FetchErrorKind,
    JobReading,
    Snapshot,
    TargetRead,
)
from drs_report.readiness import Readiness

REPORT_SCHEMA_VERSION = 2  # 2: targets (regions and projects), each job's project
RUNNING_STATES = frozenset({"FULL_TRANSFER_STARTED", "INCRE_TRANSFER_STARTED"})
# Every `status`/`transfer_status` the DRS API reference lists ("Task Statuses" and the
# batch status query's enumeration). A state outside it is no evidence of health: the job is
# UNKNOWN, naming the state, rather than OK because nothing matched.
DOCUMENTED_STATES = frozenset({
    "CREATING", "CREATE_FAILED", "CONFIGURATION", "STARTJOBING", "WAITING_FOR_START",
    "START_JOB_FAILED", "PAUSING", "FULL_TRANSFER_STARTED", "FULL_TRANSFER_FAILED",
    "FULL_TRANSFER_COMPLETE", "INCRE_TRANSFER_STARTED", "INCRE_TRANSFER_FAILED",
    "RELEASE_RESOURCE_STARTED", "RELEASE_RESOURCE_FAILED", "RELEASE_RESOURCE_COMPLETE",
    "REBUILD_NODE_STARTED", "REBUILD_NODE_FAILED", "CHANGE_JOB_STARTED", "CHANGE_JOB_FAILED",
    "DELETED", "CHILD_TRANSFER_STARTING", "CHILD_TRANSFER_STARTED", "CHILD_TRANSFER_COMPLETE",
    "CHILD_TRANSFER_FAILED", "RELEASE_CHILD_TRANSFER_STARTED",
    "RELEASE_CHILD_TRANSFER_COMPLETE", "NODE_UPGRADE_START", "NODE_UPGRADE_COMPLETE",
    "NODE_UPGRADE_FAILED",
})
TREND_POINTS = 24
GROWTH_FACTOR = 1.5
GROWTH_MIN_DELAY_SECONDS = 60.0
GROWTH_MIN_ROWS = 10
# Failures of our request, not answers of the service: a job with one of these was not read.
_ANSWERED = frozenset({FetchErrorKind.API_ERROR, FetchErrorKind.MISSING,
                       FetchErrorKind.NOT_FOUND})


class Health(str, enum.Enum):
    CRITICAL = "CRITICAL"
    WARNING = "WARNING"
    UNKNOWN = "UNKNOWN"
    OK = "OK"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Health.CRITICAL: 3, Health.WARNING: 2, Health.UNKNOWN: 1, Health.OK: 0}


def worst(healths: Sequence[Health]) -> Health:
    return max(healths, key=lambda h: h.severity, default=Health.OK)


@dataclass(frozen=True)
class Problem:
    key: str
    health: Health
    code: str
    job_id: str
    compare_job_id: str | None
    params: dict[str, Any] = field(default_factory=dict)
    job_name: str | None = None
    project_id: str | None = None  # the job's target: its project, and its name
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "health": self.health.value, "code": self.code,
                "job_id": self.job_id, "compare_job_id": self.compare_job_id,
                "job_name": self.job_name, "params": self.params,
                "project_id": self.project_id, "target": self.target}


def split_key(key: str) -> tuple[str, str | None, str]:
    """'<job>:<code>' or '<job>/<compare>:<code>' -> (job_id, compare_job_id, code); with
    several targets the key starts '<project_id>:', which is dropped here."""
    subject, _, code = key.rpartition(":")
    subject = subject.rpartition(":")[2]
    job_id, _, compare = subject.partition("/")
    return job_id, compare or None, code


@dataclass
class CompareStatus:
    compare_job_id: str
    health: Health
    reasons: list[Problem]
    progress: float | None = None
    recheck_entities: int | None = None
    delay: float | None = None
    src_speed: str | None = None
    log_point: str | None = None
    not_found: bool = False
    error: str | None = None


@dataclass
class TrendPoint:
    at: datetime
    progress: float | None
    delay: float | None


@dataclass
class JobStatus:
    job_id: str
    name: str | None
    health: Health
    reasons: list[Problem]
    transfer_status: str | None = None
    task_mode: str | None = None
    progress: float | None = None
    delay: float | None = None
    remaining_time: int | None = None  # the service's estimate, seconds
    eta_seconds: float | None = None  # ours, from the rate of progress over the history
    apply_rows_rate: int | None = None
    comparisons: list[CompareStatus] = field(default_factory=list)
    trend: list[TrendPoint] = field(default_factory=list)
    state_changed_from: str | None = None
    readiness: Readiness | None = None  # the cutover verdict (readiness.py)
    project_id: str = ""  # the job's target: its project ("" if unknown), and its name
    target: str = ""

    @property
    def label(self) -> str:
        return self.name or self.job_id


@dataclass
class Changes:
    new: list[Problem] = field(default_factory=list)
    # {key, code, health, job_id, compare_job_id, job_name}, from the previous report
    resolved: list[dict[str, Any]] = field(default_factory=list)
    no_longer_monitored: list[dict[str, Any]] = field(default_factory=list)
    state_changes: list[dict[str, Any]] = field(default_factory=list)
    # {job_id, job_name, compare_job_id, measure: delay | inconsistent_rows, before, after}
    growth: list[dict[str, Any]] = field(default_factory=list)
    first_report: bool = True

    @property
    def any(self) -> bool:
        return bool(self.new or self.resolved or self.no_longer_monitored
                    or self.state_changes or self.growth)

    @property
    def new_keys(self) -> frozenset[str]:
        return frozenset(p.key for p in self.new)


@dataclass
class ReadFailures:
    """Jobs that could not be read because our requests failed, grouped by the failure."""

    total: int = 0  # jobs in the report
    unread: int = 0  # of them, not read (request failed, refused, unreachable, skipped)
    causes: dict[str, int] = field(default_factory=dict)  # failure message -> jobs
    run_errors: list[str] = field(default_factory=list)  # e.g. job discovery failed

    @property
    def nothing_read(self) -> bool:
        """No job could be read at all (or discovery failed and found none)."""
        if self.total == 0:
            return bool(self.run_errors)
        return self.unread == self.total

    @property
    def shared_cause(self) -> str | None:
        """The one failure every unread job shares, if they share one."""
        if self.total == 0 and self.run_errors:
            return self.run_errors[0]
        return next(iter(self.causes)) if len(self.causes) == 1 else None


@dataclass
class Report:
    generated_at: datetime
    language: str
    title: str | None
    partial: bool
    jobs: list[JobStatus]
    problems: list[Problem]
    changes: Changes
    errors: list[str]
    trend_hours: float = 24.0
    scope: list[str] | None = None  # a run narrowed to these job ids (run --job)
    read_failures: ReadFailures = field(default_factory=ReadFailures)
    # Subjects ("<job>" or "<job>/<compare>") that could not be read in this run: their
    # earlier problems are neither resolved nor gone, we simply do not know.
    unread: frozenset[str] = frozenset()
    names: dict[str, str] = field(default_factory=dict)  # job id -> name, this and last run
    targets: list[TargetRead] = field(default_factory=list)  # each target, in config order
    estate: bool = False  # several targets ([[drs.targets]]): grouped by target

    def target_groups(self) -> list[tuple[TargetRead, list[JobStatus]]]:
        """The jobs of each target, worst first, in the configuration's order of targets."""
        return [(t, [j for j in self.jobs if j.project_id == t.project_id])
                for t in self.targets]

    def counts(self) -> dict[str, int]:
        counts = {h.value: 0 for h in (Health.CRITICAL, Health.WARNING, Health.UNKNOWN,
                                        Health.OK)}
        for job in self.jobs:
            counts[job.health.value] += 1
        return counts

    def problem_map(self) -> dict[str, str]:
        return {p.key: p.health.value for p in self.problems}

    def job_label(self, job_id: str) -> str:
        """The job's name if this run or the previous one knew it, else its id."""
        return self.names.get(job_id) or job_id

    def is_unread(self, key: str) -> bool:
        job_id, compare, _ = split_key(key)
        return job_id in self.unread or f"{job_id}/{compare}" in self.unread

    @property
    def job_ids(self) -> frozenset[str]:
        return frozenset(j.job_id for j in self.jobs)

    @property
    def problem_jobs(self) -> list[JobStatus]:
        return self._by_target([j for j in self.jobs if j.health is not Health.OK])

    @property
    def healthy_jobs(self) -> list[JobStatus]:
        return self._by_target([j for j in self.jobs if j.health is Health.OK])

    def _by_target(self, jobs: list[JobStatus]) -> list[JobStatus]:
        """With several targets, grouped by target (in the configuration's order), worst
        first inside each."""
        if not self.estate:
            return jobs
        order = {t.project_id: i for i, t in enumerate(self.targets)}
        return sorted(jobs, key=lambda j: order.get(j.project_id, len(order)))

    def target(self, project_id: str) -> TargetRead | None:
        return next((t for t in self.targets if t.project_id == project_id), None)

    @property
    def unread_targets(self) -> list[TargetRead]:
        """Targets none of whose jobs could be read (several targets only)."""
        return [t for t in self.targets if t.cause] if self.estate else []

    @property
    def listed_errors(self) -> list[str]:
        """The run errors to list: all but those of unread targets, said at the top."""
        said = {t.line() for t in self.unread_targets}
        return [e for e in self.errors if e not in said]

    @cached_property
    def readiness(self) -> list[Readiness]:
        """The jobs' cutover verdicts, closest to ready first (sorted once: every format and
        every folding step asks)."""
        return cutover.sorted_verdicts([j.readiness for j in self.jobs
                                        if j.readiness is not None])

    def readiness_counts(self) -> dict[str, int]:
        return cutover.counts(self.readiness)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "generated_at": self.generated_at.isoformat(),
            "language": self.language,
            "title": self.title,
            "partial": self.partial,
            "counts": self.counts(),
            "jobs": [_job_json(j) for j in self.jobs],
            "problems": [p.to_json() for p in self.problems],
            "scope": self.scope,
            "changes": {
                "first_report": self.changes.first_report,
                "new": [p.key for p in self.changes.new],
                "resolved": self.changes.resolved,
                "no_longer_monitored": self.changes.no_longer_monitored,
                "state_changes": self.changes.state_changes,
                "growth": self.changes.growth,
            },
            "errors": self.errors,
            "targets": [{"name": t.name, "region": t.region, "project_id": t.project_id,
                         "jobs": t.jobs, "unread": t.unread, "cause": t.cause}
                        for t in self.targets],
            "readiness": {"counts": self.readiness_counts(),
                          "jobs": [r.to_report_json() for r in self.readiness]},
        }


@dataclass
class ProblemChanges:
    """What an alert says: problems new, worse, gone, or still critical and due a reminder.

    `resolved` and `no_longer_monitored` are keys; `carried` are earlier problems of jobs
    that could not be read this time, kept as they were in the alert state.
    """

    new: list[Problem] = field(default_factory=list)
    escalated: list[Problem] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    reminder: list[Problem] = field(default_factory=list)
    no_longer_monitored: list[str] = field(default_factory=list)
    carried: dict[str, str] = field(default_factory=dict)
    # Cutover readiness since the last alert (readiness.readiness_changes).
    became_ready: list[Readiness] = field(default_factory=list)
    no_longer_ready: list[Readiness] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.new or self.escalated or self.resolved or self.reminder
                    or self.no_longer_monitored or self.became_ready or self.no_longer_ready)


def qualified_key(key: str, projects: Mapping[str, str]) -> str:
    """A key from before several targets ('<job_id>:<code>') as it reads with them
    ('<project_id>:<job_id>:<code>'), so moving to [[drs.targets]] makes nothing new."""
    if key.count(":") != 1:
        return key
    project = projects.get(split_key(key)[0])
    return f"{project}:{key}" if project else key


def diff_problems(previous: Mapping[str, str] | None, report: Report) -> ProblemChanges:
    """Compare the problems of `report` with a previous key -> health map."""
    before = dict(previous or {})
    if report.estate:
        projects = {j.job_id: j.project_id for j in report.jobs if j.project_id}
        before = {qualified_key(k, projects): v for k, v in before.items()}
    changes = ProblemChanges()
    for problem in report.problems:
        old = before.get(problem.key)
        if old is None:
            changes.new.append(problem)
        elif Health(old).severity < problem.health.severity:
            changes.escalated.append(problem)
    current = report.problem_map()
    watched = report.job_ids
    for key in sorted(k for k in before if k not in current):
        if split_key(key)[0] not in watched:
            changes.no_longer_monitored.append(key)
        elif report.is_unread(key):
            changes.carried[key] = before[key]
        else:
            changes.resolved.append(key)
    return changes


# -- analysis ------------------------------------------------------------------------------


def analyse(
    snapshot: Snapshot,
    history: Mapping[str, Sequence[tuple[datetime, JobReading]]],
    previous: Mapping[str, Any] | None,
    settings: Settings,
    *,
    now: datetime,
    scope: Sequence[str] | None = None,
    readiness_history: Mapping[str, Sequence[tuple[datetime, JobReading]]] | None = None,
) -> Report:
    """`scope`: the job ids a narrowed run (run --job) was limited to; the report says so.
    `readiness_history`: a longer history for the cutover verdicts (default: `history`)."""
    configured = {j.id: j for j in settings.jobs}
    longer = history if readiness_history is None else readiness_history
    jobs: list[JobStatus] = []
    for reading in snapshot.jobs:
        config = configured.get(reading.job_id)
        thresholds = config.thresholds if config else settings.thresholds
        past = _with_current(history.get(reading.job_id, ()), snapshot.taken_at, reading)
        job = _judge_job(reading, config, thresholds, past, now)
        job.readiness = cutover.judge(
            reading.job_id, job.name,
            _with_current(longer.get(reading.job_id, ()), snapshot.taken_at, reading),
            settings.readiness_of(reading.job_id), stall_minutes=thresholds.stall_minutes,
            now=now)
        job.project_id, job.target = reading.project_id, reading.target
        _name_target(job, qualify=settings.estate)
        if settings.estate and reading.target and job.readiness is not None:
            job.readiness = replace(job.readiness, target=reading.target)
        jobs.append(job)
    jobs.sort(key=lambda j: (-j.health.severity, j.label.lower()))
    problems = sorted((p for j in jobs for p in j.reasons if p.health is not Health.OK),
                      key=lambda p: (-p.health.severity, (p.job_name or p.job_id).lower(), p.key))
    unread = _unread(snapshot)
    changes = _changes(previous, jobs, problems, unread)
    names: dict[str, str] = {}
    for key, name_key in (("problems", "job_name"), ("jobs", "name")):
        names.update({str(item["job_id"]): str(item[name_key])
                      for item in (previous or {}).get(key, [])
                      if isinstance(item, dict) and item.get("job_id") and item.get(name_key)})
    names.update({j.job_id: j.name for j in jobs if j.name})
    return Report(
        generated_at=now, language=settings.drs.language, title=settings.report.title,
        partial=snapshot.partial, jobs=jobs, problems=problems, changes=changes,
        errors=list(snapshot.errors), trend_hours=settings.report.trend_hours,
        scope=sorted(scope) if scope is not None else None,
        read_failures=read_failures(snapshot), unread=unread, names=names,
        targets=list(snapshot.targets) or [
            TargetRead(name=t.name, region=t.region, project_id=t.project_id)
            for t in settings.fleet()],
        estate=settings.estate,
    )


def _name_target(job: JobStatus, *, qualify: bool) -> None:
    """Each problem names its job's target; with several targets its key starts with the
    project ('<project_id>:<job_id>:<code>'), a job being (project, job id)."""

    def named(p: Problem) -> Problem:
        key = f"{job.project_id}:{p.key}" if qualify and job.project_id else p.key
        return replace(p, key=key, project_id=job.project_id or None,
                       target=job.target or None)

    job.reasons = [named(p) for p in job.reasons]
    for comp in job.comparisons:
        comp.reasons = [named(p) for p in comp.reasons]


def read_failures(snapshot: Snapshot) -> ReadFailures:
    """Which jobs our requests failed to read, and the failures, grouped by message."""
    failures = ReadFailures(total=len(snapshot.jobs), run_errors=list(snapshot.errors))
    for reading in snapshot.jobs:
        error = reading.error
        if error is not None and error.kind not in _ANSWERED:
            failures.unread += 1
            failures.causes[error.message] = failures.causes.get(error.message, 0) + 1
    return failures


def _unread(snapshot: Snapshot) -> frozenset[str]:
    subjects = set()
    for reading in snapshot.jobs:
        if reading.progress is None or reading.progress.transfer_status is None:
            subjects.add(reading.job_id)
        for comp in reading.comparisons:
            if comp.error is not None and comp.error.kind is not FetchErrorKind.NOT_FOUND:
                subjects.add(f"{reading.job_id}/{comp.compare_job_id}")
    return frozenset(subjects)


def narrow_previous(previous: Mapping[str, Any] | None, job_ids: Sequence[str]
                    ) -> dict[str, Any] | None:
    """The previous report as far as it concerns these jobs (for a run narrowed to them)."""
    if previous is None:
        return None
    wanted = set(job_ids)
    narrowed = dict(previous)
    narrowed["jobs"] = [j for j in previous.get("jobs", [])
                        if isinstance(j, dict) and j.get("job_id") in wanted]
    narrowed["problems"] = [p for p in previous.get("problems", [])
                            if isinstance(p, dict) and p.get("job_id") in wanted]
    return narrowed


def _with_current(past: Sequence[tuple[datetime, JobReading]], taken_at: datetime,
                  reading: JobReading) -> list[tuple[datetime, JobReading]]:
    """The history with the current reading last (the store usually has it already)."""
    points = [p for p in past if p[0] != taken_at]
    points.append((taken_at, reading))
    points.sort(key=lambda p: p[0])
    return points


def _problem(job: JobReading, code: str, health: Health, compare_id: str | None = None,
             **params: Any) -> Problem:
    subject = f"{job.job_id}/{compare_id}" if compare_id else job.job_id
    return Problem(key=f"{subject}:{code}", health=health, code=code, job_id=job.job_id,
                   compare_job_id=compare_id, params=params, job_name=job.name)


def _judge_job(reading: JobReading, config: JobConfig | None, thresholds: Thresholds,
               past: list[tuple[datetime, JobReading]], now: datetime) -> JobStatus:
    reasons: list[Problem] = []
    p = reading.progress
    status = JobStatus(job_id=reading.job_id, name=reading.name or (config.name if config
                                                                    else None),
                       health=Health.OK, reasons=reasons)
    if p is not None:
        status.transfer_status = p.transfer_status
        status.task_mode = p.task_mode
        status.progress = p.progress
        status.delay = p.delay_seconds if p.transfer_status == "INCRE_TRANSFER_STARTED" else None
        status.remaining_time = p.remaining_time
        status.apply_rows_rate = p.apply_rows_rate if (p.apply_rows_rate or 0) >= 0 else None
    error = reading.error
    if error is not None:
        if error.kind is FetchErrorKind.MISSING:
            reasons.append(_problem(reading, "missing", Health.UNKNOWN))
        elif error.kind is FetchErrorKind.SKIPPED:
            # A retry the budget cut short names what it was retrying; show that.
            cause = {"message": error.message} if "while retrying" in error.message else {}
            reasons.append(_problem(reading, "skipped", Health.UNKNOWN, **cause))
        elif error.kind is FetchErrorKind.API_ERROR:
            reasons.append(_problem(reading, "api_error", Health.UNKNOWN,
                                    error_code=error.error_code or "", error_msg=error.message))
        else:
            reasons.append(_problem(reading, "fetch_failed", Health.UNKNOWN,
                                    kind=error.kind.value, message=error.message))
    reasons.extend(_evidence_problems(reading))
    state = p.transfer_status if p else None
    if state:
        if state.endswith("_FAILED"):
            reasons.append(_problem(reading, "failed", Health.CRITICAL, state=state,
                                    error_code=p.error_code if p else None,
                                    error_msg=p.error_msg if p else None))
        elif state == "PAUSING":
            reasons.append(_problem(reading, "paused", Health.WARNING, state=state))
        elif state == "DELETED":
            reasons.append(_problem(reading, "deleted", Health.WARNING, state=state))
        elif state not in DOCUMENTED_STATES:
            reasons.append(_problem(reading, "unknown_state", Health.UNKNOWN, state=state))
    if state == "INCRE_TRANSFER_STARTED" and status.delay is not None:
        if status.delay >= thresholds.delay_crit_seconds:
            reasons.append(_problem(reading, "delay_critical", Health.CRITICAL,
                                    delay=status.delay,
                                    threshold=thresholds.delay_crit_seconds))
        elif status.delay >= thresholds.delay_warn_seconds:
            reasons.append(_problem(reading, "delay_warning", Health.WARNING, delay=status.delay,
                                    threshold=thresholds.delay_warn_seconds))
    if state in RUNNING_STATES:
        stalled_for = _stalled_seconds(past, now)
        if stalled_for is not None and stalled_for >= thresholds.stall_minutes * 60:
            reasons.append(_problem(reading, "stalled", Health.CRITICAL,
                                    minutes=round(stalled_for / 60), progress=status.progress))
    if state == "FULL_TRANSFER_STARTED":
        # Only the full phase ends; once incremental, a job has no "done" to reach.
        status.eta_seconds = _eta(past)
    for comp in reading.comparisons:
        status.comparisons.append(_judge_comparison(reading, comp, past, thresholds, now,
                                                    state in RUNNING_STATES))
        reasons.extend(r for r in status.comparisons[-1].reasons)
    status.trend = _trend(past)
    status.health = worst([r.health for r in reasons])
    return status


def _evidence_problems(reading: JobReading) -> list[Problem]:
    """An answer that says nothing readable about the job is no evidence that it is OK.

    No state at all (only the job_id came back), or a number the judgement rests on that
    is not a number ("abc") or cannot be right (progress 250, a negative delay).
    """
    p = reading.progress
    if p is None or reading.error is not None:
        return []
    if p.transfer_status is None:
        return [_problem(reading, "no_state", Health.UNKNOWN)]
    checks: list[tuple[str, float | None, bool]] = [
        ("progress", p.progress, p.progress is None or 0 <= p.progress <= 100)]
    if p.transfer_status == "INCRE_TRANSFER_STARTED":
        checks += [("incre_trans_delay_millis", p.incre_trans_delay_millis,
                    (p.incre_trans_delay_millis or 0) >= 0),
                   ("incre_trans_delay", p.incre_trans_delay, (p.incre_trans_delay or 0) >= 0)]
    problems: dict[str, Problem] = {}  # by code: the key of a problem is job and code
    for name, parsed, plausible in checks:
        sent = p.raw.get(name)
        shown = str(sent)[:40]
        if parsed is None and sent is not None and not (isinstance(sent, str)
                                                        and not sent.strip()):
            if name != "progress" and p.delay_seconds is not None:
                continue  # the other delay field was readable: the delay is known
            problems.setdefault("unreadable", _problem(reading, "unreadable", Health.UNKNOWN,
                                                       field=name, value=shown))
        elif not plausible:
            problems.setdefault("out_of_range", _problem(reading, "out_of_range",
                                                         Health.UNKNOWN, field=name,
                                                         value=shown))
    return list(problems.values())


def _stalled_seconds(past: list[tuple[datetime, JobReading]], now: datetime) -> float | None:
    """How long the job's progress marker has not moved, judged from the stored readings.

    In the full phase the marker is `progress`; in the incremental phase it is the
    service's own `process_time` (the time of its last progress update).
    """
    def marker(reading: JobReading) -> tuple[Any, ...] | None:
        p = reading.progress
        if p is None or p.transfer_status not in RUNNING_STATES:
            return None
        if p.transfer_status == "FULL_TRANSFER_STARTED":
            return (p.transfer_status, p.progress)
        return (p.transfer_status, p.process_time) if p.process_time is not None else None

    if not past:
        return None
    current = marker(past[-1][1])
    if current is None:
        return None
    since = past[-1][0]
    for taken_at, reading in reversed(past[:-1]):
        if marker(reading) != current:
            break
        since = taken_at
    return (past[-1][0] - since).total_seconds() if since < past[-1][0] else None


def _eta(past: list[tuple[datetime, JobReading]]) -> float | None:
    """Seconds to 100% at the rate progress rose over the history window (full phase).

    Only the readings of the current full phase count: a job restarted after a failure
    starts a new rate.
    """
    points: list[tuple[datetime, float | None]] = []
    for t, r in reversed(past):
        if r.progress is None or r.progress.transfer_status != "FULL_TRANSFER_STARTED":
            break
        if r.progress.progress is not None:
            points.insert(0, (t, r.progress.progress))
    if len(points) < 2:
        return None
    (t0, p0), (t1, p1) = points[0], points[-1]
    elapsed = (t1 - t0).total_seconds()
    if elapsed <= 0 or p1 is None or p0 is None or p1 <= p0:
        return None
    rate = (p1 - p0) / elapsed
    return max(0.0, (100.0 - p1) / rate)


def _trend(past: list[tuple[datetime, JobReading]]) -> list[TrendPoint]:
    points = [TrendPoint(t, r.progress.progress if r.progress else None,
                         r.progress.delay_seconds if r.progress else None) for t, r in past]
    if len(points) <= TREND_POINTS:
        return points
    step = len(points) / TREND_POINTS
    return [points[int(i * step)] for i in range(TREND_POINTS - 1)] + [points[-1]]


def _judge_comparison(job: JobReading, comp: CompareReading,
                      past: list[tuple[datetime, JobReading]], thresholds: Thresholds,
                      now: datetime, job_running: bool) -> CompareStatus:
    reasons: list[Problem] = []
    status = CompareStatus(compare_job_id=comp.compare_job_id, health=Health.OK,
                           reasons=reasons)
    if comp.error is not None:
        if comp.error.kind is FetchErrorKind.NOT_FOUND:
            status.not_found = True
            reasons.append(_problem(job, "compare_not_found", Health.WARNING,
                                    comp.compare_job_id))
        else:
            status.error = comp.error.message
            reasons.append(_problem(job, "compare_failed", Health.UNKNOWN, comp.compare_job_id,
                                    kind=comp.error.kind.value, message=comp.error.message))
    progress = comp.progress
    if progress is not None:
        full, incre = progress.full_info, progress.incre_info
        status.progress = full.progress if full else None
        status.recheck_entities = progress.recheck_entities
        status.delay = incre.delay if incre else None
        status.log_point = incre.log_point if incre else None
        status.src_speed = (incre.src_speed if incre else None) or (full.src_speed if full
                                                                    else None)
        if (status.recheck_entities or 0) > 0:
            reasons.append(_problem(job, "inconsistent_rows", Health.WARNING,
                                    comp.compare_job_id, rows=status.recheck_entities))
        if job_running and status.log_point:
            stalled = _log_point_stalled(past, comp.compare_job_id, status.log_point)
            if stalled is not None and stalled >= thresholds.stall_minutes * 60:
                reasons.append(_problem(job, "compare_stalled", Health.WARNING,
                                        comp.compare_job_id, minutes=round(stalled / 60),
                                        log_point=status.log_point))
    status.health = worst([r.health for r in reasons])
    return status


def _log_point_stalled(past: list[tuple[datetime, JobReading]], compare_id: str,
                       log_point: str) -> float | None:
    since = None
    for taken_at, reading in reversed(past):
        points = [c.progress.incre_info.log_point for c in reading.comparisons
                  if c.compare_job_id == compare_id and c.progress is not None
                  and c.progress.incre_info is not None]
        if not points or points[0] != log_point:
            break
        since = taken_at
    if since is None or not past:
        return None
    return (past[-1][0] - since).total_seconds()


def _changes(previous: Mapping[str, Any] | None, jobs: list[JobStatus],
             problems: list[Problem], unread: frozenset[str]) -> Changes:
    if not previous:
        return Changes(first_report=True)
    projects = {j.job_id: j.project_id for j in jobs if j.project_id}
    qualify = any(p.key.count(":") > 1 for p in problems)
    old_problems: dict[str, dict[str, Any]] = {
        (qualified_key(p["key"], projects) if qualify else p["key"]): p
        for p in previous.get("problems", [])
        if isinstance(p, dict) and isinstance(p.get("key"), str)}
    old_jobs = {j.get("job_id"): j for j in previous.get("jobs", []) if isinstance(j, dict)}
    current_keys = {p.key for p in problems}
    watched = {j.job_id for j in jobs}
    changes = Changes(first_report=False)
    changes.new = [p for p in problems if p.key not in old_problems]
    for key, old in old_problems.items():
        if key in current_keys:
            continue
        job_id, compare, code = split_key(key)
        entry = {"key": key, "code": old.get("code") or code, "health": old.get("health"),
                 "job_id": old.get("job_id") or job_id,
                 "compare_job_id": old.get("compare_job_id") or compare,
                 "job_name": old.get("job_name")}
        if job_id not in watched:
            changes.no_longer_monitored.append(entry)
        elif job_id not in unread and f"{job_id}/{compare}" not in unread:
            changes.resolved.append(entry)
    for job in jobs:
        before = old_jobs.get(job.job_id)
        if not before:
            continue
        if job.transfer_status is not None and before.get("transfer_status") != \
                job.transfer_status:
            job.state_changed_from = before.get("transfer_status")
            changes.state_changes.append({"job_id": job.job_id, "name": job.name,
                                          "from": before.get("transfer_status"),
                                          "to": job.transfer_status})
        changes.growth.extend(_growth(job, before))
    return changes


def _grew(before: Any, after: float | None, minimum: float) -> bool:
    if after is None or isinstance(before, bool) or not isinstance(before, (int, float)):
        return False
    return after >= before * GROWTH_FACTOR and after - before >= minimum


def _growth(job: JobStatus, before: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Delay and inconsistent rows that rose past the growth threshold since `before`."""
    grown: list[dict[str, Any]] = []
    base = {"job_id": job.job_id, "job_name": job.name}
    if _grew(before.get("incre_trans_delay"), job.delay, GROWTH_MIN_DELAY_SECONDS):
        grown.append({**base, "compare_job_id": None, "measure": "delay",
                      "before": before["incre_trans_delay"], "after": job.delay})
    old_comparisons = {c.get("compare_job_id"): c for c in before.get("comparisons", [])
                       if isinstance(c, dict)}
    for comp in job.comparisons:
        old = old_comparisons.get(comp.compare_job_id)
        if old is not None and _grew(old.get("recheck_entities"), comp.recheck_entities,
                                     GROWTH_MIN_ROWS):
            grown.append({**base, "compare_job_id": comp.compare_job_id,
                          "measure": "inconsistent_rows", "before": old["recheck_entities"],
                          "after": comp.recheck_entities})
    return grown


def _job_json(job: JobStatus) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "project_id": job.project_id or None,
        "target": job.target or None,
        "name": job.name,
        "health": job.health.value,
        "reasons": [{"code": r.code, "health": r.health.value, "key": r.key,
                     "compare_job_id": r.compare_job_id, "params": r.params}
                    for r in job.reasons],
        "transfer_status": job.transfer_status,
        "task_mode": job.task_mode,
        "progress": job.progress,
        "incre_trans_delay": job.delay,
        "remaining_time": job.remaining_time,
        "eta_seconds": None if job.eta_seconds is None else round(job.eta_seconds),
        "apply_rows_rate": job.apply_rows_rate,
        "comparisons": [
            {"compare_job_id": c.compare_job_id, "health": c.health.value,
             "progress": c.progress, "recheck_entities": c.recheck_entities,
             "delay": c.delay, "log_point": c.log_point, "not_found": c.not_found,
             "error": c.error}
            for c in job.comparisons
        ],
        "trend": [{"at": t.at.isoformat(), "progress": t.progress, "delay": t.delay}
                  for t in job.trend],
    }
