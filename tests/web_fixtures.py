"""A stored history to serve, the application on loopback, and the APIG way to reach it.

`site` runs three real cycles against the emulator into SQLite or PostgreSQL, then serves
the web application over real HTTP. `Transport` reaches it either over that HTTP server or
through `index.handler` with APIG events in the shape FunctionGraph sends (lower-case
headers, base64 body), so every route test runs both ways. A small Feishu open-API stand-in
checks the app credentials and the tenant token like the real one.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from drs_report.config import Settings, load_settings
from drs_report.emulator import Emulator
from drs_report.pipeline import run_cycle
from tests.fixtures.databases import _reset_postgres
from tests.fixtures.emulator import canary_credentials, make_emulator

WEB_TOKEN = "canary-web-token-3c9b1f7e-must-never-leak"
LINK_SECRET = "canary-link-secret-8d2e4a6c-must-never-leak"
SLACK_SECRET = "canary-slack-signing-5b7d9f1a-never-leak"
DINGTALK_SECRET = "canary-dingtalk-secret-2f4h6j8k-never-leak"
FEISHU_APP_ID = "cli_a1b2c3d4e5f6"
FEISHU_APP_SECRET = "canary-feishu-app-secret-9z8y7x-never-leak"
FEISHU_TOKEN = "canary-feishu-verification-1q2w3e-never-leak"
FEISHU_KEY = "canary-feishu-encrypt-key-4r5t6y-never-leak"
TENANT_TOKEN = "t-canary-tenant-token-0p9o8i-never-leak"
WEB_SECRETS = (WEB_TOKEN, LINK_SECRET, SLACK_SECRET, DINGTALK_SECRET, FEISHU_APP_SECRET,
               FEISHU_TOKEN, FEISHU_KEY, TENANT_TOKEN)
BASE_URL = "https://drs.example.com/report"

ORDERS = "9a470239-2308-4bb5-a6bc-1040402fjb21"
WAREHOUSE = "4e6a8c0b-2d1f-4e3a-8b5c-9d0e1f2ajb21"
HOSTILE = "6a8c0e2d-4f1b-4d3c-9e5f-8b0c2d4ejb21"


@dataclass
class FeishuApi:
    """Feishu's open API as far as the bot uses it: tenant token, then reply."""

    url: str = ""
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    replies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refused: int = 0


