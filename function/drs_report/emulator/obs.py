"""An in-process OBS emulator: PUT, GET, HEAD and DELETE of objects, as OBS answers them.

    with ObsEmulator(ak=AK, sk=SK, security_token=TOKEN, buckets=["drs-report"]) as obs:
        obs.url                 # http://127.0.0.1:PORT  (path-style: /BUCKET/KEY)
        obs.set_faults(ObsFaults(latency_ms=20, bandwidth_mbps=100))

OBS's semantics and no more: ETags are the MD5 of the body; the latest PUT wins (a
conditional header on PUT is ignored, as OBS documents no conditional PUT); GET honours
If-Match (412) and If-None-Match (304); a missing object is 404 NoSuchKey XML, a missing
bucket 404 NoSuchBucket. Every request must carry the OBS header signature (403
SignatureDoesNotMatch, InvalidAccessKeyId, RequestTimeTooSkewed) and, when the emulator was
given one, the security token (403 AccessDenied); `deny` refuses chosen actions with 403
AccessDenied. Faults: latency, bandwidth, 503 ServiceUnavailable, a reset mid-body, slow
answers to the next N requests (of one method).
Control (no signature): POST /_emulator/faults with ObsFaults' fields as JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from drs_report.obs import signature

MAX_SKEW = timedelta(minutes=15)
CHUNK = 64 << 10


@dataclass
class ObsFaults:
    latency_ms: float = 0.0  # before every answer
    bandwidth_mbps: float | None = None  # bodies both ways at this many MB/s (10^6 bytes)
    unavailable_rate: float = 0.0  # fraction of requests answered 503 ServiceUnavailable
    unavailable_next: int = 0  # the next N requests answered 503
    reset_mid_body_rate: float = 0.0  # fraction of GETs with a body reset halfway through
    reset_mid_body_next: int = 0  # the next N GETs with a body reset halfway through
    slow_ms: float = 0.0  # the extra wait of a slow answer (below)
    slow_rate: float = 0.0  # fraction of requests (of `slow_method`, when set) answered slowly
    slow_next: int = 0  # the next N such requests answered slowly
    slow_method: str | None = None
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObsFaults:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class StoredObject:
    data: bytes
    etag: str
    last_modified: datetime
    content_type: str


@dataclass
class ObsRequest:
    method: str
    bucket: str
    key: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() when the request arrived


class ObsState:
    def __init__(self, *, keys: dict[str, str], security_token: str | None,
                 buckets: Iterable[str], deny: Iterable[str], faults: ObsFaults) -> None:
        self.keys = keys
        self.security_token = security_token
        self.buckets: dict[str, dict[str, StoredObject]] = {b: {} for b in buckets}
        self.deny = set(deny)
        self.lock = threading.Lock()
        self.log: list[ObsRequest] = []
        self.set_faults(faults)

    def set_faults(self, faults: ObsFaults) -> None:
        with self.lock:
            self.faults = faults
            self.random = random.Random(faults.seed)

    def take(self, rate_name: str, next_name: str) -> bool:
        """Whether this request gets the fault: the next-N counter first, then the rate."""
        with self.lock:
            left = getattr(self.faults, next_name)
            if left > 0:
                setattr(self.faults, next_name, left - 1)
                return True
            rate = getattr(self.faults, rate_name)
            return bool(rate > 0 and self.random.random() < rate)


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- plumbing ----------------------------------------------------------------------------

    def _pace(self, size: int, started: float) -> None:
        mbps = self.server.state.faults.bandwidth_mbps
        if mbps:
            due = started + size / (mbps * 1_000_000)
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        chunks = bytearray()
        got = 0
        started = time.monotonic()
        while got < length:
            chunk = self.rfile.read(min(CHUNK, length - got))
            if not chunk:
                break
            chunks += chunk
            got += len(chunk)
            self._pace(got, started)
        return bytes(chunks)

    def _write_head(self, status: int, headers: dict[str, str]) -> None:
        # Recorded before the client can see it: a test reading the log right after its
        # call returns finds the request there, with its status.
        if self._entry is not None:
            self._entry.status = status
        self.send_response_only(status)
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Server", "OBS")
        self.send_header("x-obs-request-id", f"emulator{time.monotonic_ns():x}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              *, reset_halfway: bool = False) -> None:
        head = {"Content-Length": str(len(body)), **(headers or {})}
        self._write_head(status, head)
        if reset_halfway and self._entry is not None:
            self._entry.status = 0  # the answer never arrives whole
        if self.command == "HEAD" or not body:
            self.wfile.flush()
            return
        started = time.monotonic()
        cut = len(body) // 2 if reset_halfway else len(body)
        sent = 0
        while sent < cut:
            chunk = body[sent:min(sent + CHUNK, cut)]
            self.wfile.write(chunk)
            sent += len(chunk)
            self._pace(sent, started)
        self.wfile.flush()
        if reset_halfway:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    def _error(self, refusal: _Refusal, resource: str) -> None:
        extra = "".join(f"<{k}>{_xml(v)}</{k}>" for k, v in refusal.extra.items())
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{refusal.code}</Code>'
                f"<Message>{_xml(refusal.message)}</Message><Resource>{_xml(resource)}"
                f"</Resource>{extra}<RequestId>emulator</RequestId>"
                f"<HostId>obs.emulator</HostId></Error>").encode()
        headers = {"Content-Type": "application/xml", "x-obs-error-code": refusal.code}
        self._send(refusal.status, b"" if self.command == "HEAD" else body, headers)

    # -- the service -----------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        arrived = time.monotonic()
        self._entry: ObsRequest | None = None  # one handler serves a kept-alive connection
        state = self.server.state
        parts = urlsplit(self.path)
        if parts.path.startswith("/_emulator/"):
            self._control(method, parts.path)
            return
        body = self._read_body() if method == "PUT" else b""
        segments = parts.path.lstrip("/").split("/", 1)
        bucket = segments[0]
        key = segments[1] if len(segments) > 1 else ""
        self._entry = entry = ObsRequest(method, bucket, key, 500,
                                 {k.lower(): v for k, v in self.headers.items()}, arrived)
        with state.lock:
            state.log.append(entry)
        try:
            faults = state.faults
            if faults.latency_ms:
                time.sleep(faults.latency_ms / 1000.0)
            if faults.slow_method in (None, method) and state.take("slow_rate", "slow_next"):
                time.sleep(faults.slow_ms / 1000.0)
            if state.take("unavailable_rate", "unavailable_next"):
                raise _Refusal(503, "ServiceUnavailable", "Please reduce your request rate.")
            self._authenticate(method, parts.path, parts.query)
            if method not in ("GET", "HEAD", "PUT", "DELETE") or not key:
                raise _Refusal(405, "MethodNotAllowed",
                               "The specified method is not allowed against this resource.")
            action = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject",
                      "DELETE": "DeleteObject"}[method]
            if action in state.deny:
                raise _Refusal(403, "AccessDenied", "Access Denied")
            objects = state.buckets.get(bucket)
            if objects is None:
                raise _Refusal(404, "NoSuchBucket", "The specified bucket does not exist",
                               BucketName=bucket)
            # HEAD answers as GET does, without the body.
            serve = {"GET": self._get, "HEAD": self._get, "PUT": self._put,
                     "DELETE": self._delete}[method]
            serve(objects, unquote(key), body)
        except _Refusal as refusal:
            self._error(refusal, parts.path)
        except (ConnectionError, OSError):
            entry.status = 0  # the client went away mid-answer

    def _authenticate(self, method: str, path: str, query: str) -> None:
        state = self.server.state
        authorization = self.headers.get("Authorization", "")
        if not authorization.startswith("OBS ") or ":" not in authorization:
            raise _Refusal(403, "AccessDenied", "Anonymous access is not allowed")
        access_key, given = authorization[4:].rsplit(":", 1)
        secret = state.keys.get(access_key)
        if secret is None:
            raise _Refusal(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided "
                           "does not exist in our records.", AccessKeyId=access_key)
        date_text = self.headers.get("x-obs-date") or self.headers.get("Date") or ""
        try:
            stamp = parsedate_to_datetime(date_text)
        except (TypeError, ValueError):
            raise _Refusal(403, "AccessDenied", "Request has invalid Date header") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        if abs(datetime.now(timezone.utc) - stamp) > MAX_SKEW:
            raise _Refusal(403, "RequestTimeTooSkewed", "The difference between the request "
                           "time and the server's time is too large.")
        headers = {k: v for k, v in self.headers.items()}
        text = signature.string_to_sign(method, path, headers,
                                        parse_qsl(query, keep_blank_values=True))
        if signature.signature(secret, text) != given:
            raise _Refusal(403, "SignatureDoesNotMatch", "The request signature we calculated "
                           "does not match the signature you provided. Check your key and "
                           "signing method.", StringToSign=text)
        if state.security_token is not None and \
                self.headers.get(signature.SECURITY_TOKEN) != state.security_token:
            raise _Refusal(403, "AccessDenied", "The security token is missing or does not "
                           "belong to this access key")

    def _get(self, objects: dict[str, StoredObject], key: str, body: bytes) -> int:
        stored = objects.get(key)
        if stored is None:
            raise _Refusal(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        if_match = self.headers.get("If-Match")
        if if_match is not None and not _matches(stored.etag, if_match):
            raise _Refusal(412, "PreconditionFailed", "At least one of the pre-conditions you "
                           "specified did not hold", Condition="If-Match")
        headers = {"ETag": stored.etag, "Content-Type": stored.content_type,
                   "Last-Modified": formatdate(stored.last_modified.timestamp(), usegmt=True)}
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None and _matches(stored.etag, if_none_match):
            self._write_head(304, headers)
            return 304
        reset = self.command == "GET" and self.server.state.take("reset_mid_body_rate",
                                                                  "reset_mid_body_next")
        self._send(200, stored.data, headers, reset_halfway=reset)
        return 0 if reset else 200

    def _put(self, objects: dict[str, StoredObject], key: str, body: bytes) -> int:
        declared = self.headers.get("Content-Length")
        if declared is None:
            raise _Refusal(411, "MissingContentLength", "You must provide the Content-Length "
                           "HTTP header.")
        if len(body) != int(declared):
            raise _Refusal(400, "IncompleteBody", "You did not provide the number of bytes "
                           "specified by the Content-Length HTTP header")
        md5 = hashlib.md5(body, usedforsecurity=False)
        given_md5 = self.headers.get("Content-MD5")
        if given_md5 is not None and base64.b64encode(md5.digest()).decode() != given_md5:
            raise _Refusal(400, "BadDigest", "The Content-MD5 you specified did not match "
                           "what we received.")
        etag = f'"{md5.hexdigest()}"'
        # If-Match / If-None-Match on PUT: OBS documents neither, so the latest PUT wins.
        with self.server.state.lock:
            objects[key] = StoredObject(body, etag, datetime.now(timezone.utc),
                                        self.headers.get("Content-Type")
                                        or "application/octet-stream")
        self._send(200, b"", {"ETag": etag})
        return 200

    def _delete(self, objects: dict[str, StoredObject], key: str, body: bytes) -> int:
        with self.server.state.lock:
            objects.pop(key, None)
        self._send(204)
        return 204

    def _control(self, method: str, path: str) -> None:
        state = self.server.state
        try:
            data = json.loads(self._read_body() if method != "GET" else b"{}") \
                if self.headers.get("Content-Length") else {}
            if method == "POST" and path == "/_emulator/faults":
                state.set_faults(ObsFaults.from_dict(data))
            elif not (method == "GET" and path == "/_emulator/state"):
                self._send(404, b'{"error": "unknown control path"}')
                return
        except (ValueError, TypeError) as e:
            self._send(400, json.dumps({"error": str(e)}).encode())
            return
        described = {"buckets": {b: sorted(o) for b, o in state.buckets.items()},
                     "requests": len(state.log)}
        self._send(200, json.dumps(described).encode(), {"Content-Type": "application/json"})


def _matches(etag: str, header: str) -> bool:
    """Whether an If-Match / If-None-Match list names this ETag ("*" names any)."""
    tags = {t.strip().removeprefix("W/").strip('"') for t in header.split(",")}
    return "*" in tags or etag.strip('"') in tags


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: ObsState) -> None:
        self.state = state
        super().__init__(address, _Handler)


class ObsEmulator:
    def __init__(self, *, ak: str, sk: str, security_token: str | None = None,
                 buckets: Iterable[str] = ("drs-report",), deny: Iterable[str] = (),
                 faults: ObsFaults | None = None, host: str = "127.0.0.1",
                 port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.state = ObsState(keys={ak: sk}, security_token=security_token, buckets=buckets,
                              deny=deny, faults=faults or ObsFaults())
        self._address = (host, port)
        self._ssl_context = ssl_context  # HTTPS, for the TLS verification tests
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the OBS emulator is not started")
        host, port = self._server.server_address[:2]
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{host!s}:{port}"

    def start(self) -> ObsEmulator:
        self._server = _Server(self._address, self.state)
        if self._ssl_context is not None:
            self._server.socket = self._ssl_context.wrap_socket(self._server.socket,
                                                                server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True, name="obs-emulator").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ObsEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def set_faults(self, faults: ObsFaults) -> None:
        self.state.set_faults(faults)

    def deny(self, *actions: str) -> None:
        """Refuse these actions (GetObject, PutObject, DeleteObject) with 403 AccessDenied."""
        self.state.deny = set(actions)

    def object(self, bucket: str, key: str) -> StoredObject | None:
        with self.state.lock:
            return self.state.buckets.get(bucket, {}).get(key)

    def put_object(self, bucket: str, key: str, data: bytes) -> str:
        etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
        with self.state.lock:
            self.state.buckets.setdefault(bucket, {})[key] = StoredObject(
                data, etag, datetime.now(timezone.utc), "application/octet-stream")
        return etag

    def requests(self, method: str | None = None) -> list[ObsRequest]:
        with self.state.lock:
            return [r for r in self.state.log if method is None or r.method == method]


def serve(*, host: str, port: int, ak: str, sk: str, security_token: str | None,
          buckets: Iterable[str]) -> ObsEmulator:
    """Start an OBS emulator for `drs-report emulator --obs` (the caller waits and stops)."""
    return ObsEmulator(ak=ak, sk=sk, security_token=security_token, buckets=buckets,
                       host=host, port=port).start()
