"""Deliveries: the exactly-once claims of digests and alerts, and every attempt to send.

Claims are ordered by `seq`, a number the database hands out (never by a sender's clock:
a run whose clock is a day ahead must not stay "the latest alert" for a day). A claim holds
for CLAIM_LEASE_SECONDS; one whose run died before saying how the send went has expired
then, and counts as possibly sent (`possibly_sent`): the next change is computed from it, so
a recovery is announced even when the run that alerted the failure was killed mid-send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from drs_report import logs
from drs_report.store import sanitise
from drs_report.store.engine import StoreBase, utc
from drs_report.store.schema import CLAIM_SEQUENCE, DeliveryAttempt, DeliveryClaim, Run

CLAIM_LEASE_SECONDS = 600.0  # a claim whose run died lapses after this long


@dataclass(frozen=True)
class SentDelivery:
    """The latest digest or alert sent on a channel: what alert de-duplication compares.

    `confirmed` False: a claim whose run died before saying whether it sent (its lease
    lapsed); `sent_at` is then when it was claimed.
    """

    idempotency_key: str
    sent_at: datetime
    fingerprint: str | None
    problems: tuple[str, ...]
    run_id: int
    confirmed: bool = True


@dataclass(frozen=True)
class ClaimHolder:
    """Who holds a claim, for the message of a run that finds it taken."""

    run_id: int
    state: str  # claimed | sent
    claimed_at: datetime
    sent_at: datetime | None
    lapses_at: datetime  # when a `claimed` claim stops holding if its run died
    run_trigger: str | None
    run_started_at: datetime | None


class DeliveriesMixin(StoreBase):
    def _next_seq(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            return CLAIM_SEQUENCE.next_value()
        # SQLite: one writer at a time, so the largest + 1 inside the statement is unique.
        return (select(func.coalesce(func.max(DeliveryClaim.seq), 0) + 1)
                .scalar_subquery())

    def claim_delivery(self, idempotency_key: str, *, run_id: int, channel: str, mode: str,
                       now: datetime, lease_seconds: float = CLAIM_LEASE_SECONDS,
                       fingerprint: str | None = None, problems: Sequence[str] = ()) -> bool:
        """Reserve one send. False if it was sent already or another run holds a live lease.

        `fingerprint` and `problems` say what this send is about: kept with the claim, so
        a claim whose run died still says what it may have sent.
        """
        said = {"fingerprint": fingerprint, "problems": [sanitise.text(p) for p in problems]}
        try:
            with Session(self.engine) as s, s.begin():
                s.add(DeliveryClaim(idempotency_key=idempotency_key, run_id=run_id,
                                    channel=channel, mode=mode, state="claimed",
                                    claimed_at=now, seq=self._next_seq(), **said))
            return True
        except IntegrityError:
            pass
        except SQLAlchemyError as e:
            raise self._fail("claiming a delivery", e) from None
        # The key exists: take it over only if its holder's lease ran out (a crashed run).
        expired = now - timedelta(seconds=lease_seconds)
        with self._session("claiming a delivery") as s:
            taken = s.execute(
                update(DeliveryClaim)
                .where(DeliveryClaim.idempotency_key == idempotency_key,
                       DeliveryClaim.state == "claimed", DeliveryClaim.claimed_at < expired)
                .values(run_id=run_id, claimed_at=now, seq=self._next_seq(), **said)
            )
            return bool(getattr(taken, "rowcount", 0))

    def finish_delivery(self, idempotency_key: str, *, sent: bool, now: datetime,
                        fingerprint: str | None = None, problems: Sequence[str] = ()) -> None:
        with self._session("finishing a delivery") as s:
            if sent:
                s.execute(update(DeliveryClaim)
                          .where(DeliveryClaim.idempotency_key == idempotency_key)
                          .values(state="sent", sent_at=now, fingerprint=fingerprint,
                                  problems=[sanitise.text(p) for p in problems],
                                  seq=self._next_seq()))
            else:
                s.execute(delete(DeliveryClaim).where(
                    DeliveryClaim.idempotency_key == idempotency_key,
                    DeliveryClaim.state == "claimed"))

    def claim_holder(self, idempotency_key: str, *,
                     lease_seconds: float = CLAIM_LEASE_SECONDS) -> ClaimHolder | None:
        """Who holds this claim and until when; None when nobody does."""
        with self._session("reading deliveries") as s:
            row = s.execute(
                select(DeliveryClaim.run_id, DeliveryClaim.state, DeliveryClaim.claimed_at,
                       DeliveryClaim.sent_at, Run.trigger, Run.started_at)
                .outerjoin(Run, Run.id == DeliveryClaim.run_id)
                .where(DeliveryClaim.idempotency_key == idempotency_key)).first()
        if row is None:
            return None
        claimed_at = utc(row.claimed_at)
        return ClaimHolder(run_id=row.run_id, state=row.state, claimed_at=claimed_at,
                           sent_at=row.sent_at and utc(row.sent_at),
                           lapses_at=claimed_at + timedelta(seconds=lease_seconds),
                           run_trigger=row.trigger,
                           run_started_at=row.started_at and utc(row.started_at))

    def record_attempt(self, *, run_id: int, channel: str, channel_type: str, mode: str,
                       idempotency_key: str, attempt: int, ok: bool, permanent: bool,
                       error: str | None, at: datetime) -> None:
        with self._session("recording a delivery attempt") as s:
            s.add(DeliveryAttempt(run_id=run_id, channel=channel, channel_type=channel_type,
                                  mode=mode, idempotency_key=idempotency_key, attempt=attempt,
                                  ok=ok, permanent=permanent,
                                  error=sanitise.text(logs.redact(error)) if error else None,
                                  at=at))

    def last_sent(self, channel: str, mode: str) -> SentDelivery | None:
        """The send confirmed last on this channel and mode (in the database's order)."""
        with self._session("reading deliveries") as s:
            row = s.scalars(
                select(DeliveryClaim)
                .where(DeliveryClaim.channel == channel, DeliveryClaim.mode == mode,
                       DeliveryClaim.state == "sent")
                .order_by(func.coalesce(DeliveryClaim.seq, 0).desc(),
                          DeliveryClaim.sent_at.desc()).limit(1)).first()
            if row is None or row.sent_at is None:
                return None
            return SentDelivery(row.idempotency_key, utc(row.sent_at), row.fingerprint,
                                tuple(str(p) for p in row.problems or ()), row.run_id)

    def possibly_sent(self, channel: str, mode: str, *, now: datetime,
                      lease_seconds: float = CLAIM_LEASE_SECONDS) -> SentDelivery | None:
        """A claim taken after the last confirmed send whose run died before saying how the
        send went (its lease lapsed): it may have reached the receiver. None otherwise."""
        last = self.last_sent(channel, mode)
        expired = now - timedelta(seconds=lease_seconds)
        with self._session("reading deliveries") as s:
            query = (select(DeliveryClaim)
                     .where(DeliveryClaim.channel == channel, DeliveryClaim.mode == mode,
                            DeliveryClaim.state == "claimed",
                            DeliveryClaim.claimed_at < expired,
                            DeliveryClaim.problems.is_not(None))
                     .order_by(func.coalesce(DeliveryClaim.seq, 0).desc()).limit(1))
            row = s.scalars(query).first()
            if row is None:
                return None
            if last is not None and (row.seq or 0) <= self._seq_of(s, last.idempotency_key):
                return None
            return SentDelivery(row.idempotency_key, utc(row.claimed_at), row.fingerprint,
                                tuple(str(p) for p in row.problems or ()), row.run_id,
                                confirmed=False)

    @staticmethod
    def _seq_of(session: Session, idempotency_key: str) -> int:
        return int(session.scalar(select(func.coalesce(DeliveryClaim.seq, 0)).where(
            DeliveryClaim.idempotency_key == idempotency_key)) or 0)

    def attempts(self, run_id: int | None = None) -> list[dict[str, Any]]:
        with self._session("reading deliveries") as s:
            query = select(DeliveryAttempt).order_by(DeliveryAttempt.id)
            if run_id is not None:
                query = query.where(DeliveryAttempt.run_id == run_id)
            return [
                {"run_id": a.run_id, "channel": a.channel, "channel_type": a.channel_type,
                 "mode": a.mode, "idempotency_key": a.idempotency_key, "attempt": a.attempt,
                 "ok": a.ok, "permanent": a.permanent, "error": a.error, "at": utc(a.at)}
                for a in s.scalars(query)
            ]
