"""The SQLite file kept in OBS: fetched before a run, written back after (`store.sync`).

    with synced_store(settings, credentials, trigger="timer", ttl_seconds=900) as synced:
        synced.store  # a Store on the working copy (store.url, under /tmp in FunctionGraph)

The run takes the lease first (lease.py): another run's live lease makes it StoreBusy before
anything is fetched. The working copy is kept beside an `.etag` file naming the version it
came from, so a warm instance asks with If-None-Match and skips the download when nothing
changed. The write-back checks the object's ETag first: changed since the fetch (a run that
outlived its lease), and this run's rows (runs, readings, reports, attempts: insert-only;
delivery claims: by key, a sent claim winning) are merged into the newer copy instead of
overwriting it. A dry run reads the file into a throwaway copy and never writes it back.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from drs_report import logs
from drs_report.errors import StoreError
from drs_report.store.lease import ObsLease, new_owner

if TYPE_CHECKING:
    from drs_report.config import Settings
    from drs_report.obs.client import ObsClient
    from drs_report.secrets import Credentials
    from drs_report.store import Store

log = logs.get_logger("store")

# Tables whose rows belong to one run (insert-only), in the order foreign keys need.
RUN_TABLES = ("job_snapshots", "compare_snapshots", "reports", "deliveries")


@dataclass
class SyncStats:
    """What the sync did, for the run's summary and its one log line."""

    where: str
    fetched: str = "new"  # downloaded | unchanged (a warm instance's copy) | new | dry-run
    fetch_seconds: float = 0.0
    write_back_seconds: float | None = None
    bytes: int = 0
    merged: bool = False
    took_over: str | None = None
    written_back: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.fetch_seconds + (self.write_back_seconds or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "fetched": self.fetched,
                "fetch_seconds": round(self.fetch_seconds, 3),
                "write_back_seconds": None if self.write_back_seconds is None
                else round(self.write_back_seconds, 3),
                "bytes": self.bytes, "merged": self.merged, "written_back": self.written_back,
                "took_over_lease_of": self.took_over}


@dataclass
class SyncedStore:
    store: Store
    stats: SyncStats


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise StoreError("store.sync needs store.url to be an SQLite file (sqlite:///FILE)")
    return Path(database)


def obs_client(settings: Settings, credentials: Credentials) -> ObsClient:
    from drs_report.obs.client import ObsClient, verify_setting

    return ObsClient(settings.store.obs_endpoint or
                     f"https://obs.{settings.drs.region}.myhuaweicloud.com", credentials,
                     verify=verify_setting(settings.drs.verify_tls, settings.drs.ca_bundle),
                     connect_timeout=settings.drs.connect_timeout,
                     read_timeout=settings.drs.read_timeout)


@contextmanager
def synced_store(settings: Settings, credentials: Credentials, *, trigger: str,
                 ttl_seconds: float, dry_run: bool = False,
                 client: ObsClient | None = None) -> Iterator[SyncedStore]:
    from drs_report.obs.client import parse_url
    from drs_report.store import Store

    assert settings.store.sync is not None
    bucket, key = parse_url(settings.store.sync)
    client = client or obs_client(settings, credentials)
    path = sqlite_path(settings.store.url)
    stats = SyncStats(where=settings.store.sync)
    if dry_run:
        scratch = Path(tempfile.mkdtemp(prefix="drs-report-dry-run-"))
        copy = scratch / path.name
        started = time.monotonic()
        info = client.get_to_file(bucket, key, copy)
        stats.fetch_seconds = time.monotonic() - started
        stats.fetched = "dry-run"
        stats.bytes = copy.stat().st_size if info is not None else 0
        store = Store.open(f"sqlite:///{copy}", in_functiongraph=False)
        try:
            yield SyncedStore(store, stats)
        finally:
            store.close()
            shutil.rmtree(scratch, ignore_errors=True)
            client.close()
        return
    lease = ObsLease(client, bucket, f"{key}.lease", owner=new_owner(trigger),
                     ttl_seconds=ttl_seconds)
    try:
        lease.acquire()  # StoreBusy: nothing fetched, nothing sent
        if lease.took_over is not None:
            stats.took_over = (f"{lease.took_over.owner} (expired "
                               f"{lease.took_over.expires_at.isoformat(timespec='seconds')})")
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        fetched_etag = _fetch(client, bucket, key, path, stats)
        stats.fetch_seconds = time.monotonic() - started
        store = Store.open(f"sqlite:///{path}", in_functiongraph=False)
        failed = True
        try:
            yield SyncedStore(store, stats)
            failed = False
        finally:
            store.close()
            if store.runs_begun:
                # Written back even when the run failed later on: its claims record what
                # was sent, and the next run must not send it again.
                try:
                    _write_back(client, bucket, key, path, fetched_etag, store.runs_begun,
                                stats)
                except StoreError as e:
                    if not failed:
                        raise
                    log.error("%s", e)
    finally:
        try:
            lease.release()
        finally:
            client.close()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".etag")


