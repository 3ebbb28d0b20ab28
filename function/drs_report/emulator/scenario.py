"""Scenarios: DRS jobs whose state is a function of (simulated) time.

A scenario is a TOML file of `[[jobs]]`, each with optional `[[jobs.comparisons]]`. Every
key is optional except `id`; README documents them. The state of a job at `t` seconds after
the scenario's minute 0 is computed, not stored, so any number of clients can ask at once.

A job or comparison may change during the day: each `[[jobs.changes]]` (or
`[[jobs.comparisons.changes]]`) has `at` (minutes) and new values for the spec's other
keys, in force from then on (progress is still computed from minute 0).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

FAILED_STATES = ("FULL_TRANSFER_FAILED", "INCRE_TRANSFER_FAILED", "CREATE_FAILED",
                 "START_JOB_FAILED", "RELEASE_RESOURCE_FAILED")


@dataclass(frozen=True)
class ComparisonSpec:
    id: str
    type: str = "lines"  # lines | contents, as ListDataLevelTableCompareJobs names them
    full_progress: float = 100.0  # percent at t=0
    full_rate: float = 20.0  # percent per minute until 100
    recheck_entities: int = 0
    recheck_growth: float = 0.0  # more inconsistent rows per minute
    incremental: bool = True  # answer incre_info (dynamic comparison)
    log_point_frozen: bool = False
    not_found: bool = False  # answer 400 DRS.10000010
    changes: tuple[tuple[float, dict[str, Any]], ...] = ()  # (at minute, new values)

    def at(self, minutes: float) -> ComparisonSpec:
        return _at(self, minutes)


@dataclass(frozen=True)
class JobSpec:
    id: str
    name: str
    job_type: str = "sync"
    engine_type: str = "mysql-to-gaussdbv5"
    task_mode: str = "FULL_INCR_TRANS"
    full_progress: float = 100.0  # percent at t=0
    full_rate: float = 10.0  # percent per minute until 100
    stalled: bool = False  # progress and process_time frozen from the start
    stall_at: float | None = None  # minutes: progress and process_time frozen from then on
    delay: float = 1.0  # incremental delay, seconds
    delay_swing: float = 0.0  # +- amplitude, seconds
    delay_period: float = 10.0  # minutes per swing
    delay_growth: float = 0.0  # seconds of extra delay per minute (a falling-behind job)
    fail_at: float | None = None  # minutes after start; 0 = already failed
    fail_status: str = "INCRE_TRANSFER_FAILED"
    error_code: str | None = None
    error_msg: str | None = None
    answer: str = "normal"  # normal | omit (missing from batch answer) | error (error_code)
    rows_rate: int = 1200
    bytes_rate: int = 2_400_000
    comparisons: tuple[ComparisonSpec, ...] = ()
    changes: tuple[tuple[float, dict[str, Any]], ...] = ()  # (at minute, new values)

    def at(self, minutes: float) -> JobSpec:
        return _at(self, minutes)

    @property
    def frozen_at(self) -> float | None:
        """The minute progress stops moving, if it does."""
        return 0.0 if self.stalled else self.stall_at


S = TypeVar("S", "JobSpec", "ComparisonSpec")


def _at(spec: S, minutes: float) -> S:
    """The spec as it is at `minutes`: every change whose time has come, applied in order."""
    values: dict[str, Any] = {}
    for at, change in spec.changes:
        if minutes >= at:
            values.update(change)
    return replace(spec, **values) if values else spec


@dataclass
class Scenario:
    jobs: list[JobSpec] = field(default_factory=list)

    def job(self, job_id: str) -> JobSpec | None:
        return self._index.get(job_id)

    def __post_init__(self) -> None:
        self._index = {j.id: j for j in self.jobs}
        self._comparisons = {(j.id, c.id): c for j in self.jobs for c in j.comparisons}

    def comparison(self, job_id: str, compare_id: str) -> ComparisonSpec | None:
        return self._comparisons.get((job_id, compare_id))


def _fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown scenario key(s) {sorted(unknown)} in {cls.__name__}")
    return data


def _changes(cls: type, items: Any) -> tuple[tuple[float, dict[str, Any]], ...]:
    """`[[...changes]]` tables: `at` (minutes) and the keys that change then."""
    fixed = {"id", "name", "comparisons", "changes"}
    parsed = []
    for item in items:
        values = dict(item)
        at = values.pop("at", None)
        if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
            raise ValueError(f"a change in {cls.__name__} needs at = <minutes>")
        if fixed & set(values):
            raise ValueError(f"{sorted(fixed & set(values))} cannot change during a scenario")
        parsed.append((float(at), _fields(cls, values)))
    return tuple(sorted(parsed, key=lambda change: change[0]))


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    jobs = []
    for item in data.get("jobs", []):
        item = dict(item)
        comps = []
        for comp in item.pop("comparisons", []):
            comp = dict(comp)
            changes = _changes(ComparisonSpec, comp.pop("changes", []))
            comps.append(ComparisonSpec(changes=changes, **_fields(ComparisonSpec, comp)))
        changes = _changes(JobSpec, item.pop("changes", []))
        item.setdefault("name", item.get("id", "job"))
        jobs.append(JobSpec(comparisons=tuple(comps), changes=changes,
                            **_fields(JobSpec, item)))
    return Scenario(jobs)


def load_scenario(source: Path | str | None) -> Scenario:
    """A scenario file, or the built-in demo fleet when `source` is None."""
    if source is None:
        text = resources.files("drs_report").joinpath("scenarios/demo.toml").read_text("utf-8")
    else:
        text = Path(source).read_text(encoding="utf-8")
    from drs_report.config import parse_toml

    return scenario_from_dict(parse_toml(text))


def generated_fleet(jobs: int, comparisons_per_job: int = 1, *, seed: int = 7) -> Scenario:
    """A large healthy fleet, for benchmarks: ids derived from the seed, all incremental."""
    specs = []
    for n in range(jobs):
        job_id = _drs_id(seed, n, "jb")
        comps = tuple(ComparisonSpec(id=_drs_id(seed, n * 100 + k, "cp"))
                      for k in range(comparisons_per_job))
        specs.append(JobSpec(id=job_id, name=f"fleet-{n:05d}", delay=1.0 + (n % 7),
                             comparisons=comps))
    return Scenario(specs)


def _drs_id(seed: int, n: int, tail: str) -> str:
    """A DRS-shaped id (8-4-4-4-12, the last part ending like the docs' `...jb21`)."""
    raw = uuid.uuid5(uuid.NAMESPACE_OID, f"drs-report-{seed}-{tail}-{n}").hex
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:28]}{tail}{n % 100:02d}"


