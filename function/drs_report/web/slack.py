"""Slack slash command (`/drs status ...`) at POST /chat/slack.

Verified before the body is read as data: `X-Slack-Signature` is "v0=" + hex HMAC-SHA256 of
"v0:{X-Slack-Request-Timestamp}:{raw body}" with the app's signing secret, compared in
constant time, and a timestamp more than 5 minutes off is a replay. The answer is Block Kit
(mrkdwn sections of at most 3,000 characters, at most 50 blocks), ephemeral unless the
command says `in_channel`, and comes synchronously, well inside Slack's 3 seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from drs_report.config import Settings
from drs_report.render import slack_inert
from drs_report.web.auth import unauthorized
from drs_report.web.commands import Commands, Dialect, fit
from drs_report.web.http import HttpError, Request, Response

REPLAY_WINDOW_SECONDS = 300


def _link(label: str, url: str) -> str:
    # Our own signed URL; '|' and '>' would end Slack's <url|label> early.
    return f"<{url.replace('|', '%7C').replace('>', '%3E')}|{slack_inert(label)}>"


def _words(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


DIALECT = Dialect("slack", slack_inert, bold=lambda s: f"*{s}*", link=_link,
                  max_bytes=12000, block_bytes=3000, max_blocks=50, words=_words)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


class SlackCommand:
    def __init__(self, settings: Settings, commands: Commands) -> None:
        self.settings = settings
        self.commands = commands

    def verify(self, request: Request, *, now: float | None = None) -> None:
        secret = self.settings.web.slack_signing_secret
        if secret is None:
            raise HttpError(404, "not found")
        timestamp = request.header("x-slack-request-timestamp") or ""
        given = request.header("x-slack-signature") or ""
        if not timestamp.isdigit() or not given:
            raise unauthorized()
        if abs((time.time() if now is None else now) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
            raise unauthorized()
        expected = signature(secret.reveal(), timestamp, request.body)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise unauthorized()

    def handle(self, request: Request) -> Response:
        self.verify(request)
        form = request.form()
        deadline = request.received_at + self.settings.web.live_seconds
        answer = self.commands.answer(form.get("text", ""), DIALECT, deadline=deadline)
        texts = fit(answer, DIALECT)
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in texts]
        return Response.json({
            "response_type": "in_channel" if answer.public else "ephemeral",
            "text": texts[0], "blocks": blocks})