def _remove_copy(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    _sidecar(path).unlink(missing_ok=True)


def _fetch(client: ObsClient, bucket: str, key: str, path: Path, stats: SyncStats
           ) -> str | None:
    """Bring the working copy up to the object; its ETag, or None when there is none yet."""
    sidecar = _sidecar(path)
    known = sidecar.read_text().strip() if sidecar.is_file() and path.is_file() else None
    download = path.with_name(path.name + ".download")
    info = client.get_to_file(bucket, key, download, if_none_match=known)
    if info is None:
        log.info("no history at %s yet: starting a new file", stats.where)
        _remove_copy(path)
        stats.fetched = "new"
        return None
    if info.not_modified:
        # This warm instance's copy is that version, plus whatever a failed write-back left.
        stats.fetched = "unchanged"
        stats.bytes = path.stat().st_size
        return info.etag
    _remove_copy(path)  # a stale WAL beside a new file would corrupt it
    download.replace(path)
    if info.etag:
        sidecar.write_text(info.etag)
    stats.fetched = "downloaded"
    stats.bytes = path.stat().st_size
    return info.etag


def checkpoint(path: Path) -> None:
    """Fold the WAL into the file, so the file alone is the whole database."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _write_back(client: ObsClient, bucket: str, key: str, path: Path,
                fetched_etag: str | None, run_ids: Sequence[int], stats: SyncStats) -> None:
    from drs_report.store import Store

    started = time.monotonic()
    checkpoint(path)
    head = client.head(bucket, key)
    current = head.etag if head is not None else None
    if current != fetched_etag:
        # Someone wrote the file since we fetched it: keep their rows and add ours.
        newer = path.with_name(path.name + ".newer")
        _remove_copy(newer)
        if client.get_to_file(bucket, key, newer) is not None:
            other = Store.open(f"sqlite:///{newer}", in_functiongraph=False)
            other.upgrade()
            other.close()
            merge_runs(into=newer, source=path, run_ids=run_ids)
            checkpoint(newer)
            _remove_copy(path)
            newer.replace(path)
            stats.merged = True
            log.warning("%s changed since this run fetched it (another run wrote it): this "
                        "run's rows were merged into the newer copy", stats.where)
    info = client.put_file(bucket, key, path)
    if info.etag:
        _sidecar(path).write_text(info.etag)
    stats.write_back_seconds = time.monotonic() - started
    stats.bytes = path.stat().st_size
    stats.written_back = True


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA main.table_info({table})")]


def merge_runs(*, into: Path, source: Path, run_ids: Sequence[int]) -> None:
    """Copy these runs of `source` and everything they wrote into `into`, under new run ids.

    Readings, reports and attempts are insert-only; delivery claims are keyed, and a claim
    this run sent replaces one the other copy only holds as claimed.
    """
    conn = sqlite3.connect(into, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS mine", (str(source),))
        conn.execute("BEGIN IMMEDIATE")
        run_columns = [c for c in _columns(conn, "runs") if c != "id"]
        names = ", ".join(run_columns)
        for run_id in run_ids:
            cursor = conn.execute(f"INSERT INTO main.runs ({names}) SELECT {names} "
                                  "FROM mine.runs WHERE id = ?", (run_id,))
            if cursor.rowcount == 0:
                continue  # pruned already
            new_id = cursor.lastrowid
            for table in RUN_TABLES:
                columns = [c for c in _columns(conn, table) if c not in ("id", "run_id")]
                listed = ", ".join(columns)
                conn.execute(f"INSERT INTO main.{table} (run_id, {listed}) SELECT ?, {listed} "
                             f"FROM mine.{table} WHERE run_id = ?", (new_id, run_id))
            claim_columns = [c for c in _columns(conn, "delivery_claims") if c != "run_id"]
            listed = ", ".join(claim_columns)
            updates = ", ".join(f"{c} = excluded.{c}" for c in [*claim_columns, "run_id"]
                                if c != "idempotency_key")
            conn.execute(
                f"INSERT INTO main.delivery_claims (run_id, {listed}) SELECT ?, {listed} "
                f"FROM mine.delivery_claims WHERE run_id = ? AND true "
                f"ON CONFLICT(idempotency_key) DO UPDATE SET {updates} "
                "WHERE excluded.state = 'sent' AND main.delivery_claims.state != 'sent'",
                (new_id, run_id))
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"merging this run into the newer copy of the history failed: {e}"
                         ) from None
    finally:
        conn.close()
