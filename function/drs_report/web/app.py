"""The one HTTP application: routes, their methods, the body cap, the archive's gate.

    GET  /healthz           "ok", no credentials (a load balancer's or APIG's probe)
    GET  /reports  /reports/latest  /reports/{run}  /jobs/{job_id}    bearer token or link
    POST /chat/slack  /chat/dingtalk  /chat/feishu                    the vendor's signature

Served by WSGI (`drs-report serve`, the `wsgi` method) and by the APIG adapter (apig.py),
both through `handle`. Every answer gets the security headers; a refusal is one line; an
unexpected error is a 500 saying "internal error" with the details in the log only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from drs_report import logs
from drs_report.config import Settings
from drs_report.errors import StoreError
from drs_report.secrets import Credentials
from drs_report.web.auth import Access, authorize
from drs_report.web.http import REASONS, HttpError, Request, Response
from drs_report.web.source import ArchiveSource

log = logs.get_logger("web")

Handler = Callable[..., Response]
BODY_SECONDS = 10.0  # a whole request body must arrive within this
BODY_SECONDS_KEY = "drs_report.body_seconds"  # the WSGI server may say otherwise


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: tuple[str, ...]
    name: str
    archive: bool  # behind the bearer token / signed link gate


ROUTES = (
    Route(re.compile(r"^/healthz$"), ("GET",), "healthz", False),
    Route(re.compile(r"^/reports$"), ("GET",), "reports", True),
    Route(re.compile(r"^/reports/latest$"), ("GET",), "latest", True),
    Route(re.compile(r"^/reports/([1-9][0-9]{0,17})$"), ("GET",), "report", True),
    Route(re.compile(r"^/jobs/([0-9a-z][0-9a-z-]{0,63})$"), ("GET",), "job", True),
    Route(re.compile(r"^/chat/slack$"), ("POST",), "slack", False),
    Route(re.compile(r"^/chat/dingtalk$"), ("POST",), "dingtalk", False),
    Route(re.compile(r"^/chat/feishu$"), ("POST",), "feishu", False),
)


class App:
    """Build once per process (a warm function instance keeps it, and its caches)."""

    def __init__(self, settings: Settings, *, source: ArchiveSource | None = None,
                 credentials: Credentials | None = None) -> None:
        from drs_report.web.commands import Commands
        from drs_report.web.pages import Pages

        logs.add_secrets(settings.secret_values())
        self.settings = settings
        # The synced store's copy is fetched with the credentials of the moment.
        self.source = source or ArchiveSource(settings, credentials=lambda: self.credentials)
        self.credentials = credentials  # for `live`; FunctionGraph sets the agency's per call
        self.commands = Commands(settings, self.source, live=self._live)
        self.pages = Pages(settings, self.source)
        self._chats: dict[str, Any] = {}

    def close(self) -> None:
        self.source.close()

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        try:
            response = self._dispatch(request)
        except HttpError as e:
            response = e.response()
        except StoreError as e:
            log.error("%s %s: %s", request.method, request.path, e)
            response = Response.text(503, "the history cannot be read now; try again later\n")
        except Exception as e:  # a bug: one line here, the traceback only at DEBUG
            log.debug("unexpected error", exc_info=True)
            log.error("%s %s: internal error: %s", request.method, request.path,
                      type(e).__name__)
            response = Response.text(500, "internal error\n")
        return response.secured()

    def _dispatch(self, request: Request) -> Response:
        for route in ROUTES:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            if request.method not in route.methods:
                raise HttpError(405, "method not allowed", Allow=", ".join(route.methods))
            if len(request.body) > self.settings.web.max_body_bytes:
                raise HttpError(413, "request body too large")
            if route.name == "healthz":
                return Response.text(200, "ok\n")
            if route.archive:
                access: Access = authorize(request, self.settings.web)
                method: Handler = getattr(self.pages, route.name)
                return method(request, access, *match.groups())
            answered: Response = self._chat(route.name).handle(request)
            return answered
        raise HttpError(404, "not found")

    def _chat(self, name: str) -> Any:
        chat = self._chats.get(name)
        if chat is None:
            if name == "slack":
                from drs_report.web.slack import SlackCommand as Chat
            elif name == "dingtalk":
                from drs_report.web.dingtalk import DingTalkRobot as Chat  # type: ignore[assignment]
            else:
                from drs_report.web.feishu import FeishuBot as Chat  # type: ignore[assignment]
            chat = self._chats[name] = Chat(self.settings, self.commands)
        return chat

    def _live(self, job: dict[str, Any], deadline: float) -> dict[str, Any]:
        from drs_report.web.live import fetch_live

        if self.credentials is None:
            return {"live_failure": "no DRS credentials"}
        return fetch_live(self.settings, self.source, self.credentials, job, deadline)

    # -- WSGI --------------------------------------------------------------------------------

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]
             ) -> Iterable[bytes]:
        received = time.monotonic()
        try:
            request = self._wsgi_request(environ, received)
            response = self.handle(request)
        except HttpError as e:
            response = e.response().secured()
        reason = REASONS.get(response.status, "")
        start_response(f"{response.status} {reason}", list(response.headers.items()))
        return [response.body]

    @staticmethod
    def _read_body(environ: dict[str, Any], length: int, received: float) -> bytes:
        """The body within a total time: a socket timeout alone would let a client that
        drips a byte now and then hold a thread for ever."""
        stream = environ["wsgi.input"]
        read = getattr(stream, "read1", stream.read)  # read1 returns what one recv gave
        deadline = received + float(environ.get(BODY_SECONDS_KEY, BODY_SECONDS))
        chunks: list[bytes] = []
        got = 0
        while got < length:
            if time.monotonic() > deadline:
                raise HttpError(408, "the body came too slowly")
            chunk = read(min(65536, length - got))
            if not chunk:
                raise HttpError(400, "the body ended early")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _wsgi_request(self, environ: dict[str, Any], received: float) -> Request:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        # PEP 3333 hands the path over as latin-1 code points of the raw bytes.
        path = str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8", "replace")
        headers = {key[5:].replace("_", "-").lower(): str(value)
                   for key, value in environ.items() if key.startswith("HTTP_")}
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = str(environ[key])
        body = b""
        length_text = headers.get("content-length", "")
        if method in ("POST", "PUT", "PATCH"):
            if not length_text:
                raise HttpError(411, "Content-Length required")
            if not length_text.isdigit():
                raise HttpError(400, "bad Content-Length")
            length = int(length_text)
            if length > self.settings.web.max_body_bytes:
                # Refused before a byte of it is read: an endless body costs nothing.
                raise HttpError(413, "request body too large")
            body = self._read_body(environ, length, received)
        return Request(method=method, path=path,
                       query=parse_qs(str(environ.get("QUERY_STRING", "")),
                                      keep_blank_values=True),
                       headers=headers, body=body, remote=str(environ.get("REMOTE_ADDR", "")),
                       received_at=received)
