"""Turn DRS API answers into typed readings.

The service writes numbers as strings ("100", "1", ""), percentages as "94%", speeds as
"12.40MB/s". Every parser here is total: any JSON value in, a model out, never an exception;
what cannot be read becomes None and the original stays in `raw`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from drs_report.models import (
    CompareFullInfo,
    CompareGlobalInfo,
    CompareIncreInfo,
    CompareProgress,
    JobProgress,
    ProgressInfo,
)

# Binary units, as the DRS console and most database tools mean them ("MB/s" = 2**20 B/s).
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SPEED_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([KMGTP]?)i?B?\s*(?:/\s*s)?\s*$",
                       re.IGNORECASE)


def to_float(value: Any) -> float | None:
    """"100" -> 100.0, "94%" -> 94.0, 9.58 -> 9.58; "", None, "n/a", true -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def to_int(value: Any) -> int | None:
    number = to_float(value)
    if number is None or abs(number) > 2**63 - 1:
        return None
    return int(number)


def to_text(value: Any) -> str | None:
    """Strings stay (empty -> None); numbers become their text; anything else -> None."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return None


def parse_speed(value: Any) -> float | None:
    """"12.40MB/s" -> bytes per second (binary units); "0.00B/s" -> 0.0; junk -> None."""
    if not isinstance(value, str):
        return None
    match = _SPEED_RE.match(value)
    if match is None:
        return None
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_job_progress(data: Any) -> JobProgress:
    """One element of batch-progress `results` (QueryProgressResp)."""
    d = _as_dict(data)
    progress_map: dict[str, ProgressInfo] = {}
    for key, info in _as_dict(d.get("progress_map")).items():
        info_d = _as_dict(info)
        progress_map[str(key)] = ProgressInfo(
            completed=to_float(info_d.get("completed")),
            remaining_time=to_text(info_d.get("remaining_time")),
        )
    return JobProgress(
        job_id=to_text(d.get("job_id")) or "",
        progress=to_float(d.get("progress")),
        incre_trans_delay=to_float(d.get("incre_trans_delay")),
        incre_trans_delay_millis=to_int(d.get("incre_trans_delay_millis")),
        task_mode=to_text(d.get("task_mode")),
        transfer_status=to_text(d.get("transfer_status")),
        process_time=to_int(d.get("process_time")),
        remaining_time=to_int(d.get("remaining_time")),
        progress_map=progress_map,
        error_code=to_text(d.get("error_code")),
        error_msg=to_text(d.get("error_msg")),
        apply_rows_rate=to_int(d.get("apply_rows_rate")),
        apply_bytes_rate=to_int(d.get("apply_bytes_rate")),
        raw=d,
    )


def parse_compare_progress(data: Any) -> CompareProgress:
    """The answer of compare-progress: full_info, incre_info, global_info."""
    d = _as_dict(data)
    full = incre = glob = None
    if isinstance(d.get("full_info"), dict):
        f = d["full_info"]
        full = CompareFullInfo(
            progress=to_float(f.get("progress")),
            src_speed=to_text(f.get("src_speed")),
            src_speed_bytes=parse_speed(f.get("src_speed")),
            recheck_entities=to_int(f.get("recheck_entities")),
        )
    if isinstance(d.get("incre_info"), dict):
        i = d["incre_info"]
        incre = CompareIncreInfo(
            delay=to_float(i.get("delay")),
            src_speed=to_text(i.get("src_speed")),
            src_speed_bytes=parse_speed(i.get("src_speed")),
            rps=to_int(i.get("rps")),
            log_point=to_text(i.get("log_point")),
            recheck_entities=to_int(i.get("recheck_entities")),
        )
    if isinstance(d.get("global_info"), dict):
        g = d["global_info"]
        glob = CompareGlobalInfo(src_speed=to_text(g.get("src_speed")),
                                 src_speed_bytes=parse_speed(g.get("src_speed")))
    return CompareProgress(full_info=full, incre_info=incre, global_info=glob, raw=d)


def error_fields(data: Any) -> tuple[str | None, str | None]:
    """(error_code, error_msg) of an error answer, whatever its shape."""
    d = _as_dict(data)
    code = to_text(d.get("error_code")) or to_text(d.get("code"))
    msg = to_text(d.get("error_msg")) or to_text(d.get("message")) or to_text(d.get("msg"))
    return code, msg
