"""`drs-report readiness`: the cutover verdicts from the stored history, for a runbook.

Nothing is fetched unless `--live`, and a live reading is judged with the history but never
stored, so a cutover script polling it cannot change what the next run sees. The history
is opened read-only; a store kept in OBS (`store.sync`) is read into a throwaway copy,
without the lease. Exit codes (README): 0 every named job ready, 6 some job not ready,
7 none known not ready but some unknown (a definite no wins over a don't-know), 2 usage,
1 the history cannot be read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, TextIO

from drs_report import logs
from drs_report.config import JobConfig, Settings
from drs_report.errors import DrsReportError
from drs_report.pipeline import (
    EXIT_NOT_READY,
    EXIT_OK,
    EXIT_READINESS_UNKNOWN,
    scoped_jobs,
    sqlite_file,
)
from drs_report.readiness import (
    NOT_READY,
    UNKNOWN,
    Readiness,
    counts,
    history_minutes,
    judge,
    sorted_verdicts,
)

if TYPE_CHECKING:
    from drs_report.models import JobReading, Snapshot
    from drs_report.secrets import Credentials
    from drs_report.store import Store

# A live reading may take this long when run.time_budget_seconds does not say.
LIVE_BUDGET_SECONDS = 60.0
_AFTER_EVERY_RUN = 2**62  # previous_report(before_run_id=...): the latest stored report


def exit_code(verdicts: Sequence[Readiness]) -> int:
    found = {v.verdict for v in verdicts}
    if NOT_READY in found:
        return EXIT_NOT_READY
    if UNKNOWN in found or not verdicts:
        return EXIT_READINESS_UNKNOWN
    return EXIT_OK


def ask_readiness(settings: Settings, *, job_ids: Sequence[str] | None, output_format: str,
                  live: bool, credentials: Credentials | None, out: TextIO,
                  now: datetime | None = None) -> int:
    """Print the verdicts of the named jobs (default: every watched job); the exit code."""
    named = scoped_jobs(settings, job_ids) if job_ids else None
    if credentials is not None:
        logs.add_secrets(credentials.secrets())
    logs.add_secrets(settings.secret_values())
    with _read_only_store(settings, credentials) as store:
        jobs = list(named) if named is not None else _watched(settings, store, live=live)
        snapshot = _live_snapshot(settings, jobs, credentials) if live else None
        if snapshot is not None and named is None and settings.discovery.enabled:
            jobs = [JobConfig(id=r.job_id, name=r.name) for r in snapshot.jobs]
        when = now or datetime.now(timezone.utc)
        since = when - timedelta(minutes=history_minutes(settings))
        history = store.history([j.id for j in jobs], since)
    verdicts = sorted_verdicts(_judge_all(settings, jobs, history, snapshot, when))
    code = exit_code(verdicts)
    if output_format == "json":
        out.write(json.dumps({"generated_at": when.isoformat(), "live": live,
                              "counts": counts(verdicts), "exit_code": code,
                              "jobs": [v.to_json() for v in verdicts]},
                             ensure_ascii=False, indent=2) + "\n")
    else:
        _print_text(settings, verdicts, when, live, out)
    return code


def _judge_all(settings: Settings, jobs: Sequence[JobConfig],
               history: dict[str, list[tuple[datetime, JobReading]]],
               snapshot: Snapshot | None, now: datetime) -> list[Readiness]:
    live = {r.job_id: (snapshot.taken_at, r) for r in snapshot.jobs} if snapshot else {}
    configured = {j.id: j for j in settings.jobs}
    verdicts = []
    for job in jobs:
        past = [p for p in history.get(job.id, []) if job.id not in live
                or p[0] != live[job.id][0]]
        if job.id in live:
            past.append(live[job.id])
        config = configured.get(job.id)
        thresholds = config.thresholds if config else settings.thresholds
        name = job.name or next((r.name for _, r in reversed(past) if r.name), None)
        verdicts.append(judge(job.id, name, past, settings.readiness_of(job.id),
                              stall_minutes=thresholds.stall_minutes, now=now))
    return verdicts


def _watched(settings: Settings, store: Store, *, live: bool) -> list[JobConfig]:
    """Every configured job; with jobs = "all", those of the latest stored report."""
    if not settings.discovery.enabled:
        return list(settings.jobs)
    if live:
        return []  # discovery lists them
    latest = store.previous_report(before_run_id=_AFTER_EVERY_RUN) or {}
    jobs = [JobConfig(id=str(j["job_id"]), name=j.get("name"))
            for j in latest.get("jobs", []) if isinstance(j, dict) and j.get("job_id")]
    if not jobs:
        raise DrsReportError('no stored report lists the project\'s jobs (jobs = "all"); '
                             "run `drs-report run` first, or name them with --job")
    return jobs


def _live_snapshot(settings: Settings, jobs: Sequence[JobConfig],
                   credentials: Credentials | None) -> Snapshot:
    from drs_report import fleet

    if credentials is None:  # the CLI asks for them before this
        raise DrsReportError("--live needs credentials")
    budget = settings.run.time_budget_seconds or LIVE_BUDGET_SECONDS
    # Named: read just those, each from its target; else every target as a run would.
    plans = fleet.plan(settings, jobs) if jobs else fleet.plan(settings)
    return fleet.fetch_all(settings, credentials, plans,
                           deadline=time.monotonic() + budget)


@contextmanager
def _read_only_store(settings: Settings, credentials: Credentials | None
                     ) -> Iterator[Store]:
    if settings.store.sync:
        from drs_report.store.sync import synced_store

        if credentials is None:
            raise DrsReportError("store.sync: reading the history kept in OBS needs "
                                 "credentials; export HUAWEICLOUD_SDK_AK and "
                                 "HUAWEICLOUD_SDK_SK")
        # The dry-run copy: fetched into a scratch file, no lease, never written back.
        with synced_store(settings, credentials, trigger="readiness", ttl_seconds=0,
                          dry_run=True) as synced:
            if synced.store.current_revision() is None:
                raise DrsReportError(f"no history at {settings.store.sync} yet; run "
                                     "`drs-report run` first")
            yield synced.store
        return
    from drs_report.store import Store
    from drs_report.web.source import open_read_only

    path = sqlite_file(settings.store.url)
    if path is not None and not path.is_file():
        # Reading must not create: an empty new file would hide a wrong path.
        raise DrsReportError(f"no history at {path} (the file does not exist); check "
                             "[store] url, or run `drs-report run` first")
    store = open_read_only(settings.store.url)
    try:
        if store.current_revision() is None:
            raise DrsReportError(f"no history in {Store.masked_url(settings.store.url)} (no "
                                 "schema yet); run `drs-report run` first")
        yield store
    finally:
        store.close()


def _print_text(settings: Settings, verdicts: Sequence[Readiness], when: datetime,
                live: bool, out: TextIO) -> None:
    from drs_report.render import Words, text_inert

    words = Words(settings.drs.language, settings.report.time_zone)
    source = words("readiness.source.live" if live else "readiness.source.stored",
                   time=words.when(when))
    out.write(f"{words.readiness_line(verdicts, text_inert)} ({source})\n")
    width = max((len(words(f"readiness.badge.{v.verdict}")) for v in verdicts), default=0)
    for item in verdicts:
        badge = words(f"readiness.badge.{item.verdict}").ljust(width)
        label = text_inert(item.name) + f" ({item.job_id})" if item.name else item.job_id
        out.write(f"{badge}  {label}\n")
        for line in words.readiness_sentences(item, text_inert):
            out.write(f"{' ' * width}    {line}\n")

