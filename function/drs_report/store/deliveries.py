"""Deliveries: the exactly-once claims of digests and alerts, and every attempt to send."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from drs_report import logs
from drs_report.store.engine import StoreBase, utc
from drs_report.store.schema import DeliveryAttempt, DeliveryClaim


@dataclass(frozen=True)
class SentDelivery:
    """The latest digest or alert sent on a channel: what alert de-duplication compares."""

    idempotency_key: str
    sent_at: datetime
    fingerprint: str | None
    problems: tuple[str, ...]
    run_id: int


class DeliveriesMixin(StoreBase):
    def claim_delivery(self, idempotency_key: str, *, run_id: int, channel: str, mode: str,
                       now: datetime, lease_seconds: float = 600) -> bool:
        """Reserve one send. False if it was sent already or another run holds a live lease."""
        try:
            with Session(self.engine) as s, s.begin():
                s.add(DeliveryClaim(idempotency_key=idempotency_key, run_id=run_id,
                                    channel=channel, mode=mode, state="claimed",
                                    claimed_at=now))
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
                .values(run_id=run_id, claimed_at=now)
            )
            return bool(getattr(taken, "rowcount", 0))

    def finish_delivery(self, idempotency_key: str, *, sent: bool, now: datetime,
                        fingerprint: str | None = None, problems: Sequence[str] = ()) -> None:
        with self._session("finishing a delivery") as s:
            if sent:
                s.execute(update(DeliveryClaim)
                          .where(DeliveryClaim.idempotency_key == idempotency_key)
                          .values(state="sent", sent_at=now, fingerprint=fingerprint,
                                  problems=list(problems)))
            else:
                s.execute(delete(DeliveryClaim).where(
                    DeliveryClaim.idempotency_key == idempotency_key,
                    DeliveryClaim.state == "claimed"))

    def record_attempt(self, *, run_id: int, channel: str, channel_type: str, mode: str,
                       idempotency_key: str, attempt: int, ok: bool, permanent: bool,
                       error: str | None, at: datetime) -> None:
        with self._session("recording a delivery attempt") as s:
            s.add(DeliveryAttempt(run_id=run_id, channel=channel, channel_type=channel_type,
                                  mode=mode, idempotency_key=idempotency_key, attempt=attempt,
                                  ok=ok, permanent=permanent,
                                  error=logs.redact(error) if error else None, at=at))

    def last_sent(self, channel: str, mode: str) -> SentDelivery | None:
        with self._session("reading deliveries") as s:
            row = s.scalars(
                select(DeliveryClaim)
                .where(DeliveryClaim.channel == channel, DeliveryClaim.mode == mode,
                       DeliveryClaim.state == "sent")
                .order_by(DeliveryClaim.sent_at.desc()).limit(1)).first()
            if row is None or row.sent_at is None:
                return None
            return SentDelivery(row.idempotency_key, utc(row.sent_at), row.fingerprint,
                                tuple(str(p) for p in row.problems or ()), row.run_id)

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


