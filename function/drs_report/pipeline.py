"""One cycle, in one direction: settings -> fetch -> store -> analyse -> render -> deliver.

The CLI (`drs-report run`, `demo`) and the FunctionGraph handler both call `run_cycle`.
Only the client, the store and the channels touch the outside world, and each is handed
in (or built here from settings), so tests pass real local servers.

Two narrower kinds of run:
    scoped (job_ids)  reads, stores and reports only those jobs; its report is not kept as
                      the fleet's "previous report", and it sends nothing, so the fleet's
                      alert state and the day's digest stay as they were
    dry run           reads the DRS API and the store, writes nothing anywhere (no
                      readings, no claims, no report files unless `output_dir` is given)
                      and says what a real run would send or skip, and why
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drs_report import logs
from drs_report.config import JOB_ID_RE, JobConfig, Settings
from drs_report.errors import ConfigError, DrsReportError, StoreError
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests

    from drs_report.analysis import Report
    from drs_report.delivery import DeliveryOutcome
    from drs_report.models import JobReading
    from drs_report.store import Store

log = logs.get_logger("pipeline")

# File names of the rendered report, by format; a public contract (README, `demo`).
REPORT_FILES = {
    "html": "report.html", "md": "report.md", "txt": "report.txt", "json": "report.json",
}

EXIT_OK = 0
EXIT_NO_REPORT = 1
EXIT_USAGE = 2
EXIT_DELIVERY_FAILED = 3
EXIT_NOTHING_READ = 4  # every job unread: wrong keys or project, endpoint unreachable
EXIT_BUSY = 5  # another run holds the store's lease: nothing stored or sent
EXIT_NOT_READY = 6  # `readiness`: some named job is not ready for cutover
EXIT_READINESS_UNKNOWN = 7  # `readiness`: none is known not ready, some cannot be confirmed

# A lease without a hard deadline to expire with (a CLI run) lasts this long.
DEFAULT_LEASE_SECONDS = 900.0
# A stored reading this much later than this machine's clock is flagged (runs of two
# instances a second apart are not).
CLOCK_TOLERANCE = timedelta(minutes=1)

# previous_report(before_run_id=...) for a dry run, which has no run id: the latest report.
_AFTER_EVERY_RUN = 2**62
_LISTED_IDS = 3  # ids named in an unknown-job error before "and N more"


@dataclass
class RunResult:
    """What one cycle did; `summary()` is what the function returns and the CLI logs."""

    run_id: int | None
    report: Report
    outputs: dict[str, Path]
    deliveries: list[DeliveryOutcome] = field(default_factory=list)
    partial: bool = False
    errors: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    sync: dict[str, Any] | None = None  # what the OBS sync did (store.sync)

    @property
    def delivery_failed(self) -> bool:
        return any(d.failed for d in self.deliveries)

    @property
    def nothing_read(self) -> bool:
        return self.report.read_failures.nothing_read

    @property
    def exit_code(self) -> int:
        if self.nothing_read:
            return EXIT_NOTHING_READ
        return EXIT_DELIVERY_FAILED if self.delivery_failed else EXIT_OK

    @property
    def status(self) -> str:
        """The FunctionGraph summary's status (and the run's outcome in the store)."""
        if self.nothing_read:
            return "nothing_read"
        return "delivery_failed" if self.delivery_failed else "ok"

    def cause(self) -> str | None:
        """One line on why jobs could not be read, when they share one failure."""
        failures = self.report.read_failures
        if not failures.unread and not failures.nothing_read:
            return None
        shared = failures.shared_cause
        if failures.nothing_read:
            return logs.redact("nothing could be read: " + (
                shared or f"{len(failures.causes)} different failures, see the report"))
        jobs = f"{failures.unread} job{'s' if failures.unread != 1 else ''}"
        return logs.redact(f"{jobs} could not be read: " + (
            shared or f"{len(failures.causes)} different failures, see the report"))

    def summary(self) -> dict[str, Any]:
        summary = {
            "status": self.status,
            "run_id": self.run_id,
            "counts": self.report.counts(),
            "jobs": len(self.report.jobs),
            "partial": self.partial,
            "outputs": {fmt: str(path) for fmt, path in self.outputs.items()},
            "deliveries": [d.to_dict() for d in self.deliveries],
            "errors": [logs.redact(e) for e in self.errors],
            "duration_seconds": round(self.duration_seconds, 3),
            "sync": self.sync,
            "readiness": readiness_summary(self.report),
        }
        if self.report.estate:  # several targets: how each fared
            summary["targets"] = [{"name": t.name, "region": t.region,
                                   "project_id": t.project_id, "jobs": t.jobs,
                                   "unread": t.unread, "cause": t.cause}
                                  for t in self.report.targets]
        if self.nothing_read:
            summary["error"] = self.cause()
        return summary


def readiness_summary(report: Report) -> dict[str, Any]:
    """The cutover verdicts, compact: counts, and the ready and not-ready job ids."""
    verdicts = report.readiness
    return {"counts": report.readiness_counts(),
            "ready": [r.job_id for r in verdicts if r.verdict == "ready"],
            "not_ready": [r.job_id for r in verdicts if r.verdict == "not_ready"]}


def scoped_jobs(settings: Settings, job_ids: Sequence[str], key: str = "--job"
                ) -> tuple[JobConfig, ...]:
    """The configured jobs a scoped run is narrowed to; an unknown id is a usage error."""
    if settings.discovery.enabled:
        # The project's jobs are only known by listing them; take any well-formed id.
        for job_id in job_ids:
            if not JOB_ID_RE.match(job_id):
                raise ConfigError(key, f"{job_id!r} is not a DRS job id (8-4-4-4-12 lowercase "
                                       "letters and digits); with jobs = \"all\" give the "
                                       "ids of the project's jobs")
        return tuple(JobConfig(id=job_id, auto_compare=settings.discovery.compare_jobs_auto)
                     for job_id in dict.fromkeys(job_ids))
    by_id = {j.id: j for j in settings.jobs}
    for job_id in job_ids:
        if job_id in by_id:
            continue
        named = [j for j in settings.jobs if j.name and j.name.lower() == job_id.lower()]
        if named:
            raise ConfigError(key, f"{job_id!r} is the name of a job; give its id: "
                                   f"{key} {named[0].id}")
        known = [f"{j.id} ({j.name})" if j.name else j.id
                 for j in settings.jobs[:_LISTED_IDS]]
        more = len(settings.jobs) - len(known)
        listed = ", ".join(known) + (f" and {more} more" if more > 0 else "")
        raise ConfigError(key, f"{job_id!r} is not a configured job; the configuration "
                               f"has {listed}")
    wanted = set(job_ids)
    return tuple(j for j in settings.jobs if j.id in wanted)


def run_cycle(
    settings: Settings,
    credentials: Credentials,
    *,
    trigger: str = "cli",
    deadline: float | None = None,
    now: datetime | None = None,
    session: requests.Session | None = None,
    store: Store | None = None,
    force: bool = False,
    dry_run: bool = False,
    job_ids: Sequence[str] | None = None,
    modes: Sequence[str] | None = None,
    output_dir: Path | None = None,
) -> RunResult:
    """Fetch, store, analyse, render and deliver once.

    `deadline` is a `time.monotonic()` value: fetching stops `settings.run.safety_margin_seconds`
    before it, and what was fetched is stored, reported (marked partial) and delivered.
    `now` is the run's time on a simulated clock (the demo): the readings are taken at it.
    `job_ids` scopes the run to those jobs (run --job, a FunctionGraph override); `modes`
    narrows the channels to those modes. `output_dir` replaces report.output_dir; a dry
    run writes report files only there.
    """
    from drs_report.store import Store

    started = time.monotonic()
    logs.add_secrets(credentials.secrets())
    logs.add_secrets(settings.secret_values())
    hard_deadline = deadline  # the platform's: a run still going then is killed
    if deadline is None and settings.run.time_budget_seconds is not None:
        deadline = started + settings.run.time_budget_seconds
    if not dry_run:  # a dry run writes nothing, so it needs no writable place
        check_writable(settings)
    kwargs: dict[str, Any] = dict(
        trigger=trigger, deadline=deadline, now=now, session=session, force=force,
        dry_run=dry_run, job_ids=job_ids, modes=modes, started=started,
        output_dir=output_dir)
    kwargs["lease_seconds"] = lease_seconds(settings, hard_deadline)
    if store is not None:
        with _failed_runs_closed(store):
            return _cycle(settings, credentials, store, **kwargs)
    if settings.store.sync:
        return _synced_cycle(settings, credentials, hard_deadline=hard_deadline, **kwargs)
    opened = _open_for_dry_run(settings.store.url) if dry_run else \
        Store.open(settings.store.url)
    try:
        with _failed_runs_closed(opened):
            return _cycle(settings, credentials, opened, **kwargs)
    finally:
        opened.close()


def lease_seconds(settings: Settings, hard_deadline: float | None) -> float:
    """How long this run may hold the store: its time budget (the platform's deadline and a
    margin, else run.time_budget_seconds and DEFAULT_LEASE_SECONDS, else that alone)."""
    from drs_report.store.lease import EXPIRY_MARGIN_SECONDS

    if hard_deadline is not None:
        return max(hard_deadline - time.monotonic(), 1.0) + EXPIRY_MARGIN_SECONDS
    if settings.run.time_budget_seconds is not None:
        return settings.run.time_budget_seconds + DEFAULT_LEASE_SECONDS
    return DEFAULT_LEASE_SECONDS


@contextlib.contextmanager
def _failed_runs_closed(store: Store) -> Iterator[None]:
    """A run that fails after it began is closed as `failed`, not left `running` for ever
    (best effort: the store may be what failed)."""
    try:
        yield
    except BaseException as e:
        for run_id in store.runs_begun:
            with contextlib.suppress(Exception):
                store.finish_run(run_id, outcome="failed", counts={},
                                 errors=[logs.redact(f"{type(e).__name__}: {e}")],
                                 partial=False, finished_at=datetime.now(timezone.utc),
                                 only_running=True)
        raise


def _clock_check(store: Store, taken_at: datetime) -> list[str]:
    """A run error when this machine's clock is earlier than the newest stored reading:
    one of the two clocks is wrong (pruning and downsampling do not trust it either)."""
    newest = store.newest_run_start()
    if newest is None or newest[1] <= taken_at + CLOCK_TOLERANCE:
        return []
    run_id, at = newest
    return [f"this machine's clock ({taken_at.isoformat(timespec='seconds')}) is earlier than "
            f"the newest stored reading (run {run_id} at {at.isoformat(timespec='seconds')}): "
            "one of the two clocks is wrong; check time synchronisation (NTP) on both"]


def _close_abandoned(store: Store, run_id: int, now: datetime) -> None:
    for gone in store.close_abandoned_runs(now=now, except_run=run_id):
        ended = (f"ended {gone.lease_until.isoformat(timespec='seconds')}" if gone.lease_until
                 else "is long past")
        log.warning("closed run %s (%s, started %s) as abandoned: it never finished and its "
                    "lease %s", gone.run_id, gone.trigger,
                    gone.started_at.isoformat(timespec="seconds"), ended)


def _synced_cycle(settings: Settings, credentials: Credentials, *,
                  hard_deadline: float | None, **kwargs: Any) -> RunResult:
    """The cycle on the SQLite file kept in OBS: lease, fetch, run, write back, release.
    No OBS request outlives `hard_deadline` (the platform's, when it kills the run)."""
    from drs_report.store.sync import synced_store

    with synced_store(settings, credentials, trigger=kwargs["trigger"],
                      ttl_seconds=kwargs["lease_seconds"], dry_run=kwargs["dry_run"],
                      deadline=hard_deadline) as synced, _failed_runs_closed(synced.store):
        result = _cycle(settings, credentials, synced.store, downsample=True,
                        before_writes=synced.confirm, **kwargs)
    # The write-back is done once the block has closed.
    result.sync = synced.stats.to_dict()
    result.duration_seconds = time.monotonic() - kwargs["started"]
    return result


def _cycle(
    settings: Settings,
    credentials: Credentials,
    store: Store,
    *,
    trigger: str,
    deadline: float | None,
    now: datetime | None,
    session: requests.Session | None,
    force: bool,
    dry_run: bool,
    job_ids: Sequence[str] | None,
    modes: Sequence[str] | None,
    started: float,
    output_dir: Path | None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    downsample: bool = False,
    before_writes: Callable[[], None] | None = None,
) -> RunResult:
    from drs_report import fleet
    from drs_report.analysis import analyse, narrow_previous
    from drs_report.delivery import deliver
    from drs_report.render import render_all

    fetch_deadline = None if deadline is None else deadline - settings.run.safety_margin_seconds
    scope: tuple[str, ...] | None = None
    plans = fleet.plan(settings)
    if job_ids:
        jobs = scoped_jobs(settings, job_ids, key="--job" if trigger == "cli" else "jobs")
        scope = tuple(j.id for j in jobs)
        plans = fleet.plan(settings, jobs)

    run_id: int | None = None
    if not dry_run and before_writes is None:
        # First: an unreachable database fails before DRS is read.
        store.upgrade(project_id=settings.single_project())
    snapshot = fleet.fetch_all(settings, credentials, plans, deadline=fetch_deadline,
                               session=session)
    if before_writes is not None:
        before_writes()  # a synced store: the lease is confirmed before the first write
        if not dry_run:
            store.upgrade(project_id=settings.single_project())
    if now is not None:
        snapshot.taken_at = now  # a simulated clock: the reading belongs to its time
    if settings.store.ephemeral and settings.store.url.startswith("sqlite"):
        snapshot.errors.append("history is not kept: store.ephemeral = true, and the SQLite "
                               "file lives only as long as this function instance")
    current = now or datetime.now(timezone.utc)
    snapshot.errors.extend(_clock_check(store, snapshot.taken_at))
    outcome = "ok"
    if not dry_run:
        run_id = store.begin_run(trigger=trigger, started_at=snapshot.taken_at,
                                 lease_until=current + timedelta(seconds=lease_seconds))
        _close_abandoned(store, run_id, current)
        try:
            store.save_snapshot(run_id, snapshot)
        except StoreError as e:  # the readings are lost, not the run: report and deliver
            snapshot.errors.append(f"the readings of this run could not be stored: {e}")
            log.error("%s; the report and the deliveries go on without them",
                      snapshot.errors[-1])
            outcome = "failed"
    history, longer = _histories(store, [j.job_id for j in snapshot.jobs], settings, current,
                                 {j.job_id: j.project_id for j in snapshot.jobs})
    previous = store.previous_report(before_run_id=run_id or _AFTER_EVERY_RUN)
    if scope is not None:
        previous = narrow_previous(previous, scope)
    report = analyse(snapshot, history, previous, settings, now=current, scope=scope,
                     readiness_history=longer)
    # The links in the report point at this run's archived report, which a scoped run does
    # not keep.
    rendered = render_all(report, settings, run_id=run_id if scope is None else None)
    outputs: dict[str, Path] = {}
    if not dry_run or output_dir is not None:
        outputs = write_outputs(rendered, output_dir or settings.report.output_dir)
    if run_id is not None and scope is None:
        # A scoped report is not the fleet's: the next full run compares with the last
        # full one, so other jobs' problems neither vanish nor come back "new".
        store.save_reports(run_id, rendered)
    deliveries = deliver(
        report, rendered, settings, store, run_id,
        now=current, deadline=deadline, force=force, dry_run=dry_run,
        credentials=credentials, modes=modes, scoped=scope is not None,
    )
    result = RunResult(
        run_id=run_id, report=report, outputs=outputs, deliveries=deliveries,
        partial=snapshot.partial, errors=list(snapshot.errors),
        duration_seconds=time.monotonic() - started,
    )
    if run_id is not None:
        store.finish_run(
            run_id,
            outcome=result.status if outcome == "ok" else outcome,
            counts=report.counts(),
            errors=[logs.redact(e) for e in result.errors],
            partial=result.partial,
            finished_at=datetime.now(timezone.utc),
        )
        store.prune(
            retention_days=settings.store.retention_days,
            report_retention_days=settings.store.report_retention_days,
            batch_size=settings.store.prune_batch_size,
            now=current,
            run_id=run_id,
        )
        if downsample:
            store.downsample(now=current, trend_hours=settings.report.trend_hours,
                             run_id=run_id)
    return result


def _histories(store: Store, job_ids: list[str], settings: Settings, now: datetime,
               projects: Mapping[str, str] | None = None
               ) -> tuple[dict[str, list[tuple[datetime, JobReading]]],
                          dict[str, list[tuple[datetime, JobReading]]]]:
    """The trend window's readings, and the (perhaps longer) window readiness needs."""
    from drs_report.readiness import history_minutes

    trend_since = now - timedelta(hours=settings.report.trend_hours)
    readiness_since = now - timedelta(minutes=history_minutes(settings))
    longer = store.history(job_ids, since=min(trend_since, readiness_since),
                           projects=projects)
    if readiness_since >= trend_since:
        return longer, longer
    return {job_id: [p for p in points if p[0] >= trend_since]
            for job_id, points in longer.items()}, longer


def check_writable(settings: Settings) -> None:
    """The report directory and an SQLite file's directory can be written, or a ConfigError
    naming the key (in FunctionGraph only /tmp can)."""
    import os

    from drs_report import environment

    places: list[tuple[str, Path]] = [("report.output_dir", settings.report.output_dir)]
    url = settings.store.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        places.append(("store.url", Path(url[len("sqlite:///"):]).parent))
    hint = ("; in FunctionGraph only /tmp is writable: use a relative path (it goes under "
            f"{environment.FUNCTIONGRAPH_TMP}) or one under /tmp"
            if os.environ.get(environment.CODE_ROOT) else "; choose a directory you may write")
    for key, directory in places:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / f".drs-report-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(key, f"cannot write to {directory}: {e.strerror or e}{hint}"
                              ) from None


