"""The DRS API client: batch progress, comparison progress and discovery, concurrently.

One pooled `requests.Session`, one signer, one bounded thread pool shared by every call, so
comparison requests run beside the batch requests instead of after them. Every request is
signed afresh (X-Sdk-Date) on every try, and ends by an absolute deadline (wire.py): the
time left in the run, at most drs.connect_timeout + drs.read_timeout. 429 (APIG.0308), 5xx,
connection errors, timeouts and malformed answers are retried with exponential backoff and
jitter — POST included — honouring Retry-After up to MAX_RETRY_AFTER; other 4xx, redirects
and untrusted TLS certificates are not. A request that fails for good becomes a FetchError
on the jobs or comparison it covered; nothing here aborts the others. Answers are decoded
by answers.py: depth-bounded, with registered secrets masked in every string.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urljoin, urlsplit

from drs_report import logs, wire
from drs_report.answers import MalformedAnswer, decode_json
from drs_report.config import JOB_ID_RE, DiscoveryConfig, DrsConfig, JobConfig
from drs_report.models import (
    CompareReading,
    FetchError,
    FetchErrorKind,
    JobReading,
    Snapshot,
)
from drs_report.parsing import error_fields, parse_compare_progress, parse_job_progress
from drs_report.secrets import Credentials
from drs_report.signing import RequestSigner
from drs_report.throttle import AdaptiveLimiter

if TYPE_CHECKING:
    import requests

log = logs.get_logger("client")

MAX_ANSWER_BYTES = 10 << 20  # progress answers are kilobytes; anything this big is broken
PAGE_SIZE = 100
MAX_PAGES = 1000
NOT_FOUND_CODE = "DRS.10000010"
THROTTLED_CODE = "APIG.0308"
BUDGET_RAN_OUT = "not fetched: the run's time budget ran out"
# The longest Retry-After honoured; a service asking for more is not waited for.
MAX_RETRY_AFTER = 60.0
# Comparisons in these states have no progress to ask for.
_IDLE_COMPARE_STATES = frozenset({"CANCELLED", "FAILED", "TIMEOUT_INTERRUPT"})


class RequestFailed(Exception):
    def __init__(self, error: FetchError) -> None:
        self.error = error
        super().__init__(error.message)


@dataclass(frozen=True)
class _Failure:
    """What one try came to when it did not succeed, and whether to try again."""

    error: FetchError
    retry: bool
    retry_after: float | None = None

    def error_with(self, more: str) -> FetchError:
        return replace(self.error, message=self.error.message + more)


# What a DRS user changes for each kind of network failure (wire.WireError.kind).
_NETWORK_HINTS = {
    "dns": "; check drs.endpoint and drs.region, and this machine's DNS",
    "refused": "; check the host and port of drs.endpoint",
    "unreachable": "; check the network route (in FunctionGraph, a VPC needs a NAT "
                   "gateway to reach the internet)",
    "connect_timeout": "; a firewall, security group or missing route drops the packets",
    "tls_untrusted": "; for a private endpoint, set drs.ca_bundle to its CA file",
    "tls": "; check the scheme (https://) and port of drs.endpoint",
    "read_timeout": "; raise drs.read_timeout if the service is this slow",
}


@dataclass
class _Target:
    job_id: str
    name: str | None
    compare_jobs: tuple[str, ...]
    auto_compare: bool


class DrsClient:
    def __init__(
        self,
        drs: DrsConfig,
        credentials: Credentials,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self._drs = drs
        # Masked in every answer from here on, even when no run registered them.
        logs.add_secrets(credentials.secrets())
        self._signer = RequestSigner(credentials, drs.project_id)
        self._host = urlsplit(drs.endpoint).netloc or drs.endpoint
        self._own_session = session is None
        self._session = session if session is not None else self._new_session()
        self._limiter = AdaptiveLimiter(drs.requests_per_second)
        self._count_lock = threading.Lock()
        self._requests = 0
        self._random = random.Random()
        self._headers = {"Content-Type": "application/json", "X-Language": drs.language}
        self._pool_cache: dict[str, Any] = {}
        if not drs.verify_tls:
            import urllib3

            # Said once here, not once per request by urllib3.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS verification is OFF for %s (drs.verify_tls = false): answers "
                        "could be forged by anyone on the path", drs.endpoint)

    def _new_session(self) -> requests.Session:
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        # Retries are ours (urllib3's default never retries POST); the pool fits the workers.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self._drs.max_workers,
                              max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.verify = self._drs.ca_bundle or self._drs.verify_tls
        session.trust_env = False  # proxies from the environment would bypass endpoint config
        return session

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    def __enter__(self) -> DrsClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- one request, with retries -----------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        deadline: float | None = None,
    ) -> Any:
        """The decoded JSON answer of one API call, retried as the module says."""
        url = self._drs.endpoint + path
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        full_url = url + ("?" + urlencode(list(query), quote_via=quote) if query else "")
        attempt = 0
        throttled = 0
        while True:
            if ((deadline is not None and time.monotonic() >= deadline)
                    or not self._limiter.acquire(deadline)):
                raise RequestFailed(FetchError(FetchErrorKind.SKIPPED, BUDGET_RAN_OUT))
            headers = self._signer.sign(method, url, headers=self._headers, query=query,
                                        body=payload)
            with self._count_lock:
                self._requests += 1
            started = time.monotonic()
            request_deadline = started + self._drs.connect_timeout + self._drs.read_timeout
            if deadline is not None:
                request_deadline = min(request_deadline, deadline)
            retry_after: float | None = None
            try:
                failure, status, data = self._attempt(method, full_url, payload, headers,
                                                      request_deadline)
            except Exception as e:  # no answer, however strange, may cost the run
                log.debug("%s %s: unexpected error", method, path, exc_info=True)
                raise RequestFailed(FetchError(
                    FetchErrorKind.MALFORMED,
                    f"unexpected {type(e).__name__} reading the answer: "
                    f"{_short(logs.redact(str(e)))}")) from None
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %s in %.0f ms", method, path, status or "no answer",
                          (time.monotonic() - started) * 1000)
            if failure is None:
                self._limiter.on_success()
                return data
            if status == 429:
                retry_after = failure.retry_after
                # A service asking for more than we wait gets no pause from the others
                # either: each of them gives up on its own 429 at once.
                self._limiter.on_throttle(
                    retry_after if retry_after is None or retry_after <= MAX_RETRY_AFTER
                    else None)
                if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                    raise RequestFailed(failure.error_with(
                        f"; the service asks to wait {retry_after:.0f}s (Retry-After), "
                        f"longer than the {MAX_RETRY_AFTER:.0f}s drs-report waits"))
            if not failure.retry:
                raise RequestFailed(failure.error)
            # A transient failure: try again if the budget allows.
            if status == 429:
                throttled += 1
                if throttled > max(20, self._drs.max_retries * 5):
                    raise RequestFailed(failure.error)
            else:
                attempt += 1
                if attempt > self._drs.max_retries:
                    raise RequestFailed(failure.error)
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            if deadline is not None and time.monotonic() + delay >= deadline:
                # The budget, not the service, ended this one: it counts as skipped (the
                # report is partial), and the last answer says what was being retried.
                error = failure.error
                raise RequestFailed(FetchError(
                    FetchErrorKind.SKIPPED, f"{BUDGET_RAN_OUT} while retrying ({error.message})",
                    status=error.status, error_code=error.error_code))
            time.sleep(delay)

    def _attempt(self, method: str, url: str, payload: bytes, headers: dict[str, str],
                 deadline: float) -> tuple[_Failure | None, int, Any]:
        """One try: (None, status, data) on success, else (what failed, status, None)."""
        try:
            answer = self._send(method, url, payload, headers, deadline)
        except wire.WireError as e:
            error = FetchError(FetchErrorKind.NETWORK, e.args[0] + _NETWORK_HINTS.get(e.kind, ""))
            return _Failure(error, retry=e.transient), 0, None
        status = answer.status
        if answer.truncated:
            return _Failure(FetchError(
                FetchErrorKind.MALFORMED,
                f"answer is larger than the {MAX_ANSWER_BYTES >> 20} MB limit", status=status),
                retry=True), status, None
        try:
            data, decode_error = decode_json(answer.body), None
        except MalformedAnswer as e:
            data, decode_error = None, str(e)
        if 200 <= status < 300 and decode_error is None:
            return None, status, data
        code, msg = error_fields(data)
        if status == 429:
            return _Failure(FetchError(FetchErrorKind.HTTP_ERROR,
                                       f"throttled: HTTP 429 {code or THROTTLED_CODE}",
                                       status=429, error_code=code or THROTTLED_CODE),
                            retry=True,
                            retry_after=_retry_after(answer.headers.get("Retry-After"))
                            ), status, None
        if status in (401, 403):
            # 401: the signature did not verify. 403: it did, but this identity may
            # not read this project's jobs.
            hint = (
                "check HUAWEICLOUD_SDK_AK/SK, the security token, and that this "
                "machine's clock is right (X-Sdk-Date must be within 15 minutes)"
                if status == 401 else
                "check that drs.project_id is the project of drs.region and that "
                "the IAM user or agency may read DRS jobs (e.g. DRS ReadOnlyAccess)")
            refused = "authentication refused" if status == 401 else "access denied"
            return _Failure(FetchError(
                FetchErrorKind.AUTH,
                f"{refused}: HTTP {status} {code or ''} {msg or ''}".strip() + f"; {hint}",
                status=status, error_code=code), retry=False), status, None
        if 300 <= status < 400:
            # Never followed: it would re-send the signed request to wherever it points.
            location = answer.headers.get("Location")
            target = (urlsplit(urljoin(url, location)).netloc or "an unnamed address"
                      if location else "no Location given")
            return _Failure(FetchError(
                FetchErrorKind.HTTP_ERROR,
                f"HTTP {status} redirect to {logs.redact(target)[:100]}, not followed; "
                "drs.endpoint must be the service's own address", status=status),
                retry=False), status, None
        if 200 <= status < 300:
            return _Failure(FetchError(FetchErrorKind.MALFORMED,
                                       f"answer is not the documented JSON: {decode_error}",
                                       status=status), retry=True), status, None
        if status >= 500:
            detail = code or (decode_error and "non-JSON body") or ""
            return _Failure(FetchError(FetchErrorKind.HTTP_ERROR,
                                       f"server error: HTTP {status} {detail}".strip(),
                                       status=status, error_code=code), retry=True), status, None
        return _Failure(FetchError(
            FetchErrorKind.NOT_FOUND if code == NOT_FOUND_CODE else FetchErrorKind.HTTP_ERROR,
            f"HTTP {status} {code or ''}: {msg or 'no error message'}",
            status=status, error_code=code), retry=False), status, None

    def _send(self, method: str, url: str, payload: bytes, headers: dict[str, str],
              deadline: float) -> wire.Answer:
        pool = self._pool_cache.get(self._drs.endpoint)
        if pool is None:
            pool = self._pool_cache[self._drs.endpoint] = wire.pool_for(self._session, url)
        return wire.send(pool, method, url[len(self._drs.endpoint):], body=payload,
                         headers=headers, host=self._host,
                         connect_timeout=self._drs.connect_timeout,
                         read_timeout=self._drs.read_timeout, deadline=deadline,
                         max_bytes=MAX_ANSWER_BYTES)

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many workers instead of synchronising them.
        ceiling = min(self._drs.backoff_max, self._drs.backoff_base * (2 ** (attempt - 1)))
        return self._random.uniform(ceiling / 2, ceiling) if ceiling > 0 else 0.0

    # -- the endpoints -----------------------------------------------------------------

    def batch_progress(self, job_ids: Sequence[str], *, deadline: float | None = None
                       ) -> dict[str, JobReading]:
        """POST /v3/{project_id}/jobs/batch-progress for one chunk of jobs."""
        data = self.call("POST", f"/v3/{self._drs.project_id}/jobs/batch-progress",
                         body={"jobs": list(job_ids)}, deadline=deadline)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise RequestFailed(FetchError(FetchErrorKind.MALFORMED,
                                           "batch-progress answer has no results list"))
        readings: dict[str, JobReading] = {}
        wanted = set(job_ids)
        for item in results:
            progress = parse_job_progress(item)
            if progress.job_id not in wanted or progress.job_id in readings:
                continue
            reading = JobReading(job_id=progress.job_id, progress=progress)
            if progress.error_code and progress.transfer_status is None:
                # No state at all, only an error: the query for this job failed.
                reading.error = FetchError(FetchErrorKind.API_ERROR,
                                           progress.error_msg or progress.error_code,
                                           error_code=progress.error_code)
            readings[progress.job_id] = reading
        return readings

    def compare_progress(self, job_id: str, compare_job_id: str, *,
                         deadline: float | None = None) -> CompareReading:
        """GET /v5/{project_id}/jobs/{job_id}/compare-progress/{compare_job_id}."""
        path = (f"/v5/{self._drs.project_id}/jobs/{_segment(job_id)}/compare-progress/"
                f"{_segment(compare_job_id)}")
        try:
            data = self.call("GET", path, deadline=deadline)
        except RequestFailed as e:
            return CompareReading(compare_job_id, error=e.error)
        progress = parse_compare_progress(data)
        if progress.full_info is None and progress.incre_info is None and (
                progress.global_info is None):
            return CompareReading(compare_job_id, error=FetchError(
                FetchErrorKind.MALFORMED,
                "compare-progress answer has none of full_info, incre_info, global_info"))
        return CompareReading(compare_job_id, progress=progress)

    def list_jobs(self, discovery: DiscoveryConfig, *, deadline: float | None = None
                  ) -> tuple[list[tuple[str, str | None]], list[str]]:
        """GET /v5/{project_id}/jobs, every page: (id, name) of each job, and the listed
        ids that are not DRS job ids (they would go into signed request paths)."""
        found: list[tuple[str, str | None]] = []
        rejected: list[str] = []
        for item in self._pages(f"/v5/{self._drs.project_id}/jobs", "jobs", "total_count",
                                extra=_discovery_query(discovery), deadline=deadline):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                if not JOB_ID_RE.match(item["id"]):
                    rejected.append(item["id"])
                    continue
                name = item.get("name")
                found.append((item["id"], name if isinstance(name, str) else None))
        return found, rejected

    def list_compare_jobs(self, job_id: str, *, deadline: float | None = None
                          ) -> tuple[list[str], list[str]]:
        """GET /v3/{project_id}/jobs/{job_id}/table/compare: the comparisons worth asking,
        and the listed ids that are not DRS ids."""
        ids: list[str] = []
        rejected: list[str] = []
        for item in self._pages(f"/v3/{self._drs.project_id}/jobs/{_segment(job_id)}"
                                "/table/compare", "compare_jobs", "count", deadline=deadline):
            if (isinstance(item, dict) and isinstance(item.get("id"), str)
                    and item.get("status") not in _IDLE_COMPARE_STATES):
                if JOB_ID_RE.match(item["id"]):
                    ids.append(item["id"])
                else:
                    rejected.append(item["id"])
        return ids, rejected

    def _pages(self, path: str, key: str, total_key: str, *,
               extra: Sequence[tuple[str, Any]] = (), deadline: float | None) -> Iterator[Any]:
        offset = 0
        for _ in range(MAX_PAGES):
            data = self.call("GET", path, query=[*extra, ("limit", PAGE_SIZE),
                                                 ("offset", offset)], deadline=deadline)
            items = data.get(key) if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise RequestFailed(FetchError(FetchErrorKind.MALFORMED,
                                               f"listing answer has no {key} list"))
            yield from items
            offset += len(items)
            total = data.get(total_key)
            if not items or (isinstance(total, int) and offset >= total):
                return
        # A listing that never ends is broken, not a fleet of a million jobs.
        raise RequestFailed(FetchError(FetchErrorKind.MALFORMED,
                                       f"listing goes on past {MAX_PAGES} pages"))

    # -- one run's fetch -----------------------------------------------------------------

    def fetch(self, jobs: Sequence[JobConfig], discovery: DiscoveryConfig, *,
              deadline: float | None = None) -> Snapshot:
        """Everything one run needs, as concurrently as `max_workers` allows."""
        taken_at = datetime.now(timezone.utc)
        started = time.monotonic()
        before = self._requests
        errors: list[str] = []
        # Set when the time budget, not the service, left something unfetched.
        budget_cut = False
        targets = [_Target(j.id, j.name, j.compare_jobs, j.auto_compare) for j in jobs]
        if discovery.enabled:
            try:
                listed, rejected = self.list_jobs(discovery, deadline=deadline)
                targets = [_Target(job_id, name, (), discovery.compare_jobs_auto)
                           for job_id, name in listed]
                if rejected:
                    errors.append(f"job discovery skipped {len(rejected)} listed id(s) that "
                                  f"are not DRS job ids: {_rejected_ids(rejected)}")
            except RequestFailed as e:
                budget_cut = e.error.kind is FetchErrorKind.SKIPPED
                errors.append(f"job discovery failed: {e.error.message}")
        readings = {t.job_id: JobReading(job_id=t.job_id, name=t.name) for t in targets}
        compare_results: dict[str, dict[str, CompareReading]] = {t.job_id: {} for t in targets}
        compare_order: dict[str, list[str]] = {t.job_id: list(t.compare_jobs) for t in targets}
        # Workers record their own results under one lock, so this thread sleeps until
        # the last one is done instead of waking for every answer. `outstanding` starts at
        # one for this thread's own submitting, so an early finisher cannot end the wait.
        lock = threading.RLock()
        finished = threading.Event()
        outstanding = 1
        crashes: list[BaseException] = []

        with ThreadPoolExecutor(max_workers=self._drs.max_workers,
                                thread_name_prefix="drs-fetch") as pool:

            def settle() -> None:
                nonlocal outstanding
                with lock:
                    outstanding -= 1
                    if outstanding == 0:
                        finished.set()

            def run(fn: Callable[[], Callable[[], None]]) -> None:
                try:
                    record = fn()
                    with lock:
                        record()
                except BaseException as e:  # a bug in a task must surface, not hang us
                    crashes.append(e)
                finally:
                    settle()

            def submit(fn: Callable[[], Callable[[], None]]) -> None:
                nonlocal outstanding
                with lock:
                    outstanding += 1
                pool.submit(run, fn)

            def batch_task(chunk: list[str]) -> Callable[[], None]:
                try:
                    found = self.batch_progress(chunk, deadline=deadline)
                except RequestFailed as e:
                    error = e.error

                    def record_failure() -> None:
                        for job_id in chunk:
                            readings[job_id].error = error
                    return record_failure

                def record() -> None:
                    for job_id in chunk:
                        got = found.get(job_id)
                        if got is None:
                            readings[job_id].error = FetchError(
                                FetchErrorKind.MISSING,
                                "the batch-progress answer did not include this job")
                        else:
                            readings[job_id].progress = got.progress
                            readings[job_id].error = got.error
                return record

            def compare_task(job_id: str, compare_id: str) -> Callable[[], None]:
                reading = self.compare_progress(job_id, compare_id, deadline=deadline)
                return lambda: compare_results[job_id].__setitem__(compare_id, reading)

            def auto_task(job_id: str) -> Callable[[], None]:
                try:
                    ids, rejected = self.list_compare_jobs(job_id, deadline=deadline)
                except RequestFailed as e:
                    error = e.error

                    def record_failure() -> None:
                        nonlocal budget_cut
                        budget_cut = budget_cut or error.kind is FetchErrorKind.SKIPPED
                        errors.append(
                            f"listing the comparisons of job {job_id} failed: {error.message}")
                    return record_failure

                def record() -> None:
                    if rejected:
                        errors.append(f"listing the comparisons of job {job_id} skipped "
                                      f"{len(rejected)} id(s) that are not DRS ids: "
                                      f"{_rejected_ids(rejected)}")
                    for compare_id in ids:
                        if compare_id not in compare_order[job_id]:
                            compare_order[job_id].append(compare_id)
                            submit(partial(compare_task, job_id, compare_id))
                return record

            ids = list(readings)
            for i in range(0, len(ids), self._drs.batch_size):
                chunk = ids[i:i + self._drs.batch_size]
                submit(partial(batch_task, chunk))
            for target in targets:
                for compare_id in target.compare_jobs:
                    submit(partial(compare_task, target.job_id, compare_id))
                if target.auto_compare:
                    submit(partial(auto_task, target.job_id))
            settle()  # everything is submitted
            finished.wait()
        if crashes:
            raise crashes[0]

        incomplete = budget_cut
        for job_id, reading in readings.items():
            reading.comparisons = [compare_results[job_id][c] for c in compare_order[job_id]
                                   if c in compare_results[job_id]]
            skipped = [reading.error] + [c.error for c in reading.comparisons]
            if any(e is not None and e.kind is FetchErrorKind.SKIPPED for e in skipped):
                incomplete = True
        return Snapshot(
            taken_at=taken_at,
            jobs=list(readings.values()),
            partial=incomplete,
            errors=errors,
            requests=self._requests - before,
            duration_seconds=time.monotonic() - started,
        )


def _discovery_query(discovery: DiscoveryConfig) -> list[tuple[str, Any]]:
    query: list[tuple[str, Any]] = []
    if discovery.job_type:
        query.append(("job_type", discovery.job_type))
    if discovery.name:
        query.append(("name", discovery.name))
    return query


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _segment(value: str) -> str:
    """One path segment: nothing in it may act as a separator or a `..` step."""
    return quote(value, safe="")


def _rejected_ids(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(_short(i, 40)) for i in ids[:3])
    return shown + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")


def _short(text: str, limit: int = 200) -> str:
    return text[:limit]
