"""Cutover readiness: the rules from stored histories, the keys, the report, the alert, the
command, the function's summary.

Histories are written through the store (SQLite and PostgreSQL) and read back as a run
reads them, so the verdicts rest on what the store really returns: times, order, comparisons,
failed readings.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from drs_report.analysis import analyse
from drs_report.config import ReadinessConfig, parse_settings
from drs_report.emulator import Emulator
from drs_report.emulator.scenario import scenario_from_dict
from drs_report.errors import ConfigError
from drs_report.models import (
    CompareFullInfo,
    CompareIncreInfo,
    CompareProgress,
    CompareReading,
    FetchError,
    FetchErrorKind,
    JobProgress,
    JobReading,
    Snapshot,
)
from drs_report.pipeline import run_cycle
from drs_report.readiness import Readiness, judge
from drs_report.render import MARKDOWN_MAX_BYTES, Words, render_all, render_chat, text_inert
from tests.fixtures.emulator import CANARY_SK, CANARY_TOKEN, canary_credentials, make_emulator
from tests.fixtures.receivers import WEBHOOK_SECRET, Receiver
from tests.report_fixtures import NOW, cid, jid, large_fleet

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=timezone.utc)
JOB = jid(41)
DEFAULT = ReadinessConfig()  # 5 s for 30 minutes


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def incremental(delay: float, *, minute: float, progress: float = 100.0,
                mode: str = "FULL_INCR_TRANS", state: str = "INCRE_TRANSFER_STARTED",
                process_time: int | None = None) -> JobProgress:
    """A batch-progress answer; the service's process_time moves with the clock unless
    frozen (a stall)."""
    return JobProgress(
        job_id=JOB, progress=progress, incre_trans_delay=round(delay),
        incre_trans_delay_millis=round(delay * 1000), task_mode=mode, transfer_status=state,
        process_time=int(at(minute).timestamp() * 1000) if process_time is None
        else process_time, remaining_time=0)


def comparison(*, full_rows: int = 0, incre_rows: int = 0, full_progress: float = 100.0,
               delay: float | None = 1.5, incremental_info: bool = True) -> CompareReading:
    incre = CompareIncreInfo(delay, "1.20KB/s", 1228.8, 30, "lp:1", incre_rows) \
        if incremental_info else None
    return CompareReading(cid(41), progress=CompareProgress(
        full_info=CompareFullInfo(full_progress, "0.00B/s", 0.0, full_rows), incre_info=incre))


def compare_failed() -> CompareReading:
    return CompareReading(cid(41), error=FetchError(FetchErrorKind.HTTP_ERROR,
                                                    "HTTP 503 from drs.example after 4 tries",
                                                    503))


def reading(progress: JobProgress | None, comparisons: Sequence[CompareReading] = (),
            error: FetchError | None = None) -> JobReading:
    return JobReading(JOB, "orders", progress, error, list(comparisons))


def steady(minutes: Sequence[float], delay: float = 2.0, **kw: Any
           ) -> list[tuple[float, JobReading]]:
    """Readings of a steady incremental job with a consistent comparison."""
    return [(m, reading(incremental(delay, minute=m), [comparison(**kw)])) for m in minutes]


def store_history(store: Any, points: Sequence[tuple[float, JobReading]]) -> None:
    """Each reading as one run's snapshot, as a run writes it."""
    for minute, item in points:
        run_id = store.begin_run(trigger="timer", started_at=at(minute))
        store.save_snapshot(run_id, Snapshot(taken_at=at(minute), jobs=[item]))


def verdict(store: Any, now_minute: float, config: ReadinessConfig = DEFAULT, *,
            stall_minutes: float = 30.0) -> Readiness:
    """The verdict at `now_minute`, from the store's history as a run reads it."""
    now = at(now_minute)
    history = store.history([JOB], since=now - timedelta(hours=24))
    return judge(JOB, "orders", history[JOB], config, stall_minutes=stall_minutes, now=now)


