"""What a channel sends: the report, its renderings and, for an alert, what changed.

It sits below delivery and the channels, which both use it, so neither imports the other
for it: delivery -> channels -> message -> analysis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from drs_report.analysis import ProblemChanges, Report


@dataclass
class Message:
    """One message for one channel; `kind` is digest or alert."""

    report: Report
    rendered: Mapping[str, str]
    kind: str  # digest | alert
    changes: ProblemChanges | None = None
    language: str = "en-us"
    # The delivery's idempotency key: the email's Message-ID and the webhooks'
    # Idempotency-Key header are derived from it, so receivers can fold copies.
    idempotency_key: str | None = None
    # The run sending it: its archived report is what "open the full report" opens.
    run_id: int | None = None
