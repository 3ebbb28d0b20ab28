"""The snapshot store, on SQLite and on PostgreSQL (every test runs on both)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from drs_report.errors import StoreError
from drs_report.models import (
    CompareFullInfo,
    CompareGlobalInfo,
    CompareIncreInfo,
    CompareProgress,
    CompareReading,
    FetchError,
    FetchErrorKind,
    JobProgress,
    JobReading,
    ProgressInfo,
    Snapshot,
)
from drs_report.store import SCHEMA_HEAD, Store
from drs_report.store.schema import CompareSnapshot, JobSnapshot, RenderedReport, Run

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def job_reading(n: int, *, progress: float = 50.0) -> JobReading:
    job_id = f"{n:08d}-0000-4000-8000-00000000jb{n % 100:02d}"
    return JobReading(
        job_id=job_id, name=f"job {n}",
        progress=JobProgress(
            job_id=job_id, progress=progress, incre_trans_delay=3.0,
            incre_trans_delay_millis=3042, task_mode="FULL_INCR_TRANS",
            transfer_status="INCRE_TRANSFER_STARTED", process_time=1763625600000,
            remaining_time=0, progress_map={"data": ProgressInfo(100.0, "0")},
            apply_rows_rate=1200, apply_bytes_rate=2_400_000,
            raw={"job_id": job_id, "progress": str(progress), "extra_field": "kept"},
        ),
        comparisons=[
            CompareReading("b13b233a-4b9e-4b06-a928-19a0c93f6109", progress=CompareProgress(
                full_info=CompareFullInfo(100.0, "0.00B/s", 0.0, 0),
                incre_info=CompareIncreInfo(9.58, "1.20KB/s", 1228.8, 35, "951de1d2:51", 4),
                global_info=CompareGlobalInfo("0.00B/s", 0.0),
                raw={"full_info": {"progress": 100}},
            )),
            CompareReading("d35e8f2c-6b4a-4d9f-8ae3-7f2a1b4c8d69", error=FetchError(
                FetchErrorKind.NOT_FOUND, "Task information not found.", 400, "DRS.10000010")),
        ],
    )


def snapshot(at: datetime, jobs: int = 3, **kwargs: float) -> Snapshot:
    readings = [job_reading(n, **kwargs) for n in range(jobs)]
    readings.append(JobReading(job_id="99999999-0000-4000-8000-0000000missing"[:36],
                               name="gone", error=FetchError(FetchErrorKind.MISSING, "missing")))
    return Snapshot(taken_at=at, jobs=readings, requests=7)


def save(store: Store, at: datetime, **kwargs: float) -> int:
    run_id = store.begin_run(trigger="test", started_at=at)
    store.save_snapshot(run_id, snapshot(at, **kwargs))
    return run_id


def count(store: Store, model: type) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_a_snapshot_round_trips(store: Store) -> None:
    save(store, T0)
    history = store.history([job_reading(1).job_id], since=T0 - timedelta(hours=1))
    (taken_at, reading), = history[job_reading(1).job_id]
    assert taken_at == T0 and taken_at.tzinfo is not None
    original = job_reading(1)
    assert reading.progress is not None and original.progress is not None
    for name in ("progress", "incre_trans_delay", "incre_trans_delay_millis", "task_mode",
                 "transfer_status", "process_time", "remaining_time", "apply_rows_rate",
                 "apply_bytes_rate", "progress_map", "raw"):
        assert getattr(reading.progress, name) == getattr(original.progress, name), name
    assert reading.comparisons == original.comparisons
    assert reading.name == "job 1"


def test_history_json_uses_the_api_field_names(store: Store) -> None:
    save(store, T0)
    save(store, T0 + timedelta(minutes=5), progress=60.0)
    readings = store.readings(job_reading(2).job_id, since=T0 - timedelta(days=1))
    assert [r["progress"] for r in readings] == [50.0, 60.0]  # oldest first
    first = readings[0]
    for key in ("taken_at", "job_id", "transfer_status", "incre_trans_delay",
                "incre_trans_delay_millis", "remaining_time", "progress_map", "comparisons"):
        assert key in first
    assert first["comparisons"][0]["incre_info"]["recheck_entities"] == 4
    assert first["comparisons"][1]["error"]["kind"] == "not_found"


def test_a_failed_save_leaves_nothing(store: Store) -> None:
    run_id = store.begin_run(trigger="test", started_at=T0)
    broken = snapshot(T0)
    broken.jobs.append(broken.jobs[0])  # the same job twice violates the unique key
    with pytest.raises(StoreError) as caught:
        store.save_snapshot(run_id, broken)
    assert "\n" not in str(caught.value)
    assert count(store, JobSnapshot) == 0
    assert count(store, CompareSnapshot) == 0


def test_reports_are_kept_and_the_previous_one_found(store: Store) -> None:
    first = save(store, T0)
    store.save_reports(first, {"json": '{"problems": []}', "html": "<p>hi</p>"})
    second = save(store, T0 + timedelta(minutes=5))
    assert store.previous_report(before_run_id=second) == {"problems": []}
    assert store.previous_report(before_run_id=first) is None
    assert store.report(first, "html") == "<p>hi</p>"


def test_runs_record_outcome_counts_and_errors(store: Store) -> None:
    run_id = save(store, T0)
    store.finish_run(run_id, outcome="ok", counts={"OK": 3}, errors=["x"], partial=True,
                     finished_at=T0 + timedelta(seconds=2))
    (run,) = store.runs()
    assert run["outcome"] == "ok" and run["counts"] == {"OK": 3} and run["errors"] == ["x"]
    assert run["partial"] is True and run["requests"] == 7


def test_retention_prunes_in_batches(store: Store) -> None:
    for days in (100, 95, 91, 5, 1):
        run_id = save(store, T0 - timedelta(days=days))
        store.save_reports(run_id, {"json": "{}"})
    with store.engine.begin() as conn:  # reports age by their own clock
        conn.execute(RenderedReport.__table__.update().values(created_at=T0 - timedelta(days=40)))
    deleted = store.prune(retention_days=90, report_retention_days=30, batch_size=2, now=T0)
    assert deleted["job_snapshots"] == 3 * 4
    assert deleted["compare_snapshots"] == 3 * 3 * 2
    assert deleted["reports"] == 5
    assert deleted["runs"] == 3
    assert count(store, JobSnapshot) == 2 * 4
    assert count(store, Run) == 2


def test_retention_prunes_old_delivery_claims_but_keeps_each_channels_latest_send(
        store: Store) -> None:
    run_id = save(store, T0)

    def sent(key: str, channel: str, mode: str, days_ago: int) -> None:
        at = T0 - timedelta(days=days_ago)
        assert store.claim_delivery(key, run_id=run_id, channel=channel, mode=mode, now=at)
        store.finish_delivery(key, sent=True, now=at, problems=[key])

    for days in (100, 95, 91, 5):
        sent(f"digest:mail:{days}", "mail", "digest", days)
    sent("alert:chat:120", "chat", "alert", 120)  # old, but chat's only send: kept
    assert store.claim_delivery("alert:chat:abandoned", run_id=run_id, channel="chat",
                                mode="alert", now=T0 - timedelta(days=92))
    deleted = store.prune(retention_days=90, report_retention_days=30, batch_size=2, now=T0)
    assert deleted["delivery_claims"] == 4
    mail = store.last_sent("mail", "digest")
    chat = store.last_sent("chat", "alert")
    assert mail is not None and mail.problems == ("digest:mail:5",)
    assert chat is not None and chat.problems == ("alert:chat:120",)
    with store.engine.connect() as conn:
        left = conn.execute(text("SELECT idempotency_key FROM delivery_claims")).scalars()
        assert sorted(left) == ["alert:chat:120", "digest:mail:5"]


def test_delivery_claims_are_exclusive(store: Store) -> None:
    run_id = save(store, T0)
    assert store.claim_delivery("digest:mail:2026-11-20", run_id=run_id, channel="mail",
                                mode="digest", now=T0)
    assert not store.claim_delivery("digest:mail:2026-11-20", run_id=run_id, channel="mail",
                                    mode="digest", now=T0)
    # A run that died holding a claim does not block the next one forever.
    assert store.claim_delivery("digest:mail:2026-11-20", run_id=run_id, channel="mail",
                                mode="digest", now=T0 + timedelta(hours=1))
    store.finish_delivery("digest:mail:2026-11-20", sent=True, now=T0, problems=["a=WARNING"])
    assert not store.claim_delivery("digest:mail:2026-11-20", run_id=run_id, channel="mail",
                                    mode="digest", now=T0 + timedelta(days=2))
    sent = store.last_sent("mail", "digest")
    assert sent is not None and sent.problems == ("a=WARNING",)
    # A failed send releases its claim so the next run may try again.
    assert store.claim_delivery("alert:chat:x", run_id=run_id, channel="chat", mode="alert",
                                now=T0)
    store.finish_delivery("alert:chat:x", sent=False, now=T0)
    assert store.claim_delivery("alert:chat:x", run_id=run_id, channel="chat", mode="alert",
                                now=T0)


def _as_before(conn: Any, model: type, **values: Any) -> Any:
    """A row written the way an older drs-report wrote it: only the columns it knew."""
    return conn.execute(model.__table__.insert().values(**values)).inserted_primary_key[0]


def test_upgrade_from_the_first_revision_keeps_data(store_url: str) -> None:
    store = Store.open(store_url, in_functiongraph=False)
    store.upgrade("0001")
    assert store.current_revision() == "0001"
    job = job_reading(0).job_id
    with store.engine.begin() as conn:
        run_id = _as_before(conn, Run, trigger="timer", started_at=T0, outcome="ok",
                            partial=False, counts={}, errors=[], requests=1)
        _as_before(conn, JobSnapshot, run_id=run_id, taken_at=T0, job_id=job, progress=42.0)
        _as_before(conn, CompareSnapshot, run_id=run_id, taken_at=T0, job_id=job,
                   compare_job_id="c1", position=0, has_full_info=True, has_incre_info=False,
                   has_global_info=False, full_progress=7.0)
        _as_before(conn, RenderedReport, run_id=run_id, format="json", created_at=T0,
                   content='{"old": true}')
    with store.engine.connect() as conn:
        assert not store.engine.dialect.has_table(conn, "deliveries")
    store.upgrade("0002")
    with store.engine.begin() as conn:
        # Two sends: the later one by its clock was sent first (the clock was wrong).
        for key, sent_at in (("alert:chat:a", T0 + timedelta(hours=2)),
                             ("alert:chat:b", T0 + timedelta(hours=1))):
            conn.execute(text(
                "INSERT INTO delivery_claims (idempotency_key, run_id, channel, mode, state, "
                "claimed_at, sent_at) VALUES (:k, :r, 'chat', 'alert', 'sent', :t, :t)"),
                {"k": key, "r": run_id, "t": sent_at})
    if store.engine.dialect.name == "sqlite":  # the old rows as SQLAlchemy writes times
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE delivery_claims SET claimed_at = :a, sent_at = :a "
                              "WHERE idempotency_key = 'alert:chat:a'"),
                         {"a": "2026-11-20 10:00:00.000000"})
            conn.execute(text("UPDATE delivery_claims SET claimed_at = :b, sent_at = :b "
                              "WHERE idempotency_key = 'alert:chat:b'"),
                         {"b": "2026-11-20 09:00:00.000000"})
    store.upgrade()
    assert store.current_revision() == SCHEMA_HEAD
    assert count(store, JobSnapshot) == 1
    assert store.report(run_id, "json") == '{"old": true}'  # a plain row still reads
    assert store.previous_report(before_run_id=run_id + 1) == {"old": True}
    (_, reading), = store.history([job], since=T0)[job]
    assert reading.progress is not None and reading.progress.progress == 42.0
    assert reading.comparisons[0].progress is not None
    assert reading.comparisons[0].progress.full_info is not None
    assert reading.comparisons[0].progress.full_info.progress == 7.0
    # Claims from before are numbered in the order of their own times ...
    last = store.last_sent("chat", "alert")
    assert last is not None and last.idempotency_key == "alert:chat:a"
    # ... and from now on the database's sequence orders them, whatever the clocks say.
    assert store.claim_delivery("alert:chat:c", run_id=run_id, channel="chat", mode="alert",
                                now=T0)
    store.finish_delivery("alert:chat:c", sent=True, now=T0 - timedelta(days=1),
                          problems=["c"])
    last = store.last_sent("chat", "alert")
    assert last is not None and last.idempotency_key == "alert:chat:c"
    new_run = save(store, T0 + timedelta(minutes=5))
    store.save_reports(new_run, {"json": '{"new": true}'})
    assert store.report(new_run, "json") == '{"new": true}'
    store.close()


def test_a_schema_written_by_a_newer_drs_report_is_one_line_not_a_crash(store_url: str) -> None:
    store = Store.open(store_url, in_functiongraph=False)
    store.upgrade()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError) as raised:
        store.upgrade()
    message = str(raised.value)
    assert "schema revision 9999" in message and "upgrade drs-report" in message
    assert "\n" not in message
    store.close()


def test_a_new_sqlite_file_switches_to_wal_while_another_process_writes(
        tmp_path: Path) -> None:
    # Another process created the file and is writing to it in the old journal mode; SQLite
    # refuses to wait for it when switching modes ("database is locked" at once, whatever
    # busy_timeout says), so the store must retry until the writer is done.
    path = tmp_path / "history.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other_tool (x INTEGER)")
    releaser = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    releaser.start()
    try:
        store = Store.open(f"sqlite:///{path}", in_functiongraph=False)
        assert store.current_revision() is None
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        store.upgrade()
        assert store.current_revision() == SCHEMA_HEAD
        store.close()
    finally:
        releaser.join()
        writer.close()


def _overlapping_run(url: str, worker: int, runs: int) -> None:
    store = Store.open(url, in_functiongraph=False)
    store.upgrade()  # both processes race to create the schema
    for i in range(runs):
        at = T0 + timedelta(minutes=i, seconds=worker)
        save(store, at)
    store.close()


def test_overlapping_runs_in_real_processes_lose_and_duplicate_nothing(store_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_overlapping_run, args=(store_url, w, 6))
               for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0]
    store = Store.open(store_url, in_functiongraph=False)
    assert count(store, Run) == 12
    assert count(store, JobSnapshot) == 12 * 4
    assert count(store, CompareSnapshot) == 12 * 3 * 2
    with store.engine.connect() as conn:
        pairs = conn.execute(text(
            "SELECT COUNT(*) FROM (SELECT DISTINCT run_id, job_id FROM job_snapshots) t"
        )).scalar_one()
    assert pairs == 12 * 4
    store.close()


def test_bulk_writes_of_ten_thousand_jobs(store: Store) -> None:
    at = T0
    run_id = store.begin_run(trigger="bulk", started_at=at)
    big = Snapshot(taken_at=at, jobs=[job_reading(n) for n in range(10_000)])
    store.save_snapshot(run_id, big)
    assert count(store, JobSnapshot) == 10_000
    assert count(store, CompareSnapshot) == 20_000


def test_the_password_never_shows(postgres_session_url: str) -> None:
    canary = "canary-db-password-5f1e9d"
    url = postgres_session_url.replace("postgresql+psycopg://postgres@",
                                       f"postgresql+psycopg://nosuchrole:{canary}@")
    assert canary in url
    store = Store.open(url, in_functiongraph=False)
    with pytest.raises(StoreError) as caught:
        store.upgrade()
    assert canary not in str(caught.value)
    assert "nosuchrole:***@" in str(caught.value)
    assert canary not in Store.masked_url(url)


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://reporter:canary-db-password-5f1e9d@127.0.0.1:1/history",
    "sqlite:////no/such/directory/history.db",
])
def test_an_unreachable_database_says_where_to_look(url: str) -> None:
    store = Store.open(url, in_functiongraph=False)
    with pytest.raises(StoreError) as caught:
        store.upgrade()
    message = str(caught.value)
    assert message.startswith(f"cannot connect to {Store.masked_url(url)}: ")
    assert message.endswith("; check [store] url and that the database is reachable")
    assert "\n" not in message and "canary-db-password" not in message


def test_sqlite_goes_to_tmp_inside_functiongraph(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="drs_report"):
        store = Store.open("sqlite:///var/data/history.db", in_functiongraph=True)
    assert store.url == "sqlite:////tmp/history.db"
    assert any("lives only as long as this function instance" in r.getMessage()
               for r in caplog.records)
    store.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_a_database_in_memory_stays_in_memory_inside_functiongraph(url: str) -> None:
    """A dry run reads a history that does not exist yet as an empty one in memory; inside
    FunctionGraph that must not become a file in /tmp (a dry run writes nothing)."""
    from drs_report.store.engine import runtime_url

    assert runtime_url(url, in_functiongraph=True) == url
    store = Store.open(url, in_functiongraph=True)
    try:
        store.upgrade()
        assert store.current_revision() == SCHEMA_HEAD
        with store.engine.connect() as conn:
            files = [row[2] for row in conn.execute(text("PRAGMA database_list"))]
        assert files and all(f == "" for f in files), files  # "": a database with no file
    finally:
        store.close()


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'h.db'}", in_functiongraph=False)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    store.close()


def test_a_throwaway_server_can_be_started_from_the_binaries() -> None:
    from tests.fixtures.databases import _answers, start_throwaway_server

    url = start_throwaway_server()
    if url is None:
        pytest.skip("PostgreSQL's binaries (initdb, pg_ctl) are not installed")
    assert _answers(url) is None
    store = Store.open(url, in_functiongraph=False)
    store.upgrade()
    assert store.current_revision() == SCHEMA_HEAD
    store.close()


def _period(at: datetime, now: datetime) -> tuple[str, object]:
    """The documented tiers, written out independently of the SQL that applies them."""
    if at >= now - timedelta(hours=24):
        return ("every", at)
    if at >= now - timedelta(days=7):
        return ("6h", (at.date(), at.hour // 6))
    if at >= now - timedelta(days=31):
        return ("day", at.date())
    return ("week", at.date() - timedelta(days=at.weekday()))  # Monday to Sunday


def test_downsampling_keeps_the_trend_window_and_thins_older_readings_by_tier(
        tmp_path: Path) -> None:
    """Every 10 minutes for two days, hourly for 43 days before, in a file an older version
    wrote (raw answers, no auto-vacuum): every reading within the trend window, the latest
    per 6 hours to 7 days, per day to 31, per week beyond; no raw answers; report.html per
    run in the window and one a day beyond, the other formats of the newest run only; the
    file gives its pages back."""
    path = tmp_path / "h.db"
    store = Store.open(f"sqlite:///{path}", in_functiongraph=False)
    store.upgrade()
    now = T0
    times = [now - timedelta(days=45) + timedelta(hours=h) for h in range(43 * 24)]
    times += [now - timedelta(days=2) + timedelta(minutes=10 * m) for m in range(2 * 144 + 1)]
    run_at: dict[int, datetime] = {}
    for at in times:
        run_id = save(store, at)
        run_at[run_id] = at
        store.save_reports(run_id, {"json": "{}", "html": f"<p>{run_id}</p>", "txt": "t"})
    with store.engine.begin() as conn:  # each report made when its run ran
        conn.execute(text("UPDATE reports SET created_at = (SELECT started_at FROM runs "
                          "WHERE runs.id = reports.run_id)"))
    job = job_reading(1).job_id
    window = now - timedelta(hours=24)
    before = store.history([job], since=window)[job]
    assert before[0][1].progress is not None and before[0][1].progress.raw
    from drs_report.store.sync import checkpoint

    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("PRAGMA auto_vacuum = NONE")  # as files were made before
        conn.exec_driver_sql("VACUUM")
    checkpoint(path)
    size_before = path.stat().st_size
    store.downsample(now=now, trend_hours=24)
    after = store.history([job], since=window)[job]
    assert [t for t, _ in after] == [t for t, _ in before]  # the trend window untouched
    assert all(r.progress is not None and not r.progress.raw for _, r in after)  # typed only
    everything = [t for t, _ in store.history([job], since=times[0])[job]]
    expected: dict[tuple[str, object], datetime] = {}
    for at in times:  # the latest reading of each period
        expected[_period(at, now)] = max(at, expected.get(_period(at, now), at))
    assert everything == sorted(expected.values())
    tiers = [k for k, _ in expected]
    # 6 days of 4 periods and a part-period (08:00 is mid-period); 24 days and the two
    # part-days at their ends; the weeks before
    assert tiers.count("6h") == 6 * 4 + 1 and tiers.count("day") == 25 and tiers.count("week") >= 2
    with store.engine.connect() as conn:
        orphans = conn.execute(text(
            "SELECT COUNT(*) FROM compare_snapshots c WHERE NOT EXISTS (SELECT 1 FROM "
            "job_snapshots j WHERE j.run_id = c.run_id AND j.job_id = c.job_id)")).scalar()
        kept = {(run_id, fmt) for run_id, fmt in conn.execute(text(
            "SELECT run_id, format FROM reports"))}
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar()
        mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar()
    assert orphans == 0
    newest = max(run_at)
    assert {r for r, f in kept if f != "html"} == {newest}  # json and txt: the newest only
    html = sorted(run_at[r] for r, f in kept if f == "html")
    assert [t for t in html if t >= window] == [t for t in times if t >= window]
    older_html = [t for t in html if t < window]
    assert len(older_html) == len({t.date() for t in older_html})  # one a day beyond
    assert len(older_html) == len({t.date() for t in times if t < window})
    assert store.previous_report(before_run_id=newest + 1) == {}  # "what changed" still reads
    checkpoint(path)
    assert free == 0 and mode == 2 and path.stat().st_size < size_before / 3
    # From now on each run gives back what it frees (incremental auto-vacuum), no VACUUM.
    store.keeps_raw_answers = False  # as a synced store writes
    for minutes in (10, 20):
        save(store, now + timedelta(minutes=minutes))
    store.downsample(now=now + timedelta(hours=5), trend_hours=24)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA freelist_count").scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM job_snapshots WHERE raw IS NOT NULL")
                            ).scalar() == 0
    store.close()


def test_downsampling_and_pruning_never_trust_a_clock_far_ahead(store: Store) -> None:
    """A run whose clock is 100 days ahead: pruning and downsampling measure age from the
    stored readings, so the real history stays, its trend window at full resolution."""
    for hours in range(48, 0, -1):
        save(store, T0 - timedelta(hours=hours))
    job = job_reading(1).job_id
    future = T0 + timedelta(days=100)
    ahead = save(store, future)
    deleted = store.prune(retention_days=90, report_retention_days=30, batch_size=100,
                          now=future, run_id=ahead)
    assert deleted["job_snapshots"] == 0  # by its clock, every earlier reading is 100 days old
    store.downsample(now=future, trend_hours=24, run_id=ahead)
    kept = [t for t, _ in store.history([job], since=T0 - timedelta(days=3))[job]]
    assert [t for t in kept if T0 - timedelta(hours=25) <= t < T0] == [
        T0 - timedelta(hours=h) for h in range(25, 0, -1)]
    assert future in kept
    # A clock that agrees with the readings prunes as before (the future row does not
    # move the reference either).
    older = len([t for t in kept if t < T0 - timedelta(days=1)])
    deleted = store.prune(retention_days=1, report_retention_days=1, batch_size=100,
                          now=T0, run_id=None)
    assert deleted["job_snapshots"] == older * 4 > 0
    left = [t for t, _ in store.history([job], since=T0 - timedelta(days=3))[job]]
    assert min(left) >= T0 - timedelta(days=1)


# -- whole runs against hostile answers and dead runs (each on SQLite and PostgreSQL) --------

HOSTILE_JOBS = [f"{n:08d}-0000-4000-8000-00000000jb{n:02d}" for n in range(3)]
HOSTILE_COMPARE = "c0000000-0000-4000-8000-0000000000c0"
LONG_STATE = "INCRE_TRANSFER_" + "X" * 80 + "_FAILED"


class _HostileDrs(BaseHTTPRequestHandler):
    """A DRS endpoint of the test's own: answers what `server.batch` / `server.compare` say
    (raw JSON text, so bare NaN and 1e309 go out as a broken service sends them)."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, body: str) -> None:
        data = body.encode("utf-8", "surrogatepass")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        asked = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self._send(self.server.batch(asked.get("jobs") or []))

    def do_GET(self) -> None:
        self._send(self.server.compare())


