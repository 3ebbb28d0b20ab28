"""The SQLite store kept in OBS: fresh instances, overlapping runs, a killed run, merging.

Real parts: the DRS emulator and the OBS emulator over loopback, webhook receivers that
count what arrives, runs in processes of their own where they overlap or get killed.
"""

from __future__ import annotations

import gzip
import json
import logging
import multiprocessing
import os
import signal
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from drs_report.config import parse_settings
from drs_report.emulator import Emulator, Faults
from drs_report.emulator.obs import ObsEmulator, ObsFaults
from drs_report.errors import StoreError
from drs_report.pipeline import run_cycle
from drs_report.store import lease as lease_module
from drs_report.store.lease import Lease, StoreBusy
from drs_report.store.sync import synced_store
from tests.fixtures.emulator import CANARY_SK, CANARY_TOKEN, canary_credentials, make_emulator
from tests.fixtures.obs import BUCKET, KEY, synced_settings_dict
from tests.fixtures.receivers import WEBHOOK_SECRET, Receiver

LEASE_KEY = f"{KEY}.lease"


@pytest.fixture
def quick_lease() -> None:
    """The lease's own figures: a 0.25 s bound, a 0.3 s settle (lease.py)."""
    assert lease_module.BOUND_SECONDS == 0.25 and lease_module.SETTLE_SECONDS == 0.3


def channels(hook: Receiver) -> list[dict[str, Any]]:
    return [{"type": "webhook", "name": "hook-digest", "mode": "digest", "url": hook.url,
             "secret": WEBHOOK_SECRET},
            {"type": "webhook", "name": "hook-alert", "mode": "alert", "url": hook.url,
             "secret": WEBHOOK_SECRET}]


def kinds(hook: Receiver) -> list[str]:
    return sorted(m.json()["kind"] for m in hook.messages())


def rows(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def object_copy(obs: ObsEmulator, tmp_path: Path) -> Path:
    """The SQLite file as OBS holds it: gzip-compressed."""
    stored = obs.object(BUCKET, KEY)
    assert stored is not None and stored.data[:2] == b"\x1f\x8b", "not gzip"
    copy = tmp_path / f"object-{time.monotonic_ns()}.db"
    copy.write_bytes(gzip.decompress(stored.data))
    return copy


def test_a_fresh_instance_sees_the_history_and_sends_nothing_twice(
        emulator: Emulator, obs: ObsEmulator, webhooks: dict[str, Receiver], tmp_path: Path,
        quick_lease: None) -> None:
    hook = webhooks["webhook"]
    first = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "instance-1",
                                                channels=channels(hook)), {})
    result = run_cycle(first, canary_credentials())
    assert result.sync is not None and result.sync["fetched"] == "new"
    assert result.sync["written_back"] and not result.sync["merged"]
    assert kinds(hook) == ["alert", "digest"]
    assert obs.object(BUCKET, LEASE_KEY) is None  # released
    emulator.advance(600)
    # A new instance: nothing on its /tmp, everything from OBS.
    second = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "instance-2",
                                                 channels=channels(hook)), {})
    again = run_cycle(second, canary_credentials())
    assert again.sync is not None and again.sync["fetched"] == "downloaded"
    assert kinds(hook) == ["alert", "digest"]  # the day's digest and the alert: once
    assert {d.status for d in again.deliveries} == {"skipped"}
    runs = rows(object_copy(obs, tmp_path), "SELECT id, outcome FROM runs ORDER BY id")
    assert [r[1] for r in runs] == ["ok", "ok"]
    # The second run's trend has the first run's reading: history survived the instance.
    job = again.report.jobs[0]
    assert len(job.trend) == 2, job.trend
    # The same instance again: its copy is current, so OBS answers 304 and nothing moves.
    emulator.advance(600)
    gets_before = len(obs.requests("GET"))
    third = run_cycle(second, canary_credentials())
    assert third.sync is not None and third.sync["fetched"] == "unchanged"
    assert [r.status for r in obs.requests("GET")[gets_before:]].count(304) == 1


