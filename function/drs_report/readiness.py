"""Cutover readiness: can this job be switched over now?

Judged per job from the stored history (the readings analysis reads, over a window long
enough for `stable_minutes`), with the job's keys (`jobs[].readiness_*`) over the global
ones (`[readiness]`). A job is

    ready      every check below is met
    not_ready  at least one check is known to fail (a definite no wins over a don't-know)
    unknown    nothing known fails, but something cannot be confirmed (not read, a gap in
               the readings, a comparison not read lately)

The checks, each a code with parameters (the words are in drs_report/locales/*.json):

    state      full phase done: `progress` 100 and the job in its incremental phase
               (`INCRE_TRANSFER_STARTED`); a full-only job (`task_mode` FULL_TRANS) needs
               `FULL_TRANSFER_COMPLETE`. Failed, paused, ended or not started: not ready.
    delay      incremental delay at or below `max_delay_seconds` in every reading of the last
               `stable_minutes`, with no failure, pause or stall in them, and no gap between
               readings longer than twice the run interval (else unknown). The run interval
               is the median spacing of the job's stored readings (so it follows whatever
               schedule the timer has); a reading that could not be read counts as missing.
    comparisons every comparison of the job: full comparison at 100 %, `recheck_entities` 0
               in full and incremental, incremental comparison delay at or below
               `max_delay_seconds`, and read successfully within the last `stable_minutes`.
               A frozen comparison `log_point` is not held against a job: once writes stop
               for the cutover it stops moving by design.

Alert state: a job announced as ready is kept in the alert channel's claim as
"<job_id>:cutover=ready", beside the problems, so "ready for cutover" and "no longer ready"
go out through the same exactly-once claims as alerts (see delivery.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from drs_report.config import ReadinessConfig, Settings
from drs_report.models import CompareProgress, FetchErrorKind, JobReading

READY = "ready"
NOT_READY = "not_ready"
UNKNOWN = "unknown"
VERDICTS = (READY, NOT_READY, UNKNOWN)
_RANK = {READY: 0, NOT_READY: 1, UNKNOWN: 2}

# What a check's outcome means for the verdict; a "note" is said but changes nothing.
MET, NOTE = "met", "note"

FAILED_SUFFIX = "_FAILED"
ENDED_STATES = frozenset({"DELETED", "RELEASE_RESOURCE_COMPLETE"})
NOT_STARTED_STATES = frozenset({"CREATING", "CONFIGURATION", "WAITING_FOR_START"})
INCREMENTAL = "INCRE_TRANSFER_STARTED"
FULL_RUNNING = "FULL_TRANSFER_STARTED"
FULL_COMPLETE = "FULL_TRANSFER_COMPLETE"
FULL_ONLY = "FULL_TRANS"
INCREMENTAL_ONLY = "INCR_TRANS"

# "<job_id>:cutover=ready" in an alert claim's state ("<project_id>:<job_id>:cutover=ready"
# with several targets)
ALERT_CODE = "cutover"


@dataclass(frozen=True)
class Check:
    """One rule's outcome: `status` is met, not_ready, unknown or note."""

    code: str
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    compare_job_id: str | None = None

    @property
    def blocking(self) -> bool:
        return self.status in (NOT_READY, UNKNOWN)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "status": self.status, "compare_job_id": self.compare_job_id,
                "params": {k: v.isoformat() if isinstance(v, datetime) else v
                           for k, v in self.params.items()}}


