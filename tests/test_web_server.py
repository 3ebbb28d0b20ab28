"""`drs-report serve` as a process, hostile clients on the socket, and the [web] keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from drs_report.config import parse_settings
from drs_report.errors import ConfigError
from tests.web_fixtures import ORDERS, WEB_TOKEN, Site, bearer

FUNCTION_DIR = Path(__file__).resolve().parent.parent / "function"


def _connect(site: Site) -> socket.socket:
    host, port = site.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_an_endless_body_is_refused_before_it_is_read(site: Site) -> None:
    with _connect(site) as sock:
        sock.sendall(b"POST /chat/slack HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 10000000000\r\n\r\n" + b"x" * 65536)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.0 413") or answer.startswith(b"HTTP/1.1 413"), answer[:80]


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_a_post_without_length_and_a_chunked_one_are_refused(site: Site) -> None:
    for extra in (b"", b"Transfer-Encoding: chunked\r\n"):
        with _connect(site) as sock:
            sock.sendall(b"POST /chat/slack HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n5\r\nhello"
                         b"\r\n0\r\n\r\n")
            answer = _read_all(sock)
        assert b" 411 " in answer.split(b"\r\n", 1)[0], answer[:80]


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_a_dripping_client_is_cut_off_and_others_are_served(site: Site) -> None:
    """The test server's socket timeout is 1 s: a client sending a byte now and then loses."""
    with _connect(site) as sock:
        sock.sendall(b"POST /chat/slack HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        started = time.monotonic()
        # Meanwhile, everyone else is answered.
        assert requests.get(site.url + "/healthz", timeout=5).status_code == 200
        closed = False
        for _ in range(10):
            time.sleep(0.5)
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
                break
            sock.settimeout(0.01)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except OSError:
                closed = True
                break
        assert closed, "the server kept a dripping client"
        assert time.monotonic() - started < 5.5


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_the_query_a_user_typed_comes_back_inert(site: Site) -> None:
    reply = requests.get(site.url + "/reports", params={"page": "<script>alert(1)</script>"},
                         headers=bearer(), timeout=5)
    assert reply.status_code == 400 and "<script>" not in reply.text
    reply = requests.get(site.url + "/jobs/%3Cscript%3E", headers=bearer(), timeout=5)
    assert reply.status_code == 404 and "<script>" not in reply.text


def _cli(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(FUNCTION_DIR))
    return subprocess.Popen([sys.executable, "-m", "drs_report", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # type: ignore[call-overload]


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_serve_prints_where_it_listens_and_stops_on_sigterm(site: Site) -> None:
    proc = _cli("serve", "--config", str(site.config), "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.removeprefix("listening on ")
        assert requests.get(url + "/healthz", timeout=5).text == "ok\n"
        page = requests.get(url + "/reports", headers={"Authorization": f"Bearer {WEB_TOKEN}"},
                            timeout=10)
        assert page.status_code == 200 and "data-run=" in page.text
        assert requests.get(f"{url}/jobs/{ORDERS}", timeout=5).status_code == 401
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in stderr and WEB_TOKEN not in stderr


@pytest.mark.parametrize("site", ["sqlite"], indirect=True)
def test_serve_on_a_busy_port_is_a_one_line_usage_error(site: Site) -> None:
    port = site.url.rsplit(":", 1)[1]
    proc = _cli("serve", "--config", str(site.config), "--port", port)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert stderr.strip().count("\n") == 0 and "--port" in stderr and "Traceback" not in stderr


def test_serve_help_names_every_option_default_and_exit_code() -> None:
    proc = _cli("serve", "--help")
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    for text in ("--config", "--host", "default: 127.0.0.1", "--port", "default: 8080",
                 "example:\n  drs-report serve --config", "exit codes:\n  0  stopped"):
        assert text in stdout, text


BASE = {"drs": {"region": "cn-north-4", "project_id": "5237e10fe9aa4ad5b16b6a5245248314"},
        "jobs": [{"id": ORDERS}]}


@pytest.mark.parametrize(("web", "key"), [
    ({"token": "short"}, "web.token"),
    ({"link_secret": "short"}, "web.link_secret"),
    ({"base_url": "https://drs.example.com"}, "web.link_secret"),
    ({"base_url": "ftp://drs.example.com", "link_secret": "x" * 20}, "web.base_url"),
    ({"feishu_app_id": "cli_x"}, "web.feishu_app_secret"),
    ({"max_body_bytes": 10}, "web.max_body_bytes"),
    ({"tokn": "x" * 20}, "web.tokn"),
])
def test_bad_web_keys_name_the_key(web: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({**BASE, "web": web}, {})
    assert str(caught.value).startswith(key + ":"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_web_secrets_come_from_the_environment_and_join_the_redaction_list() -> None:
    env = {"DRS_REPORT_WEB_TOKEN": "env-token-0123456789abcdef",
           "SLACK_SIGNING_SECRET": "slack-from-env-0123"}
    settings = parse_settings({**BASE, "web": {"slack_signing_secret":
                                               "${SLACK_SIGNING_SECRET}"}}, env)
    from drs_report.config import _apply_environment

    data: dict[str, object] = {}
    _apply_environment(data, env)
    assert data == {"web": {"token": "env-token-0123456789abcdef"}}
    assert settings.web.slack_signing_secret is not None
    assert "slack-from-env-0123" in settings.secret_values()
    assert "slack-from-env-0123" not in repr(settings)
