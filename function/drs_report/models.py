"""The readings drs-report works with, as plain typed values.

These classes are the contract between the stages of one run:

    client  -> Snapshot (JobReading, CompareReading)   what the DRS API said, parsed
    store   -> history: list[tuple[datetime, JobReading]] per job, oldest first
    analysis-> the report model (see analysis.py)

Field names are the API's own (`progress`, `incre_trans_delay`, `recheck_entities`, ...), so
a DBA who knows the DRS console or API docs recognises every one. Numbers arrive from the
service as strings ("100", "", "12.40MB/s"); the parsers turn them into numbers or None and
keep the original JSON in `raw`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

JsonDict = dict[str, Any]


class FetchErrorKind(str, Enum):
    """Why a reading could not be obtained (our side of the wire, not the job's state)."""

    API_ERROR = "api_error"  # the service answered error_code/error_msg for this job
    HTTP_ERROR = "http_error"  # non-2xx after retries (5xx, 429, other 4xx)
    AUTH = "auth"  # 401/403: signature, token or clock skew
    NETWORK = "network"  # connection refused/reset, timeout
    MALFORMED = "malformed"  # body was not the JSON shape the API documents
    MISSING = "missing"  # the batch answer did not mention this job
    NOT_FOUND = "not_found"  # 400 DRS.10000010 for a comparison
    SKIPPED = "skipped"  # not fetched: the run's time budget ran out


@dataclass(frozen=True, slots=True)
class FetchError:
    kind: FetchErrorKind
    message: str  # one line, free of secrets; may hold API text (escape when rendering)
    status: int | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressInfo:
    """One entry of `progress_map` (data, structure, index, ...)."""

    completed: float | None  # percent, from "94%" or "94"
    remaining_time: str | None  # as the service wrote it


@dataclass(slots=True)
class JobProgress:
    """One `QueryProgressResp` of `POST /v3/{project_id}/jobs/batch-progress`."""

    job_id: str
    progress: float | None = None  # percent
    incre_trans_delay: float | None = None  # seconds
    incre_trans_delay_millis: int | None = None
    task_mode: str | None = None  # FULL_TRANS | INCR_TRANS | FULL_INCR_TRANS
    transfer_status: str | None = None  # e.g. INCRE_TRANSFER_STARTED, FULL_TRANSFER_FAILED
    process_time: int | None = None  # ms Unix timestamp of the service's last update
    remaining_time: int | None = None  # seconds, the service's own estimate
    progress_map: dict[str, ProgressInfo] = field(default_factory=dict)
    error_code: str | None = None
    error_msg: str | None = None
    apply_rows_rate: int | None = None  # -1 until incremental starts
    apply_bytes_rate: int | None = None  # -1 until incremental starts
    raw: JsonDict = field(default_factory=dict)

    @property
    def delay_seconds(self) -> float | None:
        """The incremental delay in seconds, preferring the millisecond field."""
        if self.incre_trans_delay_millis is not None:
            return self.incre_trans_delay_millis / 1000.0
        return self.incre_trans_delay


@dataclass(frozen=True, slots=True)
class CompareFullInfo:
    progress: float | None = None
    src_speed: str | None = None
    src_speed_bytes: float | None = None  # src_speed in bytes per second
    recheck_entities: int | None = None


@dataclass(frozen=True, slots=True)
class CompareIncreInfo:
    delay: float | None = None
    src_speed: str | None = None
    src_speed_bytes: float | None = None
    rps: int | None = None
    log_point: str | None = None
    recheck_entities: int | None = None


@dataclass(frozen=True, slots=True)
class CompareGlobalInfo:
    src_speed: str | None = None
    src_speed_bytes: float | None = None


@dataclass(slots=True)
class CompareProgress:
    """The answer of `GET /v5/{project_id}/jobs/{job_id}/compare-progress/{compare_job_id}`."""

    full_info: CompareFullInfo | None = None
    incre_info: CompareIncreInfo | None = None
    global_info: CompareGlobalInfo | None = None
    raw: JsonDict = field(default_factory=dict)

    @property
    def recheck_entities(self) -> int | None:
        """Inconsistent rows to review, summed over full and incremental comparison."""
        values = [
            info.recheck_entities
            for info in (self.full_info, self.incre_info)
            if info is not None and info.recheck_entities is not None
        ]
        return sum(values) if values else None


@dataclass(slots=True)
class CompareReading:
    """One comparison of one job in one run: its progress, or why there is none."""

    compare_job_id: str
    progress: CompareProgress | None = None
    error: FetchError | None = None  # kind NOT_FOUND for 400 DRS.10000010


@dataclass(slots=True)
class JobReading:
    """One job in one run: its batch progress (or why there is none) and its comparisons."""

    job_id: str
    name: str | None = None  # the configured label, or the name discovery found
    progress: JobProgress | None = None
    error: FetchError | None = None  # request-level failure, or MISSING from the answer
    comparisons: list[CompareReading] = field(default_factory=list)
    project_id: str = ""  # the target's project ("" in history stored before targets)
    target: str = ""  # the target's name (its region in the single [drs] form)


@dataclass(slots=True)
class TargetRead:
    """How one target (region and project) fared in a run."""

    name: str
    region: str
    project_id: str
    jobs: int = 0  # readings of its jobs
    unread: int = 0  # of them, not read because our requests failed
    cause: str | None = None  # set when nothing of the target could be read: why
    requests: int = 0
    duration_seconds: float = 0.0

    def line(self) -> str:
        """The run error naming this target's outage (once, for all its jobs)."""
        return (f"target {self.name} ({self.region}, project {self.project_id}) could not "
                f"be read: {self.cause}")


@dataclass(slots=True)
class Snapshot:
    """Everything one run fetched."""

    taken_at: datetime  # timezone-aware UTC, when fetching started
    jobs: list[JobReading]
    partial: bool = False  # the time budget ran out before every request was made
    errors: list[str] = field(default_factory=list)  # run-level problems (e.g. discovery)
    requests: int = 0  # HTTP requests made, retries included
    duration_seconds: float = 0.0
    targets: list[TargetRead] = field(default_factory=list)  # per target, in config order
