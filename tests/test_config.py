"""Configuration: valid files load; broken ones give one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
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


# -- the mistakes a newcomer makes ------------------------------------------------------------

MINIMAL = """
[drs]
region = "cn-north-4"
project_id = "5237e10fe9aa4ad5b16b6a5245248314"

[[jobs]]
id = "9a470239-2308-4bb5-a6bc-1040402fjb21"
"""
FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"


def test_numbers_in_quotes_are_refused_from_the_file_but_taken_from_the_environment(
        tmp_path: Path) -> None:
    quoted = write(tmp_path, MINIMAL + '\n[thresholds]\ndelay_warn_seconds = "60"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(quoted, {})
    assert caught.value.key == "thresholds.delay_warn_seconds"
    assert "write it without quotes: delay_warn_seconds = 60" in str(caught.value)
    # The environment only has text: there "60" is the number 60.
    s = load_settings(write(tmp_path, MINIMAL),
                      {"DRS_REPORT_THRESHOLDS_DELAY_WARN_SECONDS": "60",
                       "DRS_REPORT_DRS_VERIFY_TLS": "false"})
    assert s.thresholds.delay_warn_seconds == 60.0 and s.drs.verify_tls is False
    referenced = write(tmp_path, MINIMAL + '\n[thresholds]\ndelay_warn_seconds = "${WARN}"\n')
    assert load_settings(referenced, {"WARN": "45"}).thresholds.delay_warn_seconds == 45.0


def test_environment_variables_that_set_nothing_are_named_with_a_hint(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="drs_report"):
        load_settings(write(tmp_path, MINIMAL),
                      {"DRS_REPORT_STORE_URLL": "sqlite:///x.db",
                       "DRS_REPORT_STORE_URL": f"sqlite:///{tmp_path / 'h.db'}",
                       "DRS_REPORT_LOG_LEVEL": "INFO", "DRS_REPORT_CONFIG": "c.toml"})
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["environment variable DRS_REPORT_STORE_URLL matches no setting and is "
                        "ignored; did you mean DRS_REPORT_STORE_URL?"]


def test_a_sqlite_url_with_two_slashes_says_how_many_it_needs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, MINIMAL + '[store]\nurl = "sqlite://drs-report.db"\n'), {})
    assert str(caught.value) == ("store.url: 'sqlite://drs-report.db' has two slashes; a SQLite "
                                 "file needs three: sqlite:///drs-report.db (four for an "
                                 "absolute path)")


def test_postgresql_urls_get_the_driver_we_ship(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MINIMAL + '[store]\nurl = "postgresql://u:p@db/drs"\n'), {})
    assert s.store.url == "postgresql+psycopg://u:p@db/drs"


def test_postgresql_without_its_driver_names_the_extra(tmp_path: Path) -> None:
    config = write(tmp_path, MINIMAL + '[store]\nurl = "postgresql+psycopg://u:p@db/drs"\n')
    # A None entry in sys.modules makes `import psycopg` fail as if it were not installed.
    code = ("import sys; sys.modules['psycopg'] = None; from drs_report.cli import main; "
            f"sys.exit(main(['db', 'upgrade', '--config', {str(config)!r}]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRS_REPORT_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(FUNCTION_DIR)}, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "drs-report: error: store.url: PostgreSQL needs the psycopg driver, which is not "
        "installed; pip install 'drs-report[postgresql]'")


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_report_output_dir_must_be_a_directory(tmp_path: Path, where: str) -> None:
    (tmp_path / "taken").write_text("a file")
    target = "taken" if where == "file" else "taken/reports"
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, MINIMAL + f'[report]\noutput_dir = "{target}"\n'), {})
    assert caught.value.key == "report.output_dir" and "give a directory" in str(caught.value)
    assert (tmp_path / "taken").read_text() == "a file"


def test_top_level_keys_inside_a_table_say_to_move_the_line_up(tmp_path: Path) -> None:
    text = MINIMAL.replace('[[jobs]]\nid = "9a470239-2308-4bb5-a6bc-1040402fjb21"\n', "")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text + '\n[store]\njobs = "all"\n'), {})
    assert caught.value.key == "store.jobs"
    assert "belongs at the top of the file" in str(caught.value)
    assert "move the line up" in str(caught.value)


def test_template_syntax_errors_are_found_before_anything_is_fetched(tmp_path: Path) -> None:
    (tmp_path / "t" / "chat").mkdir(parents=True)
    (tmp_path / "t" / "chat" / "message.md.j2").write_text("one\ntwo {{ report.jobs | }}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, MINIMAL + '[report]\ntemplates_dir = "t"\n'), {})
    assert str(caught.value).startswith("report.templates_dir: chat/message.md.j2 line 2: ")
    assert str(caught.value).endswith("; fix the template")
