"""The SQLite file kept in OBS: fetched before a run, written back after (`store.sync`).

    with synced_store(settings, credentials, trigger="timer", ttl_seconds=900) as synced:
        ...                 # side-effect free work: fetch DRS (the file comes meanwhile)
        synced.confirm()    # the lease is ours (lease.py); before the first write
        synced.store        # a Store on the working copy (store.url, under /tmp there)

The run takes the lease first (lease.py): another run's live lease makes it StoreBusy at
once. The file is then fetched in the background while the run reads DRS, and `confirm()`
waits for both the file and the lease's settle; a run that loses the lease there is
StoreBusy having stored and sent nothing. The working copy is kept beside an `.etag` file
naming the version it came from, so a warm instance asks with If-None-Match and skips the
download when nothing changed.

In OBS the object is the SQLite file gzip-compressed (level 1: SQLite pages of repeated ids
and timestamps shrink about 9 times, at about 100 MB/s), streamed both ways through disk,
never whole in memory; an object written uncompressed (by an older version) still reads.
The write-back checks the object's ETag first: changed since the fetch (a run that outlived
its lease), and this run's rows (runs, readings, reports, attempts: insert-only; delivery
claims: by key, a sent claim winning) are merged into the newer copy instead of overwriting
it. A dry run reads the file into a throwaway copy and never writes it back.

`ReadOnlyCopy` is the HTTP side's copy: fetched into a file of its own, revalidated with a
conditional GET at most every REVALIDATE_SECONDS, opened immutable; it never writes the
object and never reads or takes the lease, so answering chat cannot disturb a timer run.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from drs_report import logs
from drs_report.errors import StoreError
from drs_report.store.engine import runtime_url
from drs_report.store.lease import ObsLease, new_owner

if TYPE_CHECKING:
    from drs_report.config import Settings
    from drs_report.obs.client import ObsClient
    from drs_report.secrets import Credentials
    from drs_report.store import Store

log = logs.get_logger("store")

# Tables whose rows belong to one run (insert-only), in the order foreign keys need.
RUN_TABLES = ("job_snapshots", "compare_snapshots", "reports", "deliveries")
PACK_LEVEL = 1  # gzip: nine times smaller at level 1; level 6 buys 13% more for twice the CPU
CHUNK = 1 << 20
OBJECT_TYPE = "application/gzip"
REVALIDATE_SECONDS = 5.0  # the HTTP side asks OBS at most this often whether the file changed


@dataclass
class SyncStats:
    """What the sync did, for the run's summary and its one log line."""

    where: str
    fetched: str = "new"  # downloaded | unchanged (a warm instance's copy) | new | dry-run
    fetch_seconds: float = 0.0
    write_back_seconds: float | None = None
    bytes: int = 0  # the working copy (the SQLite file)
    object_bytes: int | None = None  # the object in OBS (compressed)
    lease_seconds: float = 0.0  # taking the lease (GET + PUT)
    settle_wait_seconds: float = 0.0  # of the settle, what the overlapped work did not cover
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
                "lease_seconds": round(self.lease_seconds, 3),
                "settle_wait_seconds": round(self.settle_wait_seconds, 3),
                "bytes": self.bytes, "object_bytes": self.object_bytes, "merged": self.merged,
                "written_back": self.written_back, "took_over_lease_of": self.took_over}


@dataclass
class SyncedStore:
    store: Store
    stats: SyncStats
    # Call before the first write (storing, sending): waits for the file and the lease.
    confirm: Callable[[], None] = lambda: None


def sqlite_path(url: str) -> Path:
    database = make_url(runtime_url(url)).database
    if not database or database == ":memory:":
        raise StoreError("store.sync needs store.url to be an SQLite file (sqlite:///FILE)")
    return Path(database)


def obs_client(settings: Settings, credentials: Credentials, *,
               deadline: float | None = None) -> ObsClient:
    """The client of the synced store; no request of it outlives `deadline` (monotonic)."""
    from drs_report.obs.client import ObsClient, verify_setting

    return ObsClient(settings.store.obs_endpoint or
                     f"https://obs.{settings.drs.region}.myhuaweicloud.com", credentials,
                     verify=verify_setting(settings.drs.verify_tls, settings.drs.ca_bundle),
                     connect_timeout=settings.drs.connect_timeout,
                     read_timeout=settings.drs.read_timeout, deadline=deadline)