@pytest.fixture
def hostile_drs() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileDrs)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    server.compare = lambda: '{"incre_info": {"delay": 1.0, "src_speed": "1.0KB/s"}}'  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _states(delays: dict[str, float]) -> Callable[[list[str]], str]:
    """A batch answer: each job incremental, with the delay given (missing: 1 s)."""
    def batch(asked: list[str]) -> str:
        return json.dumps({"results": [
            {"job_id": j, "progress": "100", "incre_trans_delay": str(delays.get(j, 1.0)),
             "task_mode": "FULL_INCR_TRANS", "transfer_status": "INCRE_TRANSFER_STARTED",
             "process_time": str(int(time.time() * 1000)), "remaining_time": "0"}
            for j in asked]})
    return batch


def _run_settings(hostile: Any, store_url: str, out: Path, hook: Any = None,
                  **run: Any) -> Any:
    from drs_report.config import parse_settings
    from tests.fixtures.receivers import WEBHOOK_SECRET

    data: dict[str, Any] = {
        "drs": {"region": "cn-north-4", "project_id": "5237e10fe9aa4ad5b16b6a5245248314",
                "endpoint": hostile.url, "backoff_base": 0.01, "backoff_max": 0.05,
                "max_retries": 0},
        "jobs": [{"id": j, "compare_jobs": [HOSTILE_COMPARE] if n == 0 else []}
                 for n, j in enumerate(HOSTILE_JOBS)],
        "store": {"url": store_url}, "report": {"output_dir": str(out)}, "run": run}
    if hook is not None:
        data["channels"] = [
            {"type": "webhook", "name": "hook-digest", "mode": "digest", "url": hook.url,
             "secret": WEBHOOK_SECRET},
            {"type": "webhook", "name": "hook-alert", "mode": "alert", "url": hook.url,
             "secret": WEBHOOK_SECRET}]
    return parse_settings(data, {})