def test_an_object_an_older_version_wrote_uncompressed_still_reads(
        emulator: Emulator, obs: ObsEmulator, webhooks: dict[str, Receiver], tmp_path: Path,
        quick_lease: None) -> None:
    hook = webhooks["webhook"]
    run_cycle(parse_settings(synced_settings_dict(emulator, obs, tmp_path / "a",
                                                  channels=channels(hook)), {}),
              canary_credentials())
    plain = object_copy(obs, tmp_path).read_bytes()
    assert plain.startswith(b"SQLite format 3\x00")
    obs.put_object(BUCKET, KEY, plain)  # as the file was kept before it was compressed
    emulator.advance(600)
    again = run_cycle(parse_settings(synced_settings_dict(emulator, obs, tmp_path / "b",
                                                          channels=channels(hook)), {}),
                      canary_credentials())
    assert again.sync is not None and again.sync["fetched"] == "downloaded"
    assert len(again.report.jobs[0].trend) == 2  # the history came through
    assert kinds(hook) == ["alert", "digest"]  # and its claims: nothing sent twice
    stored = obs.object(BUCKET, KEY)
    assert stored is not None and stored.content_type == "application/gzip"
    assert len(stored.data) < len(plain) / 3
    assert rows(object_copy(obs, tmp_path), "SELECT COUNT(*) FROM runs") == [(2,)]


def test_a_dry_run_only_reads_the_file(emulator: Emulator, obs: ObsEmulator,
                                       webhooks: dict[str, Receiver], tmp_path: Path,
                                       quick_lease: None) -> None:
    hook = webhooks["webhook"]
    settings = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "i",
                                                   channels=channels(hook)), {})
    run_cycle(settings, canary_credentials())
    before = obs.object(BUCKET, KEY)
    puts, deletes = len(obs.requests("PUT")), len(obs.requests("DELETE"))
    result = run_cycle(settings, canary_credentials(), dry_run=True, force=True)
    assert result.sync is not None and result.sync["fetched"] == "dry-run"
    assert not result.sync["written_back"]
    assert len(obs.requests("PUT")) == puts and len(obs.requests("DELETE")) == deletes
    assert obs.object(BUCKET, KEY) == before
    assert kinds(hook) == ["alert", "digest"]


def test_a_live_lease_makes_the_run_busy_before_anything_is_fetched(
        emulator: Emulator, obs: ObsEmulator, webhooks: dict[str, Receiver], tmp_path: Path,
        quick_lease: None) -> None:
    now = datetime.now(timezone.utc)
    holder = Lease("timer run on another-instance pid 7 (abcd1234)", now,
                   now.replace(year=now.year + 1))
    obs.put_object(BUCKET, LEASE_KEY, holder.to_json())
    settings = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "i",
                                                   channels=channels(webhooks["webhook"])), {})
    served = emulator.requests_served
    with pytest.raises(StoreBusy) as caught:
        run_cycle(settings, canary_credentials())
    assert "another-instance pid 7" in str(caught.value)
    assert emulator.requests_served == served  # no DRS request
    assert webhooks["webhook"].messages() == []
    assert obs.object(BUCKET, KEY) is None
    stored = obs.object(BUCKET, LEASE_KEY)
    assert stored is not None and stored.data == holder.to_json()  # left alone


