"""The smn channel publishes to the topic whose URN the Terraform module hands the function
as DRS_REPORT_SMN_TOPIC_URN (user data), against an SMN receiver on loopback that checks the
signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from drs_report.emulator import Emulator
from drs_report.function import handle
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, CANARY_TOKEN
from tests.fixtures.receivers import Receiver

TOPIC = "urn:smn:cn-north-4:5237e10fe9aa4ad5b16b6a5245248314:drs-report-reports"


class Context:
    def __init__(self, user_data: dict[str, str]) -> None:
        self.user_data = user_data

    def getUserData(self, key: str) -> str:
        return self.user_data.get(key, "")

    def getSecurityAccessKey(self) -> str:
        return CANARY_AK

    def getSecuritySecretKey(self) -> str:
        return CANARY_SK

    def getSecurityToken(self) -> str:
        return CANARY_TOKEN

    def getRemainingTimeInMilliSeconds(self) -> int:
        return 60_000

    def getRequestID(self) -> str:
        return "smn-test"


def _config(tmp_path: Path, emulator: Emulator, smn_url: str, topic: str) -> Path:
    jobs = "".join(f'[[jobs]]\nid = "{j["id"]}"\n' for j in emulator.jobs_config())
    path = tmp_path / "config.toml"
    path.write_text(
        f'[drs]\nregion = "cn-north-4"\nproject_id = "{emulator.project_id}"\n'
        f'endpoint = "{emulator.url}"\n\n{jobs}\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "h.db"}"\n'
        f'[report]\noutput_dir = "{tmp_path / "out"}"\n\n'
        f'[[channels]]\ntype = "smn"\nname = "sns"\nendpoint = "{smn_url}"\n{topic}\n',
        encoding="utf-8")
    return path


def test_the_topic_urn_comes_from_the_functions_user_data(
        tmp_path: Path, emulator: Emulator, webhooks: dict[str, Receiver]) -> None:
    smn = webhooks["smn"]
    config = _config(tmp_path, emulator, smn.url.rstrip("/"),
                     'topic_urn = "${DRS_REPORT_SMN_TOPIC_URN}"')
    context = Context({"DRS_REPORT_SMN_TOPIC_URN": TOPIC,
                       "DRS_REPORT_CONFIG": str(config)})
    summary: dict[str, Any] = handle({"trigger_type": "TIMER", "user_event": ""}, context)
    assert summary["status"] == "ok", summary
    assert [d["status"] for d in summary["deliveries"]] == ["sent"], summary["deliveries"]
    (published,) = smn.messages()
    assert unquote(published.path).endswith(f"/notifications/topics/{TOPIC}/publish")


def test_without_a_topic_urn_the_error_says_where_it_comes_from(
        tmp_path: Path, emulator: Emulator, webhooks: dict[str, Receiver]) -> None:
    config = _config(tmp_path, emulator, webhooks["smn"].url.rstrip("/"), "")
    summary = handle({"trigger_type": "TIMER"}, Context({"DRS_REPORT_CONFIG": str(config)}))
    assert summary["status"] == "config_error"
    assert summary["error"] == ('channels[0].topic_urn: is required for smn channels; with the '
                                'topic the Terraform module creates, write '
                                'topic_urn = "${DRS_REPORT_SMN_TOPIC_URN}"')
    assert webhooks["smn"].messages() == []


@pytest.fixture(autouse=True)
def _no_leftover_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "DRS_REPORT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