def _alerts(hook: Any) -> list[dict[str, Any]]:
    return [m.json()["alert"] for m in hook.messages() if m.json()["kind"] == "alert"]


def test_values_postgresql_refuses_are_stored_on_both_backends(
        hostile_drs: Any, store_url: str, webhooks: dict[str, Any], tmp_path: Path) -> None:
    """A bare NaN and 1e309, a state and codes longer than their VARCHAR(64), a NUL byte in
    error_msg, an integer past 64 bits, a 40 KB message: the run stores and reports."""
    from drs_report.pipeline import run_cycle
    from drs_report.store.sanitise import CUT_MARK
    from tests.fixtures.emulator import canary_credentials

    j0, j1, j2 = HOSTILE_JOBS
    hostile_drs.batch = lambda asked: (
        '{"results": ['
        f'{{"job_id": "{j0}", "progress": NaN, "incre_trans_delay": 1e309,'
        ' "incre_trans_delay_millis": 1e309, "task_mode": "FULL_INCR_TRANS",'
        ' "transfer_status": "INCRE_TRANSFER_STARTED", "process_time": "1",'
        ' "remaining_time": 99999999999999999999999, "vendor": [NaN, Infinity, -Infinity]},'
        f'{{"job_id": "{j1}", "progress": "50", "transfer_status": "{LONG_STATE}",'
        f' "task_mode": "{"M" * 100}", "error_code": "DRS.{"9" * 100}",'
        ' "error_msg": "disk\\u0000full"},'
        f'{{"job_id": "{j2}", "progress": "100", "transfer_status": "INCRE_TRANSFER_STARTED",'
        ' "incre_trans_delay": "1", "error_msg": "' + "e" * 40_000 + '"}]}')
    hostile_drs.compare = lambda: (
        f'{{"full_info": {{"progress": NaN, "src_speed": "{"9" * 100}B/s",'
        ' "recheck_entities": 99999999999999999999999},'
        ' "incre_info": {"delay": Infinity, "src_speed": "1.0KB/s", "rps": 1,'
        ' "log_point": "lp\\u0000x", "recheck_entities": 0},'
        f' "global_info": {{"src_speed": "{"8" * 100}B/s"}}}}')
    hook = webhooks["webhook"]
    settings = _run_settings(hostile_drs, store_url, tmp_path / "out", hook)
    result = run_cycle(settings, canary_credentials())
    assert not [e for e in result.errors if "could not be stored" in e], result.errors
    assert sorted(m.json()["kind"] for m in hook.messages()) == ["alert", "digest"]
    store = Store.open(store_url, in_functiongraph=False)
    try:
        (run,) = store.runs()
        assert run["outcome"] == "ok"
        history = store.history(HOSTILE_JOBS, since=T0 - timedelta(days=3650))
        (_, r0), = history[j0]
        (_, r1), = history[j1]
        (_, r2), = history[j2]
        assert r0.progress is not None and r0.progress.progress is None
        assert r0.progress.remaining_time is None  # past 64 bits: no number, not an error
        assert r0.progress.raw["vendor"] == [None, None, None]  # the raw answer, kept clean
        assert r1.progress is not None and r1.progress.transfer_status is not None
        assert len(r1.progress.transfer_status) == 64
        assert r1.progress.transfer_status.endswith(CUT_MARK)
        assert r1.progress.transfer_status.startswith("INCRE_TRANSFER_XXX")
        assert r1.progress.error_msg == "diskfull"
        assert r2.progress is not None and r2.progress.error_msg is not None
        assert r2.progress.error_msg.endswith(CUT_MARK) and len(r2.progress.error_msg) < 17_000
        (comp,) = r0.comparisons
        assert comp.progress is not None and comp.progress.full_info is not None
        assert comp.progress.full_info.src_speed is not None
        assert comp.progress.full_info.src_speed.endswith(CUT_MARK)
        assert comp.progress.incre_info is not None
        assert comp.progress.incre_info.log_point == "lpx"
    finally:
        store.close()
    # The report says what the API said (whole), the store what it could keep.
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    job1 = next(j for j in data["jobs"] if j["job_id"] == j1)
    assert job1["health"] == "CRITICAL" and job1["transfer_status"] == LONG_STATE


