"""Cutover readiness: the rules from stored histories, the keys, the report, the alert, the
command, the function's summary.

Histories are written through the store (SQLite and PostgreSQL) and read back as a run
reads them, so the verdicts rest on what the store really returns: times, order, comparisons,
failed readings.
"""

from __future__ import annotations

import json
import multiprocessing
import re
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
    store_history(store, [*steady([0, 10, 20, 30]), (40, reading(None, error=missing))])
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
    lagging = reading(incremental(2.0, minute=70), [comparison(delay=9.0)])
    store_history(store, [*steady([40, 50, 60], delay=2.0), (70, lagging)])
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
    event = reading(incremental(2.0, minute=20, state=state), [comparison()])
    points = [*steady([0, 10]), (20, event), *steady([30, 40, 50])]
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
    assert sentences(stalled) == ["stalled: the progress marker has not moved for 40m"]
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


# -- keys -------------------------------------------------------------------------------------

BASE: dict[str, Any] = {"drs": {"region": "cn-north-4",
                                "project_id": "5237e10fe9aa4ad5b16b6a5245248314"},
                        "jobs": [{"id": jid(1)}, {"id": jid(2)}]}


def parsed(env: dict[str, str] | None = None, **sections: Any) -> Any:
    data = json.loads(json.dumps(BASE))
    for name, value in sections.items():
        data[name] = value
    return parse_settings(data, env or {})


def test_readiness_keys_with_their_defaults_and_per_job_overrides() -> None:
    settings = parsed()
    assert settings.readiness == ReadinessConfig(5.0, 30.0)
    settings = parsed(readiness={"max_delay_seconds": 2, "stable_minutes": 45},
                      jobs=[{"id": jid(1), "readiness_stable_minutes": 90}, {"id": jid(2)}])
    assert settings.readiness_of(jid(1)) == ReadinessConfig(2.0, 90.0)  # the global delay
    assert settings.readiness_of(jid(2)) == ReadinessConfig(2.0, 45.0)
    assert settings.readiness_of(jid(9)) == ReadinessConfig(2.0, 45.0)  # a discovered job
    from drs_report.config import load_settings

    from_env = load_settings(None, {"DRS_REPORT_READINESS_STABLE_MINUTES": "15"},
                             overrides=BASE)
    assert from_env.readiness.stable_minutes == 15.0


