"""Deliver the report: to every channel, independently, exactly once per period or change.

    digest  the report, at most once per channel per day (delivery.time_zone), not before
            delivery.digest_earliest
    alert   only when the set of problems changes (new, escalated, resolved), plus a reminder
            of unresolved CRITICAL problems every delivery.alert_reminder_hours

At least once, folded: each message has an idempotency key, claimed in the store before
sending, so an overlapping or re-invoked run skips what another run sent or is sending; a
copy can still go out twice when a receiver took it without confirming, and every copy
carries the key (Message-ID, Idempotency-Key) for receivers to fold. `force` sends again
under a fresh key. `dry_run` plans exactly as a real run would, asks the store whether the
key was sent already (without claiming it) and says "would send" or "would skip: <why>"; it
sends and records nothing. A scoped run (run --job) sends nothing: its report covers some
jobs only, so a digest or alert from it would read as the fleet's. Transient failures
(DeliveryError.permanent False) are retried with backoff within the run's deadline, except
after the whole message was handed over; every attempt is recorded.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from drs_report import logs
from drs_report.analysis import Health, Report, diff_problems
from drs_report.config import ChannelConfig, Settings
from drs_report.errors import DeliveryError
from drs_report.message import Message
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests

    from drs_report.channels.base import Channel
    from drs_report.readiness import ReadinessChanges
    from drs_report.store import SentDelivery, Store

log = logs.get_logger("delivery")

# The longest Retry-After a run waits for; a receiver asking for more is left to the next run.
MAX_RETRY_AFTER = 60.0


@dataclass
class DeliveryOutcome:
    channel: str
    type: str
    mode: str
    status: str  # sent | skipped | failed | dry-run
    reason: str
    attempts: int = 0
    destination: str = ""
    size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reason"] = logs.redact(self.reason)
        return data

    def describe(self) -> str:
        size = f", {self.size} bytes" if self.size is not None else ""
        tries = f", {self.attempts} attempt(s)" if self.attempts else ""
        return logs.redact(f"{self.status}: {self.channel} ({self.type}, {self.mode}) -> "
                           f"{self.destination}{size}{tries}: {self.reason}")


def deliver(
    report: Report,
    rendered: Mapping[str, str],
    settings: Settings,
    store: Store,
    run_id: int | None,
    *,
    now: datetime,
    deadline: float | None,
    force: bool,
    dry_run: bool,
    credentials: Credentials | None,
    modes: Sequence[str] | None = None,
    session: requests.Session | None = None,
    scoped: bool = False,
) -> list[DeliveryOutcome]:
    """Deliver on every channel; `run_id` is None only for a dry run."""
    outcomes = []
    for config in settings.channels:
        if modes and config.mode not in modes:
            continue
        if scoped:
            outcome = DeliveryOutcome(
                config.name, config.type, config.mode, "dry-run" if dry_run else "skipped",
                ("would skip: " if dry_run else "") + _SCOPED_SKIP)
            log.info("%s", outcome.describe())
            outcomes.append(outcome)
            continue
        try:
            outcome = _deliver_one(config, report, rendered, settings, store, run_id, now=now,
                                   deadline=deadline, force=force, dry_run=dry_run,
                                   credentials=credentials, session=session)
        except Exception as e:  # a bug in one channel must not silence the others
            log.debug("channel %s crashed", config.name, exc_info=True)
            outcome = DeliveryOutcome(config.name, config.type, config.mode, "failed",
                                      f"internal error: {type(e).__name__}: {e}")
        log.log(30 if outcome.failed else 20, "%s", outcome.describe())
        outcomes.append(outcome)
    return outcomes


_SCOPED_SKIP = ("a run narrowed to some jobs (--job) sends nothing; its report would read as "
                "the whole fleet's, and the alert state and the day's digest stay as they are")


@dataclass
class _Plan:
    key: str
    message: Message
    fingerprint: str | None = None
    problems: tuple[str, ...] = ()


def _plan(config: ChannelConfig, report: Report, rendered: Mapping[str, str],
          settings: Settings, store: Store, now: datetime) -> _Plan | str:
    """What to send on this channel now, or why nothing."""
    from zoneinfo import ZoneInfo

    delivery = settings.delivery
    language = str(config.options.get("language") or report.language)
    if config.mode == "digest":
        local = now.astimezone(ZoneInfo(delivery.time_zone))
        if delivery.digest_earliest is not None and local.time() < delivery.digest_earliest:
            return f"digest waits until {delivery.digest_earliest:%H:%M} {delivery.time_zone}"
        return _Plan(key=f"digest:{config.name}:{local.date().isoformat()}",
                     message=Message(report, rendered, "digest", language=language))
    last = _alerted_state(store, config.name, report, now)
    previous, cutover = _alert_state(last, report)
    changes = diff_problems(previous, report)
    changes.became_ready, changes.no_longer_ready = cutover.became_ready, cutover.no_longer_ready
    if changes.empty() and last is not None and delivery.alert_reminder_hours > 0:
        critical = [p for p in report.problems if p.health is Health.CRITICAL]
        due = _reminder_due(now, last.sent_at, delivery.alert_reminder_hours)
        if critical and due:
            changes.reminder = critical
    if changes.empty():
        return "no change in problems since the last alert"
    # Problems of jobs we could not read this time stay in the alert state as they were.
    current = {**changes.carried, **report.problem_map(), **cutover.state()}
    problems = tuple(f"{k}={v}" for k, v in sorted(current.items()))
    fingerprint = hashlib.sha256("\n".join(problems).encode()).hexdigest()[:32]
    # The key names the state we move from and the state we move to, so a re-invoked run
    # finds it taken while A -> B -> A still alerts twice.
    since = last.idempotency_key if last else "start"
    reminder = f":reminder:{now:%Y%m%d%H}" if changes.reminder else ""
    digest = hashlib.sha256(f"{since}->{fingerprint}{reminder}".encode()).hexdigest()[:32]
    return _Plan(key=f"alert:{config.name}:{digest}", fingerprint=fingerprint,
                 problems=problems,
                 message=Message(report, rendered, "alert", changes, language=language))


def _alert_state(last: SentDelivery | None, report: Report
                 ) -> tuple[dict[str, str] | None, ReadinessChanges]:
    """The last alert's problems, and readiness since then: the jobs it had announced ready
    ride in the same claim, so "ready for cutover" is said once, like a problem."""
    from drs_report.readiness import readiness_changes, split_alert_state

    entries = dict(p.split("=", 1) for p in last.problems if "=" in p) if last else {}
    previous, announced = split_alert_state(entries)
    # With several targets a job is (project, job id): "<project_id>:<job_id>:cutover".
    def subject(job_id: str, project_id: str) -> str:
        return f"{project_id}:{job_id}" if report.estate and project_id else job_id

    verdicts = {subject(j.job_id, j.project_id): j.readiness for j in report.jobs
                if j.readiness is not None}
    unread = report.unread | {subject(j.job_id, j.project_id) for j in report.jobs
                              if j.job_id in report.unread}
    changes = readiness_changes(announced, verdicts, unread=frozenset(unread))
    return (previous if last else None), changes


def _already_sent(store: Store, config: ChannelConfig, key: str) -> bool:
    """Whether a real run would find `key` sent, asked of the store without claiming it.

    The newest sent claim of the channel and mode answers it, unless a forced send came
    after it; then the recorded attempts say whether `key` itself went out.
    """
    last = store.last_sent(config.name, config.mode)
    if last is None:
        return False
    if last.idempotency_key == key:
        return True
    if last.idempotency_key.startswith(f"{key}:force:"):
        return any(a["idempotency_key"] == key and a["ok"] for a in store.attempts())
    return False


def _problems_of(sent: SentDelivery) -> dict[str, str]:
    """The problems a sent alert said (its claim also carries the jobs announced ready)."""
    from drs_report.readiness import split_alert_state

    problems, _announced = split_alert_state(
        dict(p.split("=", 1) for p in sent.problems if "=" in p))
    return problems


def _alerted_state(store: Store, channel: str, report: Report, now: datetime
                   ) -> SentDelivery | None:
    """What the next alert is computed from: the last confirmed send, or a later claim whose
    run died mid-send (it may have reached the receiver: counting it lets the recovery be
    announced). When that claim said what this run would say, the state before it, so the
    alert it may never have delivered goes again (under its key: the lapsed claim is taken
    over)."""
    last = store.last_sent(channel, "alert")
    maybe = store.possibly_sent(channel, "alert", now=now)
    if maybe is None or diff_problems(_problems_of(maybe), report).empty():
        return last
    return maybe


def _reminder_due(now: datetime, sent_at: datetime, hours: float) -> bool:
    """Due after `hours`; also when the last send is stamped later than this clock (one of
    the clocks is wrong): a clock a day ahead must not silence reminders for a day."""
    elapsed = now - sent_at
    return elapsed >= timedelta(hours=hours) or elapsed < -timedelta(minutes=1)


def _claimed_elsewhere(store: Store, key: str, plan_key: str) -> str:
    """Why this send is skipped, naming the run that holds it and when its claim lapses."""
    holder = store.claim_holder(key)
    if holder is None:  # released between our try and this look
        return f"already sent or being sent by another run ({plan_key})"
    run = f"run {holder.run_id}"
    if holder.run_trigger and holder.run_started_at:
        run += f" ({holder.run_trigger}, started {holder.run_started_at:%Y-%m-%d %H:%M:%S}Z)"
    if holder.state == "sent" and holder.sent_at is not None:
        return f"already sent by {run} at {holder.sent_at:%Y-%m-%d %H:%M:%S}Z ({plan_key})"
    return (f"being sent by {run}, claimed at {holder.claimed_at:%H:%M:%S}Z; if that run "
            f"died, its claim lapses at {holder.lapses_at:%Y-%m-%d %H:%M:%S}Z and a later run "
            f"sends it ({plan_key})")


def _deliver_one(config: ChannelConfig, report: Report, rendered: Mapping[str, str],
                 settings: Settings, store: Store, run_id: int | None, *, now: datetime,
                 deadline: float | None, force: bool, dry_run: bool,
                 credentials: Credentials | None,
                 session: requests.Session | None) -> DeliveryOutcome:
    from drs_report.channels import load_channel

    channel = load_channel(config, settings=settings, credentials=credentials, session=session)
    outcome = DeliveryOutcome(config.name, config.type, config.mode, "skipped", "",
                              destination=channel.describe_destination())
    plan = _plan(config, report, rendered, settings, store, now)
    if isinstance(plan, str):
        if not force:
            outcome.status = "dry-run" if dry_run else "skipped"
            outcome.reason = f"would skip: {plan}" if dry_run else plan
            return outcome
        plan = _Plan(key=f"{config.mode}:{config.name}:forced",
                     message=Message(report, rendered, config.mode, language=report.language))
    if dry_run:
        outcome.status = "dry-run"
        if not force and _already_sent(store, config, plan.key):
            outcome.reason = f"would skip: already sent ({plan.key})"
            return outcome
        outcome.size = channel.preview_size(plan.message)
        outcome.reason = f"would send the {plan.message.kind} (key {plan.key})"
        return outcome
    if run_id is None:
        raise ValueError("a real delivery needs the run's id")
    key = f"{plan.key}:force:{run_id}" if force else plan.key
    if not store.claim_delivery(key, run_id=run_id, channel=config.name, mode=config.mode,
                                now=now, fingerprint=plan.fingerprint, problems=plan.problems):
        outcome.reason = _claimed_elsewhere(store, key, plan.key)
        return outcome
    plan.message.idempotency_key = key
    plan.message.run_id = run_id
    return _attempts(channel, plan, key, config, report, store, run_id, deadline=deadline,
                     max_attempts=settings.delivery.max_attempts, outcome=outcome, now=now)


def _attempts(channel: Channel, plan: _Plan, key: str, config: ChannelConfig, report: Report,
              store: Store, run_id: int, *, deadline: float | None, max_attempts: int,
              outcome: DeliveryOutcome, now: datetime) -> DeliveryOutcome:
    """Send until it is delivered, refused for good, or out of attempts or time.

    Every way out resolves the claim: `sent`, or released for a later run. Each attempt
    has an absolute deadline (the channel's timeout, at most the time the run has left);
    any exception ends the attempt as a failure, never leaving the claim held. A failure
    after the whole message was handed over (the receiver took it, then no answer came)
    is not retried in this run: the receiver may have it, and the next run's copy carries
    the same idempotency key.
    """
    from drs_report.errors import StoreError

    notes: list[str] = []

    def record(attempt: int, ok: bool, permanent: bool, error: str | None) -> None:
        try:
            store.record_attempt(run_id=run_id, channel=config.name, channel_type=config.type,
                                 mode=config.mode, idempotency_key=key, attempt=attempt,
                                 ok=ok, permanent=permanent, error=error,
                                 at=datetime.now(timezone.utc))
        except StoreError as e:
            notes.append(f"attempt {attempt} not recorded: {e}")

    attempt = 0
    while True:
        attempt += 1
        failure: DeliveryError | None = None
        try:
            channel.send(plan.message, deadline=channel.attempt_deadline(deadline))
        except DeliveryError as e:
            failure = e
        except Exception as e:  # unclassified (a library's own error, a bug): still an outcome
            log.debug("channel %s: unexpected error", config.name, exc_info=True)
            failure = DeliveryError(f"unexpected {type(e).__name__}: "
                                    f"{' '.join(logs.redact(str(e)).split())[:200]}",
                                    permanent=True)
        if failure is None:
            record(attempt, True, False, None)
            try:
                store.finish_delivery(key, sent=True, now=now, fingerprint=plan.fingerprint,
                                      problems=plan.problems or tuple(
                                          f"{k}={v}"
                                          for k, v in sorted(report.problem_map().items())))
            except StoreError as e:
                notes.append(f"but marking it sent failed ({e}); once its claim's lease ends "
                             "another run may send it again, with the same idempotency key")
            outcome.status, outcome.attempts = "sent", attempt
            outcome.reason = "; ".join([f"{plan.message.kind} delivered", *notes])
            return outcome
        message = logs.redact(str(failure))
        record(attempt, False, failure.permanent, message)
        retry_after = getattr(failure, "retry_after", None)
        delay = _backoff(attempt, retry_after)
        handed_over = bool(getattr(failure, "handed_over", False))
        why = ""
        if failure.permanent:
            pass
        elif handed_over:
            why = (" (the receiver took the whole message but did not confirm it; not "
                   "retried in this run so it is not sent twice: the next run tries again "
                   "with the same idempotency key)")
        elif retry_after is not None and retry_after > MAX_RETRY_AFTER:
            why = (f" (the receiver asks to wait {retry_after:.0f}s, more than the "
                   f"{MAX_RETRY_AFTER:.0f}s a run waits; the next run tries again)")
        elif attempt >= max_attempts:
            why = f" (gave up after {attempt} attempts)"
        elif deadline is not None and time.monotonic() + delay >= deadline:
            why = f" (gave up after {attempt} attempts: the run's time ran out)"
        else:
            time.sleep(delay)
            continue
        try:
            store.finish_delivery(key, sent=False, now=now)
        except StoreError as e:
            notes.append(f"its claim could not be released ({e}); it expires after its lease")
        outcome.status, outcome.attempts = "failed", attempt
        outcome.reason = "; ".join([message + why, *notes])
        return outcome


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(float(retry_after), MAX_RETRY_AFTER)
    ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)