# ---------------------------------------------------------------------------------------
# State at time t


def _full_progress(start: float, rate: float, minutes: float) -> float:
    return min(100.0, start + rate * minutes)


def job_state(job: JobSpec, t: float, epoch_ms: int) -> dict[str, Any]:
    """The QueryProgressResp of `job` at `t` seconds, numbers as strings like the service."""
    minutes = t / 60.0
    job = job.at(minutes)
    failed = job.fail_at is not None and minutes >= job.fail_at
    frozen = job.frozen_at
    moving = minutes if frozen is None else min(minutes, frozen)
    progress = _full_progress(job.full_progress, job.full_rate, moving)
    incremental = progress >= 100.0 and job.task_mode != "FULL_TRANS"
    if failed:
        status = job.fail_status
    elif progress < 100.0:
        status = "FULL_TRANSFER_STARTED"
    elif job.task_mode == "FULL_TRANS":
        status = "FULL_TRANSFER_COMPLETE"
    else:
        status = "INCRE_TRANSFER_STARTED"
    delay = 0.0
    if incremental:
        swing = job.delay_swing * math.sin(2 * math.pi * minutes / max(job.delay_period, 0.1))
        delay = max(0.0, job.delay + swing + job.delay_growth * minutes)
    remaining = 0 if progress >= 100 else int((100 - progress) / max(job.full_rate, 0.01) * 60)
    # The service's last progress update: it stops when the job stalls or fails.
    if failed:
        process_ms = epoch_ms + int(min(moving, job.fail_at or 0.0) * 60_000)
    else:
        process_ms = epoch_ms + int(moving * 60_000)
    result: dict[str, Any] = {
        "job_id": job.id,
        "progress": f"{progress:g}",
        "incre_trans_delay": f"{round(delay)}" if incremental else "",
        "incre_trans_delay_millis": f"{int(delay * 1000)}" if incremental else "",
        "task_mode": job.task_mode,
        "transfer_status": status,
        "process_time": str(process_ms),
        "remaining_time": str(remaining),
        "progress_map": {
            "data": {"completed": f"{progress:g}%", "remaining_time": str(remaining)},
            "structure": {"completed": "100%", "remaining_time": "0"},
        },
        "apply_rows_rate": job.rows_rate if incremental and not failed else -1,
        "apply_bytes_rate": job.bytes_rate if incremental and not failed else -1,
    }
    if failed:
        result["error_code"] = job.error_code or "DRS.M03023"
        result["error_msg"] = job.error_msg or "Task failed."
    return result