@pytest.mark.parametrize(("sections", "message"), [
    ({"readiness": {"max_delay_seconds": -1}},
     "readiness.max_delay_seconds: must be at least 0, got -1"),
    ({"readiness": {"stable_minutes": "30"}},
     "readiness.stable_minutes: expected a number, got the string '30'; write it without "
     "quotes: stable_minutes = 30"),
    ({"readiness": {"stable_minute": 30}},
     "readiness.stable_minute: unknown key; did you mean 'stable_minutes'?"),
    ({"readiness": {"stable_minutes": 0.5}},
     "readiness.stable_minutes: must be at least 1, got 0.5"),
    ({"jobs": [{"id": jid(1), "readiness_max_delay": 3}]},
     "jobs[0].readiness_max_delay: unknown key; did you mean 'readiness_max_delay_seconds'?"),
    ({"jobs": [{"id": jid(1), "readiness_stable_minutes": 200000}]},
     "jobs[0].readiness_stable_minutes: 200000 minutes is longer than the 90 days "
     "store.retention_days keeps readings; lower it or raise store.retention_days"),
    ({"readiness": {"stable_minutes": 2880},
      "store": {"url": "sqlite:///h.db", "sync": "obs://bucket/h.db"}},
     "readiness.stable_minutes: 2880 minutes is longer than report.trend_hours (24 h), beyond "
     "which a store kept in OBS (store.sync) keeps one reading an hour; lower it or raise "
     "report.trend_hours"),
])
def test_bad_readiness_keys_are_one_line_naming_the_key(sections: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parsed(**sections)
    assert str(caught.value) == message


def test_the_history_is_read_far_enough_back_for_the_longest_window() -> None:
    from drs_report.readiness import history_minutes

    assert history_minutes(parsed()) == 24 * 60  # the trend window covers 30 minutes
    longer = parsed(jobs=[{"id": jid(1), "readiness_stable_minutes": 1440}])
    assert history_minutes(longer) == 2880


# -- in the report -----------------------------------------------------------------------------

READY_JOB, WAITING_JOB, NEW_JOB = jid(51), jid(52), jid(53)


def three_jobs() -> tuple[Snapshot, dict[str, list[tuple[datetime, JobReading]]], Any]:
    """A ready job, one held back by inconsistent rows, one with twenty minutes of history."""
    def job(job_id: str, name: str, minute: float, rows: int = 0) -> JobReading:
        p = replace(incremental(1.0, minute=minute), job_id=job_id)
        return JobReading(job_id, name, p, comparisons=[comparison(full_rows=rows)])

    history: dict[str, list[tuple[datetime, JobReading]]] = {}
    for minute in (0, 10, 20, 30, 40):
        history.setdefault(READY_JOB, []).append((at(minute), job(READY_JOB, "ledger",
                                                                  minute)))
        history.setdefault(WAITING_JOB, []).append((at(minute), job(WAITING_JOB, "billing",
                                                                    minute, rows=84)))
        if minute >= 20:
            history.setdefault(NEW_JOB, []).append((at(minute), job(NEW_JOB, "crm-v2",
                                                                    minute)))
    snapshot = Snapshot(taken_at=at(40), jobs=[points[-1][1] for points in history.values()])
    settings = parse_settings({**BASE, "jobs": [{"id": j} for j in history]}, {})
    return snapshot, history, settings


@pytest.mark.parametrize("language", ["en-us", "zh-cn"])
def test_every_format_has_the_section_closest_to_ready_first(language: str) -> None:
    snapshot, history, settings = three_jobs()
    settings = replace(settings, drs=replace(settings.drs, language=language))
    report = analyse(snapshot, history, None, settings, now=at(40))
    rendered = render_all(report, settings)
    heading = {"en-us": "Cutover readiness", "zh-cn": "割接就绪"}[language]
    line = {"en-us": "Cutover readiness: 1 ready (ledger), 1 not ready, 1 unknown",
            "zh-cn": "割接就绪\uff1a1 个就绪\uff08ledger\uff09，1 个未就绪，1 个未知"}[language]
    html = rendered["html"]
    assert f">{heading}</h2>" in html and line in html
    section = html.split('id="readiness"', 1)[1].split('id="changes"', 1)[0]
    assert re.findall(r'data-verdict="(\w+)"', section) == ["ready", "not_ready", "unknown"]
    md = rendered["md"]
    assert line in md.splitlines()[:4]  # the one-line verdict, near the top
    section_md = md.split(f"### {heading}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [row.split("**")[2].split(":")[0].strip() for row in section_md] == [
        "ledger", "billing", "crm-v2"]
    txt = rendered["txt"]
    assert f"== {heading} ==\n{line}\n" in txt
    assert txt.index("ledger", txt.index(heading)) < txt.index("billing", txt.index(heading))
    data = json.loads(rendered["json"])["readiness"]
    assert data["counts"] == {"ready": 1, "not_ready": 1, "unknown": 1}
    assert [(j["job_id"], j["verdict"], [m["code"] for m in j["missing"]])
            for j in data["jobs"]] == [
        (READY_JOB, "ready", []), (WAITING_JOB, "not_ready", ["compare_inconsistent"]),
        (NEW_JOB, "unknown", ["not_enough_history"])]
    assert data["jobs"][0]["met"] == ["full_done", "delay_steady", "compare_consistent"]
    assert data["jobs"][1]["missing"][0] == {"code": "compare_inconsistent",
                                             "compare_job_id": cid(41),
                                             "params": {"rows": 84, "full": 84,
                                                        "incremental": 0}}
    assert data["jobs"][2]["missing"][0]["params"]["steady"] == 1200
    if language == "en-us":
        assert "comparison 00000041: 84 inconsistent rows (full 84, incremental 0), needs 0" \
            in txt
        assert "readings cover 20m of the 30m needed" in md


def test_the_section_folds_like_the_rest_and_keeps_its_one_line_verdict() -> None:
    snapshot, settings = large_fleet(500, 60)
    report = analyse(snapshot, {}, None, settings, now=NOW)
    rendered = render_all(report, settings)
    md, html = rendered["md"], rendered["html"]
    assert len(md.encode()) <= MARKDOWN_MAX_BYTES and len(html.encode()) <= 100 * 1024
    assert "Cutover readiness: 60 not ready, 440 unknown" in md
    assert "### Cutover readiness" not in md  # the list folded, the verdict stayed
    assert re.search(r'id="readiness-line"[^>]*>Cutover readiness: 60 not ready, 440 unknown<',
                     html)
    assert 'data-verdict="' not in html
    # The full report (the email's attachment) lists every job.
    assert rendered["html_full"].count('data-verdict="') == 500
    for dialect, limit in (("slack", 3000), ("wecom", 4096)):
        text = render_chat(report, dialect=dialect, max_bytes=limit)
        assert len(text.encode()) <= limit and "60 not ready, 440 unknown" in text


# -- told: one message when a job becomes ready, one when it falls back ------------------------

LEDGER = "7d1e5a2c-3b4f-4a6d-8e9f-0a1b2c3djb31"
LEDGER_COMPARISON = "8e2f6b3d-4c5a-4b7e-9f0a-1b2c3d4e5f61"
CRM = "9f3a7c4e-5d6b-4c8f-8a1b-2c3d4e5fjb32"
CUTOVER_SCENARIO = {"jobs": [
    # Lags until minute 25, steady from then, lags again from minute 75.
    {"id": LEDGER, "name": "ledger: MySQL -> GaussDB", "delay": 20.0,
     "changes": [{"at": 25, "delay": 1.0}, {"at": 75, "delay": 40.0}],
     "comparisons": [{"id": LEDGER_COMPARISON, "incremental": False}]},
    {"id": CRM, "name": "crm: MySQL -> MySQL", "delay": 30.0},
]}


@pytest.fixture
def cutover_emulator() -> Iterator[Emulator]:
    """The two-job fleet above on a stopped clock: only advance() moves it."""
    with make_emulator(scenario=scenario_from_dict(CUTOVER_SCENARIO), speed=0.0,
                       start=datetime.now(timezone.utc) - timedelta(hours=2)) as emulator:
        yield emulator


def alert_channels(webhooks: dict[str, Receiver]) -> list[dict[str, Any]]:
    return [{"type": "webhook", "name": "hook-alert", "mode": "alert",
             "url": webhooks["webhook"].url, "secret": WEBHOOK_SECRET},
            {"type": "slack", "name": "slack-alert", "mode": "alert",
             "url": webhooks["slack"].url}]


def cutover_settings(emulator: Emulator, store_dir: Path, webhooks: dict[str, Receiver],
                     **extra: Any) -> dict[str, Any]:
    from tests.fixtures.emulator import settings_dict

    data = settings_dict(emulator, store_dir)
    data["channels"] = alert_channels(webhooks)
    data.update(extra)
    return data


def readiness_alerts(hook: Receiver) -> list[tuple[list[str], list[str]]]:
    """(became ready, no longer ready) of every alert the webhook received."""
    return [(m.json()["alert"]["ready_for_cutover"], m.json()["alert"]["no_longer_ready"])
            for m in hook.messages()]


def run_at(emulator: Emulator, data: dict[str, Any], minute: float) -> Any:
    emulator.advance(minute * 60 - emulator.elapsed)
    return run_cycle(parse_settings(data, {}), canary_credentials(), now=emulator.now())


def _cycle_in_a_process(data: dict[str, Any], now: str, out: str) -> None:
    from drs_report.config import parse_settings
    from drs_report.pipeline import run_cycle
    from drs_report.store.lease import StoreBusy
    from tests.fixtures.emulator import canary_credentials

    try:
        result = run_cycle(parse_settings(data, {}), canary_credentials(), trigger="timer",
                           now=datetime.fromisoformat(now))
    except StoreBusy:
        Path(out).write_text(json.dumps({"status": "busy"}))
        return
    Path(out).write_text(json.dumps({"status": result.status,
                                     "deliveries": [d.status for d in result.deliveries]}))


def two_instances_at_once(datas: Sequence[dict[str, Any]], now: datetime, tmp_path: Path
                          ) -> list[dict[str, Any]]:
    """Fresh processes, started together, each a run of its own at the same minute."""
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"instance-{i}-{now:%H%M%S}.json" for i in range(len(datas))]
    processes = [context.Process(target=_cycle_in_a_process,
                                 args=(data, now.isoformat(), str(out)))
                 for data, out in zip(datas, outs, strict=True)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    return [json.loads(out.read_text()) for out in outs]


def test_ready_for_cutover_once_and_no_longer_ready_once(
        cutover_emulator: Emulator, webhooks: dict[str, Receiver], tmp_path: Path) -> None:
    hook, slack = webhooks["webhook"], webhooks["slack"]
    data = cutover_settings(cutover_emulator, tmp_path, webhooks)
    for minute in (0, 10, 20, 30, 40, 50):
        run_at(cutover_emulator, data, minute)
    assert hook.messages() == []  # lagging, then steady for 20 minutes: nothing to say
    result = run_at(cutover_emulator, data, 60)  # steady since minute 30
    assert readiness_alerts(hook) == [([LEDGER], [])]
    text = slack.messages()[0].json()["blocks"][0]["text"]["text"]
    assert "*Ready for cutover*\n- *ready* ledger: MySQL -&gt; GaussDB: delay 1s, at or below " \
           "5s for 30m (needs 30m); 1 comparison consistent" in text
    assert "Cutover readiness: 1 ready (ledger: MySQL -&gt; GaussDB), 1 not ready" in text
    assert result.summary()["readiness"] == {
        "counts": {"ready": 1, "not_ready": 1, "unknown": 0}, "ready": [LEDGER],
        "not_ready": [CRM]}
    for minute in (60, 70):  # the same minute again (a retried invocation), and the next
        again = run_at(cutover_emulator, data, minute)
        assert {d.reason for d in again.deliveries} == {
            "no change in problems since the last alert"}
    assert len(hook.messages()) == 1
    run_at(cutover_emulator, data, 80)  # lagging again since minute 75
    assert readiness_alerts(hook) == [([LEDGER], []), ([], [LEDGER])]
    text = slack.messages()[1].json()["blocks"][0]["text"]["text"]
    assert "*No longer ready for cutover*\n- *not ready* ledger: MySQL -&gt; GaussDB: delay " \
           "40s, needs ≤ 5s for 30m" in text
    run_at(cutover_emulator, data, 90)
    assert len(hook.messages()) == 2 and len(slack.messages()) == 2


def test_a_job_that_could_not_be_read_keeps_its_ready_announcement(
        cutover_emulator: Emulator, webhooks: dict[str, Receiver], tmp_path: Path) -> None:
    from drs_report.emulator import Faults

    hook = webhooks["webhook"]
    data = cutover_settings(cutover_emulator, tmp_path, webhooks)
    data["drs"]["max_retries"] = 0
    for minute in (0, 10, 20, 30, 40, 50, 60):
        run_at(cutover_emulator, data, minute)
    assert readiness_alerts(hook) == [([LEDGER], [])]
    cutover_emulator.set_faults(Faults(failing_jobs=[LEDGER]))
    result = run_at(cutover_emulator, data, 70)
    ledger = next(j for j in result.report.jobs if j.job_id == LEDGER)
    assert ledger.readiness is not None and ledger.readiness.verdict == "unknown"
    # Not "no longer ready": we do not know, as with problems of a job not read.
    assert all(not gone for _, gone in readiness_alerts(hook))


def test_two_fresh_instances_on_one_sqlite_store_announce_it_once(
        cutover_emulator: Emulator, webhooks: dict[str, Receiver], tmp_path: Path) -> None:
    hook = webhooks["webhook"]
    data = cutover_settings(cutover_emulator, tmp_path, webhooks)
    for minute in (0, 10, 20, 30, 40, 50):
        run_at(cutover_emulator, data, minute)
    cutover_emulator.advance(600)
    results = two_instances_at_once([data, data], cutover_emulator.now(), tmp_path)
    # Each channel's alert is claimed by one instance: one may send both, or each one.
    assert sum(r["deliveries"].count("sent") for r in results) == 2, results
    assert readiness_alerts(hook) == [([LEDGER], [])]
    assert len(webhooks["slack"].messages()) == 1
    rows = sqlite3.connect(tmp_path / "history.db").execute(
        "SELECT COUNT(*) FROM job_snapshots GROUP BY run_id ORDER BY run_id").fetchall()
    assert [n for (n,) in rows] == [2] * 8  # both instances stored their readings
    # Both fell back at once, later: said once too.
    cutover_emulator.advance(1200)
    two_instances_at_once([data, data], cutover_emulator.now(), tmp_path)
    assert readiness_alerts(hook) == [([LEDGER], []), ([], [LEDGER])]


@pytest.mark.slow
def test_fresh_instances_on_the_store_kept_in_obs_announce_it_once(
        cutover_emulator: Emulator, obs: Any, webhooks: dict[str, Receiver],
        tmp_path: Path) -> None:
    from tests.fixtures.obs import synced_settings_dict

    hook = webhooks["webhook"]

    def instance(name: str) -> dict[str, Any]:
        return synced_settings_dict(cutover_emulator, obs, tmp_path / name,
                                    channels=alert_channels(webhooks))

    for minute in (0, 10, 20, 30, 40, 50):
        cutover_emulator.advance(minute * 60 - cutover_emulator.elapsed)
        two_instances_at_once([instance(f"warm-{minute}")], cutover_emulator.now(), tmp_path)
    assert hook.messages() == []
    cutover_emulator.advance(600)
    # Two fresh instances at once: one holds the lease, the other is busy.
    results = two_instances_at_once([instance("fresh-a"), instance("fresh-b")],
                                    cutover_emulator.now(), tmp_path)
    assert sorted(r["status"] for r in results) == ["busy", "ok"], results
    assert readiness_alerts(hook) == [([LEDGER], [])]
    # A third, fresh too, at the same minute (a retried invocation): the claim came with the
    # file from OBS.
    again = two_instances_at_once([instance("fresh-c")], cutover_emulator.now(), tmp_path)
    assert again[0]["status"] == "ok" and "sent" not in again[0]["deliveries"]
    assert readiness_alerts(hook) == [([LEDGER], [])]
    for text in (json.dumps(m.json()) for m in hook.messages()):
        assert CANARY_SK not in text and CANARY_TOKEN not in text


# -- asked: `drs-report readiness` and the function's summary -----------------------------------

GHOST = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2cjb33"  # configured, never in a batch answer


@pytest.fixture
def recent_history(webhooks: dict[str, Receiver], tmp_path: Path
                   ) -> Iterator[tuple[Emulator, Path]]:
    """An hour of readings every 10 minutes, the last one now; the config that reads it."""
    with make_emulator(scenario=scenario_from_dict(CUTOVER_SCENARIO), speed=0.0,
                       start=datetime.now(timezone.utc) - timedelta(minutes=60)) as emulator:
        data = cutover_settings(emulator, tmp_path, webhooks)
        data["jobs"].append({"id": GHOST, "name": "ghost", "compare_jobs": []})
        for minute in (0, 10, 20, 30, 40, 50, 60):
            run_at(emulator, data, minute)
        jobs = "".join(f'[[jobs]]\nid = "{j["id"]}"\nname = {json.dumps(j["name"] or "")}\n'
                       f'compare_jobs = {json.dumps(j["compare_jobs"])}\n\n'
                       for j in data["jobs"])
        config = tmp_path / "config.toml"
        config.write_text(f'[drs]\nregion = "cn-north-4"\nproject_id = "{emulator.project_id}"\n'
                          f'endpoint = "{emulator.url}"\nbackoff_base = 0.01\n'
                          f"max_retries = 1\n\n{jobs}[store]\n"
                          f'url = "sqlite:///history.db"\n', encoding="utf-8")
        yield emulator, config


def snapshots(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM job_snapshots").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize(("jobs", "code"), [
    ([LEDGER], 0), ([CRM], 6), ([GHOST], 7), ([LEDGER, GHOST], 7), ([CRM, GHOST], 6),
    ([LEDGER, CRM], 6), ([], 6),
])
def test_the_command_exits_0_only_when_every_named_job_is_ready(
        recent_history: tuple[Emulator, Path], jobs: list[str], code: int) -> None:
    from tests.test_end_to_end import cli

    _, config = recent_history
    before = snapshots(config.parent / "history.db")
    args = [a for job in jobs for a in ("--job", job)]
    proc = cli("readiness", "--config", str(config), *args)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stderr == "" and "Traceback" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Cutover readiness: ") and "from the stored history" in lines[0]
    shown = [line.split()[0] for line in lines[1:] if not line.startswith(" ")]
    # Closest to ready first: ready, then not ready, then unknown.
    verdicts = {LEDGER: "READY", CRM: "NOT", GHOST: "UNKNOWN"}
    assert shown == [badge for job, badge in verdicts.items() if not jobs or job in jobs]
    assert snapshots(config.parent / "history.db") == before  # nothing fetched or stored


