"""One writer at a time for a store kept in OBS, without the compare-and-swap OBS lacks.

OBS has no conditional PUT: the latest PUT of an object wins. The lease is an object beside
the file (`KEY.lease`, JSON: owner, acquired_at, expires_at) and a run takes it so:

    1. GET the lease. A live lease of another owner: this run is busy (it sends nothing).
       An expired one (a run killed by `kill -9` or the platform's timeout): taken over,
       and the log names its owner and when it expired.
    2. PUT our own lease. Steps 1-2 must finish within WINDOW_SECONDS, measured here;
       slower, and the run gives up as busy (its lease expires on its own).
    3. Wait SETTLE_SECONDS (> WINDOW_SECONDS), GET again: ours still, and the run proceeds;
       another owner's, and it is busy.

Why that is enough: two runs racing for a free lease both write it. The one whose PUT lands
last sees its own at step 3; the other, re-reading SETTLE_SECONDS after its own PUT, sees the
later one, because a rival that read "free" before our PUT landed finished its own PUT at most
WINDOW_SECONDS after that read. The assumptions: OBS answers a GET with the latest completed
PUT of that object (read-after-write), and two instances' clocks run at the same rate (the
waits are measured on monotonic clocks); expiry compares wall clocks, so instances' clocks
must agree to within the TTL's margin. What it does not cover: a run that outlives its lease
(the TTL is the run's whole time budget, so only a CLI run without one can): the write-back
then finds the file changed and merges (sync.py) rather than overwrite.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from drs_report import logs
from drs_report.errors import StoreError

if TYPE_CHECKING:
    from drs_report.obs.client import ObsClient

log = logs.get_logger("store")

WINDOW_SECONDS = 2.0  # the longest a GET + PUT of the lease may take
SETTLE_SECONDS = 2.5  # the wait before re-reading it: the window and a margin for clock rates
EXPIRY_MARGIN_SECONDS = 5.0  # added to the run's budget: a kill at the deadline still expires


@dataclass(frozen=True)
class Lease:
    owner: str
    acquired_at: datetime
    expires_at: datetime

    def to_json(self) -> bytes:
        return json.dumps({"owner": self.owner, "acquired_at": self.acquired_at.isoformat(),
                           "expires_at": self.expires_at.isoformat()}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Lease | None:
        try:
            value = json.loads(data)
            return cls(str(value["owner"]), datetime.fromisoformat(value["acquired_at"]),
                       datetime.fromisoformat(value["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None  # not ours, or half-written by hand: treated as expired


class StoreBusy(StoreError):
    """Another run holds the store's lease: nothing was fetched, stored or sent."""

    def __init__(self, message: str, holder: Lease | None) -> None:
        self.holder = holder
        super().__init__(message)


def new_owner(trigger: str) -> str:
    """Who holds the lease, as the log of the run that finds it should name it."""
    return f"{trigger} run on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"


class ObsLease:
    def __init__(self, client: ObsClient, bucket: str, key: str, *, owner: str,
                 ttl_seconds: float, window_seconds: float | None = None,
                 settle_seconds: float | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.owner = owner
        self.ttl_seconds = ttl_seconds
        self.window_seconds = WINDOW_SECONDS if window_seconds is None else window_seconds
        self.settle_seconds = max(SETTLE_SECONDS if settle_seconds is None else settle_seconds,
                                  self.window_seconds)
        self.held: Lease | None = None
        self.took_over: Lease | None = None

    @property
    def where(self) -> str:
        return f"obs://{self.bucket}/{self.key}"

    def read(self) -> Lease | None:
        found = self.client.get_bytes(self.bucket, self.key, limit=64 << 10)
        if found is None:
            return None
        return Lease.from_json(found[0]) or Lease("unreadable lease object",
                                                  datetime.min.replace(tzinfo=timezone.utc),
                                                  datetime.min.replace(tzinfo=timezone.utc))

    def acquire(self) -> Lease:
        started = time.monotonic()
        current = self.read()
        now = datetime.now(timezone.utc)
        if current is not None and current.owner != self.owner and current.expires_at > now:
            raise self._busy(current)
        mine = Lease(self.owner, now, now + timedelta(seconds=self.ttl_seconds))
        self.client.put_bytes(self.bucket, self.key, mine.to_json())
        took = time.monotonic() - started
        if took > self.window_seconds:
            raise StoreBusy(f"busy: taking the lease {self.where} took {took:.1f}s, more than "
                            f"the {self.window_seconds:g}s another run's could have overlapped "
                            "it in; nothing fetched or sent (the next run tries again)", None)
        time.sleep(self.settle_seconds)
        again = self.read()
        if again is None or again.owner != self.owner:
            raise self._busy(again)
        if current is not None and current.owner != self.owner:
            self.took_over = current
            log.warning("took over a stale lease on %s held by %s, expired at %s", self.where,
                        current.owner, current.expires_at.isoformat(timespec="seconds"))
        self.held = mine
        return mine

    def release(self) -> None:
        """Delete the lease if it is still ours (a run that outlived it leaves the new one)."""
        if self.held is None:
            return
        current = self.read()
        if current is not None and current.owner == self.owner:
            self.client.delete(self.bucket, self.key)
        self.held = None

    def _busy(self, holder: Lease | None) -> StoreBusy:
        if holder is None:
            return StoreBusy(f"busy: another run took the lease {self.where} at the same time; "
                             "nothing fetched or sent", None)
        return StoreBusy(f"busy: {holder.owner} holds the lease {self.where} until "
                         f"{holder.expires_at.isoformat(timespec='seconds')}; nothing fetched "
                         "or sent", holder)
