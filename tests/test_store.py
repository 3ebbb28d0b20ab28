"""The snapshot store, on SQLite and on PostgreSQL (every test runs on both)."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
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
