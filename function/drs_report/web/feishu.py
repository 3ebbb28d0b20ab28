"""Feishu (Lark) app bot at POST /chat/feishu: event subscription v2 with the reply sent
through Feishu's message API.

    url_verification   {"challenge": ...} back, after the verification token matches
    encrypted events   with an Encrypt Key set, the body is {"encrypt": base64(iv + AES-256-
                       CBC(key = SHA-256(encrypt key)))}; the request is signed with
                       X-Lark-Signature = hex SHA-256(timestamp + nonce + encrypt key + body)
    messages           im.message.receive_v1: the text (mentions removed) is a command; the
                       answer goes to POST /open-apis/im/v1/messages/{message_id}/reply as
                       an interactive card, with the app's tenant_access_token

Feishu re-delivers an event it did not see acknowledged; each event id is answered once per
instance. The HTTP answer is an empty JSON object either way. Each call to Feishu's API ends
within API_TIMEOUT seconds of wall-clock time, whatever Feishu's side does (wire.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlsplit

from drs_report import logs
from drs_report.config import Settings
from drs_report.render import chat_inert, plain
from drs_report.web.auth import unauthorized
from drs_report.web.commands import Commands, Dialect, fit, html_brackets
from drs_report.web.http import HttpError, Request, Response

log = logs.get_logger("web.feishu")

WINDOW_SECONDS = 3600
API_TIMEOUT = 2.0  # seconds: one call to Feishu's API, start to end
MAX_API_ANSWER = 1 << 20  # a token or a reply receipt is a few hundred bytes
_MENTION = re.compile(r"@_user_\d+")
_MESSAGE_ID = re.compile(r"^[0-9A-Za-z_-]{1,128}$")
DIALECT = Dialect("feishu", chat_inert, bold=lambda s: f"**{s}**",
                  link=lambda label, url: f"[{chat_inert(label)}]({url})", words=html_brackets,
                  # A card must stay under 30 KB with its JSON around the markdown.
                  max_bytes=16 * 1024, block_bytes=16 * 1024)


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def decrypt(encrypted: str, encrypt_key: str) -> bytes:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        raw = base64.b64decode(encrypted, validate=True)
    except ValueError:
        raise HttpError(400, "encrypt: not base64") from None
    if len(raw) < 32 or len(raw) % 16:
        raise HttpError(400, "encrypt: not an AES-CBC message")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        # A wrong key shows as bad padding: the same refusal as a wrong signature.
        raise unauthorized() from None


class FeishuBot:
    def __init__(self, settings: Settings, commands: Commands) -> None:
        self.settings = settings
        self.commands = commands
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None
        self._session: Any = None

    def _payload(self, request: Request) -> dict[str, Any]:
        web = self.settings.web
        data = request.json()
        if not isinstance(data, dict):
            raise HttpError(400, "expected a JSON object")
        if "encrypt" in data:
            if web.feishu_encrypt_key is None:
                raise unauthorized()
            data = json.loads(decrypt(str(data["encrypt"]), web.feishu_encrypt_key.reveal()))
            if not isinstance(data, dict):
                raise HttpError(400, "expected a JSON object")
        elif web.feishu_encrypt_key is not None:
            raise unauthorized()  # with a key set, Feishu encrypts everything it sends
        return data

    def _token_matches(self, given: Any) -> bool:
        token = self.settings.web.feishu_verification_token
        return (token is not None and isinstance(given, str)
                and hmac.compare_digest(given.encode(), token.reveal().encode()))

    def verify_signature(self, request: Request, *, now: float | None = None) -> None:
        key = self.settings.web.feishu_encrypt_key
        if key is None:
            return
        timestamp = request.header("x-lark-request-timestamp") or ""
        nonce = request.header("x-lark-request-nonce") or ""
        given = request.header("x-lark-signature") or ""
        if not timestamp.isdigit() or not given:
            raise unauthorized()
        if abs((time.time() if now is None else now) - int(timestamp)) > WINDOW_SECONDS:
            raise unauthorized()
        expected = signature(timestamp, nonce, key.reveal(), request.body)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise unauthorized()

    def handle(self, request: Request) -> Response:
        if self.settings.web.feishu_app_id is None:
            raise HttpError(404, "not found")
        data = self._payload(request)
        if data.get("type") == "url_verification":
            if not self._token_matches(data.get("token")):
                raise unauthorized()
            return Response.json({"challenge": str(data.get("challenge", ""))})
        self.verify_signature(request)
        header: dict[str, Any] = data["header"] if isinstance(data.get("header"), dict) else {}
        if not self._token_matches(header.get("token")):
            raise unauthorized()
        if header.get("event_type") != "im.message.receive_v1":
            return Response.json({})
        if not self._first_time(str(header.get("event_id", ""))):
            return Response.json({})
        event: dict[str, Any] = data["event"] if isinstance(data.get("event"), dict) else {}
        message: dict[str, Any] = (event["message"] if isinstance(event.get("message"), dict)
                                   else {})
        message_id = str(message.get("message_id", ""))
        if not _MESSAGE_ID.match(message_id):
            raise HttpError(400, "event.message.message_id: missing or malformed")
        text = ""
        if message.get("message_type") == "text":
            try:
                content = json.loads(str(message.get("content", "")))
                text = str(content.get("text", "")) if isinstance(content, dict) else ""
            except ValueError:
                text = ""
        deadline = request.received_at + self.settings.web.live_seconds
        answer = self.commands.answer(_MENTION.sub(" ", text), DIALECT, deadline=deadline)
        texts = fit(answer, DIALECT)
        card = {"config": {"wide_screen_mode": True},
                "header": {"title": {"tag": "plain_text",
                                     "content": plain(texts[0].replace("**", ""))}},
                "elements": [{"tag": "markdown", "content": "\n\n".join(texts[1:])}]}
        self.reply(message_id, card)
        return Response.json({})

    def _first_time(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = None
            while len(self._seen) > 1024:
                self._seen.popitem(last=False)
            return True

    # -- Feishu's open API ---------------------------------------------------------------

    def _http(self) -> Any:
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.trust_env = False
        return self._session

    def tenant_token(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] > time.monotonic():
                return self._token[0]
        web = self.settings.web
        assert web.feishu_app_secret is not None
        answer = self._post("/open-apis/auth/v3/tenant_access_token/internal",
                            {"app_id": web.feishu_app_id,
                             "app_secret": web.feishu_app_secret.reveal()})
        token = answer.get("tenant_access_token")
        if not isinstance(token, str) or not token:
            raise RuntimeError(f"tenant token refused: code {answer.get('code')}")
        logs.add_secrets([token])
        expire = float(answer.get("expire") or 7200)
        with self._lock:
            self._token = (token, time.monotonic() + max(expire - 300, 60))
        return token

    def _post(self, path: str, body: dict[str, Any], token: str | None = None
              ) -> dict[str, Any]:
        from drs_report import wire

        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = self.settings.web.feishu_api + path
        split = urlsplit(url)
        target = split.path + (f"?{split.query}" if split.query else "")
        try:
            answer = wire.send(wire.pool_for(self._http(), url), "POST", target,
                               body=json.dumps(body).encode(), headers=headers,
                               host=split.netloc, connect_timeout=API_TIMEOUT,
                               read_timeout=API_TIMEOUT,
                               deadline=time.monotonic() + API_TIMEOUT,
                               max_bytes=MAX_API_ANSWER)
        except wire.WireError as e:
            raise RuntimeError(str(e)) from None
        try:  # not answers.decode_json: it would mask the tenant token we need
            data = {} if answer.truncated else json.loads(answer.body)
        except (ValueError, RecursionError):
            data = {}
        if answer.status != 200 or not isinstance(data, dict) or data.get("code") != 0:
            code = data.get("code") if isinstance(data, dict) else None
            raise RuntimeError(f"HTTP {answer.status}, code {code}")
        return data

    def reply(self, message_id: str, card: dict[str, Any]) -> None:
        """Post the answer; a failure is logged, not raised: Feishu would only re-send."""
        try:
            token = self.tenant_token()
            self._post(f"/open-apis/im/v1/messages/{quote(message_id, safe='')}/reply",
                       {"msg_type": "interactive", "content": json.dumps(card)}, token)
        except Exception as e:
            log.error("Feishu reply to %s failed: %s", message_id, logs.redact(str(e))[:200])