def test_the_command_in_json_and_what_it_says(recent_history: tuple[Emulator, Path]) -> None:
    from tests.test_end_to_end import cli

    _, config = recent_history
    proc = cli("readiness", "--config", str(config), "--format", "json")
    assert proc.returncode == 6
    data = json.loads(proc.stdout)
    assert data["exit_code"] == 6 and data["live"] is False
    assert data["counts"] == {"ready": 1, "not_ready": 1, "unknown": 1}
    assert [(j["job_id"], j["verdict"]) for j in data["jobs"]] == [
        (LEDGER, "ready"), (CRM, "not_ready"), (GHOST, "unknown")]
    ledger = data["jobs"][0]
    assert ledger["steady_seconds"] == 1800 and ledger["interval_seconds"] == 600
    text = cli("readiness", "--config", str(config)).stdout
    assert "READY      ledger: MySQL -> GaussDB (7d1e5a2c-3b4f-4a6d-8e9f-0a1b2c3djb31)\n" \
           "             delay 1s, at or below 5s for 30m (needs 30m)\n" \
           "             1 comparison consistent\n" in text
    assert "NOT READY  crm: MySQL -> MySQL" in text and "delay 30s, needs ≤ 5s for 30m" in text
    # The emulator answers an unknown job as the service does: an error for that job.
    assert "UNKNOWN    ghost (0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2cjb33)\n             the latest " \
           "reading" in text and "was an error the API answered for the job" in text