def test_a_run_that_outlived_its_lease_is_merged_not_overwritten(
        emulator: Emulator, obs: ObsEmulator, webhooks: dict[str, Receiver], tmp_path: Path,
        quick_lease: None, caplog: pytest.LogCaptureFixture) -> None:
    hook = webhooks["webhook"]
    slow = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "slow",
                                               channels=channels(hook)), {})
    other = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "other",
                                                channels=channels(hook)), {})
    run_cycle(slow, canary_credentials())  # some history first
    emulator.advance(600)
    with caplog.at_level(logging.WARNING, logger="drs_report"), \
            synced_store(slow, canary_credentials(), trigger="cli", ttl_seconds=60) as synced:
        synced.confirm()
        run_id = synced.store.begin_run(trigger="cli", started_at=datetime.now(timezone.utc))
        assert synced.store.claim_delivery("digest:late:1", run_id=run_id, channel="late",
                                           mode="digest", now=datetime.now(timezone.utc))
        synced.store.finish_delivery("digest:late:1", sent=True,
                                     now=datetime.now(timezone.utc))
        # Meanwhile its lease is gone (it ran past it) and another run writes the file.
        obs.state.buckets[BUCKET].pop(LEASE_KEY)
        run_cycle(other, canary_credentials())
    assert synced.stats.merged and synced.stats.written_back
    assert any("merged into the newer copy" in r.getMessage() for r in caplog.records)
    copy = object_copy(obs, tmp_path)
    triggers = [r[0] for r in rows(copy, "SELECT trigger FROM runs ORDER BY id")]
    assert triggers == ["cli", "cli", "cli"]  # first, the other one, then the merged one
    assert rows(copy, "SELECT state FROM delivery_claims WHERE idempotency_key = "
                      "'digest:late:1'") == [("sent",)]
    readings = rows(copy, "SELECT run_id, COUNT(*) FROM job_snapshots GROUP BY run_id")
    assert len(readings) == 2 and all(n == 10 for _, n in readings)


def test_a_refused_bucket_names_it_and_the_missing_permission(
        emulator: Emulator, obs: ObsEmulator, tmp_path: Path, quick_lease: None) -> None:
    obs.deny("PutObject")
    settings = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "i"), {})
    with pytest.raises(StoreError) as caught:
        run_cycle(settings, canary_credentials())
    message = str(caught.value)
    assert "obs://drs-report/drs-report/history.db.lease" in message
    assert "needs obs:object:PutObject on bucket drs-report" in message
    assert "\n" not in message and CANARY_SK not in message and CANARY_TOKEN not in message


def _lease_requests(obs: ObsEmulator) -> list[tuple[str, int]]:
    return [(r.method, r.status) for r in obs.requests() if r.key == LEASE_KEY]


def test_a_lease_taken_slower_than_the_bound_does_not_count(
        emulator: Emulator, obs: ObsEmulator, webhooks: dict[str, Receiver], tmp_path: Path,
        quick_lease: None) -> None:
    hook = webhooks["webhook"]
    settings = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "i",
                                                   channels=channels(hook)), {})
    # A first GET slower than half the bound (a cold connection): no PUT, tried again.
    obs.set_faults(ObsFaults(slow_ms=400, slow_next=1, slow_method="GET"))
    result = run_cycle(settings, canary_credentials())
    assert result.sync is not None and result.sync["written_back"]
    assert _lease_requests(obs)[:3] == [("GET", 404), ("GET", 404), ("PUT", 200)]
    assert kinds(hook) == ["alert", "digest"]
    # A PUT answered past the bound: busy, nothing stored or sent, and the lease is left
    # to expire (it may stand in for a lease it overwrote).
    emulator.advance(600)
    version = obs.object(BUCKET, KEY)
    obs.state.log.clear()
    obs.set_faults(ObsFaults(slow_ms=700, slow_next=1, slow_method="PUT"))
    with pytest.raises(StoreBusy) as caught:
        run_cycle(settings, canary_credentials(), force=True)
    assert "more than the 0.25s bound" in str(caught.value)
    assert _lease_requests(obs) == [("GET", 404), ("PUT", 200)]  # no DELETE
    assert obs.object(BUCKET, KEY) == version and len(hook.messages()) == 2
    assert obs.requests("GET") == [r for r in obs.requests() if r.key == LEASE_KEY
                                   and r.method == "GET"]  # the file was not even fetched
    left = obs.object(BUCKET, LEASE_KEY)
    assert left is not None
    obs.state.buckets[BUCKET].pop(LEASE_KEY)
    # Reads slow every time: no PUT at all, then busy.
    obs.state.log.clear()
    obs.set_faults(ObsFaults(slow_ms=300, slow_rate=1.0, slow_method="GET"))
    with pytest.raises(StoreBusy) as caught:
        run_cycle(settings, canary_credentials(), force=True)
    assert _lease_requests(obs) == [("GET", 404)] * lease_module.TAKE_TRIES
    assert obs.object(BUCKET, KEY) == version and len(hook.messages()) == 2


