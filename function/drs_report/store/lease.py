"""One writer at a time for a store kept in OBS, without the compare-and-swap OBS lacks.

OBS has no conditional PUT: the latest PUT of an object wins. The lease is an object beside
the file (`KEY.lease`, JSON: owner, acquired_at, expires_at) and a run takes it in two steps,
with work that has no side effect in between:

    take()     GET the lease; a live lease of another owner: busy at once. Else PUT our own.
               The interval from just before the GET was sent to the PUT's answer is
               measured on this run's monotonic clock; only within BOUND_SECONDS does the
               lease count as taken. A GET that alone used up half the bound sends no PUT:
               back off and try again (a cold connection's first request is the usual
               cause), up to TAKE_TRIES, then busy. A PUT answered past the bound: busy, and
               the lease is left to expire (it may stand in for a lease it overwrote).
    ...        side-effect free work: fetch the file, fetch DRS
    confirm()  at least SETTLE_SECONDS (> BOUND_SECONDS) after our PUT was answered, GET the
               lease again: ours, and the run goes on to its first side effect (storing,
               sending, writing back); another owner's (or none), and it is busy.

Why that is enough: say runs A and B both confirmed, and B's PUT took effect after A's. A's
confirming GET saw A's lease, so B's PUT took effect after that GET was sent, which was at
least SETTLE after A's PUT was answered. B's GET in take() saw no live lease, so it took
effect before A's PUT did, which was before A's PUT was answered. So from B's GET to B's
PUT's answer more than SETTLE passed, more than BOUND: B did not count its lease as taken,
a contradiction. Because every run enforces the bound on itself, the settle only has to be
just over the bound, not a guess at the worst latency OBS may ever show.

The assumptions, exactly: (1) OBS answers a GET with the latest PUT or DELETE of that object
that completed before the GET was sent (read-after-write consistency); (2) the monotonic
clocks of two instances run at the same rate to within SETTLE/BOUND - 1 (here 20%; clocks
differ by parts per million); (3) expiry compares wall clocks, so instances' clocks agree to
within EXPIRY_MARGIN_SECONDS. A lease expires with the run's time budget, so a run killed
with `kill -9` or by the platform's timeout blocks the next ones only until then; the next
run after that takes over and says whose lease it took. What it does not cover: a run that
outlives its lease (only a CLI run without a budget can): the write-back then finds the file
changed and merges (sync.py) rather than overwrite.
"""

from __future__ import annotations

import json
import os
import random
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

BOUND_SECONDS = 0.25  # the longest a GET + PUT of the lease may take and still count
SETTLE_SECONDS = 0.3  # from our PUT's answer to the confirming GET: the bound and 20%
TAKE_TRIES = 3  # attempts at a GET + PUT within the bound before the run gives up as busy
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
    """Another run holds the store's lease: nothing was stored or sent by this run."""

    def __init__(self, message: str, holder: Lease | None) -> None:
        self.holder = holder
        super().__init__(message)


def new_owner(trigger: str) -> str:
    """Who holds the lease, as the log of the run that finds it should name it."""
    return f"{trigger} run on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"


class ObsLease:
    def __init__(self, client: ObsClient, bucket: str, key: str, *, owner: str,
                 ttl_seconds: float, bound_seconds: float | None = None,
                 settle_seconds: float | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.owner = owner
        self.ttl_seconds = ttl_seconds
        self.bound_seconds = BOUND_SECONDS if bound_seconds is None else bound_seconds
        settle = SETTLE_SECONDS if settle_seconds is None else settle_seconds
        # Never shorter than the bound: the proof above needs settle > bound.
        self.settle_seconds = max(settle, self.bound_seconds * 1.2)
        self.written: Lease | None = None  # taken, not yet confirmed
        self.written_at: float | None = None  # monotonic: when our PUT was answered
        self.held: Lease | None = None  # confirmed
        self.took_over: Lease | None = None
        self.tries = 0

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

    def take(self) -> Lease:
        """GET, then PUT our lease within the bound (retried); StoreBusy otherwise."""
        for self.tries in range(1, TAKE_TRIES + 1):
            started = time.monotonic()
            current = self.read()
            now = datetime.now(timezone.utc)
            if current is not None and current.owner != self.owner and current.expires_at > now:
                raise self._busy(current)
            read_took = time.monotonic() - started
            if read_took > self.bound_seconds / 2:
                # Nothing written yet, so nothing to undo: try again on a warm connection.
                log.info("reading the lease %s took %.2fs (bound %.2fs for the read and the "
                         "write): trying again", self.where, read_took, self.bound_seconds)
                time.sleep(random.uniform(0.05, 0.25))
                continue
            mine = Lease(self.owner, now, now + timedelta(seconds=self.ttl_seconds))
            self.client.put_bytes(self.bucket, self.key, mine.to_json())
            answered = time.monotonic()
            took = answered - started
            if took > self.bound_seconds:
                # Our PUT may have replaced the lease of a run that confirmed meanwhile: left
                # in place, ours keeps the others out for that run until it expires.
                raise StoreBusy(f"busy: taking the lease {self.where} took {took:.1f}s, more "
                                f"than the {self.bound_seconds:g}s bound; nothing stored or "
                                "sent (the lease is left to expire)", None)
            if current is not None and current.owner != self.owner:
                self.took_over = current
            self.written, self.written_at = mine, answered
            return mine
        raise StoreBusy(f"busy: reading the lease {self.where} took longer than half the "
                        f"{self.bound_seconds:g}s bound {TAKE_TRIES} times; nothing stored or "
                        "sent (the next run tries again)", None)

    def confirm(self) -> Lease:
        """The lease is still ours, SETTLE_SECONDS after our PUT: the run may write."""
        if self.held is not None:
            return self.held
        if self.written is None or self.written_at is None:
            raise RuntimeError("confirm() before take()")
        wait = self.written_at + self.settle_seconds - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        again = self.read()
        if again is None or again.owner != self.owner:
            self.written = None
            raise self._busy(again)
        if self.took_over is not None:
            log.warning("took over a stale lease on %s held by %s, expired at %s", self.where,
                        self.took_over.owner,
                        self.took_over.expires_at.isoformat(timespec="seconds"))
        self.held = self.written
        return self.held

    def acquire(self) -> Lease:
        """take() and confirm() with nothing in between."""
        self.take()
        return self.confirm()

    def release(self) -> None:
        """Delete the lease if it is still ours (a run that outlived it leaves the new one).

        Also a lease taken but never confirmed (the run failed before its first side
        effect): a rival that overwrote it keeps its own, and one whose PUT lands after our
        DELETE proceeds on it, as it may, because this run writes nothing any more. And
        while our confirmed lease is live every other run reads it and stays away, so the
        GET showing ours is still true when the DELETE lands."""
        if self.held is None and self.written is None:
            return
        current = self.read()
        if current is not None and current.owner == self.owner:
            self.client.delete(self.bucket, self.key)
        self.held = self.written = None

    def _busy(self, holder: Lease | None) -> StoreBusy:
        if holder is None:
            return StoreBusy(f"busy: another run took the lease {self.where} at the same time; "
                             "nothing stored or sent", None)
        return StoreBusy(f"busy: {holder.owner} holds the lease {self.where} until "
                         f"{holder.expires_at.isoformat(timespec='seconds')}; nothing stored "
                         "or sent", holder)