def codes(item: Readiness) -> dict[str, str]:
    return {c.code: c.status for c in item.checks}


def sentences(item: Readiness, language: str = "en-us") -> list[str]:
    return Words(language, "UTC").readiness_sentences(item, text_inert)


# -- the delay rule -------------------------------------------------------------------------


def test_a_delay_exactly_at_the_threshold_for_the_whole_window_is_ready(store: Any) -> None:
    store_history(store, steady([0, 10, 20, 30], delay=5.0))
    item = verdict(store, 30)
    assert item.verdict == "ready", item.checks
    assert codes(item) == {"full_done": "met", "delay_steady": "met",
                           "compare_consistent": "met"}
    assert item.steady_seconds == 1800 and item.interval_seconds == 600
    assert sentences(item) == ["delay 5s, at or below 5s for 30m (needs 30m)",
                               "1 comparison consistent"]


def test_a_millisecond_over_the_threshold_restarts_the_steady_period(store: Any) -> None:
    points = steady([0, 10, 20, 30], delay=5.0)
    points[1] = (10, reading(incremental(5.001, minute=10), [comparison()]))
    store_history(store, points)
    item = verdict(store, 30)
    assert item.verdict == "not_ready"
    check = next(c for c in item.checks if c.code == "steady_too_short")
    assert check.params["steady"] == 600 and check.params["then"] == pytest.approx(5.001)
    # Said with tenths, so it does not read as the 5 s it exceeds.
    assert Words("en-us", "UTC").seconds(5.001) == "5.0s"
    assert "delay 5s, needs ≤ 5s for 30m; steady for 10m so far" in sentences(item)


def test_a_job_that_becomes_ready_and_falls_back(store: Any) -> None:
    store_history(store, steady([0, 10, 20], delay=30.0) + steady([30, 40, 50]))
    item = verdict(store, 50)
    assert item.verdict == "not_ready" and item.steady_seconds == 1200
    assert item.wait_seconds == 600
    assert "delay 2s, needs ≤ 5s for 30m; steady for 20m so far" in sentences(item)
    store_history(store, steady([60]))
    assert verdict(store, 60).verdict == "ready"
    store_history(store, [(70, reading(incremental(12.0, minute=70), [comparison()]))])
    fallen = verdict(store, 70)
    assert fallen.verdict == "not_ready" and fallen.steady_seconds == 0
    assert sentences(fallen) == ["delay 12s, needs ≤ 5s for 30m"]
    assert sentences(fallen, "zh-cn") == ["时延 12秒，需要连续 30分 不超过 5秒"]


def test_per_job_keys_change_the_threshold_and_the_window(store: Any) -> None:
    store_history(store, steady([0, 10, 20, 30, 40, 50, 60], delay=8.0))
    assert verdict(store, 60).verdict == "not_ready"
    assert verdict(store, 60, ReadinessConfig(max_delay_seconds=10)).verdict == "ready"
    longer = verdict(store, 60, ReadinessConfig(max_delay_seconds=10, stable_minutes=90))
    assert longer.verdict == "unknown"  # an hour of readings, 90 minutes needed
    assert codes(longer)["not_enough_history"] == "unknown"
    assert sentences(longer)[0] == "readings cover 1h of the 1h 30m needed"


def test_the_history_must_cover_the_window(store: Any) -> None:
    store_history(store, steady([0, 10, 20]))
    item = verdict(store, 20)
    assert item.verdict == "unknown" and codes(item)["not_enough_history"] == "unknown"
    assert sentences(item)[0] == "readings cover 20m of the 30m needed"


# -- gaps and old readings -----------------------------------------------------------------------


