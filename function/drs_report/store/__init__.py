"""The snapshot history store: runs, readings, rendered reports and deliveries.

SQLite by default (WAL, busy timeout), PostgreSQL through psycopg 3 for history shared by
many function instances. One run's snapshot is written in one transaction. The schema is
Alembic's, shipped in store/migrations/ and applied by `upgrade()`, which is safe to call
from several processes at once. Errors are StoreError with the password masked.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from drs_report import environment, logs
from drs_report.errors import StoreError
from drs_report.models import (
    CompareFullInfo,
    CompareGlobalInfo,
    CompareIncreInfo,
    CompareProgress,
    CompareReading,
    FetchError,
    FetchErrorKind,
    JobProgress,
    JobReading,
    ProgressInfo,
    Snapshot,
)
from drs_report.store.schema import (
    CompareSnapshot,
    DeliveryAttempt,
    DeliveryClaim,
    JobSnapshot,
    RenderedReport,
    Run,
)

log = logs.get_logger("store")

SCHEMA_HEAD = "0002"  # the newest revision in store/migrations/versions
_IN_CHUNK = 500  # ids per IN (...) list: well under every backend's parameter limit
# psycopg's and SQLite's words for "the database could not be reached or opened".
_CONNECT_FAILURE = re.compile(
    r"connection failed|could not connect|connection refused|could not translate host"
    r"|failed to resolve host"
    r"|unable to open database file|password authentication failed"
    r"|database \"[^\"]*\" does not exist",
    re.IGNORECASE)
_MIGRATION_LOCK = 0x44525352  # "DRSR": pg_advisory_lock key for schema upgrades


@dataclass(frozen=True)
class SentDelivery:
    idempotency_key: str
    sent_at: datetime
    fingerprint: str | None
    problems: tuple[str, ...]
    run_id: int


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _in_functiongraph() -> bool:
    return any(name in os.environ for name in environment.FUNCTIONGRAPH_MARKERS)


class Store:
    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    # -- opening -----------------------------------------------------------------------

    @staticmethod
    def masked_url(url: str) -> str:
        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)

    @classmethod
    def open(cls, url: str, *, in_functiongraph: bool | None = None,
             engine: Engine | None = None) -> Store:
        if engine is not None:
            return cls(engine, url)
        if in_functiongraph is None:
            in_functiongraph = _in_functiongraph()
        if url.startswith("sqlite") and in_functiongraph:
            url = _sqlite_under_tmp(url)
        try:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
        except (ArgumentError, SQLAlchemyError, ImportError) as e:
            raise StoreError(f"cannot open {cls.masked_url(url)}: "
                             f"{_one_line(e, url)}") from None
        return cls(engine, url)

    def close(self) -> None:
        self.engine.dispose()

    def _fail(self, action: str, error: BaseException) -> StoreError:
        reason = _one_line(error, self.url)
        if _CONNECT_FAILURE.search(reason):
            # The one failure a user fixes outside the database: say where to look.
            return StoreError(f"cannot connect to {self.masked_url(self.url)}: {reason}; "
                              "check [store] url and that the database is reachable")
        return StoreError(f"{action} failed on {self.masked_url(self.url)}: {reason}")

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        try:
            with Session(self.engine) as session, session.begin():
                yield session
        except StoreError:
            raise
        except SQLAlchemyError as e:
            raise self._fail(action, e) from None

    # -- schema --------------------------------------------------------------------------

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                if not self.engine.dialect.has_table(conn, "alembic_version"):
                    return None
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError as e:
            raise self._fail("reading the schema version", e) from None

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the schema; a no-op (one query) when it is already current."""
        if revision == "head" and self.current_revision() == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        try:
            with self._migration_lock() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                conn.commit()
        except SQLAlchemyError as e:
            raise self._fail("upgrading the schema", e) from None
        log.info("schema at revision %s on %s", self.current_revision(),
                 self.masked_url(self.url))

    @contextmanager
    def _migration_lock(self) -> Iterator[Any]:
        """Only one process migrates at a time; the others wait, then find nothing to do."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
                try:
                    yield conn
                finally:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()
            return
        with self.engine.connect() as conn:
            # BEGIN IMMEDIATE takes SQLite's write lock before Alembic reads the version.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    # -- runs and snapshots ---------------------------------------------------------------

    def begin_run(self, *, trigger: str, started_at: datetime) -> int:
        with self._session("starting a run") as s:
            run = Run(trigger=trigger, started_at=started_at, outcome="running", partial=False,
                      counts={}, errors=[], requests=0)
            s.add(run)
            s.flush()
            return run.id

    def save_snapshot(self, run_id: int, snapshot: Snapshot) -> None:
        """Every reading of the run, in one transaction: all or nothing."""
        job_rows: list[dict[str, Any]] = []
        compare_rows: list[dict[str, Any]] = []
        for reading in snapshot.jobs:
            job_rows.append(_job_row(run_id, snapshot.taken_at, reading))
            for position, comp in enumerate(reading.comparisons):
                compare_rows.append(_compare_row(run_id, snapshot.taken_at, reading.job_id,
                                                 position, comp))
        with self._session("saving the snapshot") as s:
            if job_rows:
                _bulk_insert(s, JobSnapshot.__table__, job_rows)
            if compare_rows:
                _bulk_insert(s, CompareSnapshot.__table__, compare_rows)
            s.execute(update(Run).where(Run.id == run_id).values(
                requests=snapshot.requests, partial=snapshot.partial))

    def finish_run(self, run_id: int, *, outcome: str, counts: Mapping[str, int],
                   errors: Sequence[str], partial: bool, finished_at: datetime) -> None:
        with self._session("finishing the run") as s:
            s.execute(update(Run).where(Run.id == run_id).values(
                outcome=outcome, counts=dict(counts), errors=list(errors), partial=partial,
                finished_at=finished_at))

    def runs(self) -> list[dict[str, Any]]:
        with self._session("reading runs") as s:
            return [
                {"id": r.id, "trigger": r.trigger, "started_at": _utc(r.started_at),
                 "finished_at": r.finished_at and _utc(r.finished_at), "outcome": r.outcome,
                 "partial": r.partial, "counts": r.counts, "errors": r.errors,
                 "requests": r.requests}
                for r in s.scalars(select(Run).order_by(Run.id))
            ]

    def history(self, job_ids: Sequence[str], since: datetime
                ) -> dict[str, list[tuple[datetime, JobReading]]]:
        """Readings of these jobs since `since`, per job, oldest first."""
        result: dict[str, list[tuple[datetime, JobReading]]] = {j: [] for j in job_ids}
        ids = list(dict.fromkeys(job_ids))
        with self._session("reading history") as s:
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i:i + _IN_CHUNK]
                comps: dict[tuple[int, str], list[CompareSnapshot]] = {}
                for c in s.scalars(select(CompareSnapshot).where(
                        CompareSnapshot.job_id.in_(chunk), CompareSnapshot.taken_at >= since
                ).order_by(CompareSnapshot.position)):
                    comps.setdefault((c.run_id, c.job_id), []).append(c)
                for row in s.scalars(select(JobSnapshot).where(
                        JobSnapshot.job_id.in_(chunk), JobSnapshot.taken_at >= since
                ).order_by(JobSnapshot.taken_at, JobSnapshot.id)):
                    reading = _reading_from_row(row, comps.get((row.run_id, row.job_id), []))
                    result[row.job_id].append((_utc(row.taken_at), reading))
        return result

    def readings(self, job_id: str, since: datetime) -> list[dict[str, Any]]:
        """One job's readings as JSON-ready dicts in the API's field names, oldest first."""
        out = []
        for taken_at, reading in self.history([job_id], since)[job_id]:
            out.append(reading_to_json(taken_at, reading))
        return out

    # -- reports ---------------------------------------------------------------------------

    def save_reports(self, run_id: int, outputs: Mapping[str, str]) -> None:
        now = datetime.now(timezone.utc)
        rows = [{"run_id": run_id, "format": fmt, "created_at": now, "content": content}
                for fmt, content in outputs.items()]
        if rows:
            with self._session("saving reports") as s:
                s.execute(insert(RenderedReport), rows)

    def report(self, run_id: int, fmt: str) -> str | None:
        with self._session("reading a report") as s:
            return s.scalar(select(RenderedReport.content).where(
                RenderedReport.run_id == run_id, RenderedReport.format == fmt))

    def previous_report(self, before_run_id: int) -> dict[str, Any] | None:
        """report.json of the latest run before this one that saved its reports."""
        with self._session("reading the previous report") as s:
            content = s.scalar(
                select(RenderedReport.content)
                .where(RenderedReport.run_id < before_run_id, RenderedReport.format == "json")
                .order_by(RenderedReport.run_id.desc()).limit(1))
        if content is None:
            return None
        try:
            data = json.loads(content)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    # -- retention -------------------------------------------------------------------------

    def prune(self, *, retention_days: int, report_retention_days: int, batch_size: int,
              now: datetime) -> dict[str, int]:
        """Delete old rows in bounded batches, so no statement holds locks for long."""
        cutoff = now - timedelta(days=retention_days)
        report_cutoff = now - timedelta(days=report_retention_days)
        # Each channel and mode keeps its latest sent claim however old: the alert
        # de-duplication compares against it.
        latest = aliased(DeliveryClaim)
        newest_sent = (select(func.max(latest.sent_at))
                       .where(latest.channel == DeliveryClaim.channel,
                              latest.mode == DeliveryClaim.mode, latest.state == "sent")
                       .scalar_subquery())
        deleted = {
            "compare_snapshots": self._prune(CompareSnapshot.id,
                                             CompareSnapshot.taken_at < cutoff,
                                             batch_size=batch_size),
            "job_snapshots": self._prune(JobSnapshot.id, JobSnapshot.taken_at < cutoff,
                                         batch_size=batch_size),
            "reports": self._prune(RenderedReport.id, RenderedReport.created_at < report_cutoff,
                                   batch_size=batch_size),
            "deliveries": self._prune(DeliveryAttempt.id, DeliveryAttempt.at < cutoff,
                                      batch_size=batch_size),
            "delivery_claims": self._prune(
                DeliveryClaim.idempotency_key, DeliveryClaim.claimed_at < cutoff,
                ~and_(DeliveryClaim.state == "sent", DeliveryClaim.sent_at == newest_sent),
                batch_size=batch_size),
            # Runs go once nothing refers to them any more.
            "runs": self._prune(
                Run.id, Run.started_at < min(cutoff, report_cutoff),
                ~select(JobSnapshot.id).where(JobSnapshot.run_id == Run.id).exists(),
                ~select(RenderedReport.id).where(RenderedReport.run_id == Run.id).exists(),
                ~select(DeliveryAttempt.id).where(DeliveryAttempt.run_id == Run.id).exists(),
                batch_size=batch_size),
        }
        if any(deleted.values()):
            log.info("pruned %s", ", ".join(f"{n} {t}" for t, n in deleted.items() if n))
        return deleted

    def _prune(self, key: Any, *conditions: Any, batch_size: int) -> int:
        """Delete the rows matching `conditions`, `batch_size` keys per transaction."""
        table = key.table
        total = 0
        while True:
            with self._session(f"pruning {table.name}") as s:
                keys = list(s.scalars(select(key).where(*conditions).limit(batch_size)))
                if not keys:
                    return total
                s.execute(delete(table).where(key.in_(keys)))
                total += len(keys)

    # -- deliveries --------------------------------------------------------------------------

    def claim_delivery(self, idempotency_key: str, *, run_id: int, channel: str, mode: str,
                       now: datetime, lease_seconds: float = 600) -> bool:
        """Reserve one send. False if it was sent already or another run holds a live lease."""
        try:
            with Session(self.engine) as s, s.begin():
                s.add(DeliveryClaim(idempotency_key=idempotency_key, run_id=run_id,
                                    channel=channel, mode=mode, state="claimed",
                                    claimed_at=now))
            return True
        except IntegrityError:
            pass
        except SQLAlchemyError as e:
            raise self._fail("claiming a delivery", e) from None
        # The key exists: take it over only if its holder's lease ran out (a crashed run).
        expired = now - timedelta(seconds=lease_seconds)
        with self._session("claiming a delivery") as s:
            taken = s.execute(
                update(DeliveryClaim)
                .where(DeliveryClaim.idempotency_key == idempotency_key,
                       DeliveryClaim.state == "claimed", DeliveryClaim.claimed_at < expired)
                .values(run_id=run_id, claimed_at=now)
            )
            return bool(getattr(taken, "rowcount", 0))

    def finish_delivery(self, idempotency_key: str, *, sent: bool, now: datetime,
                        fingerprint: str | None = None, problems: Sequence[str] = ()) -> None:
        with self._session("finishing a delivery") as s:
            if sent:
                s.execute(update(DeliveryClaim)
                          .where(DeliveryClaim.idempotency_key == idempotency_key)
                          .values(state="sent", sent_at=now, fingerprint=fingerprint,
                                  problems=list(problems)))
            else:
                s.execute(delete(DeliveryClaim).where(
                    DeliveryClaim.idempotency_key == idempotency_key,
                    DeliveryClaim.state == "claimed"))

    def record_attempt(self, *, run_id: int, channel: str, channel_type: str, mode: str,
                       idempotency_key: str, attempt: int, ok: bool, permanent: bool,
                       error: str | None, at: datetime) -> None:
        with self._session("recording a delivery attempt") as s:
            s.add(DeliveryAttempt(run_id=run_id, channel=channel, channel_type=channel_type,
                                  mode=mode, idempotency_key=idempotency_key, attempt=attempt,
                                  ok=ok, permanent=permanent,
                                  error=logs.redact(error) if error else None, at=at))

    def last_sent(self, channel: str, mode: str) -> SentDelivery | None:
        with self._session("reading deliveries") as s:
            row = s.scalars(
                select(DeliveryClaim)
                .where(DeliveryClaim.channel == channel, DeliveryClaim.mode == mode,
                       DeliveryClaim.state == "sent")
                .order_by(DeliveryClaim.sent_at.desc()).limit(1)).first()
            if row is None or row.sent_at is None:
                return None
            return SentDelivery(row.idempotency_key, _utc(row.sent_at), row.fingerprint,
                                tuple(str(p) for p in row.problems or ()), row.run_id)

    def attempts(self, run_id: int | None = None) -> list[dict[str, Any]]:
        with self._session("reading deliveries") as s:
            query = select(DeliveryAttempt).order_by(DeliveryAttempt.id)
            if run_id is not None:
                query = query.where(DeliveryAttempt.run_id == run_id)
            return [
                {"run_id": a.run_id, "channel": a.channel, "channel_type": a.channel_type,
                 "mode": a.mode, "idempotency_key": a.idempotency_key, "attempt": a.attempt,
                 "ok": a.ok, "permanent": a.permanent, "error": a.error, "at": _utc(a.at)}
                for a in s.scalars(query)
            ]


# -- helpers ---------------------------------------------------------------------------------


def _bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows in one executemany.

    On SQLite SQLAlchemy's per-row parameter processing costs more than the database
    itself, so the rows go to the driver as tuples, converted the way SQLAlchemy's own
    types would store them (JSON text, UTC timestamps as text, booleans as 0/1).
    """
    if session.bind is None or session.get_bind().dialect.name != "sqlite":
        session.execute(table.insert(), rows)
        return
    from sqlalchemy import JSON, Boolean, DateTime

    columns = list(rows[0])
    converters: list[Any] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, JSON):
            converters.append(lambda v: None if v is None else json.dumps(v))
        elif isinstance(kind, DateTime):
            converters.append(lambda v: v.astimezone(timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S.%f"))
        elif isinstance(kind, Boolean):
            converters.append(lambda v: None if v is None else int(v))
        else:
            converters.append(None)
    pairs = list(zip(columns, converters, strict=True))
    values = [tuple(row[c] if f is None else f(row[c]) for c, f in pairs) for row in rows]
    placeholders = ", ".join("?" for _ in columns)
    session.connection().exec_driver_sql(
        f'INSERT INTO {table.name} ({", ".join(columns)}) VALUES ({placeholders})', values)


_WAL_SWITCH_SECONDS = 30.0


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # overlapping runs wait instead of failing
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """WAL, so readers never block the writer; retried while another process holds a lock.

    Two processes opening a new database race to switch it, and the loser gets "database
    is locked" at once: SQLite refuses to wait when waiting could deadlock, so busy_timeout
    does not help. It clears as soon as the winner's first transaction ends. A database
    that cannot be WAL (in memory) just keeps its mode.
    """
    import sqlite3  # here, not at the top: PostgreSQL users never load it

    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _sqlite_under_tmp(url: str) -> str:
    """Inside FunctionGraph only /tmp is writable, and it dies with the instance."""
    parsed = make_url(url)
    database = parsed.database or "drs-report.db"
    if database != ":memory:" and not database.startswith("/tmp/"):
        moved = str(Path("/tmp") / Path(database).name)
        log.warning("SQLite history at %s lives only as long as this function instance; "
                    "set store.url to PostgreSQL for history that lasts", moved)
        return parsed.set(database=moved).render_as_string(hide_password=False)
    log.warning("SQLite history at %s lives only as long as this function instance; set "
                "store.url to PostgreSQL for history that lasts", database)
    return url


def _one_line(error: BaseException, url: str) -> str:
    original = getattr(error, "orig", None) or error
    message = " ".join(str(original).split()) or type(original).__name__
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return logs.redact(message)[:300]


def _error_fields(error: FetchError | None) -> dict[str, Any]:
    if error is None:
        return {"fetch_error_kind": None, "fetch_error_message": None,
                "fetch_error_status": None, "fetch_error_code": None}
    return {"fetch_error_kind": error.kind.value, "fetch_error_message": error.message,
            "fetch_error_status": error.status, "fetch_error_code": error.error_code}


def _job_row(run_id: int, taken_at: datetime, reading: JobReading) -> dict[str, Any]:
    p = reading.progress
    row: dict[str, Any] = {"run_id": run_id, "taken_at": taken_at, "job_id": reading.job_id,
                           "name": reading.name, **_error_fields(reading.error)}
    if p is None:
        row.update(progress=None, incre_trans_delay=None, incre_trans_delay_millis=None,
                   task_mode=None, transfer_status=None, process_time=None,
                   remaining_time=None, progress_map=None, error_code=None, error_msg=None,
                   apply_rows_rate=None, apply_bytes_rate=None, raw=None)
        return row
    row.update(
        progress=p.progress, incre_trans_delay=p.incre_trans_delay,
        incre_trans_delay_millis=p.incre_trans_delay_millis, task_mode=p.task_mode,
        transfer_status=p.transfer_status, process_time=p.process_time,
        remaining_time=p.remaining_time,
        progress_map={k: {"completed": v.completed, "remaining_time": v.remaining_time}
                      for k, v in p.progress_map.items()},
        error_code=p.error_code, error_msg=p.error_msg, apply_rows_rate=p.apply_rows_rate,
        apply_bytes_rate=p.apply_bytes_rate, raw=p.raw,
    )
    return row


def _compare_row(run_id: int, taken_at: datetime, job_id: str, position: int,
                 comp: CompareReading) -> dict[str, Any]:
    p = comp.progress
    full = p.full_info if p else None
    incre = p.incre_info if p else None
    glob = p.global_info if p else None
    return {
        "run_id": run_id, "taken_at": taken_at, "job_id": job_id,
        "compare_job_id": comp.compare_job_id, "position": position,
        "has_full_info": full is not None,
        "full_progress": full and full.progress, "full_src_speed": full and full.src_speed,
        "full_src_speed_bytes": full and full.src_speed_bytes,
        "full_recheck_entities": full and full.recheck_entities,
        "has_incre_info": incre is not None,
        "incre_delay": incre and incre.delay, "incre_src_speed": incre and incre.src_speed,
        "incre_src_speed_bytes": incre and incre.src_speed_bytes,
        "incre_rps": incre and incre.rps, "incre_log_point": incre and incre.log_point,
        "incre_recheck_entities": incre and incre.recheck_entities,
        "has_global_info": glob is not None,
        "global_src_speed": glob and glob.src_speed,
        "global_src_speed_bytes": glob and glob.src_speed_bytes,
        "raw": p.raw if p else None,
        **_error_fields(comp.error),
    }


def _error_from(kind: str | None, message: str | None, status: int | None,
                code: str | None) -> FetchError | None:
    if kind is None:
        return None
    try:
        parsed = FetchErrorKind(kind)
    except ValueError:
        parsed = FetchErrorKind.HTTP_ERROR
    return FetchError(parsed, message or "", status, code)


def _reading_from_row(row: JobSnapshot, comps: list[CompareSnapshot]) -> JobReading:
    progress = None
    if row.transfer_status is not None or row.progress is not None or row.error_code:
        progress = JobProgress(
            job_id=row.job_id, progress=row.progress, incre_trans_delay=row.incre_trans_delay,
            incre_trans_delay_millis=row.incre_trans_delay_millis, task_mode=row.task_mode,
            transfer_status=row.transfer_status, process_time=row.process_time,
            remaining_time=row.remaining_time,
            progress_map={k: ProgressInfo(v.get("completed"), v.get("remaining_time"))
                          for k, v in (row.progress_map or {}).items() if isinstance(v, dict)},
            error_code=row.error_code, error_msg=row.error_msg,
            apply_rows_rate=row.apply_rows_rate, apply_bytes_rate=row.apply_bytes_rate,
            raw=row.raw or {},
        )
    return JobReading(
        job_id=row.job_id, name=row.name, progress=progress,
        error=_error_from(row.fetch_error_kind, row.fetch_error_message,
                          row.fetch_error_status, row.fetch_error_code),
        comparisons=[_comparison_from_row(c) for c in comps],
    )


def _comparison_from_row(c: CompareSnapshot) -> CompareReading:
    progress = None
    if c.has_full_info or c.has_incre_info or c.has_global_info:
        progress = CompareProgress(
            full_info=CompareFullInfo(c.full_progress, c.full_src_speed, c.full_src_speed_bytes,
                                      c.full_recheck_entities) if c.has_full_info else None,
            incre_info=CompareIncreInfo(c.incre_delay, c.incre_src_speed,
                                        c.incre_src_speed_bytes, c.incre_rps,
                                        c.incre_log_point, c.incre_recheck_entities)
            if c.has_incre_info else None,
            global_info=CompareGlobalInfo(c.global_src_speed, c.global_src_speed_bytes)
            if c.has_global_info else None,
            raw=c.raw or {},
        )
    return CompareReading(
        compare_job_id=c.compare_job_id, progress=progress,
        error=_error_from(c.fetch_error_kind, c.fetch_error_message, c.fetch_error_status,
                          c.fetch_error_code),
    )


def _error_json(error: FetchError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"kind": error.kind.value, "message": error.message, "status": error.status,
            "error_code": error.error_code}


def reading_to_json(taken_at: datetime, reading: JobReading) -> dict[str, Any]:
    """A reading in the API's field names (the `history --format json` shape)."""
    p = reading.progress
    data: dict[str, Any] = {"taken_at": taken_at.isoformat(), "job_id": reading.job_id,
                            "name": reading.name}
    fields = ("progress", "transfer_status", "task_mode", "incre_trans_delay",
              "incre_trans_delay_millis", "remaining_time", "process_time", "apply_rows_rate",
              "apply_bytes_rate", "error_code", "error_msg")
    for name in fields:
        data[name] = getattr(p, name) if p else None
    data["progress_map"] = ({k: {"completed": v.completed, "remaining_time": v.remaining_time}
                             for k, v in p.progress_map.items()} if p else {})
    data["error"] = _error_json(reading.error)
    comparisons = []
    for comp in reading.comparisons:
        cp = comp.progress
        comparisons.append({
            "compare_job_id": comp.compare_job_id,
            "full_info": _info_json(cp.full_info) if cp else None,
            "incre_info": _info_json(cp.incre_info) if cp else None,
            "global_info": _info_json(cp.global_info) if cp else None,
            "error": _error_json(comp.error),
        })
    data["comparisons"] = comparisons
    return data


def _info_json(info: Any) -> dict[str, Any] | None:
    if info is None:
        return None
    return {name: getattr(info, name) for name in info.__dataclass_fields__}
