"""What every channel shares: settings, an HTTP session, rate limits, error classification."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from drs_report import logs
from drs_report.channel_options import reveal
from drs_report.config import ChannelConfig, Settings
from drs_report.errors import DeliveryError
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests

    from drs_report.message import Message

log = logs.get_logger("channels")

MAX_RESPONSE_BYTES = 1 << 20


class TransientError(DeliveryError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, permanent=False)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


__all__ = ["Channel", "PermanentError", "RateLimiter", "TransientError", "masked_url",
           "reveal"]


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
    def wait(cls, destination: str, count: int, per: float) -> None:
        while True:
            with cls._lock:
                window = cls._windows[destination]
                now = time.monotonic()
                while window and window[0] <= now - per:
                    window.popleft()
                if len(window) < count:
                    window.append(now)
                    return
                delay = window[0] + per - now
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

    def send(self, message: Message) -> None:
        raise NotImplementedError

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.trust_env = False
        return self._session

    def post(self, url: str, body: bytes, *, headers: dict[str, str] | None = None
             ) -> tuple[int, bytes]:
        """POST and classify: 429/5xx/network transient, other 4xx permanent."""
        import requests

        if self.RATE_LIMIT is not None:
            RateLimiter.wait(masked_url(url) + reveal(url)[-12:], *self.RATE_LIMIT)
        timeout = float(self.options.get("timeout") or 10.0)
        verify = self.options.get("verify_tls", True)
        try:
            response = self.session.post(
                url, data=body, timeout=timeout, stream=True, verify=verify,
                headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})})
            try:
                content = response.raw.read(MAX_RESPONSE_BYTES, decode_content=True)
            finally:
                response.close()
        except requests.Timeout:
            raise TransientError(f"no answer from {masked_url(url)} within {timeout:g}s") from None
        except requests.RequestException as e:
            raise TransientError(f"cannot reach {masked_url(url)}: {type(e).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = response.headers.get("Retry-After")
            raise TransientError(
                f"HTTP {status} from {masked_url(url)}",
                retry_after=float(retry_after) if retry_after and retry_after.replace(
                    ".", "", 1).isdigit() else None)
        if status >= 400:
            raise PermanentError(f"HTTP {status} from {masked_url(url)}: "
                                 f"{_snippet(content)}")
        return status, bytes(content)


def _snippet(content: bytes) -> str:
    return " ".join(content[:200].decode("utf-8", "replace").split())
