"""Runs: one row per cycle, with its trigger, times, outcome, counts and errors.

A run that was killed (`kill -9`, the platform's timeout) or failed before finishing leaves
its row `running`; each run states until when it may run (`lease_until`, its time budget),
and the next run closes the rows past that as `abandoned` (`close_abandoned_runs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from drs_report.store import sanitise
from drs_report.store.engine import StoreBase, utc
from drs_report.store.schema import Run

# A `running` row from before runs stated their lease counts as abandoned after this long.
UNSTATED_LEASE_SECONDS = 900.0


@dataclass(frozen=True)
class AbandonedRun:
    run_id: int
    trigger: str
    started_at: datetime
    lease_until: datetime | None


class RunsMixin(StoreBase):
    def begin_run(self, *, trigger: str, started_at: datetime,
                  lease_until: datetime | None = None) -> int:
        with self._session("starting a run") as s:
            run = Run(trigger=trigger, started_at=started_at, outcome="running", partial=False,
                      counts={}, errors=[], requests=0, lease_until=lease_until)
            s.add(run)
            s.flush()
            self.runs_begun.append(run.id)
            return run.id

    def finish_run(self, run_id: int, *, outcome: str, counts: Mapping[str, int],
                   errors: Sequence[str], partial: bool, finished_at: datetime,
                   only_running: bool = False) -> None:
        """Close the run; `only_running`: unless it was closed already."""
        where = [Run.id == run_id] + ([Run.outcome == "running"] if only_running else [])
        with self._session("finishing the run") as s:
            s.execute(update(Run).where(*where).values(
                outcome=outcome, counts=dict(counts),
                errors=[sanitise.text(e) for e in errors], partial=partial,
                finished_at=finished_at))

    def close_abandoned_runs(self, *, now: datetime, except_run: int | None = None
                             ) -> list[AbandonedRun]:
        """Close `running` rows whose lease ended before `now` as `abandoned`."""
        unstated = now - timedelta(seconds=UNSTATED_LEASE_SECONDS)
        past = and_(Run.outcome == "running", or_(
            Run.lease_until < now, and_(Run.lease_until.is_(None), Run.started_at < unstated)))
        if except_run is not None:
            past = and_(past, Run.id != except_run)
        with self._session("closing abandoned runs") as s:
            found = [AbandonedRun(r.id, r.trigger, utc(r.started_at),
                                  r.lease_until and utc(r.lease_until))
                     for r in s.execute(select(Run.id, Run.trigger, Run.started_at,
                                               Run.lease_until).where(past))]
            if found:
                s.execute(update(Run).where(Run.id.in_([r.run_id for r in found]),
                                            Run.outcome == "running")
                          .values(outcome="abandoned"))
        return found

    def newest_run_start(self, *, except_run: int | None = None) -> tuple[int, datetime] | None:
        """(run id, started_at) of the run that started latest by its own clock."""
        with self._session("reading runs") as s:
            query = select(Run.id, Run.started_at)
            if except_run is not None:
                query = query.where(Run.id != except_run)
            newest = s.execute(query.order_by(Run.started_at.desc(), Run.id.desc())
                               .limit(1)).first()
        return None if newest is None else (newest.id, utc(newest.started_at))

    def runs(self) -> list[dict[str, Any]]:
        with self._session("reading runs") as s:
            return [
                {"id": r.id, "trigger": r.trigger, "started_at": utc(r.started_at),
                 "finished_at": r.finished_at and utc(r.finished_at), "outcome": r.outcome,
                 "partial": r.partial, "counts": r.counts, "errors": r.errors,
                 "requests": r.requests, "lease_until": r.lease_until and utc(r.lease_until)}
                for r in s.scalars(select(Run).order_by(Run.id))
            ]
