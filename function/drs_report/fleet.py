"""Reading every target (region and project) of one run, side by side, into one snapshot.

Each target gets its own DrsClient: its own endpoint, signer, credentials and throttle (the
API gateway limits requests per region and project), with `drs.max_workers` requests in
flight. The targets run at once, inside the run's one fetch deadline. A target whose jobs
could not be read at all (refused, 401/403, every answer a 5xx) is named once, as one run
error line; its jobs are UNKNOWN and the other targets' readings stand.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from drs_report import logs
from drs_report.config import DiscoveryConfig, JobConfig, Settings, TargetConfig
from drs_report.models import FetchErrorKind, Snapshot, TargetRead
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests

log = logs.get_logger("fleet")

# Kinds that mean the service answered about the job (not a failure of our requests).
_ANSWERED = frozenset({FetchErrorKind.API_ERROR, FetchErrorKind.MISSING,
                       FetchErrorKind.NOT_FOUND})

Plan = tuple[TargetConfig, tuple[JobConfig, ...], DiscoveryConfig]


def plan(settings: Settings, jobs: Sequence[JobConfig] | None = None) -> list[Plan]:
    """What to read of each target: all of it, or (a scoped run) only `jobs`.

    A scoped job id a target lists is read there; one no target lists (discovery) is read
    from the first target that discovers its jobs.
    """
    fleet = settings.fleet()
    if jobs is None:
        return [(t, t.jobs, t.discovery) for t in fleet]
    listed = {j.id: t.project_id for t in fleet for j in t.jobs}
    first_discovering = next((t.project_id for t in fleet if t.discovery.enabled),
                             fleet[0].project_id)
    plans: list[Plan] = []
    for target in fleet:
        mine = tuple(j for j in jobs
                     if listed.get(j.id, first_discovering) == target.project_id)
        if mine:
            plans.append((target, mine, DiscoveryConfig()))
    return plans


def fetch_all(settings: Settings, credentials: Credentials, plans: Sequence[Plan], *,
              deadline: float | None = None, session: requests.Session | None = None
              ) -> Snapshot:
    """One snapshot of every planned target; a single target is read as it always was."""
    taken_at = datetime.now(timezone.utc)
    if len(plans) == 1 and not settings.estate:
        snapshot = _fetch_one(plans[0], credentials, deadline, session)
        snapshot.targets = [_outcome(plans[0][0], snapshot)]
        return snapshot
    if not plans:
        return Snapshot(taken_at=taken_at, jobs=[])
    with ThreadPoolExecutor(max_workers=len(plans), thread_name_prefix="drs-target") as pool:
        futures = [pool.submit(_fetch_one, p, credentials, deadline, session) for p in plans]
        snapshots = [f.result() for f in futures]
    merged = Snapshot(taken_at=taken_at, jobs=[])
    for (target, _, _), snapshot in zip(plans, snapshots, strict=True):
        outcome = _outcome(target, snapshot)
        merged.targets.append(outcome)
        merged.jobs.extend(snapshot.jobs)
        merged.partial = merged.partial or snapshot.partial
        merged.requests += snapshot.requests
        merged.duration_seconds = max(merged.duration_seconds, snapshot.duration_seconds)
        if outcome.cause is not None:
            # Named once, for the whole target, not once per job: each job points at it.
            merged.errors.append(outcome.line())
            for reading in snapshot.jobs:
                if reading.error is not None and reading.error.kind not in _ANSWERED:
                    reading.error = replace(
                        reading.error, message=f"target {target.name} could not be read "
                                               "(the cause is in the report's errors)")
        merged.errors.extend(f"target {target.name}: {e}" for e in snapshot.errors
                             if outcome.cause is None or outcome.cause not in e)
    return merged


def _fetch_one(plan: Plan, credentials: Credentials, deadline: float | None,
               session: requests.Session | None) -> Snapshot:
    from drs_report.client import DrsClient

    target, jobs, discovery = plan
    with DrsClient(target.drs, target.credentials or credentials, session=session) as client:
        snapshot = client.fetch(jobs, discovery, deadline=deadline)
    for reading in snapshot.jobs:
        reading.project_id = target.project_id
        reading.target = target.name
    return snapshot


def _outcome(target: TargetConfig, snapshot: Snapshot) -> TargetRead:
    unread = [r.error for r in snapshot.jobs
              if r.error is not None and r.error.kind not in _ANSWERED]
    cause: str | None = None
    if snapshot.jobs and len(unread) == len(snapshot.jobs):
        messages = {e.message for e in unread if e is not None}
        cause = next(iter(messages)) if len(messages) == 1 else \
            f"{len(messages)} different failures, see the jobs"
    elif not snapshot.jobs and snapshot.errors:
        cause = snapshot.errors[0]
    return TargetRead(name=target.name, region=target.region, project_id=target.project_id,
                      jobs=len(snapshot.jobs), unread=len(unread), cause=cause,
                      requests=snapshot.requests, duration_seconds=snapshot.duration_seconds)


def target_lines(snapshot: Snapshot) -> list[str]:
    """The targets that could not be read at all, one line each."""
    return [f"{t.name} ({t.region}): {t.cause}" for t in snapshot.targets if t.cause]
