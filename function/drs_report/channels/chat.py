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
    """One chat app: its dialect, and its size limit measured the way the vendor measures
    it (`LIMIT` of `measure(message, text)`: the text's bytes or characters, or the whole
    request body). render_chat folds the message until the measure fits."""

    DIALECT: ClassVar[str] = "markdown"
    LIMIT: ClassVar[int] = 4096

    def body(self, message: Message, text: str) -> bytes:
        raise NotImplementedError

    def measure(self, message: Message, text: str) -> int:
        return len(self.body(message, text))

    def text(self, message: Message) -> str:
        return render_chat(message.report, dialect=self.DIALECT, max_bytes=self.LIMIT,
                           measure=lambda text: self.measure(message, text),
                           changes=message.changes, language=message.language,
                           settings=self.settings, run_id=message.run_id)

    def subject(self, message: Message) -> str:
        return render_subject(message.report, language=message.language)

    def payload_bytes(self, message: Message) -> bytes:
        return self.body(message, self.text(message))


class SlackChannel(_ChatChannel):
    """Incoming webhook, one mrkdwn section. Slack: "Maximum length for the text in this
    field is 3000 characters" (api.slack.com/reference/block-kit/blocks#section), at most
    50 blocks a message, and message text beyond 40,000 characters is truncated; we send
    the subject and one section."""

    DIALECT = "slack"
    LIMIT = 3000

    def measure(self, message: Message, text: str) -> int:
        return len(text)  # characters, not bytes

    def body(self, message: Message, text: str) -> bytes:
        return _dumps({"text": self.subject(message), "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}]})

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        _, content = self.post(reveal(self.options["url"]), self.payload_bytes(message),
                               headers=self.idempotency_headers(message), deadline=deadline)
        answer = decode_text(content, 120)
        if answer != "ok":
            raise PermanentError(f"Slack answered {answer!r} instead of 'ok'")


class TeamsChannel(_ChatChannel):
    """Power Automate 'Workflows' webhook with an Adaptive Card (connectors are retired).

    Microsoft: "The message size limit is 28 KB. When the size exceeds 28 KB, you receive
    an error" (learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/
    add-incoming-webhook; the Workflows connector documents "about 28 KB"). The whole
    request body is measured, with a margin for either reading of "KB"."""

    DIALECT = "teams"
    LIMIT = 27 * 1024

    def body(self, message: Message, text: str) -> bytes:
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": self.subject(message), "weight": "Bolder",
                 "size": "Medium", "wrap": True},
                {"type": "TextBlock", "text": text, "wrap": True},
            ],
        }
        return _dumps({"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
             "content": card}]})

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        self.post(reveal(self.options["url"]), self.payload_bytes(message),
                  headers=self.idempotency_headers(message), deadline=deadline)


class FeishuChannel(_ChatChannel):
    """Feishu/Lark custom bot: an interactive card with a markdown element; optional sign.

    Feishu's custom-bot guide (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot):
    the request body may not exceed 20 K, and a bot sends at most 100 messages a minute and
    5 a second; a card is also refused over 30 KB (code 19036). The whole body is measured,
    signature fields included.
    """

    DIALECT = "feishu"
    LIMIT = 20_000
    RATE_LIMIT = (5, 1.0)
    _TRANSIENT_CODES = frozenset({11232, 9499})  # frequency limited, server busy

    def body(self, message: Message, text: str, timestamp: int | None = None) -> bytes:
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
                "elements": [{"tag": "markdown", "content": text}],
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

    def payload_bytes(self, message: Message, timestamp: int | None = None) -> bytes:
        return self.body(message, self.text(message), timestamp)

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
    """DingTalk custom robot, markdown message; optional sign in the query string.

    DingTalk refuses a larger body with errcode 460101 "body 大小不合法; 请保持大小在
    20000bytes 以内" (keep it within 20,000 bytes), and a robot sends at most 20 messages a
    minute (open.dingtalk.com/document/robots/custom-robot-access). The whole body is
    measured.
    """

    DIALECT = "dingtalk"
    LIMIT = 20_000
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

    def body(self, message: Message, text: str) -> bytes:
        return _dumps({"msgtype": "markdown",
                       "markdown": {"title": self.subject(message), "text": text},
                       "at": {"isAtAll": False}})

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        _, content = self.post(self.signed_url(), self.payload_bytes(message),
                               headers=self.idempotency_headers(message), deadline=deadline)
        _require_errcode_zero("DingTalk", content, self._TRANSIENT_CODES)


class WeComChannel(_ChatChannel):
    """WeCom (WeChat Work) group robot, markdown. WeCom: markdown content "最长不超过4096个
    字节，必须是utf8编码" (at most 4,096 bytes, UTF-8; work.weixin.qq.com/api/doc/90000/
    90136/91770; errcode 40058 beyond), 20 messages a minute."""

    DIALECT = "wecom"
    LIMIT = 4096
    RATE_LIMIT = (20, 60.0)
    _TRANSIENT_CODES = frozenset({45009, -1})  # api freq out of limit, system busy

    def measure(self, message: Message, text: str) -> int:
        return len(text.encode("utf-8"))  # the content's bytes

    def body(self, message: Message, text: str) -> bytes:
        return _dumps({"msgtype": "markdown", "markdown": {"content": text}})

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        _, content = self.post(reveal(self.options["url"]), self.payload_bytes(message),
                               headers=self.idempotency_headers(message), deadline=deadline)
        _require_errcode_zero("WeCom", content, self._TRANSIENT_CODES)
