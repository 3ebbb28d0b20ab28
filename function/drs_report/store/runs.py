"""Runs: one row per cycle, with its trigger, times, outcome, counts and errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from drs_report.store.engine import StoreBase, utc
from drs_report.store.schema import Run


class RunsMixin(StoreBase):
    def begin_run(self, *, trigger: str, started_at: datetime) -> int:
        with self._session("starting a run") as s:
            run = Run(trigger=trigger, started_at=started_at, outcome="running", partial=False,
                      counts={}, errors=[], requests=0)
            s.add(run)
            s.flush()
            self.runs_begun.append(run.id)
            return run.id


    def finish_run(self, run_id: int, *, outcome: str, counts: Mapping[str, int],
                   errors: Sequence[str], partial: bool, finished_at: datetime) -> None:
        with self._session("finishing the run") as s:
            s.execute(update(Run).where(Run.id == run_id).values(
                outcome=outcome, counts=dict(counts), errors=list(errors), partial=partial,
                finished_at=finished_at))

    def runs(self) -> list[dict[str, Any]]:
        with self._session("reading runs") as s:
            return [
                {"id": r.id, "trigger": r.trigger, "started_at": utc(r.started_at),
                 "finished_at": r.finished_at and utc(r.finished_at), "outcome": r.outcome,
                 "partial": r.partial, "counts": r.counts, "errors": r.errors,
                 "requests": r.requests}
                for r in s.scalars(select(Run).order_by(Run.id))
            ]