@dataclass
class Readiness:
    """One job's verdict, every check behind it, and how far along its steady period is."""

    job_id: str
    name: str | None
    verdict: str
    checks: list[Check]
    max_delay_seconds: float
    stable_seconds: float  # how long the delay must stay at or below the threshold
    steady_seconds: float | None = None  # how long it has so far (incremental jobs)
    interval_seconds: float | None = None  # the run interval read from the readings
    as_of: datetime | None = None  # the latest reading judged
    target: str | None = None  # with several targets: the job's target, named in labels

    @property
    def label(self) -> str:
        label = self.name or self.job_id
        return f"[{self.target}] {label}" if self.target else label

    @property
    def missing(self) -> list[Check]:
        """What keeps the job from being ready, the definite noes first."""
        return sorted((c for c in self.checks if c.blocking),
                      key=lambda c: c.status != NOT_READY)

    @property
    def wait_seconds(self) -> float | None:
        """Steady time still needed, if time is what is missing."""
        if self.steady_seconds is None:
            return None
        return max(self.stable_seconds - self.steady_seconds, 0.0)

    def sort_key(self) -> tuple[Any, ...]:
        """Closest to ready first: ready, then fewest things missing (a no before a
        don't-know), then the shortest wait."""
        wait = self.wait_seconds
        return (self.verdict != READY, len(self.missing), _RANK[self.verdict],
                self.stable_seconds if wait is None else wait, self.label.lower())

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "name": self.name, "verdict": self.verdict,
            "reasons": [c.to_json() for c in self.checks],
            "missing": [c.code for c in self.missing],
            "max_delay_seconds": self.max_delay_seconds,
            "stable_minutes": round(self.stable_seconds / 60, 3),
            "steady_seconds": None if self.steady_seconds is None else round(self.steady_seconds),
            "interval_seconds": None if self.interval_seconds is None
            else round(self.interval_seconds),
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
        }

    def to_report_json(self) -> dict[str, Any]:
        """report.json's entry: what is missing with its parameters, the rest by code.

        Kept small because every run stores its report.json (a fleet of 1,000 jobs would
        double it with every check's parameters); `drs-report readiness --format json` has
        them all.
        """
        entry: dict[str, Any] = {
            "job_id": self.job_id, "verdict": self.verdict,
            "missing": [_compact(c) for c in self.missing],
            "met": [c.code for c in self.checks if c.status == MET],
        }
        notes = [c.code for c in self.checks if c.status == NOTE]
        if notes:
            entry["notes"] = notes
        if self.steady_seconds is not None:
            entry["steady_seconds"] = round(self.steady_seconds)
        return entry


def _compact(check: Check) -> dict[str, Any]:
    data = check.to_json()
    del data["status"]  # the verdict says it
    if data["compare_job_id"] is None:
        del data["compare_job_id"]
    return data


def history_minutes(settings: Settings) -> float:
    """How far back the history must be read: the trend window, or twice the longest stable
    window (enough to see the reading before a full steady period, and the interval)."""
    longest = max([settings.readiness.stable_minutes,
                   *(j.readiness.stable_minutes for j in settings.jobs)])
    return max(settings.report.trend_hours * 60, 2 * longest)


def sorted_verdicts(verdicts: Sequence[Readiness]) -> list[Readiness]:
    return sorted(verdicts, key=lambda r: r.sort_key())


def counts(verdicts: Sequence[Readiness]) -> dict[str, int]:
    tally = dict.fromkeys(VERDICTS, 0)
    for item in verdicts:
        tally[item.verdict] += 1
    return tally


# -- the rules -------------------------------------------------------------------------------