def sqlite_file(url: str) -> Path | None:
    """The file of a sqlite:///FILE URL (None for other databases and memory)."""
    match = re.match(r"^sqlite(\+\w+)?:///(?!:memory:)([^?]+)", url)
    return Path(match.group(2)) if match else None


def _open_for_dry_run(url: str) -> Store:
    """The store as it is, to read; a fresh empty one if there is none yet.

    A dry run must not create the history it would only read: a SQLite file that does not
    exist, or a database without the schema, reads as an empty history in memory.
    """
    from drs_report.store import SCHEMA_HEAD, Store

    store = Store.open(url)
    path = sqlite_file(store.url)
    revision = store.current_revision() if path is None or path.is_file() else None
    if revision == SCHEMA_HEAD:
        return store
    if revision is not None:
        store.close()
        # Reading it as it is would fail on the columns it lacks, and a dry run may not
        # migrate it.
        raise StoreError(f"{Store.masked_url(url)} is at schema revision {revision}, not this "
                         f"drs-report's {SCHEMA_HEAD}, and a dry run changes nothing; run "
                         "`drs-report db upgrade --config FILE` (or a real run) first")
    store.close()
    empty = Store.open("sqlite://")
    empty.upgrade()
    return empty


def write_outputs(rendered: Mapping[str, str], output_dir: Path) -> dict[str, Path]:
    """Write each format atomically, so a reader never sees half a report."""
    written: dict[str, Path] = {}
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for fmt, filename in REPORT_FILES.items():
            if fmt not in rendered:
                continue
            target = output_dir / filename
            tmp = target.with_name(f".{filename}.tmp")
            tmp.write_text(rendered[fmt], encoding="utf-8")
            tmp.replace(target)
            written[fmt] = target
    except OSError as e:
        raise DrsReportError(f"cannot write the report to {output_dir}: "
                             f"{e.strerror or e}; check report.output_dir (or --out)") from None
    return written
