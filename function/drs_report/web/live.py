"""`status <job> live`: one job read fresh from DRS within the time the chat allows.

The reading is judged against the stored history (read-only) like a run would judge it, and
then dropped: it is never stored, so a chat question cannot change what the next run sees.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from drs_report.config import DiscoveryConfig, JobConfig, Settings
from drs_report.secrets import Credentials
from drs_report.web.source import ArchiveSource


def fetch_live(settings: Settings, source: ArchiveSource, credentials: Credentials,
               job: dict[str, Any], deadline: float) -> dict[str, Any]:
    """The job as report.json shows one (plus `live_at`), or {"live_failure": why}."""
    from drs_report.analysis import analyse
    from drs_report.client import DrsClient

    remaining = deadline - time.monotonic()
    if remaining < 0.2:
        return {"live_failure": "no time left"}
    job_id = str(job.get("job_id"))
    config = next((j for j in settings.jobs if j.id == job_id), None) or JobConfig(
        id=job_id, name=job.get("name"),
        compare_jobs=tuple(str(c.get("compare_job_id")) for c in job.get("comparisons") or []
                           if isinstance(c, dict) and c.get("compare_job_id")))
    # The job's target: the project the archived report read it from, else the one that
    # lists it, else the first.
    fleet = settings.fleet()
    target = settings.target_of(str(job.get("project_id") or "")) or next(
        (t for t in fleet if any(j.id == job_id for j in t.jobs)), fleet[0])
    # No request may outlive the chat's patience: one retry at most, timeouts within it.
    drs = dataclasses.replace(target.drs, max_retries=min(target.drs.max_retries, 1),
                              connect_timeout=min(target.drs.connect_timeout, remaining),
                              read_timeout=min(target.drs.read_timeout, remaining))
    with DrsClient(drs, target.credentials or credentials) as client:
        snapshot = client.fetch([config], DiscoveryConfig(), deadline=deadline)
    for read in snapshot.jobs:
        read.project_id, read.target = target.project_id, target.name
    reading = snapshot.jobs[0] if snapshot.jobs else None
    if reading is None or reading.progress is None:
        error = reading.error if reading is not None else None
        return {"live_failure": (error.message or error.kind.value) if error else "no answer"}
    now = datetime.now(timezone.utc)
    history = source.store.history(
        [job_id], since=now - timedelta(hours=settings.report.trend_hours),
        projects={job_id: target.project_id})
    live_settings = dataclasses.replace(settings, jobs=(config,))
    report = analyse(snapshot, history, None, live_settings, now=now)
    data: dict[str, Any] = report.to_json()["jobs"][0]
    data["live_at"] = snapshot.taken_at.isoformat()
    return data