def judge(job_id: str, name: str | None, past: Sequence[tuple[datetime, JobReading]],
          config: ReadinessConfig, *, stall_minutes: float, now: datetime) -> Readiness:
    """The verdict at `now` from the job's readings, oldest first, the latest included."""
    result = Readiness(job_id=job_id, name=name, verdict=UNKNOWN, checks=[],
                       max_delay_seconds=config.max_delay_seconds,
                       stable_seconds=config.stable_minutes * 60)
    checks = result.checks
    if not past:
        checks.append(Check("no_history", UNKNOWN))
        return _decide(result)
    latest_at, latest = past[-1]
    result.as_of = latest_at
    result.interval_seconds = _interval(past)
    if not _readable(latest):
        error = latest.error
        checks.append(Check("not_read", UNKNOWN, {
            "at": latest_at, "kind": error.kind.value if error is not None else "no_state",
            "message": error.message if error is not None else None}))
        return _decide(result)
    max_age = (2 * result.interval_seconds if result.interval_seconds is not None
               else result.stable_seconds)
    age = (now - latest_at).total_seconds()
    if age > max_age:
        # An old reading says how the job was, not how it is.
        checks.append(Check("stale", UNKNOWN, {"at": latest_at, "age": age,
                                               "max_age": max_age}))
        return _decide(result)
    p = latest.progress
    assert p is not None and p.transfer_status is not None
    state, mode = p.transfer_status, p.task_mode
    incremental_path = False
    if state.endswith(FAILED_SUFFIX):
        checks.append(Check("failed", NOT_READY, {"state": state, "error_code": p.error_code,
                                                  "error_msg": p.error_msg}))
    elif state == "PAUSING":
        checks.append(Check("paused", NOT_READY, {"state": state}))
    elif state in ENDED_STATES:
        checks.append(Check("ended", NOT_READY, {"state": state}))
    elif state in NOT_STARTED_STATES:
        checks.append(Check("not_started", NOT_READY, {"state": state}))
    elif state == FULL_RUNNING:
        checks.append(Check("full_running", NOT_READY, {"progress": p.progress}))
    elif state == FULL_COMPLETE and mode == FULL_ONLY:
        checks.append(Check("full_complete", MET, {"progress": p.progress}))
        checks.extend(_events_in_window(past, now, result.stable_seconds))
    elif state == FULL_COMPLETE:
        checks.append(Check("incremental_not_started", NOT_READY, {"state": state}))
    elif state == INCREMENTAL:
        incremental_path = True
        if mode != INCREMENTAL_ONLY:
            if p.progress is not None and p.progress >= 100:
                checks.append(Check("full_done", MET, {"progress": p.progress}))
            else:
                checks.append(Check("full_not_done", NOT_READY, {"progress": p.progress}))
        checks.append(_steady(result, past, config, stall_minutes * 60))
    else:
        checks.append(Check("unrecognised_state", UNKNOWN, {"state": state}))
    checks.extend(_comparisons(latest, past, now, config, incremental=incremental_path))
    return _decide(result)


def _decide(result: Readiness) -> Readiness:
    statuses = {c.status for c in result.checks}
    result.verdict = NOT_READY if NOT_READY in statuses else \
        UNKNOWN if UNKNOWN in statuses else READY
    return result


def _readable(reading: JobReading) -> bool:
    """A reading with a state; one whose request failed, or with only a job_id, is no
    evidence about the job (it counts as a missing reading)."""
    return (reading.error is None and reading.progress is not None
            and reading.progress.transfer_status is not None)


def _interval(past: Sequence[tuple[datetime, JobReading]]) -> float | None:
    """The run interval: the median spacing of the readings (robust to a retried or
    overlapping run, which adds one short spacing, and to a day the timer was off)."""
    times = sorted({t for t, _ in past})
    spacings = [(b - a).total_seconds() for a, b in pairwise(times)]
    spacings = sorted(s for s in spacings if s >= 1.0)
    if not spacings:
        return None
    # The median by hand: `statistics` costs a cold start more than the rest of this module.
    middle = len(spacings) // 2
    return spacings[middle] if len(spacings) % 2 else (spacings[middle - 1] +
                                                       spacings[middle]) / 2