def test_the_settle_overlaps_reading_drs_and_a_lost_lease_stores_and_sends_nothing(
        obs: ObsEmulator, webhooks: dict[str, Receiver], tmp_path: Path,
        quick_lease: None) -> None:
    import threading

    hook = webhooks["webhook"]
    with make_emulator(faults=Faults(latency_ms=250)) as slow:
        settings = parse_settings(synced_settings_dict(slow, obs, tmp_path / "i",
                                                       channels=channels(hook)), {})
        first_drs: list[float] = []
        watching = threading.Event()

        def watch() -> None:  # when the first DRS request was answered, to 2 ms
            served = slow.requests_served
            while watching.is_set() and not first_drs:
                if slow.requests_served > served:
                    first_drs.append(time.monotonic())
                time.sleep(0.002)

        watching.set()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        result = run_cycle(settings, canary_credentials())
        watching.clear()
        watcher.join()
        lease = [r for r in obs.requests() if r.key == LEASE_KEY]
        put = next(r.at for r in lease if r.method == "PUT")
        confirm = next(r.at for r in lease if r.method == "GET" and r.at > put)
        fetched = next(r.at for r in obs.requests("GET") if r.key == KEY)
        # The file and DRS were read during the settle, and the confirming read came no
        # sooner than the settle after the lease was written.
        assert put < fetched < put + 0.3 and first_drs and put < first_drs[0] < confirm
        assert confirm - put >= lease_module.SETTLE_SECONDS
        # What the run itself measured: only the rest of the settle was waited for.
        assert result.sync is not None
        assert result.sync["settle_wait_seconds"] < lease_module.SETTLE_SECONDS - 0.1
        assert kinds(hook) == ["alert", "digest"]
        # Another run's PUT lands after ours (a race): our confirmation finds its lease.
        slow.advance(600)
        version = obs.object(BUCKET, KEY)
        rival = Lease("timer run on another-instance pid 11 (0badf00d)",
                      datetime.now(timezone.utc), datetime.now(timezone.utc).replace(
                          year=datetime.now(timezone.utc).year + 1))

        def overwrite() -> None:
            deadline = time.monotonic() + 30
            while obs.object(BUCKET, LEASE_KEY) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            obs.put_object(BUCKET, LEASE_KEY, rival.to_json())

        racer = threading.Thread(target=overwrite, daemon=True)
        racer.start()
        served = slow.requests_served
        with pytest.raises(StoreBusy) as caught:
            run_cycle(settings, canary_credentials(), force=True)
        racer.join()
        assert "another-instance pid 11" in str(caught.value)
        assert slow.requests_served > served  # DRS was read ...
    assert obs.object(BUCKET, KEY) == version  # ... but nothing stored
    assert kinds(hook) == ["alert", "digest"]  # ... and nothing sent
    stored = obs.object(BUCKET, LEASE_KEY)
    assert stored is not None and stored.data == rival.to_json()  # theirs, left alone
    runs = rows(tmp_path / "i" / "history.db", "SELECT COUNT(*) FROM runs")
    assert runs == [(1,)]  # the working copy: the first run only


# -- runs in processes of their own ------------------------------------------------------------


def _cycle_in_a_process(data: dict[str, Any], out: str, deadline_seconds: float | None) -> None:
    from drs_report.config import parse_settings
    from drs_report.pipeline import run_cycle
    from drs_report.store.lease import StoreBusy
    from tests.fixtures.emulator import canary_credentials

    logging.basicConfig(level=logging.INFO)
    settings = parse_settings(data, {})
    deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds
    try:
        result = run_cycle(settings, canary_credentials(), trigger="timer", deadline=deadline)
    except StoreBusy as e:
        Path(out).write_text(json.dumps({"status": "busy", "error": str(e)}))
        return
    Path(out).write_text(json.dumps({"status": "ok", "run_id": result.run_id,
                                     "sync": result.sync,
                                     "deliveries": [d.status for d in result.deliveries]}))


