"""Wall-clock deadlines on the requests outside the DRS client and the channels: the synced
store's OBS calls and the Feishu bot's API calls, against servers of the tests' own that
stall on purpose (an endless chunked body, a byte every 2 s, endless headers, no answer).

Per-read timeouts never trip on these (each read gets a byte well within it), so without a
deadline on the whole request each ran until the server gave up. Elapsed time is measured
against the deadline: that is the behaviour under test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drs_report.obs.client import ObsClient, ObsError
from tests.fixtures.emulator import canary_credentials
from tests.fixtures.hostile import (
    Behaviour,
    HostileHTTP,
    answer,
    drip,
    endless_chunked,
    endless_headers,
    silent,
)

SLACK = 1.5  # the watchdog's reaction, thread scheduling on a loaded machine


def _length_head(length: int) -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\nETag: \"0\"\r\n\r\n").encode()


STALLS: dict[str, Behaviour] = {
    "an endless chunked body": endless_chunked(b"x" * 1024, interval=0.05),
    "a byte every 2 s": drip(_length_head(64) + b"y" * 64, 2.0),
    "endless headers": endless_headers(0.2),
    "no answer at all": silent(),
}


def timed(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    started = time.monotonic()
    try:
        call()
    except Exception as e:  # the failure is part of what is checked
        return e, time.monotonic() - started
    return None, time.monotonic() - started


# -- OBS: every try ends by its deadline ---------------------------------------------------


@pytest.mark.parametrize("stall", sorted(STALLS))
@pytest.mark.parametrize("call", ["lease read", "file download", "file upload"])
def test_an_obs_request_ends_by_the_run_deadline(stall: str, call: str,
                                                 tmp_path: Path) -> None:
    budget = 3.0
    upload = tmp_path / "history.db.gz"
    upload.write_bytes(b"\x1f\x8b" + b"z" * 4096)
    with HostileHTTP(STALLS[stall]) as server:
        client = ObsClient(server.url, canary_credentials(), max_retries=3,
                           backoff_base=0.01, deadline=time.monotonic() + budget)
        calls = {"lease read": lambda: client.get_bytes("drs-report", "h.db.lease"),
                 "file download": lambda: client.get_to_file("drs-report", "h.db",
                                                             tmp_path / "h.db", inflate=True),
                 "file upload": lambda: client.put_file("drs-report", "h.db", upload)}
        error, took = timed(calls[call])
        client.close()
    assert took < budget + SLACK, f"{call}, {stall}: {took:.1f}s against a {budget}s deadline"
    if call == "file upload" and stall == "an endless chunked body":
        assert error is None  # 200 came: the rest of that answer is not read, nor drained
        return
    assert isinstance(error, ObsError), error
    assert "obs://drs-report/h.db" in str(error)
    assert "deadline" in str(error) or "time was up" in str(error), error
    assert not (tmp_path / "h.db").exists()


def test_without_a_run_deadline_each_try_ends_by_connect_plus_read_timeout() -> None:
    # A byte every 0.3 s never trips a 1 s read timeout; each try still ends at 1.5 s.
    with HostileHTTP(drip(_length_head(64) + b"y" * 64, 0.3)) as server:
        client = ObsClient(server.url, canary_credentials(), connect_timeout=0.5,
                           read_timeout=1.0, max_retries=1, backoff_base=0.01)
        error, took = timed(lambda: client.get_bytes("drs-report", "h.db.lease"))
        tries = len(server.requests)
    assert isinstance(error, ObsError) and "within 1.5s (deadline)" in str(error), error
    assert tries == 2
    assert 2 * 1.5 - 0.2 < took < 2 * 1.5 + SLACK, took


def test_a_file_download_has_its_own_longer_limit(tmp_path: Path) -> None:
    with HostileHTTP(endless_chunked(b"x" * 1024, interval=0.05)) as server:
        client = ObsClient(server.url, canary_credentials(), connect_timeout=0.5,
                           read_timeout=0.5, max_retries=0, transfer_seconds=2.0)
        error, took = timed(lambda: client.get_to_file("drs-report", "h.db",
                                                       tmp_path / "h.db"))
    assert isinstance(error, ObsError) and "within 2s (deadline)" in str(error), error
    assert 2.0 - 0.2 < took < 2.0 + SLACK, took


def test_an_endless_obs_answer_is_closed_not_drained() -> None:
    with HostileHTTP(endless_chunked()) as server:
        client = ObsClient(server.url, canary_credentials(), max_retries=0)
        error, took = timed(lambda: client.get_bytes("drs-report", "h.db.lease",
                                                     limit=64 << 10))
        time.sleep(0.3)  # the server notices the closed connection
        sent = server.bytes_sent
    assert isinstance(error, ObsError) and "larger than 65536 bytes" in str(error), error
    # 64 KB read, plus what the socket buffers held: not the endless rest.
    assert sent < 40 << 20, sent
    assert took < 10


def test_a_synced_run_stops_waiting_for_obs_at_its_deadline(tmp_path: Path) -> None:
    from drs_report.config import parse_settings
    from drs_report.errors import StoreError
    from drs_report.pipeline import run_cycle
    from tests.fixtures.emulator import PROJECT_ID

    budget = 3.0
    with HostileHTTP(drip(_length_head(64) + b"y" * 64, 2.0)) as obs:
        settings = parse_settings({
            "drs": {"region": "cn-north-4", "project_id": PROJECT_ID,
                    "endpoint": "http://127.0.0.1:9", "max_retries": 0},
            "jobs": [{"id": "9a470239-2308-4bb5-a6bc-1040402fjb21"}],
            "store": {"url": f"sqlite:///{tmp_path / 'history.db'}",
                      "sync": "obs://drs-report/history.db", "obs_endpoint": obs.url},
            "report": {"output_dir": str(tmp_path / "out")},
        }, {})
        error, took = timed(lambda: run_cycle(settings, canary_credentials(),
                                              deadline=time.monotonic() + budget))
    assert isinstance(error, StoreError), error
    assert "obs://drs-report/history.db.lease" in str(error)
    assert took < budget + SLACK, took


# -- Feishu's API: each call ends within API_TIMEOUT -----------------------------------------


@pytest.mark.parametrize("stall", sorted(STALLS))
def test_a_stalling_feishu_api_ends_by_the_api_timeout(stall: str) -> None:
    from drs_report.config import parse_settings
    from drs_report.web.feishu import API_TIMEOUT, FeishuBot

    with HostileHTTP(STALLS[stall]) as api:
        settings = parse_settings({
            "drs": {"region": "cn-north-4", "project_id": "5237e10fe9aa4ad5b16b6a5245248314"},
            "jobs": [{"id": "9a470239-2308-4bb5-a6bc-1040402fjb21"}],
            "web": {"feishu_app_id": "cli_canary", "feishu_app_secret": "canary-app-secret",
                    "feishu_verification_token": "canary-verification", "feishu_api": api.url},
        }, {})
        bot = FeishuBot(settings, commands=None)  # type: ignore[arg-type]
        error, took = timed(bot.tenant_token)
    assert isinstance(error, RuntimeError), error
    assert took < API_TIMEOUT + SLACK, f"{stall}: {took:.1f}s against {API_TIMEOUT}s"


# -- Apprise: its own threads and per-read timeouts; the attempt still ends by its deadline --


def test_a_stalling_apprise_target_ends_the_attempt_by_its_deadline(tmp_path: Path) -> None:
    pytest.importorskip("apprise")
    from drs_report.store import Store
    from tests.test_channels import make_settings
    from tests.test_hostile_delivery import timed_send

    store = Store.open(f"sqlite:///{tmp_path / 'history.db'}", in_functiongraph=False)
    store.upgrade()
    # Apprise reads with a 4 s timeout: a byte every second never trips it.
    with HostileHTTP(drip(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"y" * 2000,
                          1.0)) as target:
        settings = make_settings({"type": "apprise", "name": "other", "timeout": 2,
                                  "urls": [target.url.replace("http://", "json://")]})
        try:
            outcome, took = timed_send(settings, store)
        finally:
            store.close()
        copies = len(target.requests)
    assert took < 2 + SLACK, f"{took:.1f}s against the channel's 2 s"
    assert outcome.status != "sent" and "within 2s" in (outcome.reason or ""), outcome
    assert copies == 1  # possibly delivered: not sent again at once


# -- DNS: the lookup is part of the request --------------------------------------------------


def _resolver(monkeypatch: pytest.MonkeyPatch, names: dict[str, Callable[[int], Any]]) -> None:
    """The system resolver, except for the names given: what cannot run here (a DNS server
    that takes its time, a name with two addresses) stands in at getaddrinfo."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            return names[host](int(port))
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _get(url: str, *, deadline_s: float, verify: Any = True) -> Any:
    import requests

    from drs_report import wire

    session = requests.Session()
    session.verify = verify
    return wire.send(wire.pool_for(session, url), "GET", "/", body=None, headers={},
                     host=url.split("//")[1], connect_timeout=5.0, read_timeout=5.0,
                     deadline=time.monotonic() + deadline_s, max_bytes=1024)


