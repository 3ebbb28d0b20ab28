"""The DRS emulator's HTTP server: the documented endpoints, signed, with injectable faults.

Endpoints (shapes as the API docs and the official SDK's models describe them):
    POST /v3/{project_id}/jobs/batch-progress
    GET  /v5/{project_id}/jobs/{job_id}/compare-progress/{compare_job_id}
    GET  /v5/{project_id}/jobs                          (offset/limit, name, job_type)
    GET  /v3/{project_id}/jobs/{job_id}/table/compare   (offset/limit)
Control (no signature; loopback tooling only):
    POST /_emulator/faults   {"latency_ms": 50, "rate_limit": 100, ...}  (see Faults)
    POST /_emulator/advance  {"seconds": 600}
    GET  /_emulator/state    the scenario's ids, the clock and the request counter
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from drs_report.emulator import auth
from drs_report.emulator.scenario import (
    Scenario,
    compare_listing,
    compare_state,
    job_listing,
    job_state,
)

DRS_ID_RE = re.compile(r"^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$")
_BATCH = re.compile(r"^/v3/([^/]+)/jobs/batch-progress$")
_COMPARE = re.compile(r"^/v5/([^/]+)/jobs/([^/]+)/compare-progress/([^/]+)$")
_JOBS = re.compile(r"^/v5/([^/]+)/jobs$")
_TABLE_COMPARE = re.compile(r"^/v3/([^/]+)/jobs/([^/]+)/table/compare$")
MAX_BODY = 1 << 20


@dataclass
class Faults:
    """What to break, and how often. Rates are fractions of requests (0..1)."""

    latency_ms: float = 0.0  # added to every API answer
    rate_limit: float | None = None  # requests per second; above it: 429 APIG.0308
    retry_after: float | None = None  # seconds to put in Retry-After on 429 (None: computed)
    error_rate: float = 0.0  # answer 500/502/503
    reset_rate: float = 0.0  # reset the connection instead of answering
    timeout_rate: float = 0.0  # hang for timeout_seconds, then close without answering
    timeout_seconds: float = 10.0
    malformed_rate: float = 0.0  # answer a body that is not the documented JSON
    malformed_kind: str = "random"  # json | html | types | missing | oversized | random
    failing_jobs: tuple[str, ...] = ()  # these jobs fail every time (500 / error_code)
    clock_skew_seconds: float = 0.0  # the emulator's clock runs this far ahead
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        if "failing_jobs" in values:
            values["failing_jobs"] = tuple(values["failing_jobs"])
        return cls(**values)


class _TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 if a token was taken, else the seconds until one is free."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


class EmulatorState:
    """What the handler threads share: scenario, clock, faults, counters."""

    def __init__(self, scenario: Scenario, *, keys: dict[str, str], project_id: str,
                 security_token: str | None, speed: float, faults: Faults | None,
                 start: datetime | None = None, elapsed: float = 0.0) -> None:
        self.scenario = scenario
        self.keys = keys
        self.project_id = project_id
        self.security_token = security_token
        self.speed = speed
        self.started = time.monotonic()
        # The wall-clock time of the scenario's minute 0, so the service's own timestamps
        # (process_time) agree with the clock: by default `elapsed` seconds before now.
        origin = start.timestamp() if start is not None else time.time() - elapsed
        self.epoch_ms = int(origin * 1000)
        self.offset = float(elapsed)
        self.lock = threading.Lock()
        self.requests_served = 0
        self.statuses: dict[int, int] = {}  # answers by HTTP status (0: reset or hang)
        self.set_faults(faults or Faults())

    def set_faults(self, faults: Faults) -> None:
        with self.lock:
            self.faults = faults
            self.random = random.Random(faults.seed)
            self.bucket = _TokenBucket(faults.rate_limit) if faults.rate_limit else None

    def elapsed(self) -> float:
        return (time.monotonic() - self.started) * self.speed + self.offset

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.offset += seconds

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self.lock:
            return self.random.random() < rate

    def count(self) -> None:
        with self.lock:
            self.requests_served += 1

    def answered(self, status: int) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def describe(self) -> dict[str, Any]:
        return {
            "elapsed_seconds": self.elapsed(),
            "requests_served": self.requests_served,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "project_id": self.project_id,
            "jobs": [
                {"id": j.id, "name": j.name, "comparisons": [c.id for c in j.comparisons]}
                for j in self.scenario.jobs
            ],
            "faults": asdict(self.faults),
        }


class _Answer(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, code: str, msg: str) -> _Answer:
    return _Answer(status, {"error_code": code, "error_msg": msg})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer
    # The stdlib default is HTTP/1.0 semantics per request line; keep-alive is what clients
    # with a pooled session expect, and what keeps the emulator off the critical path.

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read stdout
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- plumbing --------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        if not self.path.startswith("/_emulator/"):
            self.server.state.answered(status)
        head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
                f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
                "Connection: keep-alive", "X-Request-Id: emulator"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        # One write for head and body: no Nagle/delayed-ACK stall between them.
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode(), headers=headers)

    def _reset(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _handle(self, method: str) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send_json(413, {"error_code": "APIG.0201", "error_msg": "Request too large"})
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        if parts.path.startswith("/_emulator/"):
            self._control(method, parts.path, body)
            return
        state.count()
        faults = state.faults
        try:
            if state.bucket is not None:
                wait = state.bucket.take()
                if wait > 0:
                    retry = faults.retry_after if faults.retry_after is not None else wait
                    raise _Answer(429, {"error_code": "APIG.0308",
                                        "error_msg": "The request is being throttled."},
                                  {"Retry-After": f"{max(retry, 0.001):.3f}"})
            if faults.latency_ms:
                time.sleep(faults.latency_ms / 1000.0)
            if state.roll(faults.reset_rate):
                state.answered(0)
                self._reset()
                return
            if state.roll(faults.timeout_rate):
                state.answered(0)
                time.sleep(faults.timeout_seconds)
                self.close_connection = True
                return
            if state.roll(faults.error_rate):
                status = state.random.choice([500, 502, 503])
                raise _error(status, "DRS.00000500", "Internal server error.")
            now = datetime.now(timezone.utc) + timedelta(seconds=faults.clock_skew_seconds)
            try:
                auth.verify(method, parts.path, parts.query, dict(self.headers.items()), body,
                            keys=state.keys, security_token=state.security_token, now=now)
            except auth.SignatureError as e:
                raise _error(401, e.error_code, str(e)) from None
            if state.roll(faults.malformed_rate):
                self._malformed(faults.malformed_kind)
                return
            answer = self._route(method, parts.path, parts.query, body, dict(self.headers))
            self._send_json(200, answer)
        except _Answer as a:
            self._send_json(a.status, a.body, a.headers)

    def _malformed(self, kind: str) -> None:
        state = self.server.state
        kinds = ["json", "html", "types", "missing", "oversized"]
        if kind == "random":
            kind = state.random.choice(kinds)
        if kind == "json":
            self._send(200, b'{"results": [{"job_id": "x", "progress": ')
        elif kind == "html":
            self._send(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
        elif kind == "types":
            self._send_json(200, {"results": "not a list", "count": "many",
                                  "full_info": [1, 2], "total_count": None, "jobs": 7})
        elif kind == "missing":
            self._send_json(200, {})
        else:  # oversized: more than any client should read for a progress answer
            self._send(200, b'{"results": [' + b" " * (12 << 20) + b"]}")

    def _control(self, method: str, path: str, body: bytes) -> None:
        state = self.server.state
        try:
            data = json.loads(body or b"{}")
            if method == "POST" and path == "/_emulator/faults":
                state.set_faults(Faults.from_dict(data))
            elif method == "POST" and path == "/_emulator/advance":
                state.advance(float(data.get("seconds", 0)))
            elif not (method == "GET" and path == "/_emulator/state"):
                self._send_json(404, {"error": "unknown control path"})
                return
        except (ValueError, TypeError) as e:
            self._send_json(400, {"error": str(e)})
            return
        self._send_json(200, state.describe())

    # -- the API -----------------------------------------------------------------------

    def _route(self, method: str, path: str, query: str, body: bytes,
               headers: dict[str, str]) -> Any:
        state = self.server.state
        for pattern, want, handler in (
            (_BATCH, "POST", self._batch_progress),
            (_COMPARE, "GET", self._compare_progress),
            (_JOBS, "GET", self._list_jobs),
            (_TABLE_COMPARE, "GET", self._list_compare_jobs),
        ):
            match = pattern.match(path)
            if match is None:
                continue
            if method != want:
                raise _error(405, "APIG.0101", "The API does not exist or has not been "
                                               "published in the environment.")
            if match.group(1) != state.project_id:
                raise _error(403, "APIG.0302", "Incorrect IAM authentication information: "
                                               "the project ID does not match the token.")
            return handler(match, parse_qs(query), body)
        raise _error(404, "APIG.0101", "The API does not exist or has not been published "
                                       "in the environment.")

    def _batch_progress(self, match: re.Match[str], query: dict[str, list[str]],
                        body: bytes) -> Any:
        state = self.server.state
        try:
            data = json.loads(body)
        except ValueError:
            raise _error(400, "DRS.10000001", "Invalid request body.") from None
        jobs = data.get("jobs") if isinstance(data, dict) else None
        if not isinstance(jobs, list) or not jobs:
            raise _error(400, "DRS.10000001", "The jobs parameter is empty or invalid.")
        if not all(isinstance(j, str) and DRS_ID_RE.match(j) for j in jobs):
            raise _error(400, "DRS.10000001", "The job ID does not comply with the UUID rule.")
        t = state.elapsed()
        results = []
        for job_id in jobs:
            spec = state.scenario.job(job_id)
            spec = spec.at(t / 60.0) if spec is not None else None
            if job_id in state.faults.failing_jobs:
                results.append({"job_id": job_id, "error_code": "DRS.00000500",
                                "error_msg": "Internal error while querying the job."})
            elif spec is None:
                results.append({"job_id": job_id, "error_code": "DRS.10010032",
                                "error_msg": "The job does not exist."})
            elif spec.answer == "omit":
                continue
            elif spec.answer == "error":
                results.append({"job_id": job_id, "error_code": spec.error_code or "DRS.10000004",
                                "error_msg": spec.error_msg or "Query failed."})
            else:
                results.append(job_state(spec, t, state.epoch_ms))
        return {"results": results, "count": len(results)}

    def _compare_progress(self, match: re.Match[str], query: dict[str, list[str]],
                          body: bytes) -> Any:
        state = self.server.state
        job_id, compare_id = match.group(2), match.group(3)
        if job_id in state.faults.failing_jobs:
            raise _error(500, "DRS.00000500", "Internal error while querying the comparison.")
        comp = state.scenario.comparison(job_id, compare_id)
        t = state.elapsed()
        if comp is None or comp.at(t / 60.0).not_found:
            raise _error(400, "DRS.10000010", "Task information not found.")
        return compare_state(comp, t)

    @staticmethod
    def _page(query: dict[str, list[str]], default_limit: int) -> tuple[int, int]:
        try:
            offset = int(query.get("offset", ["0"])[0])
            limit = int(query.get("limit", [str(default_limit)])[0])
        except ValueError:
            raise _error(400, "DRS.10000001", "Invalid offset or limit.") from None
        if offset < 0 or not 1 <= limit <= 1000:
            raise _error(400, "DRS.10000001", "Invalid offset or limit.")
        return offset, limit

    def _list_jobs(self, match: re.Match[str], query: dict[str, list[str]],
                   body: bytes) -> Any:
        state = self.server.state
        offset, limit = self._page(query, 10)
        jobs = state.scenario.jobs
        if "job_type" in query:
            jobs = [j for j in jobs if j.job_type == query["job_type"][0]]
        if "name" in query:
            wanted = [n.strip() for n in query["name"][0].split(",") if n.strip()]
            jobs = [j for j in jobs if any(w == j.id or w in j.name for w in wanted)]
        t = state.elapsed()
        return {"total_count": len(jobs),
                "jobs": [job_listing(j, t) for j in jobs[offset:offset + limit]]}

    def _list_compare_jobs(self, match: re.Match[str], query: dict[str, list[str]],
                           body: bytes) -> Any:
        state = self.server.state
        offset, limit = self._page(query, 10)
        spec = state.scenario.job(match.group(2))
        if spec is None:
            raise _error(400, "DRS.10010032", "The job does not exist.")
        t = state.elapsed()
        comps = list(spec.comparisons)
        return {"count": len(comps),
                "compare_jobs": [compare_listing(c, t) for c in comps[offset:offset + limit]]}


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        super().__init__(address, Handler)
