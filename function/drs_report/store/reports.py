"""Rendered reports: each run's outputs, and the previous report.json for "what changed"."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import insert, select

from drs_report.store.engine import StoreBase
from drs_report.store.schema import RenderedReport


class ReportsMixin(StoreBase):
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