def _start(data: dict[str, Any], out: Path, deadline_seconds: float | None = None
           ) -> multiprocessing.process.BaseProcess:
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_cycle_in_a_process,
                              args=(data, str(out), deadline_seconds))
    process.start()
    return process


@pytest.mark.slow
def test_two_overlapping_runs_keep_every_reading_and_deliver_once(
        emulator: Emulator, obs: ObsEmulator, webhooks: dict[str, Receiver],
        tmp_path: Path) -> None:
    hook = webhooks["webhook"]
    emulator.set_faults(Faults(latency_ms=30))
    for round_ in range(2):
        outs = [tmp_path / f"round{round_}-run{i}.json" for i in range(2)]
        processes = [_start(synced_settings_dict(emulator, obs, tmp_path / f"r{round_}-i{i}",
                                                 channels=channels(hook)), out)
                     for i, out in enumerate(outs)]
        for p in processes:
            p.join(120)
        assert [p.exitcode for p in processes] == [0, 0]
        results = [json.loads(out.read_text()) for out in outs]
        statuses = sorted(r["status"] for r in results)
        # Started together, they overlap: one holds the lease, the other is busy.
        assert statuses == ["busy", "ok"], results
        emulator.advance(600)
    copy = object_copy(obs, tmp_path)
    runs = rows(copy, "SELECT id FROM runs ORDER BY id")
    assert len(runs) == 2  # one per round: every run that reported ok
    per_run = rows(copy, "SELECT run_id, COUNT(*) FROM job_snapshots GROUP BY run_id")
    assert [n for _, n in per_run] == [10, 10]
    assert kinds(hook) == ["alert", "digest"]  # each exactly once


@pytest.mark.slow
def test_a_run_killed_with_its_lease_is_taken_over_after_expiry(
        obs: ObsEmulator, webhooks: dict[str, Receiver], tmp_path: Path) -> None:
    hook = webhooks["webhook"]
    with make_emulator(faults=Faults(latency_ms=400)) as slow:
        data = synced_settings_dict(slow, obs, tmp_path / "killed", channels=channels(hook))
        victim = _start(data, tmp_path / "killed.json", deadline_seconds=3.0)
        deadline = time.monotonic() + 60
        while obs.object(BUCKET, LEASE_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)  # kill -9, holding the lease
        victim.join(10)
        stored = obs.object(BUCKET, LEASE_KEY)
        assert stored is not None
        left = Lease.from_json(stored.data)
        assert left is not None
        # Its expiry is the run's own budget (3 s) and a margin: not an hour.
        assert (left.expires_at - left.acquired_at).total_seconds() == pytest.approx(8, abs=1)
        settings = parse_settings(synced_settings_dict(slow, obs, tmp_path / "next",
                                                       channels=channels(hook)), {})
        with pytest.raises(StoreBusy):
            run_cycle(settings, canary_credentials())
        while datetime.now(timezone.utc) <= left.expires_at:
            time.sleep(0.2)
        result = run_cycle(settings, canary_credentials())
    assert result.sync is not None and result.sync["took_over_lease_of"] is not None
    assert left.owner in result.sync["took_over_lease_of"]
    assert kinds(hook) == ["alert", "digest"]
    assert obs.object(BUCKET, LEASE_KEY) is None


# -- the HTTP side's read-only copy ------------------------------------------------------------


