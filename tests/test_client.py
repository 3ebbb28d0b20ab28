"""The DRS client against the emulator over real HTTP on loopback."""

from __future__ import annotations

import time
from typing import Any

import pytest

from drs_report.client import DrsClient
from drs_report.config import DiscoveryConfig, JobConfig
from drs_report.emulator import Emulator, Faults, generated_fleet
from drs_report.models import FetchErrorKind, Snapshot
from drs_report.secrets import Credentials
from tests.fixtures.emulator import (
    CANARY_AK,
    CANARY_SK,
    CANARY_TOKEN,
    canary_credentials,
    make_emulator,
    make_settings,
)

ORDERS = "9a470239-2308-4bb5-a6bc-1040402fjb21"
ORDERS_COMPARE = "b13b233a-4b9e-4b06-a928-19a0c93f6109"
CUSTOMERS = "5c1e2f9b-7a64-4d2e-9b11-3f0a6c2djb21"
LEGACY = "2d4f6a8c-0e1b-4c3d-8e5f-7a9b1c3djb21"
REPORTING = "6a8c0e2d-4f1b-4d3c-9e5f-8b0c2d4ejb21"
AUDIT = "8b2c5d1e-6f3a-4e7b-9c0d-1a2b3c4djb21"
BILLING = "3f6a9c2e-4b8d-4e1f-a7c5-2d9e8b1fjb21"


def fetch(emulator: Emulator, credentials: Credentials | None = None, *,
          deadline: float | None = None, jobs: Any = None, discovery: Any = None,
          **drs: Any) -> Snapshot:
    settings = make_settings(emulator, drs=drs) if drs else make_settings(emulator)
    with DrsClient(settings.drs, credentials or canary_credentials()) as client:
        return client.fetch(settings.jobs if jobs is None else jobs,
                            discovery or settings.discovery, deadline=deadline)


def by_id(snapshot: Snapshot) -> dict[str, Any]:
    return {j.job_id: j for j in snapshot.jobs}


def test_demo_fleet_is_fetched_and_typed(emulator: Emulator) -> None:
    snapshot = fetch(emulator)
    jobs = by_id(snapshot)
    assert len(jobs) == 10 and not snapshot.partial and not snapshot.errors
    orders = jobs[ORDERS]
    assert orders.error is None and orders.progress is not None
    assert orders.progress.progress == 100.0  # "100" on the wire
    assert orders.progress.transfer_status == "INCRE_TRANSFER_STARTED"
    assert isinstance(orders.progress.incre_trans_delay_millis, int)
    assert orders.progress.apply_rows_rate == 1200
    assert orders.progress.progress_map["data"].completed == 100.0  # "100%" on the wire
    assert orders.progress.raw["progress"] == "100"
    assert orders.comparisons[0].progress is not None
    assert orders.comparisons[0].progress.global_info is not None
    assert jobs[CUSTOMERS].progress.error_code == "DRS.M05004"
    assert jobs[CUSTOMERS].progress.transfer_status == "INCRE_TRANSFER_FAILED"
    assert jobs[LEGACY].error.kind is FetchErrorKind.MISSING
    assert jobs[REPORTING].error.kind is FetchErrorKind.API_ERROR
    assert "<script>" in jobs[REPORTING].error.message  # kept as sent; escaped when shown
    assert jobs[AUDIT].comparisons[0].error.kind is FetchErrorKind.NOT_FOUND
    assert jobs[BILLING].comparisons[0].progress.recheck_entities == 17
    # One batch request and one per comparison: 4 comparisons in the demo fleet.
    assert snapshot.requests == 5
    assert emulator.statuses == {200: 4, 400: 1}


def test_empty_numbers_become_none(emulator: Emulator) -> None:
    warehouse = by_id(fetch(emulator))["4e6a8c0b-2d1f-4e3a-8b5c-9d0e1f2ajb21"]
    assert warehouse.progress.incre_trans_delay is None  # "" on the wire
    assert warehouse.progress.delay_seconds is None
    assert warehouse.progress.apply_rows_rate == -1


