"""What every channel shares: settings, an HTTP session, rate limits, error classification.

Every HTTP send ends by the attempt's deadline (wire.py), follows no redirect (a 3xx is a
permanent failure naming where it pointed: following it would hand the message, and for SMN
the signed request, to another host), and carries an `Idempotency-Key` header derived from
the delivery's idempotency key, the same on every retry and every run, so receivers that
keep them fold copies.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin, urlsplit

from drs_report import logs, wire
from drs_report.answers import decode_text
from drs_report.channel_options import reveal
from drs_report.config import ChannelConfig, Settings
from drs_report.errors import DeliveryError
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests

    from drs_report.message import Message

log = logs.get_logger("channels")

MAX_RESPONSE_BYTES = 1 << 20
IDEMPOTENCY_HEADER = "Idempotency-Key"


class TransientError(DeliveryError):
    """Trying again may help. `handed_over`: the whole message had been written when the
    failure came (a timeout waiting for the answer), so the receiver may have it."""

    def __init__(self, message: str, retry_after: float | None = None, *,
                 handed_over: bool = False) -> None:
        super().__init__(message, permanent=False)
        self.retry_after = retry_after
        self.handed_over = handed_over


class PermanentError(DeliveryError):
    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


__all__ = ["Channel", "PermanentError", "RateLimiter", "TransientError", "masked_url",
           "reveal"]


def idempotency_id(key: str) -> str:
    """The delivery's idempotency key as receivers see it (it names the channel; this does
    not): stable across retries and runs, different for every message."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def masked_url(value: Any) -> str:
    """scheme://host/… : the path and query of a webhook URL carry its token."""
    parts = urlsplit(reveal(value))
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}/…"


class RateLimiter:
    """At most `count` sends per `per` seconds to one destination, within this process."""

    _windows: ClassVar[dict[str, deque[float]]] = defaultdict(deque)
    _lock = threading.Lock()

    @classmethod
    def wait(cls, destination: str, count: int, per: float,
             deadline: float | None = None) -> bool:
        """Wait for a turn; False if it would come after `deadline`."""
        while True:
            with cls._lock:
                window = cls._windows[destination]
                now = time.monotonic()
                while window and window[0] <= now - per:
                    window.popleft()
                if len(window) < count:
                    window.append(now)
                    return True
                delay = window[0] + per - now
            if deadline is not None and now + delay >= deadline:
                return False
            time.sleep(max(delay, 0.001))


class Channel:
    """Base class. Subclasses implement send(); their keys are in channel_options.py."""

    # (count, seconds) the vendor allows per destination, honoured across messages.
    RATE_LIMIT: ClassVar[tuple[int, float] | None] = None

    def __init__(self, config: ChannelConfig, *, settings: Settings,
                 credentials: Credentials | None, session: requests.Session | None) -> None:
        self.config = config
        self.options = config.options
        self.settings = settings
        self.credentials = credentials
        self._session = session

    def describe_destination(self) -> str:
        url = self.options.get("url")
        return masked_url(url) if url is not None else self.config.type

    def preview_size(self, message: Message) -> int:
        return len(self.payload_bytes(message))

    def payload_bytes(self, message: Message) -> bytes:
        raise NotImplementedError

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        """Deliver `message`, done by `deadline` (time.monotonic()), or raise DeliveryError."""
        raise NotImplementedError

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take, whatever the other side does."""
        return float(self.options.get("timeout") or 10.0)

    def attempt_deadline(self, deadline: float | None) -> float:
        until = time.monotonic() + self.timeout
        return until if deadline is None else min(until, deadline)

    @staticmethod
    def idempotency_headers(message: Message) -> dict[str, str]:
        key = message.idempotency_key
        return {IDEMPOTENCY_HEADER: idempotency_id(key)} if key else {}

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.trust_env = False
        return self._session

    def post(self, url: str, body: bytes, *, headers: dict[str, str] | None = None,
             deadline: float | None = None) -> tuple[int, bytes]:
        """POST and classify: 429/5xx/network transient; other 4xx, 3xx permanent."""
        until = self.attempt_deadline(deadline)
        where = masked_url(url)
        if self.RATE_LIMIT is not None:
            count, per = self.RATE_LIMIT
            if not RateLimiter.wait(where + reveal(url)[-12:], count, per, until):
                raise TransientError(f"{where} takes {count} messages per {per:g}s; no "
                                     "turn came before the attempt's deadline")
        parts = urlsplit(url)
        timeout = self.timeout
        try:
            answer = wire.send(
                wire.pool_for(self.session, url), "POST",
                (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body=body,
                headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
                host=where, connect_timeout=timeout, read_timeout=timeout, deadline=until,
                max_bytes=MAX_RESPONSE_BYTES)
        except wire.WireError as e:
            if e.transient:
                raise TransientError(str(e), handed_over=e.handed_over) from None
            raise PermanentError(str(e) + ("; set verify_tls only on SMTP channels, use a "
                                           "certificate the system trusts"
                                           if e.kind == "tls_untrusted" else "")) from None
        status = answer.status
        if 300 <= status < 400:
            location = answer.headers.get("Location")
            target = (urlsplit(urljoin(url, location)).hostname or "an unnamed address"
                      if location else "no Location given")
            raise PermanentError(f"HTTP {status} from {where}: a redirect to "
                                 f"{logs.redact(target)[:100]}, not followed (it would send "
                                 "the message there); check the channel's url")
        if status == 429 or status >= 500:
            retry_after = answer.headers.get("Retry-After")
            raise TransientError(
                f"HTTP {status} from {where}",
                retry_after=float(retry_after) if retry_after and retry_after.replace(
                    ".", "", 1).isdigit() else None)
        if status >= 400:
            raise PermanentError(f"HTTP {status} from {where}: {decode_text(answer.body)}")
        return status, answer.body