class _Background:
    """One call on a thread of its own; `result()` waits and re-raises what it raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = call()
            except BaseException as e:  # handed to the caller of result()
                self._error = e

        self._thread = threading.Thread(target=run, name="drs-report-fetch", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


@contextmanager
def synced_store(settings: Settings, credentials: Credentials, *, trigger: str,
                 ttl_seconds: float, dry_run: bool = False,
                 client: ObsClient | None = None,
                 deadline: float | None = None) -> Iterator[SyncedStore]:
    from drs_report.obs.client import parse_url
    from drs_report.store import Store

    assert settings.store.sync is not None
    bucket, key = parse_url(settings.store.sync)
    client = client or obs_client(settings, credentials, deadline=deadline)
    path = sqlite_path(settings.store.url)
    stats = SyncStats(where=settings.store.sync)
    if dry_run:
        scratch = Path(tempfile.mkdtemp(prefix="drs-report-dry-run-"))
        copy = scratch / path.name
        started = time.monotonic()
        info = client.get_to_file(bucket, key, copy, inflate=True)
        stats.fetch_seconds = time.monotonic() - started
        stats.fetched = "dry-run"
        stats.bytes = copy.stat().st_size if info is not None else 0
        stats.object_bytes = info.size if info is not None else None
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
    fetching: _Background | None = None
    try:
        started = time.monotonic()
        lease.take()  # StoreBusy at once if another run holds it
        stats.lease_seconds = time.monotonic() - started
        path.parent.mkdir(parents=True, exist_ok=True)

        def fetch() -> str | None:
            began = time.monotonic()
            etag = _fetch(client, bucket, key, path, stats)
            stats.fetch_seconds = time.monotonic() - began
            return etag

        # The file comes while the run reads DRS: neither has a side effect.
        fetching = _Background(fetch)
        store = Store.open(f"sqlite:///{path}", in_functiongraph=False)
        store.keeps_raw_answers = False  # see downsampling.py: the typed columns stay
        confirmed: list[str | None] = []

        def confirm() -> None:
            if confirmed:
                return
            assert fetching is not None
            etag = fetching.result()
            waited = time.monotonic()
            lease.confirm()  # StoreBusy: nothing stored, nothing sent
            stats.settle_wait_seconds = time.monotonic() - waited
            if lease.took_over is not None:
                stats.took_over = (f"{lease.took_over.owner} (expired "
                                   f"{lease.took_over.expires_at.isoformat(timespec='seconds')})")
            confirmed.append(etag)

        failed = True
        try:
            yield SyncedStore(store, stats, confirm)
            failed = False
        finally:
            store.close()
            if confirmed and store.runs_begun:
                # Written back even when the run failed later on: its claims record what
                # was sent, and the next run must not send it again.
                try:
                    _write_back(client, bucket, key, path, confirmed[0], store.runs_begun,
                                stats)
                except StoreError as e:
                    if not failed:
                        raise
                    log.error("%s", e)
            elif store.runs_begun:  # a write before confirm(): a bug, never written back
                log.error("this run wrote to the history before its lease was confirmed; "
                          "its rows are not written back")
    finally:
        try:
            if fetching is not None:
                # Never leave a download writing behind us; its error was reported by
                # confirm(), or is moot: the run is over.
                with contextlib.suppress(Exception):
                    fetching.result()
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
    info = client.get_to_file(bucket, key, download, if_none_match=known, inflate=True)
    if info is None:
        log.info("no history at %s yet: starting a new file", stats.where)
        _remove_copy(path)
        stats.fetched = "new"
        return None
    if info.not_modified:
        # This warm instance's copy is that version, plus whatever a failed write-back left.
        stats.fetched = "unchanged"
        stats.bytes = path.stat().st_size
        stats.object_bytes = info.size
        return info.etag
    _remove_copy(path)  # a stale WAL beside a new file would corrupt it
    download.replace(path)
    if info.etag:
        sidecar.write_text(info.etag)
    stats.fetched = "downloaded"
    stats.bytes = path.stat().st_size
    stats.object_bytes = info.size
    return info.etag


def checkpoint(path: Path) -> None:
    """Fold the WAL into the file, so the file alone is the whole database."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def pack_file(source: Path, target: Path) -> int:
    """`source` gzip-compressed into `target`, 1 MiB at a time; the bytes written."""
    packer = zlib.compressobj(PACK_LEVEL, zlib.DEFLATED, 31)
    written = 0
    with source.open("rb") as f, target.open("wb") as out:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            packed = packer.compress(chunk)
            out.write(packed)
            written += len(packed)
        tail = packer.flush()
        out.write(tail)
        written += len(tail)
    return written


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
        if client.get_to_file(bucket, key, newer, inflate=True) is not None:
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
    packed = path.with_name(path.name + ".gz")
    try:
        stats.object_bytes = pack_file(path, packed)
        info = client.put_file(bucket, key, packed, content_type=OBJECT_TYPE)
    finally:
        packed.unlink(missing_ok=True)
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
            # This run's claims come after every claim of the newer copy, in their order.
            base = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM main.delivery_claims"
                                ).fetchone()[0]
            selected = ", ".join("? + COALESCE(seq, 0)" if c == "seq" else c
                                 for c in claim_columns)
            updates = ", ".join(f"{c} = excluded.{c}" for c in [*claim_columns, "run_id"]
                                if c != "idempotency_key")
            conn.execute(
                f"INSERT INTO main.delivery_claims (run_id, {listed}) SELECT ?, {selected} "
                f"FROM mine.delivery_claims WHERE run_id = ? AND true "
                f"ON CONFLICT(idempotency_key) DO UPDATE SET {updates} "
                "WHERE excluded.state = 'sent' AND main.delivery_claims.state != 'sent'",
                (new_id, base, run_id))
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"merging this run into the newer copy of the history failed: {e}"
                         ) from None
    finally:
        conn.close()