def test_live_reads_now_and_stores_nothing(recent_history: tuple[Emulator, Path]) -> None:
    from tests.test_end_to_end import CREDENTIALS, cli

    emulator, config = recent_history
    db = config.parent / "history.db"
    before = snapshots(db)
    emulator.advance(20 * 60)  # lagging again since minute 75
    assert cli("readiness", "--config", str(config), "--job", LEDGER).returncode == 0
    live = cli("readiness", "--config", str(config), "--job", LEDGER, "--live",
               "--format", "json", env=CREDENTIALS)
    assert live.returncode == 6, live.stderr
    data = json.loads(live.stdout)
    assert data["live"] is True and data["jobs"][0]["missing"] == ["delay_above"]
    assert snapshots(db) == before  # the live reading was judged, not stored
    for leak in (CANARY_SK, CANARY_TOKEN):
        assert leak not in live.stdout + live.stderr
    bare = cli("readiness", "--config", str(config), "--live")
    assert bare.returncode == 2 and bare.stderr.startswith(
        "drs-report: error: HUAWEICLOUD_SDK_AK: no credentials")


def test_usage_and_history_errors_are_one_line(recent_history: tuple[Emulator, Path],
                                               tmp_path: Path) -> None:
    from tests.test_end_to_end import cli

    _, config = recent_history
    wrong = cli("readiness", "--config", str(config), "--job", "ledger: MySQL -> GaussDB")
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert "is the name of a job; give its id: --job 7d1e5a2c" in wrong.stderr
    unknown = cli("readiness", "--config", str(config), "--job",
                  "1234abcd-0000-4000-8000-00000000jb99")
    assert unknown.returncode == 2 and "is not a configured job; the configuration has " \
        f"{LEDGER} (ledger: MySQL -> GaussDB)" in unknown.stderr
    bad_format = cli("readiness", "--config", str(config), "--format", "yaml")
    assert bad_format.returncode == 2 and "--format" in bad_format.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = elsewhere / "config.toml"
    moved.write_text(config.read_text(), encoding="utf-8")
    missing = cli("readiness", "--config", str(moved))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "no history at" in missing.stderr and "run `drs-report run` first" in missing.stderr
    assert not (elsewhere / "history.db").exists()  # asking never creates the history


