"""Configuration: valid files load; broken ones give one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drs_report.config import load_settings
from drs_report.errors import ConfigError
from drs_report.secrets import Secret

GOOD = """
[drs]
region = "cn-north-4"
project_id = "5237e10fe9aa4ad5b16b6a5245248314"
language = "zh-cn"

[[jobs]]
id = "9a470239-2308-4bb5-a6bc-1040402fjb21"
name = "orders: MySQL -> GaussDB"
compare_jobs = ["b13b233a-4b9e-4b06-a928-19a0c93f6109"]
delay_warn_seconds = 30

[store]
url = "sqlite:///history.db"

[[channels]]
type = "feishu"
mode = "alert"
url = "${FEISHU_URL}"
secret = "${FEISHU_SECRET:-fallback-secret}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_loads_with_defaults_and_env(tmp_path: Path) -> None:
    env = {"FEISHU_URL": "https://open.feishu.cn/open-apis/bot/v2/hook/abc"}
    s = load_settings(write(tmp_path, GOOD), env)
    assert s.drs.endpoint == "https://drs.cn-north-4.myhuaweicloud.com"
    assert s.drs.language == "zh-cn"
    assert s.jobs[0].id == "9a470239-2308-4bb5-a6bc-1040402fjb21"
    assert s.jobs[0].thresholds.delay_warn_seconds == 30
    assert s.jobs[0].thresholds.delay_crit_seconds == 300
    assert s.store.url == f"sqlite:///{(tmp_path / 'history.db').resolve()}"
    url = s.channels[0].options["url"]
    assert isinstance(url, Secret)
    assert url.reveal() == env["FEISHU_URL"]
    assert "abc" not in repr(s.channels[0])
    assert s.channels[0].options["secret"].reveal() == "fallback-secret"


def test_environment_overrides_file(tmp_path: Path) -> None:
    env = {"FEISHU_URL": "https://x.example/hook", "DRS_REPORT_STORE_RETENTION_DAYS": "7"}
    s = load_settings(write(tmp_path, GOOD), env)
    assert s.store.retention_days == 7


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda t: t.replace('region = "cn-north-4"', 'region = "north"'), "drs.region"),
        (lambda t: t.replace("1040402fjb21", "1040402FJB21"), "jobs[0].id"),
        (lambda t: t.replace('type = "feishu"', 'type = "feishoo"'), "channels[0].type"),
        (lambda t: t.replace("language", "langauge"), "drs.langauge"),
        (lambda t: t.replace("${FEISHU_URL}", "${NOT_SET_ANYWHERE}"), "channels[0].url"),
        (lambda t: t.replace("delay_warn_seconds = 30", 'delay_warn_seconds = "x"'),
         "jobs[0].delay_warn_seconds"),
    ],
)
def test_broken_files_name_the_key(tmp_path: Path, edit, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, edit(GOOD)), {"FEISHU_URL": "https://x.example/h"})
    assert caught.value.key == key
    assert "\n" not in str(caught.value)
