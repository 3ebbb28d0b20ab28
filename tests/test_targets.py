"""Several regions and projects in one report: [[drs.targets]], fetched side by side into
one store, one target's outage confined to its own jobs, and history from before targets."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from drs_report.config import parse_settings
from drs_report.emulator import Emulator, Faults
from drs_report.emulator.scenario import generated_fleet
from drs_report.errors import ConfigError
from drs_report.pipeline import EXIT_NOTHING_READ, EXIT_OK, run_cycle
from drs_report.store import SCHEMA_HEAD, Store
from tests.fixtures.emulator import CANARY_AK, CANARY_SK, canary_credentials, make_emulator

PROJECTS = ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "1b2c3d4e5f60718293a4b5c6d7e8f90a",
            "2c3d4e5f60718293a4b5c6d7e8f90a1b")
REGIONS = ("cn-north-4", "ap-southeast-1", "cn-east-3")
NAMES = ("prod-cn-north-4", "prod-ap-southeast-1", "dr-cn-east-3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _emulator(n: int, jobs: int = 4, faults: Faults | None = None) -> Emulator:
    return Emulator(ak=CANARY_AK, sk=CANARY_SK, project_id=PROJECTS[n],
                    scenario=generated_fleet(jobs, 1, seed=100 + n), faults=faults,
                    security_token=None)


def _target(n: int, url: str, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": NAMES[n], "region": REGIONS[n], "project_id": PROJECTS[n],
            "endpoint": url, "jobs": jobs}


def _estate(targets: list[dict[str, Any]], tmp_path: Path, store_url: str) -> dict[str, Any]:
    return {
        "drs": {"backoff_base": 0.01, "backoff_max": 0.2, "max_retries": 6,
                "targets": targets},
        "store": {"url": store_url},
        "report": {"output_dir": str(tmp_path / "out")},
    }


# -- configuration -------------------------------------------------------------------------


def _job(n: int) -> dict[str, Any]:
    return {"id": f"0000000{n}-aaaa-4bbb-8ccc-0000000djb0{n}"}


def test_the_single_form_is_one_target_named_after_its_region() -> None:
    settings = parse_settings({"drs": {"region": "cn-north-4", "project_id": PROJECTS[0]},
                               "jobs": [_job(1)]}, {})
    (target,) = settings.fleet()
    assert (target.name, target.project_id, target.jobs) == ("cn-north-4", PROJECTS[0],
                                                             settings.jobs)
    assert not settings.estate


def test_targets_parse_with_shared_settings_and_their_own_keys() -> None:
    env = {"OTHER_AK": "AK-OF-THE-OTHER-ACCOUNT", "OTHER_SK": "SK-OF-THE-OTHER-ACCOUNT"}
    settings = parse_settings({"drs": {"max_workers": 3, "targets": [
        {"name": "a", "region": "cn-north-4", "project_id": PROJECTS[0], "jobs": "all"},
        {"name": "b", "region": "ap-southeast-1", "project_id": PROJECTS[1],
         "ak": "${OTHER_AK}", "sk": "${OTHER_SK}", "jobs": [_job(2)]},
    ]}}, env)
    a, b = settings.fleet()
    assert a.discovery.enabled and a.credentials is None and a.drs.max_workers == 3
    assert b.drs.endpoint == "https://drs.ap-southeast-1.myhuaweicloud.com"
    assert b.credentials is not None and b.credentials.ak.reveal() == env["OTHER_AK"]
    assert env["OTHER_SK"] not in repr(settings)
    assert env["OTHER_SK"] in settings.secret_values()
    assert settings.estate and settings.jobs == b.jobs


@pytest.mark.parametrize(("data", "key"), [
    ({"drs": {"targets": [{"region": "cn-north-4", "project_id": PROJECTS[0],
                           "jobs": [_job(1)]}]}, "jobs": [_job(2)]}, "jobs"),
    ({"drs": {"targets": [
        {"name": "a", "region": "cn-north-4", "project_id": PROJECTS[0], "jobs": [_job(1)]},
        {"name": "b", "region": "cn-east-3", "project_id": PROJECTS[0], "jobs": [_job(2)]},
    ]}}, "drs.targets[1].project_id"),
    ({"drs": {"targets": [
        {"region": "cn-north-4", "project_id": PROJECTS[0], "jobs": [_job(1)]},
        {"region": "cn-east-3", "project_id": PROJECTS[1], "jobs": [_job(2)]},
    ]}}, "drs.targets[0].name"),
    ({"drs": {"targets": [
        {"name": "a", "region": "cn-north-4", "project_id": PROJECTS[0], "jobs": [_job(1)]},
        {"name": "a", "region": "cn-east-3", "project_id": PROJECTS[1], "jobs": [_job(2)]},
    ]}}, "drs.targets[1].name"),
    ({"drs": {"targets": [
        {"name": "a", "region": "cn-north-4", "project_id": PROJECTS[0], "jobs": [_job(1)]},
        {"name": "b", "region": "cn-east-3", "project_id": PROJECTS[1], "jobs": [_job(1)]},
    ]}}, "drs.targets[1].jobs[0].id"),
    ({"drs": {"targets": [{"region": "cn-north-4", "project_id": PROJECTS[0],
                           "ak": "only-the-access-key", "jobs": [_job(1)]}]}},
     "drs.targets[0].sk"),
    ({"drs": {"targets": [{"region": "cn-north-4", "project_id": PROJECTS[0],
                           "jobs": [{"id": "nope"}]}]}}, "drs.targets[0].jobs[0].id"),
    ({"drs": {"project_id": PROJECTS[1], "targets": [
        {"region": "cn-north-4", "project_id": PROJECTS[0], "jobs": [_job(1)]}]}},
     "drs.project_id"),
])
def test_target_mistakes_are_one_line_naming_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, {})
    assert caught.value.key == key
    assert "\n" not in str(caught.value)
    assert "only-the-access-key" not in str(caught.value)


# -- three emulators into one report and one store ------------------------------------------


def test_three_targets_one_throttling_one_down_make_one_report_and_one_store(
        tmp_path: Path, store_url: str) -> None:
    down_url = f"http://127.0.0.1:{_free_port()}"  # nothing listens: connection refused
    with _emulator(0) as a, _emulator(1, faults=Faults(rate_limit=4, retry_after=0.05)) as b:
        down_jobs = [{"id": j.id, "name": j.name} for j in generated_fleet(3, 0, seed=102).jobs]
        data = _estate([_target(0, a.url, a.jobs_config()), _target(1, b.url, b.jobs_config()),
                        _target(2, down_url, down_jobs)], tmp_path, store_url)
        settings = parse_settings(data, {})
        result = run_cycle(settings, canary_credentials(with_token=False))
        assert b.statuses.get(429, 0) > 0  # the throttled one said 429 and was waited for
        summary = result.summary()
    assert result.exit_code == EXIT_OK and summary["status"] == "ok"
    assert [(t["name"], t["unread"]) for t in summary["targets"]] == [
        (NAMES[0], 0), (NAMES[1], 0), (NAMES[2], 3)]
    assert summary["targets"][2]["cause"]
    report = json.loads(result.outputs["json"].read_text(encoding="utf-8"))
    assert report["schema_version"] == 2
    by_target = {t["name"]: t for t in report["targets"]}
    assert list(by_target) == list(NAMES)
    assert by_target[NAMES[0]]["cause"] is None and by_target[NAMES[1]]["cause"] is None
    assert by_target[NAMES[2]]["cause"] and by_target[NAMES[2]]["unread"] == 3
    health = {(j["target"], j["health"]) for j in report["jobs"]}
    assert {h for t, h in health if t == NAMES[2]} == {"UNKNOWN"}
    assert {h for t, h in health if t != NAMES[2]} == {"OK"}
    # The outage is named once, for the target, not once per job.
    lines = [e for e in report["errors"] if NAMES[2] in e]
    assert len(lines) == 1 and PROJECTS[2] in lines[0]
    for p in report["problems"]:
        assert p["key"].startswith(f"{p['project_id']}:{p['job_id']}")
        assert p["target"] == NAMES[2]
    html = result.outputs["html"].read_text(encoding="utf-8")
    # Collapsible per target (the inliner writes the attribute as open="").
    assert f'<details class="target" open="" data-target="{NAMES[2]}">' in html
    assert f'data-unread-target="{NAMES[2]}"' in html
    # The healthy jobs' table has a row per target that has healthy jobs, in order.
    assert re.findall(r'<tr[^>]*class="target"[^>]*data-target="([^"]+)"', html) == [
        NAMES[0], NAMES[1]]
    md = result.outputs["md"].read_text(encoding="utf-8")
    assert f"### {NAMES[2]}" in md  # a heading per target
    txt = result.outputs["txt"].read_text(encoding="utf-8")
    assert f"-- {NAMES[2]} · {REGIONS[2]}" in txt
    # The outage's cause is said once in each, at the top; its jobs point at it.
    for text_ in (md, txt):
        assert text_.count("refused the connection") == 1, text_
        assert text_.count(f"target {NAMES[2]} could not be read") >= 3  # its jobs
    # One store, each reading under its own project.
    store = Store.open(store_url, in_functiongraph=False)
    try:
        with store.engine.connect() as conn:
            rows = dict(conn.execute(text(
                "SELECT project_id, COUNT(*) FROM job_snapshots GROUP BY project_id")).all())
            compares = dict(conn.execute(text(
                "SELECT project_id, COUNT(*) FROM compare_snapshots GROUP BY project_id")).all())
        assert rows == {PROJECTS[0]: 4, PROJECTS[1]: 4, PROJECTS[2]: 3}
        assert compares == {PROJECTS[0]: 4, PROJECTS[1]: 4}
    finally:
        store.close()


def test_two_targets_keep_their_history_apart(tmp_path: Path, store_url: str) -> None:
    with _emulator(0, jobs=2) as a, _emulator(1, jobs=2) as b:
        data = _estate([_target(0, a.url, a.jobs_config()), _target(1, b.url, b.jobs_config())],
                       tmp_path, store_url)
        settings = parse_settings(data, {})
        run_cycle(settings, canary_credentials(with_token=False))
        a.advance(600)
        b.advance(600)
        result = run_cycle(settings, canary_credentials(with_token=False))
    assert result.exit_code == EXIT_OK
    store = Store.open(store_url, in_functiongraph=False)
    try:
        job_a = a.jobs_config()[0]["id"]
        from datetime import datetime, timedelta, timezone

        since = datetime.now(timezone.utc) - timedelta(hours=1)
        history = store.readings(str(job_a), since, PROJECTS[0])
        assert len(history) == 2 and {r["project_id"] for r in history} == {PROJECTS[0]}
        assert store.readings(str(job_a), since, PROJECTS[1]) == []
    finally:
        store.close()


def test_every_target_down_is_nothing_read(tmp_path: Path) -> None:
    targets = [_target(n, f"http://127.0.0.1:{_free_port()}", [_job(n + 1)]) for n in (0, 1)]
    settings = parse_settings(_estate(targets, tmp_path, f"sqlite:///{tmp_path / 'h.db'}"), {})
    result = run_cycle(settings, canary_credentials())
    assert result.exit_code == EXIT_NOTHING_READ
    assert sum(1 for e in result.errors if e.startswith("target ")) == 2


# -- a store written before targets ----------------------------------------------------------


def test_a_store_from_before_targets_is_attributed_to_the_configured_target(
        tmp_path: Path, store_url: str) -> None:
    with make_emulator() as emu:
        store = Store.open(store_url, in_functiongraph=False)
        store.upgrade("0004")
        job = str(emu.jobs_config()[0]["id"])
        with store.engine.begin() as conn:  # rows as revision 0004 wrote them
            run_id = conn.execute(text(
                "INSERT INTO runs (trigger, started_at, outcome, partial, counts, errors, "
                "requests) VALUES ('timer', :t, 'ok', false, '{}', '[]', 1) RETURNING id"),
                {"t": emu.now()}).scalar_one()
            conn.execute(text(
                "INSERT INTO job_snapshots (run_id, taken_at, job_id, progress, "
                "transfer_status) VALUES (:r, :t, :j, 42.0, 'INCRE_TRANSFER_STARTED')"),
                {"r": run_id, "t": emu.now(), "j": job})
        store.close()
        data: dict[str, Any] = {
            "drs": {"region": "cn-north-4", "project_id": emu.project_id,
                    "endpoint": emu.url, "backoff_base": 0.01},
            "jobs": emu.jobs_config(), "store": {"url": store_url},
            "report": {"output_dir": str(tmp_path / "out")}}
        emu.advance(60)
        result = run_cycle(parse_settings(data, {}), canary_credentials())
    assert result.exit_code == EXIT_OK
    store = Store.open(store_url, in_functiongraph=False)
    try:
        assert store.current_revision() == SCHEMA_HEAD
        with store.engine.connect() as conn:
            projects = {p for (p,) in conn.execute(text(
                "SELECT project_id FROM job_snapshots WHERE job_id = :j"), {"j": job})}
        assert projects == {emu.project_id}
        from datetime import timedelta

        since = emu.now() - timedelta(hours=1)
        assert len(store.readings(job, since - timedelta(minutes=5), emu.project_id)) == 2
    finally:
        store.close()


def test_unattributed_history_counts_for_the_target_that_lists_the_job(store_url: str) -> None:
    """`db upgrade` without a configuration leaves old readings '' : they still belong."""
    from datetime import datetime, timedelta, timezone

    store = Store.open(store_url, in_functiongraph=False)
    try:
        store.upgrade("0004")
        at = datetime.now(timezone.utc)
        with store.engine.begin() as conn:
            run_id = conn.execute(text(
                "INSERT INTO runs (trigger, started_at, outcome, partial, counts, errors, "
                "requests) VALUES ('timer', :t, 'ok', false, '{}', '[]', 1) RETURNING id"),
                {"t": at}).scalar_one()
            conn.execute(text("INSERT INTO job_snapshots (run_id, taken_at, job_id, progress) "
                              "VALUES (:r, :t, 'j1', 5.0)"), {"r": run_id, "t": at})
        store.upgrade()
        since = at - timedelta(minutes=1)
        assert len(store.history(["j1"], since, {"j1": PROJECTS[1]})["j1"]) == 1
    finally:
        store.close()


# -- history --job with several targets --------------------------------------------------------


def test_history_takes_a_bare_id_when_unique_else_asks_for_the_target(
        tmp_path: Path, store_url: str) -> None:
    import io

    from drs_report.history import show_history

    with _emulator(0, jobs=1) as a, _emulator(1, jobs=1) as b:
        data = _estate([_target(0, a.url, a.jobs_config()), _target(1, b.url, b.jobs_config())],
                       tmp_path, store_url)
        settings = parse_settings(data, {})
        run_cycle(settings, canary_credentials(with_token=False))
    job = str(a.jobs_config()[0]["id"])
    out = io.StringIO()
    show_history(settings, job, since_seconds=3600, output_format="json", out=out)
    (reading,) = json.loads(out.getvalue())
    assert reading["project_id"] == PROJECTS[0]
    # The same id read under the other project too: a bare id is now ambiguous.
    store = Store.open(store_url, in_functiongraph=False)
    try:
        with store.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO job_snapshots (run_id, taken_at, job_id, project_id, progress) "
                "SELECT run_id, taken_at, job_id, :p, 1.0 FROM job_snapshots WHERE job_id = :j"),
                {"p": PROJECTS[1], "j": job})
    finally:
        store.close()
    with pytest.raises(ConfigError) as caught:
        show_history(settings, job, since_seconds=3600, output_format="json", out=out)
    assert caught.value.key == "--job" and NAMES[0] in str(caught.value)
    assert f"TARGET/{job}" in str(caught.value)
    for how in ({"job_id": f"{NAMES[1]}/{job}"}, {"job_id": job, "target": NAMES[1]}):
        out = io.StringIO()
        show_history(settings, how["job_id"], since_seconds=3600, output_format="json",
                     out=out, target=how.get("target"))
        (reading,) = json.loads(out.getvalue())
        assert reading["project_id"] == PROJECTS[1] and reading["progress"] == 1.0
    with pytest.raises(ConfigError) as caught:
        show_history(settings, job, since_seconds=3600, output_format="json", out=out,
                     target="nowhere")
    assert caught.value.key == "--target"


# -- alerts name the target -------------------------------------------------------------------


def test_an_alert_names_each_problems_target_and_the_target_that_could_not_be_read(
        tmp_path: Path, webhooks: Any) -> None:
    down_url = f"http://127.0.0.1:{_free_port()}"
    with _emulator(0, jobs=2) as a:
        data = _estate([_target(0, a.url, a.jobs_config()),
                        _target(2, down_url, [_job(1), _job(2)])],
                       tmp_path, f"sqlite:///{tmp_path / 'h.db'}")
        data["channels"] = [{"type": "slack", "mode": "alert", "url": webhooks["slack"].url}]
        settings = parse_settings(data, {})
        result = run_cycle(settings, canary_credentials(with_token=False))
    assert result.exit_code == EXIT_OK, result.summary()
    (message,) = webhooks["slack"].received
    body = message.body.decode("utf-8")
    assert f"[{NAMES[2]}]" in body  # each problem line names its target
    assert body.count(f"Target {NAMES[2]} ({REGIONS[2]}) could not be read") == 1
    assert NAMES[0] not in body  # nothing wrong there
    store = Store.open(settings.store.url, in_functiongraph=False)
    try:
        with store.engine.connect() as conn:
            (problems,) = conn.execute(text("SELECT problems FROM delivery_claims")).one()
    finally:
        store.close()
    keys = [p.split("=", 1)[0] for p in json.loads(problems)]
    assert keys and all(k.startswith(f"{PROJECTS[2]}:") for k in keys), keys


# -- credentials: the agency's for every target, a target's own for another account --------


def test_in_functiongraph_the_agency_signs_for_every_target_but_one_with_its_own_keys(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures.emulator import CANARY_TOKEN
    from tests.test_function import TIMER_EVENT, FakeContext, handle

    other_ak, other_sk = "OTHERACCOUNTAK0123456789", "other-account-sk-must-never-leak-42"
    monkeypatch.delenv("HUAWEICLOUD_SDK_AK", raising=False)
    monkeypatch.setenv("OTHER_AK", other_ak)
    monkeypatch.setenv("OTHER_SK", other_sk)
    agency = [Emulator(ak=CANARY_AK, sk=CANARY_SK, project_id=PROJECTS[n],
                       security_token=CANARY_TOKEN, scenario=generated_fleet(2, 1, seed=100 + n))
              for n in (0, 1)]
    other = Emulator(ak=other_ak, sk=other_sk, project_id=PROJECTS[2],
                     scenario=generated_fleet(2, 1, seed=102))
    with agency[0], agency[1], other:
        lines = ["[drs]", "backoff_base = 0.01", ""]
        for n, emu in enumerate([*agency, other]):
            lines += ["[[drs.targets]]", f'name = "{NAMES[n]}"', f'region = "{REGIONS[n]}"',
                      f'project_id = "{PROJECTS[n]}"', f'endpoint = "{emu.url}"']
            if emu is other:
                lines += ['ak = "${OTHER_AK}"', 'sk = "${OTHER_SK}"']
            for job in emu.jobs_config():
                lines += ["[[drs.targets.jobs]]", f'id = "{job["id"]}"',
                          f"compare_jobs = {json.dumps(job['compare_jobs'])}"]
            lines.append("")
        lines += ["[store]", 'url = "sqlite:///history.db"', "[report]", 'output_dir = "out"']
        (tmp_path / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        summary = handle(TIMER_EVENT, FakeContext(), tmp_path)
        served = [e.requests_served for e in (*agency, other)]
    assert summary["status"] == "ok", summary
    assert summary["counts"]["OK"] == 6 and summary["jobs"] == 6, summary
    assert all(n > 0 for n in served)
    text_out = json.dumps(summary) + "".join(
        p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir())
    assert other_sk not in text_out and CANARY_SK not in text_out


def test_the_sample_configuration_shows_an_estate_that_parses() -> None:
    sample = (Path(__file__).parent.parent / "function" / "drs_report" / "sample-config.toml"
              ).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(sample) if line == "# [[drs.targets]]")
    block = []
    for line in sample[start:]:
        if not line.startswith("#"):
            break
        block.append(line[2:] if line.startswith("# ") else "")
    from drs_report.config import parse_toml

    data = parse_toml("[drs]\n" + "\n".join(block))
    settings = parse_settings(data, {"FINANCE_AK": "finance-ak-0123", "FINANCE_SK": "fin-sk-45"})
    assert [t.name for t in settings.fleet()] == ["prod-cn-north-4", "prod-ap-southeast-1",
                                                  "finance-cn-east-3"]
    assert settings.fleet()[2].credentials is not None


def test_readiness_live_reads_each_job_from_its_own_target(tmp_path: Path) -> None:
    import io

    from drs_report.readiness_query import ask_readiness

    with _emulator(0, jobs=2) as a, _emulator(1, jobs=2) as b:
        data = _estate([_target(0, a.url, a.jobs_config()), _target(1, b.url, b.jobs_config())],
                       tmp_path, f"sqlite:///{tmp_path / 'h.db'}")
        settings = parse_settings(data, {})
        run_cycle(settings, canary_credentials(with_token=False))
        before = (a.requests_served, b.requests_served)
        out = io.StringIO()
        ask_readiness(settings, job_ids=[str(b.jobs_config()[1]["id"])], output_format="json",
                      live=True, credentials=canary_credentials(with_token=False), out=out)
        after = (a.requests_served, b.requests_served)
    (job,) = json.loads(out.getvalue())["jobs"]
    assert job["job_id"] == b.jobs_config()[1]["id"]
    assert after[0] == before[0] and after[1] > before[1]  # asked of its own target only


def test_chat_ops_take_target_slash_job() -> None:
    from drs_report.web.commands import Commands

    job = "9a470239-2308-4bb5-a6bc-1040402fjb21"
    report = {"jobs": [{"job_id": job, "name": "orders", "target": NAMES[0]},
                       {"job_id": "8b470239-2308-4bb5-a6bc-1040402fjb22", "name": "orders",
                        "target": NAMES[1]}]}
    find = Commands.find_jobs
    assert len(find(None, report, ["orders"])) == 2  # type: ignore[arg-type]
    (only,) = find(None, report, [f"{NAMES[1]}/orders"])  # type: ignore[arg-type]
    assert only["target"] == NAMES[1]
    (by_id,) = find(None, report, [f"{NAMES[0].upper()}/{job[:8]}"])  # type: ignore[arg-type]
    assert by_id["job_id"] == job


def test_a_scoped_run_reads_each_named_job_from_its_target_only(tmp_path: Path) -> None:
    with _emulator(0, jobs=2) as a, _emulator(1, jobs=2) as b:
        data = _estate([_target(0, a.url, a.jobs_config()), _target(1, b.url, b.jobs_config())],
                       tmp_path, f"sqlite:///{tmp_path / 'h.db'}")
        settings = parse_settings(data, {})
        wanted = str(b.jobs_config()[0]["id"])
        result = run_cycle(settings, canary_credentials(with_token=False), job_ids=[wanted])
        served = (a.requests_served, b.requests_served)
    assert [j.job_id for j in result.report.jobs] == [wanted]
    assert result.report.jobs[0].target == NAMES[1]
    assert served[0] == 0 and served[1] > 0


def test_moving_to_targets_makes_no_problem_new(tmp_path: Path) -> None:
    from tests.fixtures.emulator import settings_dict

    with make_emulator() as emu:
        single = settings_dict(emu, tmp_path)
        first = run_cycle(parse_settings(single, {}), canary_credentials())
        assert first.report.problems
        estate = {"drs": {"backoff_base": 0.01, "targets": [
            {"name": "prod", "region": "cn-north-4", "project_id": emu.project_id,
             "endpoint": emu.url, "jobs": emu.jobs_config()}]},
            "store": single["store"], "report": single["report"]}
        second = run_cycle(parse_settings(estate, {}), canary_credentials())
    assert all(p.key.startswith(f"{emu.project_id}:") for p in second.report.problems)
    assert {p.key.split(":", 1)[1] for p in second.report.problems} == \
        {p.key for p in first.report.problems}
    assert second.report.changes.new == [] and second.report.changes.resolved == []


def test_readiness_is_announced_once_per_project_and_job(tmp_path: Path, webhooks: Any) -> None:
    from tests.fixtures.receivers import WEBHOOK_SECRET

    with _emulator(0, jobs=2) as a, _emulator(1, jobs=2) as b:
        data = _estate([_target(0, a.url, a.jobs_config()), _target(1, b.url, b.jobs_config())],
                       tmp_path, f"sqlite:///{tmp_path / 'h.db'}")
        data["readiness"] = {"max_delay_seconds": 10, "stable_minutes": 1}
        data["channels"] = [{"type": "webhook", "mode": "alert", "secret": WEBHOOK_SECRET,
                             "url": webhooks["webhook"].url}]
        settings = parse_settings(data, {})
        for _ in range(3):
            run_cycle(settings, canary_credentials(with_token=False), now=a.now())
            a.advance(60)
            b.advance(60)
    store = Store.open(settings.store.url, in_functiongraph=False)
    try:
        with store.engine.connect() as conn:
            claims = [json.loads(p) for (p,) in conn.execute(text(
                "SELECT problems FROM delivery_claims WHERE state = 'sent' ORDER BY seq"))]
    finally:
        store.close()
    announced = {e.split("=", 1)[0] for claim in claims for e in claim if "cutover" in e}
    expected = {f"{PROJECTS[n]}:{j['id']}:cutover" for n, emu in enumerate((a, b))
                for j in emu.jobs_config()}
    assert announced == expected, claims
    ready = [m.json() for m in webhooks["webhook"].received]
    assert sum(len((m.get("alert") or {}).get("ready_for_cutover") or []) for m in ready) == 4


def test_a_target_refusing_its_keys_is_named_once_and_its_secret_nowhere(
        tmp_path: Path) -> None:
    wrong_sk = "wrong-secret-key-of-the-other-account-9f8e"
    with _emulator(0, jobs=2) as a, _emulator(1, jobs=3) as b:
        refused = _target(1, b.url, b.jobs_config())
        refused.update(ak="WRONGACCESSKEY0123456789", sk=wrong_sk)
        data = _estate([_target(0, a.url, a.jobs_config()), refused], tmp_path,
                       f"sqlite:///{tmp_path / 'h.db'}")
        result = run_cycle(parse_settings(data, {}), canary_credentials(with_token=False))
    assert result.exit_code == EXIT_OK
    (line,) = [e for e in result.errors if NAMES[1] in e]
    assert "could not be read" in line
    assert result.report.counts() == {"CRITICAL": 0, "WARNING": 0, "UNKNOWN": 3, "OK": 2}
    everything = json.dumps(result.summary()) + "".join(
        p.read_text(encoding="utf-8") for p in result.outputs.values())
    assert wrong_sk not in everything