def test_a_lone_surrogate_is_stored_as_a_replacement_character(store: Store) -> None:
    """"\\ud800" is valid JSON and a valid Python str, but not UTF-8: both backends refuse
    it (SQLite's driver too), so the store boundary replaces it."""
    reading = job_reading(1)
    assert reading.progress is not None
    reading.progress.error_msg = "half \ud800 of a pair"
    reading.progress.raw = {"\udc00key": ["\ud800"]}
    run_id = store.begin_run(trigger="test", started_at=T0)
    store.save_snapshot(run_id, Snapshot(taken_at=T0, jobs=[reading]))
    (_, back), = store.history([reading.job_id], since=T0)[reading.job_id]
    assert back.progress is not None and back.progress.error_msg == "half \ufffd of a pair"
    assert back.progress.raw == {"\ufffdkey": ["\ufffd"]}


def _refuse_readings(store_url: str) -> None:
    """The database refuses every reading (a full disk, a broken trigger: storing fails
    whatever the values)."""
    from sqlalchemy import create_engine

    engine = create_engine(store_url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON job_snapshots BEGIN "
                                 "SELECT RAISE(ABORT, 'no space left on device'); END")
        else:
            conn.exec_driver_sql("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                                 "RAISE EXCEPTION 'no space left on device'; END $$ "
                                 "LANGUAGE plpgsql")
            conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON job_snapshots "
                                 "FOR EACH ROW EXECUTE FUNCTION refuse()")
    engine.dispose()


