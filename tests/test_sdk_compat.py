"""The official huaweicloudsdkdrs client calls every emulator endpoint and parses the answers.

If the SDK, which Huawei generates from the real API's definition, can sign its requests
to the emulator and read its answers into its models, the emulator speaks the real API.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from drs_report.emulator import Emulator
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN, PROJECT_ID

ORDERS = "9a470239-2308-4bb5-a6bc-1040402fjb21"
ORDERS_COMPARE = "b13b233a-4b9e-4b06-a928-19a0c93f6109"
AUDIT = "8b2c5d1e-6f3a-4e7b-9c0d-1a2b3c4djb21"
AUDIT_COMPARE = "d35e8f2c-6b4a-4d9f-8ae3-7f2a1b4c8d69"
BILLING = "3f6a9c2e-4b8d-4e1f-a7c5-2d9e8b1fjb21"


def sdk_clients(url: str, sk: str = CANARY_SK) -> tuple[Any, Any]:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkdrs.v3 import DrsClient as DrsClientV3
    from huaweicloudsdkdrs.v5 import DrsClient as DrsClientV5

    credentials = BasicCredentials(CANARY_AK, sk, PROJECT_ID).with_security_token(CANARY_TOKEN)
    config = HttpConfig.get_default_config()
    v3 = (DrsClientV3.new_builder().with_credentials(credentials).with_endpoints([url])
          .with_http_config(config).build())
    v5 = (DrsClientV5.new_builder().with_credentials(credentials).with_endpoints([url])
          .with_http_config(config).build())
    return v3, v5


@pytest.fixture(autouse=True)
def _sdk_warnings() -> Any:
    # The SDK marks some list calls deprecated and uses datetime.utcnow(); not our code.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def test_batch_progress_through_the_sdk(emulator: Emulator) -> None:
    from huaweicloudsdkdrs.v3 import BatchListProgressesRequest, BatchQueryProgressReq

    v3, _ = sdk_clients(emulator.url)
    ids = [job["id"] for job in emulator.jobs_config()]
    answer = v3.batch_list_progresses(BatchListProgressesRequest(
        x_language="en-us", body=BatchQueryProgressReq(jobs=ids)))
    assert answer.count == len(answer.results) == 9  # one job is left out, as the service may
    first = answer.results[0]
    assert first.job_id == ORDERS
    assert first.transfer_status == "INCRE_TRANSFER_STARTED"
    assert first.progress == "100"
    assert int(first.incre_trans_delay_millis) >= 0
    assert first.apply_rows_rate == 1200
    assert first.progress_map["data"].completed == "100%"
    failed = [r for r in answer.results if r.error_code]
    assert {r.error_code for r in failed} == {"DRS.M05004", "DRS.10000004"}


def test_compare_progress_through_the_sdk(emulator: Emulator) -> None:
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkdrs.v5 import ShowCompareProgressRequest

    _, v5 = sdk_clients(emulator.url)
    answer = v5.show_compare_progress(ShowCompareProgressRequest(
        job_id=ORDERS, compare_job_id=ORDERS_COMPARE))
    assert answer.full_info.progress == 100.0
    assert answer.full_info.recheck_entities == 0
    assert answer.incre_info.log_point.startswith("951de1d2-")
    assert answer.global_info.src_speed.endswith("B/s")
    with pytest.raises(ClientRequestException) as caught:
        v5.show_compare_progress(ShowCompareProgressRequest(job_id=AUDIT,
                                                            compare_job_id=AUDIT_COMPARE))
    assert caught.value.status_code == 400
    assert caught.value.error_code == "DRS.10000010"
    assert caught.value.error_msg == "Task information not found."


def test_listings_through_the_sdk(emulator: Emulator) -> None:
    from huaweicloudsdkdrs.v3 import ListDataLevelTableCompareJobsRequest
    from huaweicloudsdkdrs.v5 import ListJobsRequest

    v3, v5 = sdk_clients(emulator.url)
    page = v5.list_jobs(ListJobsRequest(job_type="sync", offset=0, limit=3))
    assert page.total_count == 9 and len(page.jobs) == 3
    assert page.jobs[0].id == ORDERS and page.jobs[0].name.startswith("orders")
    compares = v3.list_data_level_table_compare_jobs(
        ListDataLevelTableCompareJobsRequest(job_id=BILLING, limit=10, offset=0))
    assert compares.count == 1
    assert compares.compare_jobs[0].id == "c24d7e1b-5a3f-4c8e-b9d2-6e1f0a3b7c58"
    assert compares.compare_jobs[0].status == "INCRE_DOING"


def test_a_wrong_secret_key_is_refused_to_the_sdk(emulator: Emulator) -> None:
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdkdrs.v5 import ListJobsRequest

    _, v5 = sdk_clients(emulator.url, sk="not-the-secret-key")
    with pytest.raises(ClientRequestException) as caught:
        v5.list_jobs(ListJobsRequest(offset=0, limit=3))
    assert caught.value.status_code == 401
    assert caught.value.error_code == "APIG.0301"
