"""The DRS client against servers of the tests' own that misbehave on purpose.

Each test would fail without the fix it names: a request that ends by its deadline however
the server stalls, a failure that names its cause and host, an answer that cannot crash the
run, credentials that an echoing gateway sends back masked at the door.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drs_report.client import DrsClient
from drs_report.config import Settings, parse_settings
from drs_report.models import FetchErrorKind, Snapshot
from tests.fixtures.emulator import (
    CANARY_AK,
    CANARY_SK,
    CANARY_TOKEN,
    PROJECT_ID,
    canary_credentials,
)
from tests.fixtures.hostile import (
    Behaviour,
    Connection,
    HostileHTTP,
    RawRequest,
    answer,
    deep_json,
    drip_json,
    echo_request,
    endless_chunked,
    endless_headers,
    full_backlog,
    redirect,
    silent,
)

JOB = "9a470239-2308-4bb5-a6bc-1040402fjb21"
OTHER = "5c1e2f9b-7a64-4d2e-9b11-3f0a6c2djb21"
THIRD = "2d4f6a8c-0e1b-4c3d-8e5f-7a9b1c3djb21"
COMPARE = "b13b233a-4b9e-4b06-a928-19a0c93f6109"
CANARIES = (CANARY_AK, CANARY_SK, CANARY_TOKEN)

RUNNING = {"job_id": JOB, "progress": "100", "transfer_status": "INCRE_TRANSFER_STARTED",
           "incre_trans_delay": "2", "task_mode": "FULL_INCR_TRANS", "process_time": "1"}
COMPARE_ANSWER = {"full_info": {"progress": "100", "recheck_entities": "0"},
                  "incre_info": {"delay": "1", "log_point": "p1", "recheck_entities": "0"}}


def route(batch: Behaviour | None = None, compare: Behaviour | None = None,
          jobs: Behaviour | None = None, table: Behaviour | None = None) -> Behaviour:
    """A DRS stand-in: each endpoint gets its own behaviour (well-behaved by default)."""
    defaults = {
        "batch": batch or answer(200, {"results": [RUNNING]}),
        "compare": compare or answer(200, COMPARE_ANSWER),
        "jobs": jobs or answer(200, {"jobs": [], "total_count": 0}),
        "table": table or answer(200, {"compare_jobs": [], "count": 0}),
    }

    def behave(request: RawRequest, conn: Connection) -> None:
        path = request.path.split("?")[0]
        if path.endswith("/batch-progress"):
            defaults["batch"](request, conn)
        elif "/compare-progress/" in path:
            defaults["compare"](request, conn)
        elif path.endswith("/table/compare"):
            defaults["table"](request, conn)
        else:
            defaults["jobs"](request, conn)
    return behave


def settings_for(url: str, jobs: Any = None, **drs: Any) -> Settings:
    data: dict[str, Any] = {
        "drs": {"region": "cn-north-4", "project_id": PROJECT_ID, "endpoint": url,
                "backoff_base": 0.01, "backoff_max": 0.05, **drs},
        "jobs": jobs if jobs is not None else [{"id": JOB, "compare_jobs": [COMPARE]}],
    }
    return parse_settings(data, {})


def fetch(url: str, *, deadline: float | None = None, jobs: Any = None, **drs: Any
          ) -> Snapshot:
    settings = settings_for(url, jobs, **drs)
    with DrsClient(settings.drs, canary_credentials()) as client:
        return client.fetch(settings.jobs, settings.discovery, deadline=deadline)


def timed(fn: Callable[[], Snapshot]) -> tuple[Snapshot, float]:
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


# -- item 6: a request ends by its deadline, whatever the server does -------------------------

STALLS = {
    "an endless chunked body": endless_chunked(b"x" * 1024, interval=0.05),
    "a byte every 0.5 s": drip_json(200, {"results": [RUNNING]}, 0.5),
    "endless headers": endless_headers(0.2),
    "no answer at all": silent(),
}


@pytest.mark.parametrize("stall", sorted(STALLS))
def test_a_stalling_answer_ends_by_the_run_budget(stall: str) -> None:
    # read_timeout 30 s is the default; every socket read here succeeds well within it,
    # so only a deadline on the whole request ends these (they ran 60 s+ before).
    budget = 2.0
    with HostileHTTP(route(batch=STALLS[stall], compare=STALLS[stall])) as server:
        snapshot, took = timed(lambda: fetch(server.url, deadline=time.monotonic() + budget,
                                             max_retries=0))
    assert took < budget + 1.0, f"{stall}: {took:.1f}s against a {budget}s budget"
    error = snapshot.jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.NETWORK, error
    assert "no complete answer from 127.0.0.1:" in error.message
    assert snapshot.jobs[0].comparisons[0].error is not None


def test_without_a_budget_each_try_ends_by_connect_plus_read_timeout() -> None:
    # A byte every 0.3 s never trips a 1 s read timeout; the whole try still ends at 1.5 s.
    with HostileHTTP(route(batch=drip_json(200, {"results": [RUNNING]}, 0.3))) as server:
        snapshot, took = timed(lambda: fetch(server.url, jobs=[{"id": JOB}], max_retries=1,
                                             connect_timeout=0.5, read_timeout=1.0))
        tries = len(server.requests)
    assert tries == 2
    assert 2 * 1.5 - 0.2 < took < 2 * 1.5 + 1.5, took
    error = snapshot.jobs[0].error
    assert error is not None and "within 1.5s" in error.message


def test_past_the_10_mb_cap_the_connection_is_closed_not_drained() -> None:
    with HostileHTTP(route(batch=endless_chunked())) as server:
        snapshot, took = timed(lambda: fetch(server.url, jobs=[{"id": JOB}], max_retries=0))
        time.sleep(0.3)  # the server notices the closed connection
        sent = server.bytes_sent
    error = snapshot.jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.MALFORMED
    assert "larger than the 10 MB limit" in error.message
    # 10 MB read, plus what the socket buffers held: not the endless rest (drained before).
    assert sent < 40 << 20, sent
    assert took < 10


# -- issue 15 item 2: each way of not reaching the endpoint says so, with the host ------------


def test_an_unresolvable_host_is_a_dns_failure() -> None:
    snapshot = fetch("http://drs.nonexistent.invalid:8080", max_retries=0)
    message = snapshot.jobs[0].error.message
    assert message.startswith("cannot resolve drs.nonexistent.invalid:8080 (DNS")
    assert "drs.endpoint" in message and "read timeout" not in message


def test_a_closed_port_is_a_refused_connection() -> None:
    with HostileHTTP(silent()) as server:
        url = server.url
    started = time.monotonic()
    snapshot = fetch(url, max_retries=0)
    message = snapshot.jobs[0].error.message
    assert message.startswith(f"{url.split('//')[1]} refused the connection"), message
    assert "timeout" not in message and time.monotonic() - started < 2


def test_a_dropped_connect_is_a_connect_timeout() -> None:
    with full_backlog() as port:
        snapshot = fetch(f"http://127.0.0.1:{port}", max_retries=0, connect_timeout=0.5)
    message = snapshot.jobs[0].error.message
    assert message.startswith(f"no connection to 127.0.0.1:{port} within 0.5s (connect "
                              "timeout)"), message


def test_an_answer_that_never_comes_is_a_read_timeout() -> None:
    with HostileHTTP(route(batch=silent())) as server:
        snapshot = fetch(server.url, jobs=[{"id": JOB}], max_retries=0, read_timeout=0.5)
    message = snapshot.jobs[0].error.message
    assert message.startswith(f"127.0.0.1:{server.port} sent nothing for 0.5s (read timeout)")


def test_https_against_an_http_server_is_a_tls_failure_not_retried() -> None:
    with HostileHTTP(route()) as server:
        url = server.url.replace("http://", "https://")
        snapshot = fetch(url, jobs=[{"id": JOB}], max_retries=3)
        connections = server.connections
    message = snapshot.jobs[0].error.message
    assert message.startswith(f"TLS handshake with 127.0.0.1:{server.port} failed"), message
    assert "http://" in message and "drs.endpoint" in message
    assert connections == 1  # the same handshake cannot go better a second time


# -- item 17: an untrusted certificate is not retried and says how to fix it ------------------


@pytest.fixture(scope="module")
def untrusted_tls() -> ssl.SSLContext:
    import trustme

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


def test_an_untrusted_certificate_names_ca_bundle_and_is_not_retried(
        untrusted_tls: ssl.SSLContext) -> None:
    with HostileHTTP(route(), tls=untrusted_tls) as server:
        snapshot = fetch(server.url, jobs=[{"id": JOB}], max_retries=3)
        connections = server.connections
    error = snapshot.jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.NETWORK
    assert error.message.startswith(f"the TLS certificate of 127.0.0.1:{server.port} is not "
                                    "trusted"), error.message
    assert "drs.ca_bundle" in error.message
    assert connections == 1


# -- items 2 and 17: a DRS redirect is not followed and names where it pointed ----------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_names_the_location(status: int) -> None:
    with HostileHTTP(route()) as elsewhere, HostileHTTP(route(
            batch=redirect(status, f"http://evil.example:{elsewhere.port}/v3/steal"))) as server:
        snapshot = fetch(server.url, jobs=[{"id": JOB}], max_retries=3)
        asked = len(server.requests)
    error = snapshot.jobs[0].error
    assert error is not None and error.status == status
    assert error.message == (f"HTTP {status} redirect to evil.example:{elsewhere.port}, not "
                             "followed; drs.endpoint must be the service's own address")
    assert asked == 1 and elsewhere.requests == []


# -- item 7: a Retry-After of a day is not slept --------------------------------------------


def test_a_retry_after_of_a_day_gives_up_at_once() -> None:
    throttled = answer(429, {"error_code": "APIG.0308", "error_msg": "too fast"},
                       {"Retry-After": "86400"})
    with HostileHTTP(route(batch=throttled, compare=throttled)) as server:
        snapshot, took = timed(lambda: fetch(server.url))  # the CLI: no budget at all
        asked = len(server.requests)
    assert took < 3, took
    assert asked == 2  # one batch, one comparison: none retried
    error = snapshot.jobs[0].error
    assert error is not None and error.status == 429
    assert "asks to wait 86400s (Retry-After), longer than the 60s" in error.message


# -- item 5: deep JSON is a malformed answer, not a crashed run ---------------------------------


@pytest.mark.parametrize("depth", [100_000, 500])
def test_deeply_nested_answers_are_malformed_not_a_crash(depth: int) -> None:
    # 100,000 deep crashes json.loads; 500 deep decodes, then breaks what walks it later.
    deep = b'{"results": [{"job_id": "%s", "progress_map": ' % JOB.encode() + \
        deep_json(depth) + b"}]}"
    with HostileHTTP(route(batch=answer(200, deep), compare=answer(200, deep_json(depth)))
                     ) as server:
        snapshot = fetch(server.url, max_retries=0)
    error = snapshot.jobs[0].error
    assert error is not None and error.kind is FetchErrorKind.MALFORMED
    assert "nested more than 32 levels deep" in error.message
    comparison = snapshot.jobs[0].comparisons[0].error
    assert comparison is not None and "nested more than 32 levels deep" in comparison.message


# -- item 16: listed ids are checked before they go into signed paths ---------------------------


def test_discovered_ids_that_are_not_drs_ids_are_skipped_and_reported() -> None:
    listing = {"jobs": [{"id": "../../../v3/other-project/jobs", "name": "x"},
                        {"id": "a/b", "name": "y"}, {"id": JOB, "name": "orders"}],
               "total_count": 3}
    comparisons = {"compare_jobs": [{"id": "../../x", "status": "RUNNING"},
                                    {"id": COMPARE, "status": "RUNNING"}], "count": 2}
    with HostileHTTP(route(jobs=answer(200, listing), table=answer(200, comparisons))
                     ) as server:
        snapshot = fetch(server.url, jobs="all")
        paths = [r.path for r in server.requests]
        batch = next(r.json() for r in server.requests if r.path.endswith("batch-progress"))
    assert [j.job_id for j in snapshot.jobs] == [JOB]
    assert batch == {"jobs": [JOB]}
    assert not any(".." in p or "/a/b" in p for p in paths), paths
    assert [c.compare_job_id for c in snapshot.jobs[0].comparisons] == [COMPARE]
    assert snapshot.errors[0] == ("job discovery skipped 2 listed id(s) that are not DRS job "
                                  "ids: '../../../v3/other-project/jobs', 'a/b'")
    assert snapshot.errors[1].endswith("skipped 1 id(s) that are not DRS ids: '../../x'")


# -- item 15: an answer without evidence is not OK ------------------------------------------------


def test_an_answer_without_evidence_is_unknown_with_the_reason() -> None:
    from datetime import datetime, timezone

    from drs_report.analysis import Health, analyse

    bare = {"job_id": JOB}
    unreadable = {**RUNNING, "job_id": OTHER, "incre_trans_delay": "abc"}
    impossible = {**RUNNING, "job_id": THIRD, "transfer_status": "FULL_TRANSFER_STARTED",
                  "progress": "250"}
    jobs = [{"id": JOB}, {"id": OTHER}, {"id": THIRD}]
    with HostileHTTP(route(batch=answer(200, {"results": [bare, unreadable, impossible]}))
                     ) as server:
        snapshot = fetch(server.url, jobs=jobs)
    settings = settings_for("http://unused", jobs)
    report = analyse(snapshot, {}, None, settings, now=datetime.now(timezone.utc))
    by_id = {j.job_id: j for j in report.jobs}
    assert by_id[JOB].health is Health.UNKNOWN
    assert [r.code for r in by_id[JOB].reasons] == ["no_state"]
    assert by_id[OTHER].health is Health.UNKNOWN
    (reason,) = by_id[OTHER].reasons
    assert reason.code == "unreadable"
    assert reason.params == {"field": "incre_trans_delay", "value": "abc"}
    assert [(r.code, r.params) for r in by_id[THIRD].reasons] == [
        ("out_of_range", {"field": "progress", "value": "250"})]
    assert by_id[THIRD].health is Health.UNKNOWN


def test_a_state_the_api_reference_does_not_list_is_unknown_not_ok() -> None:
    """Only documented states are judged; anything else ("PAUSED_BY_OPERATOR", a future
    state, a gateway's placeholder) is UNKNOWN naming the state, and the report says so."""
    from datetime import datetime, timezone

    from drs_report.analysis import Health, analyse
    from drs_report.render import render_all

    odd = {**RUNNING, "job_id": JOB, "transfer_status": "PAUSED_BY_OPERATOR"}
    documented = {**RUNNING, "job_id": OTHER, "transfer_status": "CHILD_TRANSFER_STARTED"}
    jobs = [{"id": JOB}, {"id": OTHER}]
    with HostileHTTP(route(batch=answer(200, {"results": [odd, documented]}))) as server:
        snapshot = fetch(server.url, jobs=jobs)
    settings = settings_for("http://unused", jobs)
    report = analyse(snapshot, {}, None, settings, now=datetime.now(timezone.utc))
    by_id = {j.job_id: j for j in report.jobs}
    assert by_id[JOB].health is Health.UNKNOWN
    assert [(r.code, r.params) for r in by_id[JOB].reasons] == [
        ("unknown_state", {"state": "PAUSED_BY_OPERATOR"})]
    assert by_id[OTHER].health is Health.OK
    rendered = render_all(report, settings)
    assert "state the API reference does not list (PAUSED_BY_OPERATOR)" in rendered["txt"]


def test_a_job_the_budget_cut_while_retrying_shows_what_failed() -> None:
    from datetime import datetime, timezone

    from drs_report.analysis import analyse
    from drs_report.render import render_all

    busy = answer(503, {"error_code": "DRS.0503", "error_msg": "busy"})
    with HostileHTTP(route(batch=busy)) as server:
        snapshot = fetch(server.url, jobs=[{"id": JOB}], max_retries=50, backoff_base=0.2,
                         backoff_max=0.4, deadline=time.monotonic() + 1.0)
    settings = settings_for("http://unused", [{"id": JOB}])
    report = analyse(snapshot, {}, None, settings, now=datetime.now(timezone.utc))
    (reason,) = report.jobs[0].reasons
    assert reason.code == "skipped"
    assert "while retrying (server error: HTTP 503 DRS.0503)" in reason.params["message"]
    assert "server error: HTTP 503 DRS.0503" in render_all(report, settings)["txt"]


# -- item 1: credentials a gateway echoes are masked where they enter ---------------------------


def escaped(text: str) -> str:
    """JSON may spell a character as \\uXXXX: the bytes then hold no plain copy."""
    return f"\\u{ord(text[0]):04x}{text[1:]}"


def echoing_gateway(request: RawRequest, conn: Connection) -> None:
    """Quotes the request's headers back: in a 200 batch answer (in error_msg, as a key,
    and once with the token's first letter JSON-escaped), and in 401s for the rest."""
    if not request.path.endswith("/batch-progress"):
        echo_request(401)(request, conn)
        return
    quoted = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
    token = request.headers.get("x-security-token", "")
    result = {"job_id": JOB, "transfer_status": "INCRE_TRANSFER_FAILED",
              "error_code": "DRS.M05004", "error_msg": f"WAF blocked: {quoted}",
              CANARY_AK: "ESCAPED"}
    body = json.dumps({"results": [result]}).replace("ESCAPED", escaped(token))
    answer(200, body.encode())(request, conn)


def test_a_secret_spelled_with_json_escapes_is_masked_too() -> None:
    from drs_report import logs
    from drs_report.answers import decode_json

    logs.add_secrets([CANARY_TOKEN])
    body = b'{"error_msg": "token ' + escaped(CANARY_TOKEN).encode() + b'", "n": 1}'
    assert CANARY_TOKEN.encode() not in body
    assert decode_json(body) == {"error_msg": "token ***", "n": 1}


def _whole_run(drs_url: str, store_url: str, tmp_path: Path, hook_url: str,
               *channels: dict[str, Any]) -> Any:
    """A run reading one job and its comparison from `drs_url`, delivering to a webhook
    (and `channels`), once, with no retry."""
    return parse_settings({
        "drs": {"region": "cn-north-4", "project_id": PROJECT_ID, "endpoint": drs_url,
                "backoff_base": 0.01, "max_retries": 0},
        "jobs": [{"id": JOB, "compare_jobs": [COMPARE]}],
        "store": {"url": store_url}, "report": {"output_dir": str(tmp_path / "out")},
        "channels": [{"type": "webhook", "name": "hook", "url": hook_url}, *channels],
    }, {})


def test_an_echoing_gateway_leaks_nothing_into_a_whole_run(tmp_path: Path, store_url: str,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    from drs_report.pipeline import run_cycle
    from tests.fixtures.hostile import answer as ok_answer
    from tests.test_secrets import dump_database

    with HostileHTTP(echoing_gateway) as gateway, \
            HostileHTTP(ok_answer(200, {"ok": True})) as receiver:
        settings = _whole_run(gateway.url, store_url, tmp_path, receiver.url + "/hook")
        with caplog.at_level("DEBUG", logger="drs_report"):
            result = run_cycle(settings, canary_credentials())
        sent = [r.body.decode() for r in receiver.requests]
        echoed = [r.headers.get("x-security-token") for r in gateway.requests]
    assert CANARY_TOKEN in echoed  # the gateway did see (and send back) the token
    assert result.deliveries[0].status == "sent" and len(sent) == 1
    reports = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()}
    assert "WAF blocked" in reports["report.json"]  # the message itself is kept
    places = {**reports, "database": dump_database(store_url), "webhook body": sent[0],
              "summary": json.dumps(result.summary()), "log": caplog.text}
    for where, text in places.items():
        for canary in CANARIES:
            assert canary not in text, f"{canary} leaked into {where}"


# -- lone surrogates: a "\ud800" escape in an answer cannot break an output ------------------


def surrogate_answer(request: RawRequest, conn: Connection) -> None:
    """A failed job whose error text, state and table name carry lone surrogate escapes
    (valid JSON, not encodable as UTF-8), and a properly paired one (an emoji)."""
    if not request.path.endswith("/batch-progress"):
        route()(request, conn)
        return
    result = {"job_id": JOB, "transfer_status": "INCRE_TRANSFER_FAILED",
              "error_code": "DRS.M05004", "error_msg": "LONE_HIGH broken LONE_LOW row PAIR",
              "task_mode": "FULL_INCR_TRANS", "progress": "50"}
    body = json.dumps({"results": [result]}).replace("LONE_HIGH", "\\ud800") \
        .replace("LONE_LOW", "\\udfff").replace("PAIR", "\\ud83d\\ude00")
    answer(200, body.encode())(request, conn)


def test_a_lone_surrogate_is_replaced_where_it_enters() -> None:
    from drs_report.answers import decode_json

    assert decode_json(b'{"a": ["x\\ud800y", {"\\udc00": "\\ud83d\\ude00"}]}') == \
        {"a": ["x\ufffdy", {"\ufffd": "\U0001f600"}]}
    # The same code points sent as raw (CESU-8) bytes decode the same way.
    assert decode_json(b'{"a": "x\xed\xa0\x80y"}') == {"a": "x\ufffdy"}


def test_lone_surrogates_reach_no_output_unencodable(tmp_path: Path, store_url: str) -> None:
    from aiosmtpd.controller import Controller

    from drs_report.pipeline import run_cycle
    from tests.fixtures.hostile import answer as ok_answer
    from tests.fixtures.receivers import MailServer, _MailHandler, free_port
    from tests.test_secrets import dump_database

    mail_server = MailServer("127.0.0.1", free_port(), "none", None)
    relay = Controller(_MailHandler(mail_server), hostname="127.0.0.1", port=mail_server.port)
    relay.start()
    with HostileHTTP(surrogate_answer) as gateway, \
            HostileHTTP(ok_answer(200, {"ok": True})) as receiver:
        settings = _whole_run(gateway.url, store_url, tmp_path, receiver.url + "/hook", {
            "type": "smtp", "name": "mail", "host": mail_server.host, "port": mail_server.port,
            "security": "none", "from": "drs@example.com", "to": ["dba@example.com"]})
        try:
            result = run_cycle(settings, canary_credentials())
        finally:
            relay.stop()
        sent = [r.body for r in receiver.requests]
    assert [d.status for d in result.deliveries] == ["sent", "sent"], result.deliveries
    reports = {p.name: p.read_bytes().decode("utf-8") for p in (tmp_path / "out").iterdir()}
    expected = "\ufffd broken \ufffd row \U0001f600"
    assert expected in json.dumps(json.loads(reports["report.json"]), ensure_ascii=False)
    assert expected in reports["report.md"]
    body = sent[0].decode("utf-8")
    assert expected in json.dumps(json.loads(body), ensure_ascii=False)
    (_, mail), = mail_server.messages
    assert expected in mail.get_body(("plain",)).get_content()
    dump = dump_database(store_url)
    assert "broken" in dump
    for where, text in {**reports, "webhook body": body, "database": dump}.items():
        assert not any("\ud800" <= c <= "\udfff" for c in text), where