def test_batches_are_split_into_chunks() -> None:
    with make_emulator(scenario=generated_fleet(250, 0)) as emu:
        snapshot = fetch(emu, batch_size=100)
        assert emu.statuses == {200: 3}
    assert len(snapshot.jobs) == 250
    assert all(j.progress is not None and j.error is None for j in snapshot.jobs)


def test_security_token_is_sent_and_signed(emulator: Emulator) -> None:
    without = fetch(emulator, Credentials.of(CANARY_AK, CANARY_SK))
    assert all(j.error is not None and j.error.kind is FetchErrorKind.AUTH for j in without.jobs)
    assert emulator.statuses[401] >= 1
    with_token = fetch(emulator, Credentials.of(CANARY_AK, CANARY_SK, CANARY_TOKEN))
    assert all(j.error is None or j.error.kind is not FetchErrorKind.AUTH
               for j in with_token.jobs)


def test_wrong_secret_key_is_a_clear_auth_error(emulator: Emulator) -> None:
    snapshot = fetch(emulator, Credentials.of(CANARY_AK, "wrong-secret-key-123", CANARY_TOKEN))
    error = snapshot.jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.AUTH
    assert "APIG.0301" in error.message and "clock" in error.message
    assert "wrong-secret-key-123" not in error.message


def test_another_projects_id_is_access_denied_with_a_project_hint(emulator: Emulator) -> None:
    snapshot = fetch(emulator, project_id="0" * 32)
    error = snapshot.jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.AUTH
    assert error.status == 403 and error.message.startswith("access denied: HTTP 403")
    assert "drs.project_id" in error.message and "clock" not in error.message
    assert emulator.statuses[403] >= 1


def test_skewed_clock_is_reported_as_auth_with_a_hint() -> None:
    with make_emulator(faults=Faults(clock_skew_seconds=3600)) as emu:
        error = fetch(emu).jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.AUTH
    assert "15 minutes" in error.message


def test_throttled_post_is_retried_until_it_succeeds() -> None:
    with make_emulator(scenario=generated_fleet(12, 0),
                       faults=Faults(rate_limit=4, retry_after=0.1)) as emu:
        snapshot = fetch(emu, batch_size=1, max_workers=6)
        statuses = emu.statuses
    assert statuses.get(429, 0) >= 1  # the gateway did throttle the POSTs
    assert statuses[200] == 12
    assert all(j.error is None for j in snapshot.jobs)


def test_after_the_first_429_the_client_paces_itself_instead_of_retrying() -> None:
    # 300 POSTs against 100 per second: the first second's 100 are free, then the limiter
    # must settle just under the admitted rate rather than keep drawing 429s. Pacing from
    # what was sent instead of what was admitted drew 63-69 of them here; this draws ~15.
    with make_emulator(scenario=generated_fleet(300, 0), faults=Faults(rate_limit=100)) as emu:
        snapshot = fetch(emu, batch_size=1, max_workers=8)
        statuses = emu.statuses
    assert statuses[200] == 300 and all(j.error is None for j in snapshot.jobs)
    assert 1 <= statuses.get(429, 0) <= 300 * 0.12, statuses


def test_the_limiter_starts_just_under_what_the_gateway_admitted() -> None:
    from drs_report.throttle import AdaptiveLimiter

    limiter = AdaptiveLimiter()
    for _ in range(60):  # 60 answered, 40 more refused, all within the last second
        assert limiter.acquire()
        limiter.on_success()
    for _ in range(40):
        assert limiter.acquire()
    assert limiter.rate is None  # unlimited until the gateway objects
    limiter.on_throttle(None)
    assert limiter.rate == pytest.approx(60 * 0.95)
    limiter.on_throttle(None)  # a second 429 within the same second does not cut again
    assert limiter.rate == pytest.approx(60 * 0.95)


