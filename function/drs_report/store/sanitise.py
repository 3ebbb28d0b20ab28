"""What every backend accepts: values from outside made storable at the store's boundary.

SQLite takes almost anything; PostgreSQL refuses, and with it the whole transaction:

    a bare NaN / Infinity (1e309) in a `json` column   invalid input syntax for type json
    a NUL byte in any text                              text fields cannot contain NUL
    a lone UTF-16 surrogate ("\\ud800" in JSON)         not valid UTF-8 (SQLite refuses it too)
    a string longer than a VARCHAR(n)                   value too long for type character varying
    an integer beyond 64 bits in a BIGINT               out of range

So every value that came from an API answer, a vendor or an exception is cleaned here, the
same way on both backends: non-finite numbers become null, NUL bytes are dropped, lone
surrogates become U+FFFD, integers beyond 64 bits become null, and text longer than its
column is cut with a mark (`CUT_MARK`) that says so. Identifiers (job and comparison ids) are
cut with a digest of the whole value instead, so two long ids stay two ids, the same id stays
the same stored id from run to run, and `history` finds it again through `stored_id`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

CUT_MARK = "…[cut]"
ID_LENGTH = 64  # VARCHAR(64): job_id, compare_job_id
CODE_LENGTH = 64  # VARCHAR(64): states, task modes, error codes, speeds
TEXT_LENGTH = 16_384  # TEXT: error messages, names; longer is noise, not a message
_INT64 = (-(1 << 63), (1 << 63) - 1)
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_DEPTH = 64  # deeper JSON is cut: nothing we store nests this far


def text(value: str | None, limit: int = TEXT_LENGTH) -> str | None:
    """A string any backend stores: no NUL, no lone surrogate, at most `limit` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    if "\x00" in value:
        value = value.replace("\x00", "")
    if _SURROGATE.search(value):
        value = _SURROGATE.sub("\ufffd", value)
    if len(value) > limit:
        value = value[:limit - len(CUT_MARK)] + CUT_MARK
    return value


def code(value: str | None) -> str | None:
    """A state, mode, code or speed for a VARCHAR(64) column."""
    return text(value, CODE_LENGTH)


def stored_id(value: str) -> str:
    """A job or comparison id as stored: itself, or when too long for its column a cut that
    stays unique and stable (the beginning, the mark, a digest of the whole)."""
    clean = text(value, 1 << 30) or ""
    if len(clean) <= ID_LENGTH and clean == value:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    head = clean[:ID_LENGTH - len(CUT_MARK) - len(digest)]
    return f"{head}{CUT_MARK}{digest}"


def number(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def integer(value: int | None) -> int | None:
    if value is None:
        return None
    try:
        value = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if _INT64[0] <= value <= _INT64[1] else None


def json_value(value: Any, depth: int = 0) -> Any:
    """A JSON document any backend's JSON column takes: the same shape, cleaned inside."""
    if isinstance(value, str):
        return text(value, 1 << 30)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    if depth >= _MAX_DEPTH:
        return CUT_MARK
    if isinstance(value, Mapping):
        return {text(str(k), 1 << 30): json_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, depth + 1) for v in value]
    return text(str(value), 1 << 30)