def test_readings_the_database_refuses_still_give_a_report_and_deliveries(
        hostile_drs: Any, store_url: str, webhooks: dict[str, Any], tmp_path: Path) -> None:
    """Through the CLI, on both backends: the report is written and delivered, the run is
    closed as failed, stderr has our one line and not psycopg's pipeline-abort line."""
    from tests.fixtures.receivers import WEBHOOK_SECRET
    from tests.test_end_to_end import CREDENTIALS, cli

    hostile_drs.batch = _states({HOSTILE_JOBS[1]: 900.0})
    hook = webhooks["webhook"]
    store = Store.open(store_url, in_functiongraph=False)
    store.upgrade()
    store.close()
    _refuse_readings(store_url)
    config = tmp_path / "config.toml"
    # Enough readings that psycopg still has some queued in its pipeline when the error
    # comes back (with three it sometimes has not, and says nothing).
    many = HOSTILE_JOBS + [f"{n:08d}-0000-4000-8000-00000000jb99" for n in range(10, 400)]
    jobs = "".join(f'[[jobs]]\nid = "{j}"\n' for j in many)
    config.write_text(
        f'[drs]\nregion = "cn-north-4"\nproject_id = "5237e10fe9aa4ad5b16b6a5245248314"\n'
        f'endpoint = "{hostile_drs.url}"\nmax_retries = 0\n\n{jobs}\n'
        f'[store]\nurl = "{store_url}"\n[report]\noutput_dir = "out"\n\n'
        f'[[channels]]\ntype = "webhook"\nmode = "digest"\nurl = "{hook.url}"\n'
        f'secret = "{WEBHOOK_SECRET}"\n',
        encoding="utf-8")
    proc = cli("run", "--config", str(config), env=CREDENTIALS)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "report.json").is_file()
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert any("could not be stored" in e and "no space left on device" in e
               for e in data["errors"])
    assert [m.json()["kind"] for m in hook.messages()] == ["digest"]
    assert "pipeline aborted" not in proc.stderr and "Traceback" not in proc.stderr
    assert "the readings of this run could not be stored" in proc.stdout + proc.stderr
    store = Store.open(store_url, in_functiongraph=False)
    try:
        (run,) = store.runs()
        assert run["outcome"] == "failed" and run["finished_at"] is not None
        assert count(store, JobSnapshot) == 0
    finally:
        store.close()