def compare_state(comp: ComparisonSpec, t: float) -> dict[str, Any]:
    """The compare-progress answer of `comp` at `t` seconds (numbers as JSON numbers)."""
    minutes = t / 60.0
    comp = comp.at(minutes)
    progress = _full_progress(comp.full_progress, comp.full_rate, minutes)
    recheck = comp.recheck_entities + int(comp.recheck_growth * minutes)
    answer: dict[str, Any] = {
        "full_info": {
            "progress": round(progress, 2),
            "src_speed": "12.40MB/s" if progress < 100 else "0.00B/s",
            "recheck_entities": recheck if not comp.incremental else 0,
        },
        "global_info": {"src_speed": "12.40MB/s" if progress < 100 else "0.00B/s"},
    }
    if comp.incremental:
        position = 51 if comp.log_point_frozen else 51 + int(t)
        answer["incre_info"] = {
            "delay": round(1.5 + math.sin(t / 60.0) ** 2 * 8, 2),
            "src_speed": "1.20KB/s",
            "rps": 35,
            "log_point": f"951de1d2-61ee-11f0-8081-fa163ef20ddd:{position}",
            "recheck_entities": recheck,
        }
    return answer


def job_listing(job: JobSpec, t: float) -> dict[str, Any]:
    """The JobListResp of `job` (GET /v5/{project_id}/jobs)."""
    state = job_state(job, t, 0)
    job = job.at(t / 60.0)
    return {
        "id": job.id, "name": job.name, "status": state["transfer_status"],
        "description": "", "create_time": "1700000000000", "engine_type": job.engine_type,
        "net_type": "vpc", "charging_mode": "on_demand", "billing_tag": True,
        "job_direction": "up", "job_type": job.job_type, "task_type": job.task_mode,
        "enterprise_project_id": "0", "job_mode": "single", "is_multi_az": False,
        "node_new_framework": True, "children": [],
    }


def compare_listing(comp: ComparisonSpec, t: float) -> dict[str, Any]:
    """The CompareJobInfo of `comp` (GET /v3/{project_id}/jobs/{job_id}/table/compare)."""
    comp = comp.at(t / 60.0)
    done = _full_progress(comp.full_progress, comp.full_rate, t / 60.0) >= 100
    status = "INCRE_DOING" if comp.incremental else ("SUCCESSFUL" if done else "FULL_DOING")
    return {
        "id": comp.id, "type": comp.type, "start_time": "1700000000000", "end_time": "",
        "status": status, "export_status": "", "report_remain_seconds": 0,
        "compare_job_tag": {}, "proportion_value": "", "options": {},
    }