def _steady(result: Readiness, past: Sequence[tuple[datetime, JobReading]],
            config: ReadinessConfig, stall_seconds: float) -> Check:
    """The delay rule: how long every reading, newest first, has been steady."""
    threshold = config.max_delay_seconds
    needed = result.stable_seconds
    max_gap = None if result.interval_seconds is None else 2 * result.interval_seconds
    readings = [(t, r) for t, r in past if _readable(r)
                and not (r.progress is not None and r.progress.transfer_status == INCREMENTAL
                         and r.progress.delay_seconds is None)]
    latest_at, latest = past[-1]
    assert latest.progress is not None
    delay = latest.progress.delay_seconds
    base = {"delay": delay, "max_delay": threshold, "needed": needed}
    if delay is None:
        return Check("delay_unreadable", UNKNOWN, base)
    if delay > threshold:
        result.steady_seconds = 0.0
        return Check("delay_above", NOT_READY, base)

    start: datetime | None = None  # the oldest reading of the steady run so far
    newer: datetime | None = None
    marker: Any = None  # the service's process_time: unchanged for stall_minutes is a stall
    marker_newest: datetime | None = None
    start_before_marker: datetime | None = None
    cause: tuple[str, dict[str, Any]] = ("history_start", {})
    walk = reversed(readings)
    for at, reading in walk:
        p = reading.progress
        assert p is not None and p.transfer_status is not None
        if newer is not None and max_gap is not None and (newer - at).total_seconds() > max_gap:
            cause = ("gap", {"gap_from": at, "gap_to": newer,
                             "gap": (newer - at).total_seconds(), "interval":
                             result.interval_seconds})
            break
        if p.transfer_status.endswith(FAILED_SUFFIX):
            cause = ("failed_in_window", {"at": at, "state": p.transfer_status})
            break
        if p.transfer_status == "PAUSING":
            cause = ("paused_in_window", {"at": at, "state": p.transfer_status})
            break
        if p.transfer_status != INCREMENTAL:
            cause = ("incremental_since", {"at": newer or at, "state": p.transfer_status})
            break
        if p.delay_seconds is not None and p.delay_seconds > threshold:
            cause = ("delay_was_above", {"at": at, "then": p.delay_seconds})
            break
        if p.process_time is not None and p.process_time == marker:
            assert marker_newest is not None
            if (marker_newest - at).total_seconds() >= stall_seconds:
                start = start_before_marker
                oldest = at  # how long it stood still, for the sentence
                for earlier, before in walk:
                    if before.progress is None or before.progress.process_time != marker:
                        break
                    oldest = earlier
                cause = ("stalled_in_window", {
                    "at": marker_newest, "stalled": (marker_newest - oldest).total_seconds(),
                    "stall_minutes": stall_seconds / 60})
                break
        else:
            marker, marker_newest, start_before_marker = p.process_time, at, start
        start, newer = at, at
    steady = 0.0 if start is None else (latest_at - start).total_seconds()
    result.steady_seconds = steady
    params: dict[str, Any] = {**base, "steady": steady}
    if steady >= needed:
        return Check("delay_steady", MET, params)
    code, extra = cause
    params.update(extra)
    if code == "stalled_in_window" and start is None:
        return Check("stalled", NOT_READY, params)
    if code == "gap":
        return Check("gap", UNKNOWN, params)
    if code == "history_start":
        unread = sum(1 for at, r in past if not _readable(r) and (start is None or at < start))
        params["unread_before"] = unread
        return Check("not_enough_history", UNKNOWN, params)
    if code in ("failed_in_window", "paused_in_window", "stalled_in_window"):
        return Check(code, NOT_READY, params)
    # The delay was above the threshold, or the incremental phase began, too recently.
    params["since"] = code
    return Check("steady_too_short", NOT_READY, params)


def _events_in_window(past: Sequence[tuple[datetime, JobReading]], now: datetime,
                      window: float) -> list[Check]:
    """A full-only job: a failure or pause within the window, even if it completed since."""
    for at, reading in reversed(past):
        if (now - at).total_seconds() > window:
            break
        p = reading.progress
        if not _readable(reading) or p is None or p.transfer_status is None:
            continue
        if p.transfer_status.endswith(FAILED_SUFFIX):
            return [Check("failed_in_window", NOT_READY, {"at": at, "state": p.transfer_status,
                                                          "needed": window})]
        if p.transfer_status == "PAUSING":
            return [Check("paused_in_window", NOT_READY, {"at": at, "state": p.transfer_status,
                                                          "needed": window})]
    return []


