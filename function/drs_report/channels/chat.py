"""Chat webhooks: Slack, Microsoft Teams (Workflows), Feishu/Lark, DingTalk, WeCom.

Each app gets its own Markdown flavour (render_chat's dialect) and its own size limit, and
success means the app said so: HTTP 200 with another code (wrong signature, missing keyword,
rate limited) is a failure. Vendor rate-limit codes are transient, other codes permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, ClassVar
from urllib.parse import quote

from drs_report.analysis import Health
from drs_report.answers import MalformedAnswer, decode_json, decode_text
from drs_report.channels.base import Channel, PermanentError, TransientError, reveal
from drs_report.message import Message
from drs_report.render import render_chat, render_subject


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _answer(content: bytes) -> dict[str, Any]:
    """The vendor's JSON answer (depth-bounded, secrets masked), {} if it is none."""
    try:
        data = decode_json(content)
    except MalformedAnswer:
        return {}
    return data if isinstance(data, dict) else {}


def _said(value: Any) -> str:
    """A field of a vendor's answer, for an error message: short, one line."""
    return " ".join(str(value).split())[:200]


def _require_errcode_zero(vendor: str, content: bytes, transient: frozenset[int]) -> None:
    """DingTalk and WeCom say success as {"errcode": 0}; anything else failed."""
    answer = _answer(content)
    code = answer.get("errcode")
    if code != 0:
        text = f"{vendor} answered errcode {_said(code)}: {_said(answer.get('errmsg'))}"
        if isinstance(code, int) and code in transient:  # a list or dict is no code
            raise TransientError(text)
        raise PermanentError(text)


class _ChatChannel(Channel):
    DIALECT: ClassVar[str] = "markdown"
    MAX_BYTES: ClassVar[int] = 4096  # of the Markdown text itself

    def text(self, message: Message, max_bytes: int | None = None) -> str:
        return render_chat(message.report, dialect=self.DIALECT,
                           max_bytes=max_bytes or self.MAX_BYTES, changes=message.changes,
                           language=message.language, settings=self.settings)

    def subject(self, message: Message) -> str:
        return render_subject(message.report, language=message.language)


class SlackChannel(_ChatChannel):
    """Incoming webhook; mrkdwn section text is limited to 3,000 characters."""

    DIALECT = "slack"
    MAX_BYTES = 3000

    def payload_bytes(self, message: Message) -> bytes:
        text = self.text(message)
        return _dumps({"text": self.subject(message), "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}]})

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        _, content = self.post(reveal(self.options["url"]), self.payload_bytes(message),
                               headers=self.idempotency_headers(message), deadline=deadline)
        answer = decode_text(content, 120)
        if answer != "ok":
            raise PermanentError(f"Slack answered {answer!r} instead of 'ok'")


class TeamsChannel(_ChatChannel):
    """Power Automate 'Workflows' webhook with an Adaptive Card (connectors are retired)."""

    DIALECT = "teams"
    MAX_BYTES = 24 * 1024  # the card must stay under ~28 KB with its JSON around it

    def payload_bytes(self, message: Message) -> bytes:
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": self.subject(message), "weight": "Bolder",
                 "size": "Medium", "wrap": True},
                {"type": "TextBlock", "text": self.text(message), "wrap": True},
            ],
        }
        return _dumps({"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
             "content": card}]})

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        self.post(reveal(self.options["url"]), self.payload_bytes(message),
                  headers=self.idempotency_headers(message), deadline=deadline)


class FeishuChannel(_ChatChannel):
    """Feishu/Lark custom bot: an interactive card with a markdown element; optional sign."""

    DIALECT = "feishu"
    MAX_BYTES = 16 * 1024  # the whole body must stay under 20 KB
    RATE_LIMIT = (5, 1.0)
    _TRANSIENT_CODES = frozenset({11232, 9499})  # frequency limited, server busy

    def payload_bytes(self, message: Message, timestamp: int | None = None) -> bytes:
        worst = max((p.health for p in message.report.problems), key=lambda h: h.severity,
                    default=Health.OK)
        template = {Health.CRITICAL: "red", Health.WARNING: "orange",
                    Health.UNKNOWN: "purple", Health.OK: "green"}[worst]
        body: dict[str, Any] = {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {"title": {"tag": "plain_text", "content": self.subject(message)},
                           "template": template},
                "elements": [{"tag": "markdown", "content": self.text(message)}],
            },
        }
        secret = self.options.get("secret")
        if secret is not None:
            ts = int(time.time()) if timestamp is None else timestamp
            key = f"{ts}\n{reveal(secret)}".encode()
            body["timestamp"] = str(ts)
            body["sign"] = base64.b64encode(
                hmac.new(key, b"", hashlib.sha256).digest()).decode()
        return _dumps(body)

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        _, content = self.post(reveal(self.options["url"]), self.payload_bytes(message),
                               headers=self.idempotency_headers(message), deadline=deadline)
        answer = _answer(content)
        code = answer.get("code", answer.get("StatusCode"))
        if code != 0:
            said = answer.get("msg") or answer.get("StatusMessage")
            text = f"Feishu answered code {_said(code)}: {_said(said)}"
            if isinstance(code, int) and code in self._TRANSIENT_CODES:
                raise TransientError(text)
            raise PermanentError(text)


class DingTalkChannel(_ChatChannel):
    """DingTalk custom robot, markdown message; optional sign in the query string."""

    DIALECT = "dingtalk"
    MAX_BYTES = 18000  # the robot takes about 20,000 bytes
    RATE_LIMIT = (20, 60.0)
    _TRANSIENT_CODES = frozenset({130101, -1})  # sending too fast, system busy

    def signed_url(self, timestamp_ms: int | None = None) -> str:
        url = reveal(self.options["url"])
        secret = self.options.get("secret")
        if secret is None:
            return url
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        raw = hmac.new(reveal(secret).encode(), f"{ts}\n{reveal(secret)}".encode(),
                       hashlib.sha256).digest()
        # URL-encoded exactly once: base64's + / = must reach DingTalk as %2B %2F %3D.
        sign = quote(base64.b64encode(raw).decode(), safe="")
        return f"{url}{'&' if '?' in url else '?'}timestamp={ts}&sign={sign}"

    def payload_bytes(self, message: Message) -> bytes:
        return _dumps({"msgtype": "markdown",
                       "markdown": {"title": self.subject(message), "text": self.text(message)},
                       "at": {"isAtAll": False}})

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        _, content = self.post(self.signed_url(), self.payload_bytes(message),
                               headers=self.idempotency_headers(message), deadline=deadline)
        _require_errcode_zero("DingTalk", content, self._TRANSIENT_CODES)


class WeComChannel(_ChatChannel):
    """WeCom (WeChat Work) group robot, markdown content of at most 4,096 bytes."""

    DIALECT = "wecom"
    MAX_BYTES = 4096
    RATE_LIMIT = (20, 60.0)
    _TRANSIENT_CODES = frozenset({45009, -1})  # api freq out of limit, system busy

    def payload_bytes(self, message: Message) -> bytes:
        return _dumps({"msgtype": "markdown", "markdown": {"content": self.text(message)}})

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        _, content = self.post(reveal(self.options["url"]), self.payload_bytes(message),
                               headers=self.idempotency_headers(message), deadline=deadline)
        _require_errcode_zero("WeCom", content, self._TRANSIENT_CODES)
