"""Client-side pacing that adapts to the API gateway's throttling (HTTP 429, APIG.0308).

Unlimited until the first 429; then a token bucket at a little under the rate the gateway
was admitting (successful answers in the last second; what we were sending overshoots it by
however many requests were refused), cut by 15% on each further 429 (at most once a second)
and grown slowly while requests succeed (AIMD). `Retry-After` pauses every thread, not only
the one that was told.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class AdaptiveLimiter:
    DECREASE = 0.85
    # Growth per second of successes, not per success: per request it would grow fastest
    # exactly when the rate is high, overshooting the limit again within a second.
    INCREASE_PER_SECOND = 0.03
    MIN_RATE = 0.5

    def __init__(self, cap: float | None = None) -> None:
        self.cap = cap
        self.rate: float | None = cap
        self._tokens = 1.0
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._last_cut = 0.0
        self._grown = 0.0
        self._recent: deque[float] = deque()  # requests sent in the last second
        self._admitted: deque[float] = deque()  # successful answers in the last second
        self._lock = threading.Lock()

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait for a turn; False if the deadline comes first."""
        while True:
            with self._lock:
                now = time.monotonic()
                wait = self._paused_until - now
                if wait <= 0 and self.rate is not None:
                    self._tokens = min(1.0, self._tokens + (now - self._updated) * self.rate)
                    self._updated = now
                    wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate
                if wait <= 0:
                    if self.rate is not None:
                        self._tokens -= 1.0
                    _remember(self._recent, now)
                    return True
            if deadline is not None and time.monotonic() + wait >= deadline:
                return False
            time.sleep(wait)

    def on_success(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self.rate is None:  # unthrottled so far: remember what the gateway admits
                _remember(self._admitted, now)
            else:
                elapsed = min(now - self._grown, 1.0)
                self._grown = now
                self.rate *= 1.0 + self.INCREASE_PER_SECOND * elapsed
                if self.cap is not None:
                    self.rate = min(self.rate, self.cap)

    def on_throttle(self, retry_after: float | None) -> None:
        with self._lock:
            now = time.monotonic()
            if retry_after is not None and retry_after > 0:
                self._paused_until = max(self._paused_until, now + min(retry_after, 60.0))
            if now - self._last_cut < 1.0:
                return
            self._last_cut = now
            if self.rate is None:
                # A little under what the gateway let through; if it let nothing through,
                # half of what we were sending.
                admitted = _count_last_second(self._admitted, now)
                sent = _count_last_second(self._recent, now)
                self.rate = max(self.MIN_RATE, admitted * 0.95 if admitted else sent * 0.5)
                self._admitted.clear()
            else:
                self.rate = max(self.MIN_RATE, self.rate * self.DECREASE)
            self._tokens = 0.0
            self._updated = now
            self._grown = now


def _remember(window: deque[float], now: float) -> None:
    """Add `now` to a window of the last second's events, forgetting older ones."""
    window.append(now)
    while window and window[0] < now - 1.0:
        window.popleft()


def _count_last_second(window: deque[float], now: float) -> int:
    return sum(1 for t in window if t >= now - 1.0)
