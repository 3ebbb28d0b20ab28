"""One cycle, in one direction: settings -> fetch -> store -> analyse -> render -> deliver.

The CLI (`drs-report run`, `demo`) and the FunctionGraph handler both call `run_cycle`.
Only the client, the store and the channels touch the outside world, and each is handed
in (or built here from settings), so tests pass real local servers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drs_report import logs
from drs_report.config import Settings
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests

    from drs_report.analysis import Report
    from drs_report.delivery import DeliveryOutcome
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
EXIT_BUSY = 5  # another run holds the store's lease: nothing stored or sent

# A lease without a hard deadline to expire with (a CLI run) lasts this long.
DEFAULT_LEASE_SECONDS = 900.0
# A stored reading this much later than this machine's clock is flagged (runs of two
# instances a second apart are not).
CLOCK_TOLERANCE = timedelta(minutes=1)


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
    def exit_code(self) -> int:
        return EXIT_DELIVERY_FAILED if self.delivery_failed else EXIT_OK

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "counts": self.report.counts(),
            "jobs": len(self.report.jobs),
            "partial": self.partial,
            "outputs": {fmt: str(path) for fmt, path in self.outputs.items()},
            "deliveries": [d.to_dict() for d in self.deliveries],
            "errors": [logs.redact(e) for e in self.errors],
            "duration_seconds": round(self.duration_seconds, 3),
            "sync": self.sync,
        }


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
) -> RunResult:
    """Fetch, store, analyse, render and deliver once.

    `deadline` is a `time.monotonic()` value: fetching stops `settings.run.safety_margin_seconds`
    before it, and what was fetched is stored, reported (marked partial) and delivered.
    `job_ids` narrows the configured jobs (a FunctionGraph `user_event` override); `modes`
    narrows the channels to those modes.
    """
    from drs_report.store import Store

    started = time.monotonic()
    logs.add_secrets(credentials.secrets())
    logs.add_secrets(settings.secret_values())
    hard_deadline = deadline  # the platform's: a run still going then is killed
    if deadline is None and settings.run.time_budget_seconds is not None:
        deadline = started + settings.run.time_budget_seconds
    check_writable(settings)
    kwargs: dict[str, Any] = dict(
        trigger=trigger, deadline=deadline, now=now, session=session, force=force,
        dry_run=dry_run, job_ids=job_ids, modes=modes, started=started)
    kwargs["lease_seconds"] = lease_seconds(settings, hard_deadline)
    if store is not None:
        with _failed_runs_closed(store):
            return _cycle(settings, credentials, store, **kwargs)
    if settings.store.sync:
        return _synced_cycle(settings, credentials, **kwargs)
    opened = Store.open(settings.store.url)
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


def _synced_cycle(settings: Settings, credentials: Credentials, **kwargs: Any) -> RunResult:
    """The cycle on the SQLite file kept in OBS: lease, fetch, run, write back, release."""
    from drs_report.store.sync import synced_store

    with synced_store(settings, credentials, trigger=kwargs["trigger"],
                      ttl_seconds=kwargs["lease_seconds"], dry_run=kwargs["dry_run"]
                      ) as synced, _failed_runs_closed(synced.store):
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
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    downsample: bool = False,
    before_writes: Callable[[], None] | None = None,
) -> RunResult:
    from drs_report.analysis import analyse
    from drs_report.client import DrsClient
    from drs_report.delivery import deliver
    from drs_report.errors import StoreError
    from drs_report.render import render_all

    fetch_deadline = None if deadline is None else deadline - settings.run.safety_margin_seconds
    jobs = settings.jobs
    if job_ids:
        wanted = set(job_ids)
        jobs = tuple(j for j in jobs if j.id in wanted)

    if before_writes is None:
        store.upgrade()  # first: an unreachable database fails before DRS is read
    with DrsClient(settings.drs, credentials, session=session) as client:
        snapshot = client.fetch(jobs, settings.discovery, deadline=fetch_deadline)
    if before_writes is not None:
        before_writes()  # a synced store: the lease is confirmed before the first write
        store.upgrade()
    if settings.store.ephemeral and settings.store.url.startswith("sqlite"):
        snapshot.errors.append("history is not kept: store.ephemeral = true, and the SQLite "
                               "file lives only as long as this function instance")
    taken_at = snapshot.taken_at
    current = now or datetime.now(timezone.utc)
    snapshot.errors.extend(_clock_check(store, taken_at))
    run_id = store.begin_run(trigger=trigger, started_at=taken_at,
                             lease_until=current + timedelta(seconds=lease_seconds))
    _close_abandoned(store, run_id, current)
    outcome = "ok"
    try:
        store.save_snapshot(run_id, snapshot)
    except StoreError as e:  # the readings are lost, not the run: report and deliver
        snapshot.errors.append(f"the readings of this run could not be stored: {e}")
        log.error("%s; the report and the deliveries go on without them", snapshot.errors[-1])
        outcome = "failed"
    history = store.history(
        [j.job_id for j in snapshot.jobs],
        since=current - timedelta(hours=settings.report.trend_hours),
    )
    previous = store.previous_report(before_run_id=run_id)
    report = analyse(snapshot, history, previous, settings, now=current)
    rendered = render_all(report, settings)
    outputs = write_outputs(rendered, settings.report.output_dir)
    store.save_reports(run_id, rendered)
    deliveries = deliver(
        report, rendered, settings, store, run_id,
        now=current, deadline=deadline, force=force, dry_run=dry_run,
        credentials=credentials, modes=modes,
    )
    result = RunResult(
        run_id=run_id, report=report, outputs=outputs, deliveries=deliveries,
        partial=snapshot.partial, errors=list(snapshot.errors),
        duration_seconds=time.monotonic() - started,
    )
    store.finish_run(
        run_id,
        outcome="delivery_failed" if outcome == "ok" and result.delivery_failed else outcome,
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
        store.downsample(now=current, trend_hours=settings.report.trend_hours, run_id=run_id)
    return result


def check_writable(settings: Settings) -> None:
    """The report directory and an SQLite file's directory can be written, or a ConfigError
    naming the key (in FunctionGraph only /tmp can)."""
    import os

    from drs_report import environment
    from drs_report.errors import ConfigError

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


def write_outputs(rendered: Mapping[str, str], output_dir: Path) -> dict[str, Path]:
    """Write each format atomically, so a reader never sees half a report."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt, filename in REPORT_FILES.items():
        if fmt not in rendered:
            continue
        target = output_dir / filename
        tmp = target.with_name(f".{filename}.tmp")
        tmp.write_text(rendered[fmt], encoding="utf-8")
        tmp.replace(target)
        written[fmt] = target
    return written
