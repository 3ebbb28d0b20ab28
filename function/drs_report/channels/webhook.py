"""Generic webhook: POSTs report.json, optionally signed.

With a `secret`, two headers go along:
    X-DRS-Report-Timestamp: <unix seconds>
    X-DRS-Report-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
A receiver recomputes the HMAC over the exact body bytes and rejects old timestamps.
Every message also carries its delivery's `idempotency_key` (signed, in the body) and the
same value in an `Idempotency-Key` header: equal on every retry and in every run that sends
the same message again, so a receiver that remembers them keeps one copy.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from drs_report.channels.base import Channel, idempotency_id, reveal
from drs_report.message import Message
from drs_report.render import json_text, report_json

SIGNATURE_HEADER = "X-DRS-Report-Signature"
TIMESTAMP_HEADER = "X-DRS-Report-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


class WebhookChannel(Channel):
    def payload_bytes(self, message: Message) -> bytes:
        data = report_json(message.report)  # report.json: long API strings cut
        data["kind"] = message.kind
        if message.idempotency_key:
            data["idempotency_key"] = idempotency_id(message.idempotency_key)
        if message.changes is not None:
            data["alert"] = {
                "new": [p.key for p in message.changes.new],
                "escalated": [p.key for p in message.changes.escalated],
                "resolved": list(message.changes.resolved),
                "reminder": [p.key for p in message.changes.reminder],
                "ready_for_cutover": [r.job_id for r in message.changes.became_ready],
                "no_longer_ready": [r.job_id for r in message.changes.no_longer_ready],
            }
        return json_text(data, compact=True).encode()

    def send(self, message: Message, *, deadline: float | None = None) -> None:
        body = self.payload_bytes(message)
        headers = self.idempotency_headers(message)
        secret = self.options.get("secret")
        if secret is not None:
            ts = int(time.time())
            headers.update({TIMESTAMP_HEADER: str(ts),
                            SIGNATURE_HEADER: sign(reveal(secret), ts, body)})
        self.post(reveal(self.options["url"]), body, headers=headers, deadline=deadline)