def test_a_gap_in_the_readings_is_unknown_until_a_full_window_follows(store: Any) -> None:
    store_history(store, steady([0, 10, 20, 30, 40, 90, 100]))
    item = verdict(store, 100)
    assert item.verdict == "unknown", item.checks
    gap = next(c for c in item.checks if c.code == "gap")
    assert gap.params["gap_from"] == at(40) and gap.params["gap_to"] == at(90)
    assert gap.params["gap"] == 3000 and gap.params["interval"] == 600
    assert sentences(item)[0] == (
        "no reading between 2026-11-22 06:40 UTC and 2026-11-22 07:30 UTC (50m; readings come "
        "every 10m, so at most 20m); steady for 10m since, needs 30m")
    store_history(store, steady([110, 120]))
    assert verdict(store, 120).verdict == "ready"  # the gap is older than the window


def test_readings_that_failed_count_as_missing(store: Any) -> None:
    failed = FetchError(FetchErrorKind.NETWORK, "connection refused by drs.example")
    points = steady([0, 10, 20, 30]) + [(m, reading(None, error=failed)) for m in (40, 50, 60)]
    store_history(store, points + steady([70, 80]))
    item = verdict(store, 80)
    assert item.verdict == "unknown" and codes(item)["gap"] == "unknown"
    # The run interval is still the timer's: failed readings were taken on schedule too.
    assert item.interval_seconds == 600


def test_a_gap_within_twice_the_interval_is_not_one(store: Any) -> None:
    # Every 30 minutes, as the demo's day: 60 minutes between two readings is allowed.
    store_history(store, steady([0, 30, 60, 120, 150]))
    assert verdict(store, 150).verdict == "ready"
    store_history(store, steady([211, 240]))  # 61 minutes after the one before
    assert codes(verdict(store, 240))["gap"] == "unknown"


def test_an_overlapping_run_does_not_change_the_interval(store: Any) -> None:
    # A retried run 12 s after another splits one spacing in two; the median barely moves
    # (a mean would say 7.5 minutes, and twice that would be the largest gap allowed).
    store_history(store, steady([0, 10, 20, 20.2, 30]))
    item = verdict(store, 30)
    assert item.interval_seconds == pytest.approx(600, rel=0.02) and item.verdict == "ready"


def test_an_old_latest_reading_is_not_read_as_now(store: Any) -> None:
    store_history(store, steady([0, 10, 20, 30, 40]))
    assert verdict(store, 60).verdict == "ready"  # 20 minutes: twice the interval
    item = verdict(store, 61)
    assert item.verdict == "unknown" and list(codes(item)) == ["stale"]


def test_a_latest_reading_that_could_not_be_read_is_unknown(store: Any) -> None:
    missing = FetchError(FetchErrorKind.MISSING, "the batch-progress answer did not include "
                                                 "this job")
    store_history(store, steady([0, 10, 20, 30]) + [(40, reading(None, error=missing))])
    item = verdict(store, 40)
    assert item.verdict == "unknown" and codes(item) == {"not_read": "unknown"}
    assert sentences(item) == ["the latest reading (2026-11-22 06:40 UTC) did not include "
                               "the job (missing from the batch-progress answer)"]


# -- comparisons ---------------------------------------------------------------------------------


def test_a_comparison_that_goes_stale_is_unknown(store: Any) -> None:
    job = incremental
    points = steady([0, 10, 20, 30]) + [
        (m, reading(job(2.0, minute=m), [compare_failed()])) for m in (40, 50, 60)]
    store_history(store, points)
    # Its last good reading (minute 30) is 30 minutes old: still recent enough.
    assert verdict(store, 60).verdict == "ready"
    store_history(store, [(70, reading(job(2.0, minute=70), [compare_failed()]))])
    item = verdict(store, 70)
    assert item.verdict == "unknown"
    stale = next(c for c in item.checks if c.code == "compare_stale")
    assert stale.params["at"] == at(30) and stale.compare_job_id == cid(41)
    assert sentences(item) == ["comparison 00000041: last read 2026-11-22 06:30 UTC, 40m ago; "
                               "needs a reading within 30m"]


