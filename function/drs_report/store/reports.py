"""Rendered reports: each run's outputs, and the previous report.json for "what changed".

Stored zlib-compressed (`reports.packed`): a 1,000-job run renders about 1 MB, mostly
report.json, which packs about 15 times smaller; rows from before revision 0003 are plain
text in `reports.content`. `pack` and `unpack` are the only two ways in and out.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from drs_report.errors import StoreError
from drs_report.store.engine import StoreBase
from drs_report.store.schema import RenderedReport

_LEVEL = 6  # written once, read rarely: the better ratio is worth the few milliseconds


def pack(content: str) -> bytes:
    return zlib.compress(content.encode("utf-8", "surrogatepass"), _LEVEL)


def unpack(content: str | None, packed: bytes | None) -> str | None:
    if packed is not None:
        try:
            return zlib.decompress(packed).decode("utf-8", "replace")
        except zlib.error:
            raise StoreError("a stored report is damaged (not zlib data)") from None
    return content


def report_content(session: Session, run_id: int, fmt: str) -> str | None:
    row = session.execute(select(RenderedReport.content, RenderedReport.packed).where(
        RenderedReport.run_id == run_id, RenderedReport.format == fmt)).first()
    return None if row is None else unpack(row.content, row.packed)


class ReportsMixin(StoreBase):
    def save_reports(self, run_id: int, outputs: Mapping[str, str]) -> None:
        now = datetime.now(timezone.utc)
        rows = [{"run_id": run_id, "format": fmt, "created_at": now,
                 "content": "", "packed": pack(content)}
                for fmt, content in outputs.items()]
        if rows:
            with self._session("saving reports") as s:
                s.execute(insert(RenderedReport), rows)

    def report(self, run_id: int, fmt: str) -> str | None:
        with self._session("reading a report") as s:
            return report_content(s, run_id, fmt)

    def previous_report(self, before_run_id: int) -> dict[str, Any] | None:
        """report.json of the latest run before this one that saved its reports."""
        with self._session("reading the previous report") as s:
            row = s.execute(
                select(RenderedReport.content, RenderedReport.packed)
                .where(RenderedReport.run_id < before_run_id, RenderedReport.format == "json")
                .order_by(RenderedReport.run_id.desc()).limit(1)).first()
        if row is None:
            return None
        try:
            data = json.loads(unpack(row.content, row.packed) or "")
        except (ValueError, StoreError):
            return None
        return data if isinstance(data, dict) else None