def test_the_help_names_the_rules_the_options_and_the_exit_codes() -> None:
    from tests.test_end_to_end import cli

    proc = cli("readiness", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for fragment in ("--job JOB_ID", "(default: every job)", "(default: text)",
                     "--live", "(default: off)", "0 every named job is ready for cutover",
                     "6 readiness: some named job is not ready for cutover",
                     "7 readiness: no named job is known not ready",
                     "1 the history could not be read", "readiness.max_delay_seconds"):
        assert fragment in text, fragment


def test_the_function_summary_carries_the_verdicts(
        webhooks: dict[str, Receiver], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_function import FakeContext, handle

    with make_emulator(scenario=scenario_from_dict(CUTOVER_SCENARIO), speed=0.0,
                       start=datetime.now(timezone.utc) - timedelta(minutes=60)) as emulator:
        data = cutover_settings(emulator, tmp_path, webhooks, channels=[])
        for minute in (0, 10, 20, 30, 40, 50):
            run_at(emulator, data, minute)
        emulator.advance(600)
        (tmp_path / "config.toml").write_text(
            f'[drs]\nregion = "cn-north-4"\nendpoint = "{emulator.url}"\n\n'
            + "".join(f'[[jobs]]\nid = "{j["id"]}"\ncompare_jobs = '
                      f'{json.dumps(j["compare_jobs"])}\n\n' for j in data["jobs"])
            + f'[store]\nurl = "sqlite:///{tmp_path / "history.db"}"\n', encoding="utf-8")
        monkeypatch.setenv("RUNTIME_PROJECT_ID", emulator.project_id)
        context = FakeContext()
        summary = handle({}, context, tmp_path)
    assert summary["status"] == "ok", summary
    assert summary["readiness"] == {"counts": {"ready": 1, "not_ready": 1, "unknown": 0},
                                    "ready": [LEDGER], "not_ready": [CRM]}
    assert any("readiness=ready:1,not_ready:1,unknown:0" in line
               for line in context.logger.lines)


def test_the_command_reads_the_store_kept_in_obs_without_its_lease(
        recent_history: tuple[Emulator, Path], obs: Any, tmp_path: Path) -> None:
    from drs_report.store.lease import Lease
    from drs_report.store.sync import checkpoint
    from tests.fixtures.obs import BUCKET, KEY
    from tests.test_end_to_end import CREDENTIALS, cli

    _, config = recent_history
    instance = tmp_path / "fresh-instance"
    synced = config.read_text().replace(
        'url = "sqlite:///history.db"',
        f'url = "sqlite:///{instance / "history.db"}"\nsync = "obs://{BUCKET}/{KEY}"\n'
        f'obs_endpoint = "{obs.url}"')
    synced_config = tmp_path / "synced.toml"
    synced_config.write_text(synced, encoding="utf-8")
    nothing = cli("readiness", "--config", str(synced_config), env=CREDENTIALS)
    assert nothing.returncode == 1 and nothing.stderr == (
        f"drs-report: error: no history at obs://{BUCKET}/{KEY} yet; run `drs-report run` "
        "first\n")
    checkpoint(config.parent / "history.db")
    obs.put_object(BUCKET, KEY, (config.parent / "history.db").read_bytes())
    # A timer run holds the lease right now: asking must neither wait for it nor take it.
    now = datetime.now(timezone.utc)
    holder = Lease("timer run on another instance", now, now + timedelta(hours=1))
    obs.put_object(BUCKET, f"{KEY}.lease", holder.to_json())
    puts = len(obs.requests("PUT"))
    ready = cli("readiness", "--config", str(synced_config), "--job", LEDGER, env=CREDENTIALS)
    assert ready.returncode == 0, ready.stderr
    assert cli("readiness", "--config", str(synced_config), env=CREDENTIALS).returncode == 6
    assert len(obs.requests("PUT")) == puts and not obs.requests("DELETE")
    stored = obs.object(BUCKET, f"{KEY}.lease")
    assert stored is not None and stored.data == holder.to_json()  # left alone
    assert not (instance / "history.db").exists()  # a throwaway copy, not the working copy
    bare = cli("readiness", "--config", str(synced_config))
    assert bare.returncode == 2 and "HUAWEICLOUD_SDK_AK" in bare.stderr


def test_a_run_reads_history_far_enough_back_for_a_long_window(
        webhooks: dict[str, Receiver], tmp_path: Path) -> None:
    steady_fleet = {"jobs": [{"id": LEDGER, "name": "ledger", "delay": 1.0}]}
    with make_emulator(scenario=scenario_from_dict(steady_fleet), speed=0.0,
                       start=datetime.now(timezone.utc) - timedelta(hours=3)) as emulator:
        data = cutover_settings(emulator, tmp_path, webhooks, channels=[],
                                readiness={"stable_minutes": 90})
        data["report"]["trend_hours"] = 1
        for minute in range(0, 100, 10):
            result = run_at(emulator, data, minute)
        end = emulator.now()
    ledger = result.report.jobs[0]
    assert ledger.readiness is not None and ledger.readiness.verdict == "ready"
    assert ledger.readiness.steady_seconds == 90 * 60  # all of it: three hours were read
    # Trends still cover the trend window only.
    assert len(ledger.trend) == 7 and ledger.trend[0].at == end - timedelta(minutes=60)


@pytest.mark.parametrize("mail_server", ["none"], indirect=True)
def test_the_email_alert_says_it_in_its_subject(
        cutover_emulator: Emulator, mail_server: Any, webhooks: dict[str, Receiver],
        tmp_path: Path) -> None:
    mail = {"type": "smtp", "name": "dba-mail", "mode": "alert", "host": mail_server.host,
            "port": mail_server.port, "security": "none", "from": "drs@example.com",
            "to": ["dba@example.com"]}
    data = cutover_settings(cutover_emulator, tmp_path, webhooks, channels=[mail],
                            drs={**cutover_settings(cutover_emulator, tmp_path,
                                                    webhooks)["drs"], "language": "zh-cn"})
    for minute in (0, 10, 20, 30, 40, 50, 60):
        run_at(cutover_emulator, data, minute)
    [(_, ready)] = mail_server.messages
    assert ready["Subject"] == ("可以割接\uff1aledger: MySQL -> GaussDB - DRS 告警: [DRS] 2 个任务"
                                "全部正常 - 2 个任务")
    assert "**可以割接**" in ready.get_content()
    run_at(cutover_emulator, data, 80)
    assert mail_server.messages[1][1]["Subject"].startswith(
        "不再满足割接条件\uff1aledger: MySQL -> GaussDB - ")