def _feishu_server(api: FeishuApi) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            if self.path == "/open-apis/auth/v3/tenant_access_token/internal":
                api.token_requests.append(body)
                ok = body == {"app_id": FEISHU_APP_ID, "app_secret": FEISHU_APP_SECRET}
                answer = ({"code": 0, "msg": "ok", "tenant_access_token": TENANT_TOKEN,
                           "expire": 7200} if ok else {"code": 10014, "msg": "app secret invalid"})
            elif self.path.startswith("/open-apis/im/v1/messages/") and \
                    self.path.endswith("/reply"):
                if self.headers.get("Authorization") != f"Bearer {TENANT_TOKEN}":
                    api.refused += 1
                    answer = {"code": 99991663, "msg": "Invalid access token"}
                else:
                    api.replies.append((self.path.split("/")[-2], body))
                    answer = {"code": 0, "msg": "success", "data": {}}
            else:
                answer = {"code": 404, "msg": "not found"}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def _toml(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string or list is TOML too


def write_config(directory: Path, emulator: Emulator, store_url: str, feishu_api: str,
                 **web: Any) -> Path:
    lines = ["[drs]", 'region = "cn-north-4"', f"project_id = {_toml(emulator.project_id)}",
             f"endpoint = {_toml(emulator.url)}", "backoff_base = 0.01", "backoff_max = 0.1",
             ""]
    for job in emulator.jobs_config():
        lines += ["[[jobs]]", f"id = {_toml(job['id'])}", f"name = {_toml(job['name'])}",
                  f"compare_jobs = {_toml(job['compare_jobs'])}"]
    settings = {"base_url": BASE_URL, "token": WEB_TOKEN, "link_secret": LINK_SECRET,
                "slack_signing_secret": SLACK_SECRET, "dingtalk_secret": DINGTALK_SECRET,
                "feishu_app_id": FEISHU_APP_ID, "feishu_app_secret": FEISHU_APP_SECRET,
                "feishu_verification_token": FEISHU_TOKEN, "feishu_encrypt_key": FEISHU_KEY,
                "feishu_api": feishu_api, "page_size": 2, "max_body_bytes": 4096, **web}
    lines += ["", "[store]", f"url = {_toml(store_url)}", "[report]",
              f"output_dir = {_toml(str(directory / 'out'))}", "[web]"]
    lines += [f"{key} = {_toml(value)}" for key, value in settings.items() if value is not None]
    path = directory / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Site:
    backend: str
    config: Path
    settings: Settings
    emulator: Emulator
    url: str
    feishu: FeishuApi
    store_url: str
    app: Any


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Site]:
    from drs_report.web.app import App
    from drs_report.web.server import make

    directory = tmp_path_factory.mktemp(f"web-{request.param}")
    if request.param == "sqlite":
        store_url = f"sqlite:///{directory / 'history.db'}"
    else:
        store_url = request.getfixturevalue("postgres_session_url")
        _reset_postgres(store_url)
    feishu = FeishuApi()
    feishu_server = _feishu_server(feishu)
    threading.Thread(target=feishu_server.serve_forever, daemon=True).start()
    feishu.url = f"http://127.0.0.1:{feishu_server.server_address[1]}"
    emulator = make_emulator().start()
    config = write_config(directory, emulator, store_url, feishu.url)
    settings = load_settings(config, {})
    for _ in range(3):  # three stored runs, an hour apart on the emulator's clock
        run_cycle(settings, canary_credentials())
        emulator.advance(3600)
    app = App(settings, credentials=canary_credentials())
    server = make(app, "127.0.0.1", 0, timeout=1.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Site(request.param, config, settings, emulator,
                   f"http://127.0.0.1:{server.server_address[1]}", feishu, store_url, app)
    finally:
        from drs_report.web import apig

        for cached in apig._apps.values():  # the warm instance's App, as index.handler kept it
            cached.close()
        apig._apps.clear()
        server.shutdown()
        server.server_close()
        app.close()
        emulator.stop()
        feishu_server.shutdown()
        feishu_server.server_close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-case
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class Transport:
    """One way to reach the application: real HTTP, or an APIG event into index.handler."""

    def __init__(self, kind: str, site: Site) -> None:
        self.kind = kind
        self.site = site
        self.logger_lines: list[str] = []

    def __call__(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                 body: bytes = b"", query: dict[str, str] | None = None) -> Reply:
        headers = dict(headers or {})
        if self.kind == "http":
            url = self.site.url + path + (f"?{urlencode(query)}" if query else "")
            answer = requests.request(method, url, headers=headers, data=body or None,
                                      timeout=10, allow_redirects=False)
            return Reply(answer.status_code, {k.lower(): v for k, v in answer.headers.items()},
                         answer.content)
        return self.apig(apig_event(method, path, headers=headers, body=body, query=query))

    def apig(self, event: dict[str, Any]) -> Reply:
        import index

        from tests.test_function import FakeContext

        context = FakeContext(user_data={"DRS_REPORT_CONFIG": str(self.site.config)})
        answer = index.handler(event, context)
        self.logger_lines.extend(context.logger.lines)
        assert set(answer) == {"statusCode", "headers", "body", "isBase64Encoded"}, answer
        assert isinstance(answer["statusCode"], int) and isinstance(answer["body"], str)
        body = base64.b64decode(answer["body"]) if answer["isBase64Encoded"] else \
            answer["body"].encode()
        return Reply(answer["statusCode"], {k.lower(): v for k, v in answer["headers"].items()},
                     body)


def apig_event(method: str, path: str, *, headers: dict[str, str] | None = None,
               body: bytes = b"", query: dict[str, str] | None = None,
               base64_body: bool = True) -> dict[str, Any]:
    """The shape of FunctionGraph's APIG event (its 'apig-event-template')."""
    return {
        "body": base64.b64encode(body).decode() if base64_body else body.decode(),
        "requestContext": {"apiId": "bc1dcffd-aa35-474d-897c-d53425a4c08e",
                           "requestId": uuid.uuid4().hex, "stage": "RELEASE",
                           "sourceIp": "203.0.113.9"},
        "queryStringParameters": dict(query or {}),
        "httpMethod": method,
        "pathParameters": {},
        "headers": {k.lower(): v for k, v in (headers or {}).items()} | {
            "host": "drs.example.com", "x-forwarded-for": "203.0.113.9",
            "user-agent": "APIGateway"},
        "path": path,
        "isBase64Encoded": base64_body,
    }


@pytest.fixture(params=["http", "apig"])
def call(request: pytest.FixtureRequest, site: Site) -> Transport:
    return Transport(request.param, site)


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {WEB_TOKEN}"}