def test_a_dns_lookup_that_takes_its_time_ends_by_the_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from drs_report.wire import WireError

    def slow(port: int) -> Any:
        time.sleep(20)  # a resolver retrying server after server
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    _resolver(monkeypatch, {"slow-dns.test": slow})
    with HostileHTTP(answer(200, b"ok")) as server:
        error, elapsed = timed(lambda: _get(f"http://slow-dns.test:{server.port}",
                                            deadline_s=1.0))
    assert isinstance(error, WireError) and error.kind == "dns", error
    assert "no DNS answer for slow-dns.test within" in str(error)
    assert elapsed < 1.0 + SLACK, elapsed


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_name_with_two_addresses_is_tried_on_each_and_keeps_its_name(
        scheme: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The first address refuses; the second answers. The name, not the address, goes in
    the Host header, TLS's SNI and the certificate check."""
    import socket
    import ssl

    import trustme

    def two(port: int) -> Any:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in ("127.0.0.2", "127.0.0.1")]  # nothing listens on .2

    _resolver(monkeypatch, {"two-addresses.test": two})
    tls = verify = None
    if scheme == "https":
        ca = trustme.CA()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("two-addresses.test").configure_cert(tls)
        verify = str(tmp_path / "ca.pem")
        ca.cert_pem.write_to_path(verify)
    with HostileHTTP(answer(200, b"ok"), tls=tls) as server:
        got = _get(f"{scheme}://two-addresses.test:{server.port}", deadline_s=10.0,
                   verify=verify if verify is not None else True)
        host_header = server.requests[0].headers.get("host")
    assert got.status == 200 and got.body == b"ok"
    assert host_header == f"two-addresses.test:{server.port}"


def test_a_name_that_does_not_resolve_is_said_so_after_one_lookup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver's "no such name" is the answer: the name is not looked up again
    outside the deadline."""
    import socket

    from drs_report.wire import WireError

    asked: list[int] = []

    def no_such_name(port: int) -> Any:
        asked.append(port)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    _resolver(monkeypatch, {"no-such-name.test": no_such_name})
    error, _ = timed(lambda: _get("http://no-such-name.test:8080", deadline_s=5.0))
    assert isinstance(error, WireError) and error.kind == "dns", error
    assert str(error) == "cannot resolve no-such-name.test:8080 (DNS lookup failed)"
    assert len(asked) == 1