def test_a_run_that_fails_is_closed_as_failed(hostile_drs: Any, store_url: str,
                                              tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    from drs_report.pipeline import run_cycle
    from tests.fixtures.emulator import canary_credentials

    hostile_drs.batch = _states({})
    store = Store.open(store_url, in_functiongraph=False)
    store.upgrade()
    store.close()
    engine = create_engine(store_url)
    with engine.begin() as conn:  # the reports cannot be saved: the run fails half-way
        conn.exec_driver_sql("DROP TABLE reports")
    engine.dispose()
    with pytest.raises(StoreError):
        run_cycle(_run_settings(hostile_drs, store_url, tmp_path / "out"),
                  canary_credentials())
    store = Store.open(store_url, in_functiongraph=False)
    try:
        (run,) = store.runs()
        assert run["outcome"] == "failed" and "StoreError" in run["errors"][0]
    finally:
        store.close()


def _killed_mid_alert(settings_data: dict[str, Any], out: str) -> None:
    """A run in a process of its own, with a 3 s budget (its lease: 8 s)."""
    from drs_report.config import parse_settings
    from drs_report.pipeline import run_cycle
    from tests.fixtures.emulator import canary_credentials

    settings = parse_settings(settings_data, {})
    result = run_cycle(settings, canary_credentials(), deadline=time.monotonic() + 3.0)
    Path(out).write_text(json.dumps({"run_id": result.run_id}))


def test_a_run_killed_mid_alert_is_named_closed_and_its_recovery_announced(
        hostile_drs: Any, store_url: str, webhooks: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """Job 1 fails; the run alerting it is killed (kill -9) the moment the receiver has the
    message. Within the claim's lease the next run names the run holding it and when its
    claim lapses; the run after the lease closes the dead run as abandoned, counts the
    alert as possibly sent, and announces the recovery."""
    import multiprocessing
    from multiprocessing.connection import wait as wait_for_end

    from drs_report.pipeline import run_cycle
    from tests.fixtures.emulator import canary_credentials

    hook = webhooks["webhook"]
    hostile_drs.batch = _states({})
    settings = _run_settings(hostile_drs, store_url, tmp_path / "out", hook)
    run_cycle(settings, canary_credentials())  # all well: nothing to alert
    assert _alerts(hook) == []
    failing = HOSTILE_JOBS[1]
    hostile_drs.batch = _states({failing: 900.0})  # CRITICAL
    victim: list[Any] = []
    verify = hook.verify

    def kill_on_alert(request: Any) -> Any:
        if json.loads(request.body).get("kind") == "alert" and victim:
            os.kill(victim[0].pid, signal.SIGKILL)  # the body handed over, the run dead
            # Dead before we answer. Wait on its sentinel, not join(): two threads reaping
            # one child race, and the loser reads its exit code as None.
            wait_for_end([victim[0].sentinel], 10)
        return verify(request)

    hook.verify = kill_on_alert
    context = multiprocessing.get_context("spawn")
    raw = _settings_data(hostile_drs, store_url, tmp_path / "out", hook)
    process = context.Process(target=_killed_mid_alert, args=(raw, str(tmp_path / "v.json")))
    victim.append(process)
    process.start()
    process.join(180)  # a spawned interpreter imports the whole package first: slow when loaded
    assert process.exitcode == -signal.SIGKILL
    hook.verify = verify
    assert len(_alerts(hook)) == 1  # it reached the receiver
    store = Store.open(store_url, in_functiongraph=False)
    dead = max(r["id"] for r in store.runs())
    assert store.runs()[-1]["outcome"] == "running"
    store.close()
    # Within the claim's lease: skipped, naming the dead run and when its claim lapses.
    soon = run_cycle(settings, canary_credentials())
    (alerting,) = [d for d in soon.deliveries if d.mode == "alert"]
    assert alerting.status == "skipped"
    assert f"being sent by run {dead} (cli, started " in alerting.reason
    assert "its claim lapses at " in alerting.reason
    # Later (past the run's lease and the claim's), the job has recovered.
    hostile_drs.batch = _states({})
    later = datetime.now(timezone.utc) + timedelta(minutes=11)
    with caplog.at_level(logging.WARNING, logger="drs_report"):
        run_cycle(settings, canary_credentials(), now=later)
    assert any(f"closed run {dead} " in r.getMessage() and "abandoned" in r.getMessage()
               for r in caplog.records)
    store = Store.open(store_url, in_functiongraph=False)
    outcomes = {r["id"]: r["outcome"] for r in store.runs()}
    store.close()
    assert outcomes[dead] == "abandoned" and "running" not in outcomes.values()
    alerts = _alerts(hook)
    assert len(alerts) == 2 and alerts[-1]["resolved"] == [f"{failing}:delay_critical"]


def _settings_data(hostile: Any, store_url: str, out: Path, hook: Any) -> dict[str, Any]:
    from tests.fixtures.receivers import WEBHOOK_SECRET

    return {
        "drs": {"region": "cn-north-4", "project_id": "5237e10fe9aa4ad5b16b6a5245248314",
                "endpoint": hostile.url, "backoff_base": 0.01, "backoff_max": 0.05,
                "max_retries": 0},
        "jobs": [{"id": j} for j in HOSTILE_JOBS],
        "store": {"url": store_url}, "report": {"output_dir": str(out)},
        "run": {"safety_margin_seconds": 0.5},
        "channels": [{"type": "webhook", "name": "hook-digest", "mode": "digest",
                      "url": hook.url, "secret": WEBHOOK_SECRET},
                     {"type": "webhook", "name": "hook-alert", "mode": "alert",
                      "url": hook.url, "secret": WEBHOOK_SECRET}]}


def test_a_clock_a_day_ahead_neither_reorders_alerts_nor_goes_unflagged(
        hostile_drs: Any, store_url: str, webhooks: dict[str, Any], tmp_path: Path) -> None:
    """One run's clock is 24 h ahead. The runs after it: every change still alerts, A -> B
    -> A included (ordered by the database's sequence, not by that clock), and each says
    its clock is earlier than the newest stored reading."""
    from sqlalchemy import create_engine, text

    from drs_report.pipeline import run_cycle
    from tests.fixtures.emulator import canary_credentials

    hook = webhooks["webhook"]
    settings = _run_settings(hostile_drs, store_url, tmp_path / "out", hook)
    j0, j1, j2 = HOSTILE_JOBS
    start = datetime.now(timezone.utc)
    states = [({j2: 120.0}, start), ({j0: 900.0}, start + timedelta(hours=24)),  # ahead
              ({j1: 900.0}, start + timedelta(hours=1)),
              ({j1: 900.0, j2: 900.0}, start + timedelta(hours=2)),
              ({j1: 900.0}, start + timedelta(hours=3))]  # back to the state of run 3
    results = []
    for n, (delays, now) in enumerate(states):
        hostile_drs.batch = _states(delays)
        results.append(run_cycle(settings, canary_credentials(), now=now))
        if n == 1:  # that machine stamped its rows by its own clock too
            engine = create_engine(store_url)
            with engine.begin() as conn:
                for table, column in (("runs", "started_at"), ("job_snapshots", "taken_at")):
                    key = "id" if table == "runs" else "run_id"
                    conn.execute(text(f"UPDATE {table} SET {column} = :at WHERE {key} = :r"),
                                 {"at": _db_time(engine, now), "r": results[-1].run_id})
            engine.dispose()
    sent = [[d.status for d in r.deliveries if d.mode == "alert"] for r in results]
    assert sent == [["sent"]] * 5, [[d.reason for d in r.deliveries] for r in results]
    alerts = _alerts(hook)
    assert alerts[4]["resolved"] == [f"{j2}:delay_critical"]  # B -> A announced
    assert alerts[3]["new"] == [f"{j2}:delay_critical"]
    for later in results[2:]:
        assert any("is earlier than the newest stored reading (run "
                   f"{results[1].run_id} at " in e for e in later.errors), later.errors
    assert not any("earlier than the newest" in e for e in results[0].errors + results[1].errors)


def _db_time(engine: Any, at: datetime) -> Any:
    # SQLite keeps SQLAlchemy's text form; PostgreSQL takes the datetime.
    return at.strftime("%Y-%m-%d %H:%M:%S.%f") if engine.dialect.name == "sqlite" else at