@pytest.mark.parametrize(("full_rows", "incre_rows"), [(3, 0), (0, 2)])
def test_inconsistent_rows_in_full_or_incremental_hold_the_job_back(
        store: Any, full_rows: int, incre_rows: int) -> None:
    store_history(store, steady([0, 10, 20, 30], full_rows=full_rows, incre_rows=incre_rows))
    item = verdict(store, 30)
    assert item.verdict == "not_ready"
    check = next(c for c in item.checks if c.code == "compare_inconsistent")
    assert check.params == {"rows": full_rows + incre_rows, "full": full_rows,
                            "incremental": incre_rows}
    assert codes(item)["delay_steady"] == "met"  # the delay alone would have been fine
    n = full_rows + incre_rows
    assert sentences(item) == [f"comparison 00000041: {n} inconsistent rows (full {full_rows}, "
                               f"incremental {incre_rows}), needs 0"]


def test_a_comparison_still_comparing_or_lagging_holds_the_job_back(store: Any) -> None:
    store_history(store, steady([0, 10, 20, 30], full_progress=87.5))
    assert codes(verdict(store, 30))["compare_full_running"] == "not_ready"
    store_history(store, steady([40, 50, 60], delay=2.0) + [
        (70, reading(incremental(2.0, minute=70), [comparison(delay=9.0)]))])
    item = verdict(store, 70)
    assert codes(item)["compare_delay"] == "not_ready"
    assert sentences(item) == ["comparison 00000041: incremental comparison delay 9s, "
                               "needs ≤ 5s"]


def test_a_comparison_not_found_cannot_be_confirmed(store: Any) -> None:
    gone = CompareReading(cid(41), error=FetchError(
        FetchErrorKind.NOT_FOUND, "HTTP 400 DRS.10000010: Task information not found.", 400,
        "DRS.10000010"))
    store_history(store, [(m, reading(incremental(2.0, minute=m), [gone]))
                          for m in (0, 10, 20, 30)])
    item = verdict(store, 30)
    assert item.verdict == "unknown" and codes(item)["compare_not_found"] == "unknown"


def test_a_definite_no_wins_over_a_dont_know(store: Any) -> None:
    gone = CompareReading(cid(41), error=FetchError(FetchErrorKind.NOT_FOUND, "not found"))
    store_history(store, [(m, reading(incremental(40.0, minute=m), [gone]))
                          for m in (0, 10, 20, 30)])
    item = verdict(store, 30)
    assert item.verdict == "not_ready"
    assert [c.code for c in item.missing] == ["delay_above", "compare_not_found"]


def test_a_job_without_comparisons_says_consistency_was_not_checked(store: Any) -> None:
    store_history(store, [(m, reading(incremental(2.0, minute=m))) for m in (0, 10, 20, 30)])
    item = verdict(store, 30)
    assert item.verdict == "ready" and codes(item)["no_comparisons"] == "note"
    assert "no comparison configured: consistency not checked" in sentences(item)


# -- failure, pause and stall in the window ------------------------------------------------------


@pytest.mark.parametrize(("state", "code"), [("INCRE_TRANSFER_FAILED", "failed_in_window"),
                                             ("PAUSING", "paused_in_window")])
def test_a_failure_or_pause_within_the_window(store: Any, state: str, code: str) -> None:
    points = steady([0, 10]) + [(20, reading(incremental(2.0, minute=20, state=state),
                                             [comparison()]))] + steady([30, 40, 50])
    store_history(store, points)
    item = verdict(store, 50)
    assert item.verdict == "not_ready"
    check = next(c for c in item.checks if c.code == code)
    assert check.params["at"] == at(20) and check.params["steady"] == 1200
    store_history(store, steady([60]))
    assert verdict(store, 60).verdict == "ready"  # 30 minutes since: out of the window


def test_a_stall_within_the_window(store: Any) -> None:
    frozen = int(at(0).timestamp() * 1000)
    points = [(m, reading(incremental(2.0, minute=m, process_time=frozen), [comparison()]))
              for m in (0, 10, 20, 30, 40)]
    store_history(store, points)
    stalled = verdict(store, 40)
    assert stalled.verdict == "not_ready" and codes(stalled)["stalled"] == "not_ready"
    assert sentences(stalled) == ["stalled: the progress marker has not moved for 30m or more"]
    store_history(store, steady([50, 60]))
    item = verdict(store, 60)
    check = next(c for c in item.checks if c.code == "stalled_in_window")
    assert check.params["at"] == at(40) and check.params["steady"] == 600
    # With a longer stall_minutes the same readings are no stall at all.
    assert verdict(store, 60, stall_minutes=60).verdict == "ready"


