"""Client-side pacing that adapts to the API gateway's throttling (HTTP 429, APIG.0308).

Unlimited until the first 429; then a token bucket at a little under the rate that drew it,
cut by 15% on each further 429 (at most once a second) and grown slowly while requests
succeed (AIMD). `Retry-After` pauses every thread, not only the one that was told.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class AdaptiveLimiter:
    DECREASE = 0.85
    INCREASE = 1.003  # per success: +~35% after 100 clean requests
    MIN_RATE = 0.5

    def __init__(self, cap: float | None = None) -> None:
        self.cap = cap
        self.rate: float | None = cap
        self._tokens = 1.0
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._last_cut = 0.0
        self._recent: deque[float] = deque()
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
                    self._recent.append(now)
                    while self._recent and self._recent[0] < now - 1.0:
                        self._recent.popleft()
                    return True
            if deadline is not None and time.monotonic() + wait >= deadline:
                return False
            time.sleep(wait)

    def on_success(self) -> None:
        if self.rate is None:  # unthrottled so far: nothing to grow
            return
        with self._lock:
            if self.rate is not None:
                self.rate *= self.INCREASE
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
                # The rate we were going at when the gateway objected, a little under.
                observed = sum(1 for t in self._recent if t >= now - 1.0)
                self.rate = max(self.MIN_RATE, observed * 0.9)
            else:
                self.rate = max(self.MIN_RATE, self.rate * self.DECREASE)
            self._tokens = 0.0
            self._updated = now