def _web_config(directory: Path, emulator: Emulator, obs: ObsEmulator) -> Path:
    """The HTTP side's instance: its own /tmp (directory), the history in OBS."""
    from tests.web_fixtures import WEB_TOKEN

    jobs = "".join(f'[[jobs]]\nid = "{j["id"]}"\n' for j in emulator.jobs_config())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(
        f'[drs]\nregion = "cn-north-4"\nproject_id = "{emulator.project_id}"\n'
        f'endpoint = "{emulator.url}"\n\n{jobs}\n[store]\n'
        f'url = "sqlite:///{directory / "history.db"}"\nsync = "obs://{BUCKET}/{KEY}"\n'
        f'obs_endpoint = "{obs.url}"\n[report]\noutput_dir = "{directory / "out"}"\n'
        f'[web]\ntoken = "{WEB_TOKEN}"\n', encoding="utf-8")
    return path


def _get(config: Path, path: str) -> int:
    """GET through index.handler with an APIG event, as the APIG trigger invokes it."""
    import index

    from tests.test_function import FakeContext
    from tests.web_fixtures import apig_event, bearer

    answer = index.handler(apig_event("GET", path, headers=bearer()),
                           FakeContext(user_data={"DRS_REPORT_CONFIG": str(config)}))
    return int(answer["statusCode"])


@pytest.fixture
def fresh_apps() -> Any:
    """No warm App from another test: each test's APIG instance starts fresh."""
    from drs_report.web import apig

    def clear() -> None:
        for app in apig._apps.values():
            app.close()
        apig._apps.clear()

    clear()
    yield
    clear()


def test_the_http_side_answers_from_its_own_copy_and_never_writes_or_leases(
        emulator: Emulator, obs: ObsEmulator, tmp_path: Path, quick_lease: None,
        fresh_apps: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from drs_report.store import sync as sync_module

    interval = 1.0
    monkeypatch.setattr(sync_module, "REVALIDATE_SECONDS", interval)
    timer = parse_settings(synced_settings_dict(emulator, obs, tmp_path / "timer"), {})
    web = _web_config(tmp_path / "web", emulator, obs)
    sent_by_web: list[Any] = []  # every OBS request the HTTP side made

    def get(path: str) -> tuple[int, list[tuple[str, str, int]]]:
        mark = len(obs.state.log)
        status = _get(web, path)
        made = obs.state.log[mark:]
        sent_by_web.extend(made)
        return status, [(r.method, r.key, r.status) for r in made]

    assert get("/reports/1") == (503, [("GET", KEY, 404)])  # nothing in OBS yet
    time.sleep(interval)
    first = run_cycle(timer, canary_credentials())
    # A fresh instance (nothing in its /tmp) answers from the synced history.
    assert get(f"/reports/{first.run_id}") == (200, [("GET", KEY, 200)])
    assert (tmp_path / "web" / "read-only").is_dir()
    assert not (tmp_path / "web" / "history.db").exists()  # not a run's working copy
    # A new run is written back; within the interval the copy answers without asking ...
    emulator.advance(600)
    second = run_cycle(timer, canary_credentials())
    assert get(f"/reports/{second.run_id}") == (404, [])
    time.sleep(interval)
    # ... and after it, asks and sees the new run.
    assert get(f"/reports/{second.run_id}") == (200, [("GET", KEY, 200)])
    # While a timer run holds the lease, the HTTP side neither reads nor touches it; an
    # unchanged file costs a 304.
    now = datetime.now(timezone.utc)
    holder = Lease("timer run on another-instance pid 9 (feedbeef)", now,
                   now.replace(year=now.year + 1))
    obs.put_object(BUCKET, LEASE_KEY, holder.to_json())
    time.sleep(interval)
    assert get(f"/reports/{first.run_id}") == (200, [("GET", KEY, 304)])
    stored, current = obs.object(BUCKET, LEASE_KEY), obs.object(BUCKET, KEY)
    assert stored is not None and stored.data == holder.to_json()
    assert current is not None and sent_by_web[-1].headers["if-none-match"] == current.etag
    # Over the whole test: GETs of the history object only, no PUT, no DELETE, no lease.
    assert {(r.method, r.key) for r in sent_by_web} == {("GET", KEY)}