def test_server_errors_and_resets_are_retried() -> None:
    faults = Faults(error_rate=0.3, reset_rate=0.15, seed=3)
    with make_emulator(scenario=generated_fleet(20, 1), faults=faults) as emu:
        snapshot = fetch(emu, batch_size=2, max_retries=8)
        statuses = emu.statuses
    assert sum(statuses.get(s, 0) for s in (500, 502, 503)) >= 1
    assert statuses.get(0, 0) >= 1
    assert all(j.error is None for j in snapshot.jobs)
    assert all(c.error is None for j in snapshot.jobs for c in j.comparisons)
    assert snapshot.requests > 30  # 10 batches + 20 comparisons, plus the retries


def test_other_4xx_are_not_retried(emulator: Emulator) -> None:
    fetch(emulator, max_retries=5)
    assert emulator.statuses[400] == 1  # the one unknown comparison, asked once


def test_timeouts_become_network_errors() -> None:
    faults = Faults(timeout_rate=1.0, timeout_seconds=1.5)
    with make_emulator(scenario=generated_fleet(2, 0), faults=faults) as emu:
        snapshot = fetch(emu, read_timeout=0.2, max_retries=1)
    error = snapshot.jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.NETWORK
    assert "timeout" in error.message


@pytest.mark.parametrize(("kind", "expected"), [
    ("json", FetchErrorKind.MALFORMED),
    ("types", FetchErrorKind.MALFORMED),
    ("missing", FetchErrorKind.MALFORMED),
    ("oversized", FetchErrorKind.MALFORMED),
    ("html", FetchErrorKind.HTTP_ERROR),
])
def test_malformed_answers_are_recorded_as_errors(kind: str, expected: FetchErrorKind) -> None:
    faults = Faults(malformed_rate=1.0, malformed_kind=kind)
    with make_emulator(faults=faults) as emu:
        snapshot = fetch(emu, max_retries=1)
    assert len(snapshot.jobs) == 10
    for job in snapshot.jobs:
        assert job.error is not None and job.error.kind is expected, (kind, job.error)
    for comp in (c for j in snapshot.jobs for c in j.comparisons):
        assert comp.error is not None


def test_one_permanently_failing_job_leaves_the_others_alone() -> None:
    with make_emulator(faults=Faults(failing_jobs=(BILLING,))) as emu:
        jobs = by_id(fetch(emu, max_retries=1))
    assert jobs[BILLING].error is not None and jobs[BILLING].error.kind is FetchErrorKind.API_ERROR
    assert jobs[BILLING].comparisons[0].error is not None
    assert jobs[ORDERS].error is None and jobs[ORDERS].comparisons[0].error is None


def test_twenty_percent_transient_faults_lose_no_job() -> None:
    faults = Faults(error_rate=0.08, reset_rate=0.04, timeout_rate=0.04, timeout_seconds=1.0,
                    rate_limit=None, seed=11)
    with make_emulator(scenario=generated_fleet(60, 1), faults=faults) as emu:
        snapshot = fetch(emu, batch_size=5, read_timeout=0.3, max_retries=8, max_workers=8)
        served = emu.statuses
    assert served.get(0, 0) + sum(served.get(s, 0) for s in (500, 502, 503)) >= 3
    assert len(snapshot.jobs) == 60
    assert [j.job_id for j in snapshot.jobs if j.error is not None] == []
    assert [c for j in snapshot.jobs for c in j.comparisons if c.error is not None] == []


def test_deadline_stops_fetching_and_marks_partial() -> None:
    with make_emulator(scenario=generated_fleet(40, 1),
                       faults=Faults(latency_ms=150)) as emu:
        snapshot = fetch(emu, batch_size=1, max_workers=2,
                         deadline=time.monotonic() + 0.5)
    assert snapshot.partial
    skipped = [j for j in snapshot.jobs if j.error and j.error.kind is FetchErrorKind.SKIPPED]
    fetched = [j for j in snapshot.jobs if j.error is None]
    assert skipped and fetched
    assert snapshot.duration_seconds < 2.0


