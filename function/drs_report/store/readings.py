"""Readings: each run's job and comparison snapshots, written in bulk, read back as history.

Column names are the API's; `reading_to_json` gives the `history --format json` shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

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
from drs_report.store import sanitise
from drs_report.store.engine import IN_CHUNK, StoreBase, utc
from drs_report.store.schema import CompareSnapshot, JobSnapshot, Run


class ReadingsMixin(StoreBase):
    def save_snapshot(self, run_id: int, snapshot: Snapshot) -> None:
        """Every reading of the run, in one transaction: all or nothing."""
        job_rows: list[dict[str, Any]] = []
        compare_rows: list[dict[str, Any]] = []
        raw = self.keeps_raw_answers
        for reading in snapshot.jobs:
            job_rows.append(_job_row(run_id, snapshot.taken_at, reading, raw=raw))
            for position, comp in enumerate(reading.comparisons):
                compare_rows.append(_compare_row(run_id, snapshot.taken_at, reading.job_id,
                                                 position, comp, raw=raw,
                                                 project_id=reading.project_id))
        with self._session("saving the snapshot") as s:
            if job_rows:
                bulk_insert(s, JobSnapshot.__table__, job_rows)
            if compare_rows:
                bulk_insert(s, CompareSnapshot.__table__, compare_rows)
            s.execute(update(Run).where(Run.id == run_id).values(
                requests=snapshot.requests, partial=snapshot.partial))


    def history(self, job_ids: Sequence[str], since: datetime,
                projects: Mapping[str, str] | None = None
                ) -> dict[str, list[tuple[datetime, JobReading]]]:
        """Readings of these jobs since `since`, per job, oldest first.

        `projects` maps a job id to its target's project: readings of the same id from
        another project are left out (unattributed ones, '' from before revision 0005,
        count for every project).
        """
        result: dict[str, list[tuple[datetime, JobReading]]] = {j: [] for j in job_ids}
        # Ids as stored (an id too long for its column is stored cut, see sanitise.py).
        wanted = {sanitise.stored_id(j): j for j in dict.fromkeys(job_ids)}
        ids = list(wanted)
        with self._session("reading history") as s:
            for i in range(0, len(ids), IN_CHUNK):
                chunk = ids[i:i + IN_CHUNK]
                in_window = (JobSnapshot.job_id.in_(chunk), JobSnapshot.taken_at >= since)
                comps: dict[tuple[int, str, str], list[CompareSnapshot]] = {}
                # A job's comparisons through its job reading: (run_id, job_id) is indexed
                # on both tables, so no index of their own by time is needed.
                for c in s.scalars(select(CompareSnapshot).join(JobSnapshot, and_(
                        JobSnapshot.run_id == CompareSnapshot.run_id,
                        JobSnapshot.project_id == CompareSnapshot.project_id,
                        JobSnapshot.job_id == CompareSnapshot.job_id)).where(*in_window)
                        .order_by(CompareSnapshot.position)):
                    comps.setdefault((c.run_id, c.project_id, c.job_id), []).append(c)
                for row in s.scalars(select(JobSnapshot).where(*in_window)
                                     .order_by(JobSnapshot.taken_at, JobSnapshot.id)):
                    if projects and row.project_id and \
                            projects.get(wanted.get(row.job_id, row.job_id),
                                         row.project_id) != row.project_id:
                        continue
                    reading = _reading_from_row(
                        row, comps.get((row.run_id, row.project_id, row.job_id), []))
                    result[wanted.get(row.job_id, row.job_id)].append((utc(row.taken_at),
                                                                       reading))
        return result

    def projects_of(self, job_id: str) -> list[str]:
        """The projects this job id has readings under ('' for unattributed ones)."""
        with self._session("reading history") as s:
            return sorted(s.scalars(select(JobSnapshot.project_id).where(
                JobSnapshot.job_id == sanitise.stored_id(job_id)).distinct()))

    def readings(self, job_id: str, since: datetime, project_id: str | None = None
                 ) -> list[dict[str, Any]]:
        """One job's readings as JSON-ready dicts in the API's field names, oldest first."""
        out = []
        projects = {job_id: project_id} if project_id else None
        for taken_at, reading in self.history([job_id], since, projects)[job_id]:
            out.append(reading_to_json(taken_at, reading))
        return out


# -- rows <-> readings --------------------------------------------------------------------


def bulk_insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
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


def _error_fields(error: FetchError | None) -> dict[str, Any]:
    if error is None:
        return {"fetch_error_kind": None, "fetch_error_message": None,
                "fetch_error_status": None, "fetch_error_code": None}
    return {"fetch_error_kind": error.kind.value,
            "fetch_error_message": sanitise.text(error.message),
            "fetch_error_status": sanitise.integer(error.status),
            "fetch_error_code": sanitise.code(error.error_code)}


# Every value below came from an API answer: cleaned for every backend (sanitise.py).
_text, _code, _num, _int = sanitise.text, sanitise.code, sanitise.number, sanitise.integer


def _job_row(run_id: int, taken_at: datetime, reading: JobReading, *, raw: bool = True
             ) -> dict[str, Any]:
    p = reading.progress
    row: dict[str, Any] = {"run_id": run_id, "taken_at": taken_at,
                           "job_id": sanitise.stored_id(reading.job_id),
                           "project_id": sanitise.stored_id(reading.project_id),
                           "name": _text(reading.name), **_error_fields(reading.error)}
    if p is None:
        row.update(progress=None, incre_trans_delay=None, incre_trans_delay_millis=None,
                   task_mode=None, transfer_status=None, process_time=None,
                   remaining_time=None, progress_map=None, error_code=None, error_msg=None,
                   apply_rows_rate=None, apply_bytes_rate=None, raw=None)
        return row
    row.update(
        progress=_num(p.progress), incre_trans_delay=_num(p.incre_trans_delay),
        incre_trans_delay_millis=_int(p.incre_trans_delay_millis), task_mode=_code(p.task_mode),
        transfer_status=_code(p.transfer_status), process_time=_int(p.process_time),
        remaining_time=_int(p.remaining_time),
        progress_map=sanitise.json_value(
            {k: {"completed": v.completed, "remaining_time": v.remaining_time}
             for k, v in p.progress_map.items()}),
        error_code=_code(p.error_code), error_msg=_text(p.error_msg),
        apply_rows_rate=_int(p.apply_rows_rate), apply_bytes_rate=_int(p.apply_bytes_rate),
        raw=sanitise.json_value(p.raw) if raw else None,
    )
    return row


def _compare_row(run_id: int, taken_at: datetime, job_id: str, position: int,
                 comp: CompareReading, *, raw: bool = True, project_id: str = ""
                 ) -> dict[str, Any]:
    p = comp.progress
    full = p.full_info if p else None
    incre = p.incre_info if p else None
    glob = p.global_info if p else None
    return {
        "run_id": run_id, "taken_at": taken_at, "job_id": sanitise.stored_id(job_id),
        "project_id": sanitise.stored_id(project_id),
        "compare_job_id": sanitise.stored_id(comp.compare_job_id), "position": position,
        "has_full_info": full is not None,
        "full_progress": _num(full.progress if full else None),
        "full_src_speed": _code(full.src_speed if full else None),
        "full_src_speed_bytes": _num(full.src_speed_bytes if full else None),
        "full_recheck_entities": _int(full.recheck_entities if full else None),
        "has_incre_info": incre is not None,
        "incre_delay": _num(incre.delay if incre else None),
        "incre_src_speed": _code(incre.src_speed if incre else None),
        "incre_src_speed_bytes": _num(incre.src_speed_bytes if incre else None),
        "incre_rps": _int(incre.rps if incre else None),
        "incre_log_point": _text(incre.log_point if incre else None),
        "incre_recheck_entities": _int(incre.recheck_entities if incre else None),
        "has_global_info": glob is not None,
        "global_src_speed": _code(glob.src_speed if glob else None),
        "global_src_speed_bytes": _num(glob.src_speed_bytes if glob else None),
        "raw": sanitise.json_value(p.raw) if p and raw else None,
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
        project_id=row.project_id or "",
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
                            "project_id": reading.project_id or None, "name": reading.name}
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