def _comparisons(latest: JobReading, past: Sequence[tuple[datetime, JobReading]],
                 now: datetime, config: ReadinessConfig, *, incremental: bool) -> list[Check]:
    """Every comparison of the job's latest reading, judged by its latest successful read."""
    if not latest.comparisons:
        return [Check("no_comparisons", NOTE)]
    checks = []
    window = config.stable_minutes * 60
    for comp in latest.comparisons:
        cid = comp.compare_job_id
        if comp.error is not None and comp.error.kind is FetchErrorKind.NOT_FOUND:
            checks.append(Check("compare_not_found", UNKNOWN, {}, cid))
            continue
        found = _last_progress(past, cid)
        if found is None:
            message = comp.error.message if comp.error is not None else None
            checks.append(Check("compare_stale", UNKNOWN, {"at": None, "needed": window,
                                                           "message": message}, cid))
            continue
        at, progress = found
        age = (now - at).total_seconds()
        if age > window:
            checks.append(Check("compare_stale", UNKNOWN, {"at": at, "age": age,
                                                           "needed": window}, cid))
            continue
        checks.append(_consistency(progress, config, cid, incremental=incremental))
    return checks


def _last_progress(past: Sequence[tuple[datetime, JobReading]], compare_id: str
                   ) -> tuple[datetime, CompareProgress] | None:
    for at, reading in reversed(past):
        for comp in reading.comparisons:
            if comp.compare_job_id == compare_id and comp.progress is not None \
                    and comp.error is None:
                return at, comp.progress
    return None


def _consistency(progress: CompareProgress, config: ReadinessConfig, compare_id: str, *,
                 incremental: bool) -> Check:
    full, incre = progress.full_info, progress.incre_info
    if full is None and incre is None:
        return Check("compare_no_progress", UNKNOWN, {}, compare_id)
    if full is not None and (full.progress is None or full.progress < 100):
        return Check("compare_full_running", NOT_READY, {"progress": full.progress}, compare_id)
    rows = progress.recheck_entities
    if rows is None:
        return Check("compare_rows_unknown", UNKNOWN, {}, compare_id)
    if rows > 0:
        return Check("compare_inconsistent", NOT_READY, {
            "rows": rows, "full": full.recheck_entities if full else None,
            "incremental": incre.recheck_entities if incre else None}, compare_id)
    delay = incre.delay if incre is not None else None
    if incremental and delay is not None and delay > config.max_delay_seconds:
        return Check("compare_delay", NOT_READY, {"delay": delay,
                                                  "max_delay": config.max_delay_seconds},
                     compare_id)
    return Check("compare_consistent", MET, {"delay": delay if incremental else None},
                 compare_id)


# -- alert state -------------------------------------------------------------------------------


def alert_key(job_id: str) -> str:
    return f"{job_id}:{ALERT_CODE}"


def split_alert_state(entries: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """An alert claim's state -> (the problems: key -> health, the jobs announced ready)."""
    problems: dict[str, str] = {}
    announced: set[str] = set()
    for key, value in entries.items():
        subject, _, code = key.rpartition(":")
        if code == ALERT_CODE:
            if value == READY:
                announced.add(subject)
        else:
            problems[key] = value
    return problems, announced


@dataclass
class ReadinessChanges:
    """What an alert says about readiness, and the jobs to remember as announced ready."""

    became_ready: list[Readiness] = field(default_factory=list)
    no_longer_ready: list[Readiness] = field(default_factory=list)
    announced: set[str] = field(default_factory=set)

    def state(self) -> dict[str, str]:
        return {alert_key(job_id): READY for job_id in sorted(self.announced)}


def readiness_changes(announced: set[str], verdicts: Mapping[str, Readiness], *,
                      unread: frozenset[str]) -> ReadinessChanges:
    """Jobs that became ready since the last alert, and announced ones that fell back.

    A job that could not be read this time keeps what was said of it (as problems do);
    one that left the watch list is forgotten without a message.
    """
    changes = ReadinessChanges()
    for job_id, item in verdicts.items():
        was = job_id in announced
        if item.verdict == READY:
            changes.announced.add(job_id)
            if not was:
                changes.became_ready.append(item)
        elif was and job_id in unread:
            changes.announced.add(job_id)
        elif was:
            changes.no_longer_ready.append(item)
    changes.became_ready = sorted_verdicts(changes.became_ready)
    changes.no_longer_ready = sorted_verdicts(changes.no_longer_ready)
    return changes