class ReadOnlyCopy:
    """The HTTP side's copy of the synced file: read, never written back, no lease.

    The copy lives beside the run's working copy, in a directory of its own
    (`read-only/`), one file per version of the object, opened immutable (SQLite then takes
    no lock and writes nothing beside it). `store()` answers from the copy and asks OBS
    with If-None-Match at most every `revalidate_seconds`: a 304 costs one small request; a
    new version is downloaded (inflated as it arrives) into a new file, and the Store on the
    old one is closed once the new one serves. OBS failing: the copy serves on, stale, and
    the next request past the interval asks again.
    """

    def __init__(self, settings: Settings, credentials: Callable[[], Credentials | None], *,
                 revalidate_seconds: float | None = None) -> None:
        from drs_report.obs.client import parse_url

        assert settings.store.sync is not None
        self._settings = settings
        self._credentials = credentials
        self._bucket, self._key = parse_url(settings.store.sync)
        self.where = settings.store.sync
        self.revalidate_seconds = (REVALIDATE_SECONDS if revalidate_seconds is None
                                   else revalidate_seconds)
        working = sqlite_path(settings.store.url)
        self._dir = working.parent / "read-only"
        self._stem, self._suffix = working.stem, working.suffix or ".db"
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._path: Path | None = None
        self._etag: str | None = None
        self._checked: float | None = None  # monotonic: when OBS was last asked
        self._version = 0
        self.revalidations = 0  # conditional GETs sent (for the tests and the log)

    def store(self) -> Store:
        with self._lock:
            due = self._checked is None or \
                time.monotonic() - self._checked >= self.revalidate_seconds
            if due:
                try:
                    self._revalidate()
                except StoreError as e:
                    if self._store is None:
                        raise
                    log.warning("the history at %s could not be revalidated, answering from "
                                "the copy of %s: %s", self.where, self._etag, e)
                finally:
                    self._checked = time.monotonic()
            if self._store is None:
                raise StoreError(f"no history at {self.where} yet: the first timer run writes "
                                 "it")
            return self._store

    def _revalidate(self) -> None:
        credentials = self._credentials()
        if credentials is None:
            raise StoreError(f"no credentials to read {self.where} (the function's agency, or "
                             "HUAWEICLOUD_SDK_AK/SK)")
        client = obs_client(self._settings, credentials)
        self._dir.mkdir(parents=True, exist_ok=True)
        target = self._dir / f"{self._stem}-{self._version + 1}{self._suffix}"
        try:
            self.revalidations += 1
            info = client.get_to_file(self._bucket, self._key, target,
                                      if_none_match=self._etag if self._store else None,
                                      inflate=True)
        finally:
            client.close()
        if info is None or info.not_modified:
            return  # nothing yet, or the copy is current
        self._version += 1
        fresh = open_immutable(target)
        old, old_path = self._store, self._path
        self._store, self._path, self._etag = fresh, target, info.etag
        log.info("read-only copy of %s: version %s (%d bytes)", self.where, info.etag,
                 target.stat().st_size)
        if old is not None:
            old.close()  # connections in use finish on the old file, then it goes
        if old_path is not None:
            old_path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def open_immutable(path: Path) -> Store:
    """A Store on a file nothing will change: SQLite's `immutable`, so it takes no lock and
    needs no -wal or -shm beside the file (a fetched copy is checkpointed whole)."""
    from urllib.parse import quote

    from sqlalchemy import create_engine

    from drs_report.store import Store

    url = f"sqlite:///file:{quote(str(path))}?mode=ro&immutable=1&uri=true"
    engine = create_engine(url, connect_args={"check_same_thread": False})
    return Store.open(f"sqlite:///{path}", engine=engine)
