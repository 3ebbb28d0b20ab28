"""DingTalk outgoing robot (@robot status ...) at POST /chat/dingtalk.

DingTalk signs each request with headers `timestamp` (milliseconds) and `sign` =
base64(HMAC-SHA256(key = the robot's AppSecret, "{timestamp}\\n{AppSecret}")); a timestamp
more than an hour off is refused, as DingTalk's own rule for signed requests is. The answer
is a markdown message in the HTTP response itself (DingTalk posts it to the conversation).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from drs_report.config import Settings
from drs_report.render import chat_inert, plain
from drs_report.web.auth import unauthorized
from drs_report.web.commands import Commands, Dialect, fit, html_brackets
from drs_report.web.http import HttpError, Request, Response

WINDOW_MS = 3600 * 1000
DIALECT = Dialect("dingtalk", chat_inert, bold=lambda s: f"**{s}**",
                  link=lambda label, url: f"[{chat_inert(label)}]({url})", words=html_brackets,
                  # The robot takes about 20,000 bytes of markdown.
                  max_bytes=18000, block_bytes=18000, line_sep="\n\n")


def signature(secret: str, timestamp: str) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


class DingTalkRobot:
    def __init__(self, settings: Settings, commands: Commands) -> None:
        self.settings = settings
        self.commands = commands

    def verify(self, request: Request, *, now_ms: int | None = None) -> None:
        secret = self.settings.web.dingtalk_secret
        if secret is None:
            raise HttpError(404, "not found")
        timestamp = request.header("timestamp") or ""
        given = request.header("sign") or ""
        if not timestamp.isdigit() or not given:
            raise unauthorized()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if abs(now - int(timestamp)) > WINDOW_MS:
            raise unauthorized()
        if not hmac.compare_digest(given.encode(), signature(secret.reveal(), timestamp).encode()):
            raise unauthorized()

    def handle(self, request: Request) -> Response:
        self.verify(request)
        data = request.json()
        text: Any = ""
        if isinstance(data, dict) and isinstance(data.get("text"), dict):
            text = data["text"].get("content", "")
        deadline = request.received_at + self.settings.web.live_seconds
        answer = self.commands.answer(str(text or ""), DIALECT, deadline=deadline)
        texts = fit(answer, DIALECT)
        return Response.json({"msgtype": "markdown", "markdown": {
            "title": plain(texts[0].replace("**", "")), "text": "\n\n".join(texts)}})