def test_a_budget_that_ends_discovery_marks_the_run_partial() -> None:
    with make_emulator(faults=Faults(latency_ms=400)) as emu:
        snapshot = fetch(emu, jobs=(), discovery=DiscoveryConfig(enabled=True),
                         deadline=time.monotonic() + 0.2)
    assert snapshot.jobs == [] and snapshot.partial
    assert snapshot.errors[0].startswith("job discovery failed: not fetched: the run's time "
                                         "budget ran out")


def test_a_budget_that_ends_retries_is_skipped_and_names_the_last_failure() -> None:
    with make_emulator(scenario=generated_fleet(3, 0), faults=Faults(error_rate=1.0)) as emu:
        snapshot = fetch(emu, batch_size=3, max_retries=20, deadline=time.monotonic() + 1.0)
    assert snapshot.partial and snapshot.duration_seconds < 2.0
    error = snapshot.jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.SKIPPED
    assert "budget ran out while retrying (server error: HTTP 50" in error.message
    assert error.status in (500, 502, 503)


def test_discovery_pages_through_every_job() -> None:
    with make_emulator(scenario=generated_fleet(250, 0)) as emu:
        snapshot = fetch(emu, jobs=(), discovery=DiscoveryConfig(enabled=True,
                                                                  compare_jobs_auto=False))
        statuses = emu.statuses
    assert len(snapshot.jobs) == 250
    assert snapshot.jobs[0].name == "fleet-00000"
    assert statuses[200] == 3 + 3  # three pages of 100, three batches of 100


def test_discovery_with_name_filter_and_auto_comparisons(emulator: Emulator) -> None:
    snapshot = fetch(emulator, jobs=(), discovery=DiscoveryConfig(enabled=True, name="billing"))
    assert [j.job_id for j in snapshot.jobs] == [BILLING]
    assert [c.compare_job_id for c in snapshot.jobs[0].comparisons] == [
        "c24d7e1b-5a3f-4c8e-b9d2-6e1f0a3b7c58"]


def test_compare_jobs_auto_for_configured_job(emulator: Emulator) -> None:
    job = JobConfig(id=ORDERS, name="orders", auto_compare=True)
    snapshot = fetch(emulator, jobs=(job,))
    assert [c.compare_job_id for c in snapshot.jobs[0].comparisons] == [ORDERS_COMPARE]


def test_discovery_failure_is_a_run_error_not_a_crash() -> None:
    with make_emulator(faults=Faults(error_rate=1.0)) as emu:
        snapshot = fetch(emu, jobs=(), discovery=DiscoveryConfig(enabled=True), max_retries=1)
    assert snapshot.jobs == []
    assert snapshot.errors and "discovery" in snapshot.errors[0]


def test_tls_verification_is_on_by_default(emulator: Emulator) -> None:
    settings = make_settings(emulator)
    assert settings.drs.verify_tls is True
    with DrsClient(settings.drs, canary_credentials()) as client:
        assert client._session.verify is True


def test_turning_tls_verification_off_warns(emulator: Emulator,
                                            caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(emulator, drs={"verify_tls": False})
    with caplog.at_level("WARNING", logger="drs_report"), \
            DrsClient(settings.drs, canary_credentials()):
        pass
    assert any("TLS verification is OFF" in r.getMessage() for r in caplog.records)


def test_x_language_is_sent(emulator: Emulator) -> None:
    settings = make_settings(emulator, drs={"language": "zh-cn"})
    with DrsClient(settings.drs, canary_credentials()) as client:
        assert client._headers["X-Language"] == "zh-cn"
        snapshot = client.fetch(settings.jobs[:1], settings.discovery)
    assert snapshot.jobs[0].error is None  # the header is signed and verified