# -- phases ----------------------------------------------------------------------------------------


def test_a_full_only_job_is_ready_when_complete_and_consistent(store: Any) -> None:
    def full(minute: float, progress: float, state: str, **kw: Any) -> tuple[float, JobReading]:
        p = JobProgress(job_id=JOB, progress=progress, task_mode="FULL_TRANS",
                        transfer_status=state, remaining_time=0)
        return minute, reading(p, [comparison(incremental_info=False, **kw)])

    store_history(store, [full(0, 80, "FULL_TRANSFER_STARTED"),
                          full(10, 95, "FULL_TRANSFER_STARTED")])
    running = verdict(store, 10)
    assert running.verdict == "not_ready" and sentences(running) == [
        "full migration at 95%; cutover needs it complete"]
    store_history(store, [full(20, 100, "FULL_TRANSFER_COMPLETE")])
    item = verdict(store, 20)
    assert item.verdict == "ready", item.checks  # no steady period for a full-only job
    assert codes(item) == {"full_complete": "met", "compare_consistent": "met"}
    store_history(store, [full(30, 100, "FULL_TRANSFER_COMPLETE", full_rows=4)])
    assert codes(verdict(store, 30))["compare_inconsistent"] == "not_ready"


def test_a_full_only_job_that_failed_within_the_window(store: Any) -> None:
    def full(minute: float, state: str) -> tuple[float, JobReading]:
        p = JobProgress(job_id=JOB, progress=100.0 if "COMPLETE" in state else 50.0,
                        task_mode="FULL_TRANS", transfer_status=state, remaining_time=0)
        return minute, reading(p)

    store_history(store, [full(0, "FULL_TRANSFER_FAILED"), full(10, "FULL_TRANSFER_STARTED"),
                          full(20, "FULL_TRANSFER_COMPLETE")])
    assert codes(verdict(store, 20))["failed_in_window"] == "not_ready"
    store_history(store, [full(40, "FULL_TRANSFER_COMPLETE")])
    assert verdict(store, 40).verdict == "ready"


@pytest.mark.parametrize(("progress", "state", "mode", "expected"), [
    (100.0, "FULL_TRANSFER_COMPLETE", "FULL_INCR_TRANS", "incremental_not_started"),
    (97.0, "INCRE_TRANSFER_STARTED", "FULL_INCR_TRANS", "full_not_done"),
    (100.0, "CONFIGURATION", "FULL_INCR_TRANS", "not_started"),
    (100.0, "RELEASE_RESOURCE_COMPLETE", "FULL_INCR_TRANS", "ended"),
    (100.0, "INCRE_TRANSFER_FAILED", "FULL_INCR_TRANS", "failed"),
])
def test_states_that_are_not_ready(store: Any, progress: float, state: str, mode: str,
                                   expected: str) -> None:
    store_history(store, [(m, reading(incremental(1.0, minute=m, progress=progress,
                                                  state=state, mode=mode), [comparison()]))
                          for m in (0, 10, 20, 30)])
    item = verdict(store, 30)
    assert item.verdict == "not_ready" and codes(item)[expected] == "not_ready"


def test_an_incremental_only_job_has_no_full_phase_to_finish(store: Any) -> None:
    # INCR_TRANS jobs report progress 0: there is no full phase to wait for.
    store_history(store, [(m, reading(incremental(1.0, minute=m, progress=0.0,
                                                  mode="INCR_TRANS"), [comparison()]))
                          for m in (0, 10, 20, 30)])
    item = verdict(store, 30)
    assert item.verdict == "ready" and "full_done" not in codes(item)
