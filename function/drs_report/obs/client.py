"""A small OBS client: the four object calls a synced store needs, streamed, signed, retried.

    client = ObsClient("https://obs.cn-north-4.myhuaweicloud.com", credentials)
    info = client.get_to_file("bucket", "drs-report/history.db", Path("/tmp/h.db"))
    info = client.put_file("bucket", "drs-report/history.db", Path("/tmp/h.db"))

Objects go to and from disk in 1 MiB chunks, never whole in memory; `inflate=True` writes a
gzip body inflated as it arrives (the synced store keeps its file compressed).
500/502/503/504, resets (also mid-body) and timeouts are retried with backoff; a downloaded
body is checked against its Content-Length and, for single-PUT objects, its ETag (the MD5).
Every try ends by an absolute wall-clock deadline (wire.py), whatever the server does (an
endless chunked body, a byte every few seconds, endless headers): connect + read timeout
for the small calls, TRANSFER_SECONDS for a file's GET or PUT, never after the run's
`deadline`; an answer cut there is closed, never drained.
TLS is verified (a CA bundle may be given). Real endpoints are addressed virtual-hosted
(BUCKET.obs.REGION...), an IP or localhost endpoint path-style
(http://127.0.0.1:PORT/BUCKET/KEY), which is what the emulator serves. Errors are ObsError:
one line naming obs://BUCKET/KEY and what to fix.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import random
import re
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.client import HTTPException
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from drs_report import logs, wire
from drs_report.errors import StoreError
from drs_report.obs import signature
from drs_report.secrets import Credentials

if TYPE_CHECKING:
    import requests
    from urllib3 import BaseHTTPResponse

log = logs.get_logger("obs")
T = TypeVar("T")

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
RETRIED_STATUSES = frozenset({500, 502, 503, 504})
MAX_ERROR_BODY = 64 << 10
# A file's GET or PUT (the synced store, 36 MB compressed at 5,000 jobs) ends within this
# many seconds per try, and never after the run's deadline; the other calls within
# connect_timeout + read_timeout.
TRANSFER_SECONDS = 300.0
# What each call needs in the bucket policy or IAM (the names of OBS's fine-grained actions).
PERMISSIONS = {"GET": "obs:object:GetObject", "HEAD": "obs:object:GetObject",
               "PUT": "obs:object:PutObject", "DELETE": "obs:object:DeleteObject"}


class ObsError(StoreError):
    """An OBS request failed for good; `status` and `code` are OBS's (0 / None: no answer)."""

    def __init__(self, message: str, *, status: int = 0, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class ObjectInfo:
    etag: str | None
    size: int | None = None
    not_modified: bool = False  # a GET with If-None-Match found the same object


def parse_url(url: str) -> tuple[str, str]:
    """'obs://bucket/some/key' -> ('bucket', 'some/key'); ValueError when it is not one."""
    match = re.match(r"^obs://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.+)$", url)
    if match is None or match.group(2).endswith("/"):
        raise ValueError(url)
    return match.group(1), match.group(2)


def _path_style(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class ObsClient:
    def __init__(self, endpoint: str, credentials: Credentials, *, verify: bool | str = True,
                 connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 max_retries: int = 4, backoff_base: float = 0.2, backoff_max: float = 5.0,
                 session: requests.Session | None = None, deadline: float | None = None,
                 transfer_seconds: float = TRANSFER_SECONDS) -> None:
        import requests

        split = urlsplit(endpoint.rstrip("/"))
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(endpoint)
        self.endpoint = endpoint.rstrip("/")
        self._host = split.hostname
        self._scheme = split.scheme
        self._netloc = split.netloc
        self._path_style = _path_style(split.hostname)
        self._credentials = credentials
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # time.monotonic() by which every request must be over (the run's); None: no bound
        # but each try's own.
        self.deadline = deadline
        self.transfer_seconds = transfer_seconds
        self._own_session = session is None
        self._session = session or requests.Session()
        self._session.verify = verify
        self._session.trust_env = False  # a proxy from the environment would bypass the endpoint
        self.requests_sent = 0

    def close(self) -> None:
        if self._own_session:
            self._session.close()

    # -- addressing and signing ------------------------------------------------------------

    def url_for(self, bucket: str, key: str) -> str:
        encoded = quote(key, safe="/~")
        if self._path_style:
            return f"{self._scheme}://{self._netloc}/{bucket}/{encoded}"
        return f"{self._scheme}://{bucket}.{self._netloc}/{encoded}"

    def _signed(self, method: str, bucket: str, key: str,
                headers: Mapping[str, str]) -> dict[str, str]:
        signed = dict(headers)
        signed["Date"] = formatdate(usegmt=True)  # signed afresh on every try
        token = self._credentials.security_token
        if token is not None:
            signed[signature.SECURITY_TOKEN] = token.reveal()
        resource = f"/{bucket}/{quote(key, safe='/~')}"
        text = signature.string_to_sign(method, resource, signed)
        signed["Authorization"] = signature.authorization(
            self._credentials.ak.reveal(), self._credentials.sk.reveal(), text)
        return signed

    # -- the calls ---------------------------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's ETag and size, or None when there is no such object."""

        def attempt() -> ObjectInfo | None:
            with self._request("HEAD", bucket, key, {}, ok=(200, 404)) as response:
                if response.status == 404:
                    return None
                return _info(response)

        return self._retrying("HEAD", bucket, key, attempt)

    def get_to_file(self, bucket: str, key: str, path: Path, *,
                    if_none_match: str | None = None, inflate: bool = False
                    ) -> ObjectInfo | None:
        """Download into `path` (replaced only once complete). None: no such object;
        `not_modified`: the object still has the ETag `if_none_match` (nothing written).

        `inflate`: a gzip body (it starts with gzip's magic bytes) is written inflated, as
        it arrives; any other body as it is. Length and ETag are checked on the bytes that
        came over the wire."""
        headers = {"If-None-Match": if_none_match} if if_none_match else {}
        part = path.with_name(path.name + ".part")

        def attempt() -> ObjectInfo | None:
            with self._request("GET", bucket, key, headers, ok=(200, 304, 404),
                               transfer=True) as response:
                if response.status == 404:
                    return None
                info = _info(response)
                if response.status == 304:
                    return ObjectInfo(info.etag or if_none_match, info.size, not_modified=True)
                md5 = hashlib.md5(usedforsecurity=False)
                received = 0
                inflater: Any = None
                with part.open("wb") as out:
                    for chunk in response.stream(CHUNK, decode_content=False):
                        md5.update(chunk)
                        received += len(chunk)
                        if inflater is None and inflate and chunk[:2] == GZIP_MAGIC:
                            inflater = zlib.decompressobj(wbits=31)
                        if inflater is not None:
                            _inflate_into(out, inflater, chunk)
                        else:
                            out.write(chunk)
                    if inflater is not None:
                        out.write(inflater.flush())
                        if not inflater.eof:
                            raise _Transient("the gzip body ended early")
                if info.size is not None and received != info.size:
                    raise _Transient(f"body ended after {received} of {info.size} bytes")
                etag = (info.etag or "").strip('"')
                if re.fullmatch(r"[0-9a-f]{32}", etag) and md5.hexdigest() != etag:
                    raise _Transient("body does not match its ETag (MD5)")
                _not_cut()
                part.replace(path)
                return ObjectInfo(info.etag, received)

        try:
            return self._retrying("GET", bucket, key, attempt)
        finally:
            part.unlink(missing_ok=True)

    def get_bytes(self, bucket: str, key: str, *, limit: int = 1 << 20
                  ) -> tuple[bytes, ObjectInfo] | None:
        """A small object (a lease) whole; None when there is no such object."""

        def attempt() -> tuple[bytes, ObjectInfo] | None:
            with self._request("GET", bucket, key, {}, ok=(200, 404)) as response:
                if response.status == 404:
                    return None
                data = response.read(limit + 1, decode_content=False)
                if len(data) > limit:
                    raise ObsError(f"obs://{bucket}/{key} is larger than {limit} bytes; "
                                   "it is not an object drs-report wrote", status=200)
                info = _info(response)
                if info.size is not None and len(data) != info.size:
                    raise _Transient(f"body ended after {len(data)} of {info.size} bytes")
                _not_cut()
                return data, info

        return self._retrying("GET", bucket, key, attempt)

    def put_file(self, bucket: str, key: str, path: Path, *,
                 content_type: str = "application/octet-stream") -> ObjectInfo:
        """Upload `path` as it is on disk, streamed; OBS checks it against its Content-MD5."""
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                md5.update(chunk)
                size += len(chunk)
        headers = {"Content-Type": content_type, "Content-Length": str(size),
                   "Content-MD5": base64.b64encode(md5.digest()).decode()}

        def attempt() -> ObjectInfo:
            with path.open("rb") as body, self._request("PUT", bucket, key, headers, ok=(200,),
                                                        data=body, transfer=True) as response:
                return ObjectInfo(_info(response).etag, size)

        return self._retrying("PUT", bucket, key, attempt)

    def put_bytes(self, bucket: str, key: str, data: bytes, *,
                  content_type: str = "application/json") -> ObjectInfo:
        headers = {"Content-Type": content_type,
                   "Content-MD5": base64.b64encode(
                       hashlib.md5(data, usedforsecurity=False).digest()).decode()}

        def attempt() -> ObjectInfo:
            with self._request("PUT", bucket, key, headers, ok=(200,), data=data) as response:
                return ObjectInfo(_info(response).etag, len(data))

        return self._retrying("PUT", bucket, key, attempt)

    def delete(self, bucket: str, key: str) -> None:
        def attempt() -> None:
            with self._request("DELETE", bucket, key, {}, ok=(200, 204, 404)):
                return None

        self._retrying("DELETE", bucket, key, attempt)

    # -- plumbing ------------------------------------------------------------------------------

    def _retrying(self, method: str, bucket: str, key: str, attempt: Callable[[], T]
                  ) -> T:
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
            except _Transient as e:
                why = str(e)
            if tries > self.max_retries:
                raise ObsError(f"{method} obs://{bucket}/{key} failed after {tries} tries: "
                               f"{why}; check store.obs_endpoint and the network") from None
            ceiling = min(self.backoff_max, self.backoff_base * 2 ** (tries - 1))
            delay = random.uniform(ceiling / 2, ceiling)
            if self.deadline is not None and time.monotonic() + delay >= self.deadline:
                raise ObsError(f"{method} obs://{bucket}/{key} failed: {why}; the run's time "
                               "was up before another try") from None
            log.info("OBS %s obs://%s/%s: %s; retrying in %.1fs", method, bucket, key, why,
                     delay)
            time.sleep(delay)

    def _try_deadline(self, method: str, bucket: str, key: str, transfer: bool) -> float:
        connect, read = self.timeout
        deadline = time.monotonic() + (self.transfer_seconds if transfer else connect + read)
        if self.deadline is not None:
            if self.deadline <= time.monotonic():
                raise ObsError(f"{method} obs://{bucket}/{key} not sent: the run's time was "
                               "up")
            deadline = min(deadline, self.deadline)
        return deadline

    @contextmanager
    def _request(self, method: str, bucket: str, key: str, headers: Mapping[str, str], *,
                 ok: tuple[int, ...], transfer: bool = False,
                 data: bytes | IO[bytes] | None = None) -> Iterator[BaseHTTPResponse]:
        """One try, over by its deadline: the answer's status checked, its body (read by
        the caller inside the block) cut at the deadline; network failures as _Transient
        (TLS ones as ObsError: trying again cannot help)."""
        import urllib3

        url = self.url_for(bucket, key)
        signed = self._signed(method, bucket, key, headers)
        deadline = self._try_deadline(method, bucket, key, transfer)
        connect, read = self.timeout
        left = deadline - time.monotonic()
        self.requests_sent += 1
        pool = wire.pool_for(self._session, url)
        response: BaseHTTPResponse | None = None
        complete = False
        with wire.watching(deadline) as watch:
            try:
                response = pool.urlopen(
                    method, urlsplit(url).path, body=data, headers=signed, retries=False,
                    redirect=False, preload_content=False, assert_same_host=False,
                    timeout=urllib3.Timeout(connect=min(connect, left),
                                            read=min(read, left)))
                _not_cut()  # headers cut short read as a whole head
                status = response.status
                body = b""
                if status not in ok or status == 404:
                    try:
                        body = response.read(MAX_ERROR_BODY, decode_content=True) \
                            if method != "HEAD" else b""
                    except Exception:  # the error body is a courtesy; its status says enough
                        body = b""
                    _not_cut()
                code = _xml_field(body, "Code") or response.headers.get("x-obs-error-code")
                # A missing object is an answer; a missing bucket is a configuration error.
                if status in ok and not (status == 404 and code == "NoSuchBucket"):
                    yield response
                    _not_cut()
                    complete = method == "HEAD" or status in (204, 304) or \
                        response.length_remaining == 0
                    return
                message = _xml_field(body, "Message") or \
                    response.headers.get("x-obs-error-message")
                self._refused(method, bucket, key, status, code, message)
            except (urllib3.exceptions.HTTPError, HTTPException, ConnectionError,
                    TimeoutError) as e:
                raise self._network_failure(e, watch, left) from None
            finally:
                watch.cancel()  # before the connection goes back to the pool
                if response is not None:
                    if not complete:
                        response.close()  # close, never drain: the rest may be endless
                    response.release_conn()

    def _network_failure(self, error: BaseException, watch: wire.Watch,
                         left: float) -> Exception:
        connect, read = self.timeout
        if watch.fired:
            return _Transient(f"no complete answer from {self._host} within "
                              f"{round(left, 1):g}s (deadline)")
        failure = wire.classify(error, self._host, connect_timeout=min(connect, left),
                                read_timeout=min(read, left))
        if failure.kind in ("tls", "tls_untrusted"):
            return ObsError(f"TLS failed for {self.endpoint} ({failure}); check "
                            "store.obs_endpoint and drs.ca_bundle")
        return _Transient(str(failure))

    def _refused(self, method: str, bucket: str, key: str, status: int, code: str | None,
                 message: str | None) -> None:
        if status in RETRIED_STATUSES:
            raise _Transient(f"HTTP {status} {code or ''}".strip())
        where = f"obs://{bucket}/{key}"
        detail = f"HTTP {status} {code or ''}{': ' + message if message else ''}".strip()
        if status == 403 and code in ("SignatureDoesNotMatch", "InvalidAccessKeyId"):
            fix = ("check the AK/SK (the function's agency, or HUAWEICLOUD_SDK_AK/SK) and the "
                   "security token")
        elif status == 403 and code == "RequestTimeTooSkewed":
            fix = "check that this machine's clock is right (within 15 minutes)"
        elif status == 403:
            fix = (f"the agency or IAM user needs {PERMISSIONS.get(method, method)} on bucket "
                   f"{bucket} (IAM policy or bucket policy)")
        elif status == 404:
            fix = f"bucket {bucket} does not exist in this region; create it or fix store.sync"
        elif 300 <= status < 400:
            fix = ("OBS redirected the request: the bucket is in another region; set "
                   "store.obs_endpoint to that region's endpoint")
        else:
            fix = "check store.sync and store.obs_endpoint"
        raise ObsError(logs.redact(f"{method} {where} refused: {detail}; {fix}"),
                       status=status, code=code)


def _inflate_into(out: IO[bytes], inflater: Any, chunk: bytes) -> None:
    """One chunk inflated into `out`, at most 4 chunks' worth in memory at a time (a gzip
    bomb stays bounded in memory; on disk /tmp bounds it, and the sync fails)."""
    out.write(inflater.decompress(chunk, 4 * CHUNK))
    while inflater.unconsumed_tail:
        out.write(inflater.decompress(inflater.unconsumed_tail, 4 * CHUNK))


class _Transient(Exception):
    """A failure worth another try: 5xx, a body cut short."""


def _not_cut() -> None:
    """Raise if this thread's request was cut at its deadline (wire.py): a body without a
    length, or a head, then reads as complete."""
    if wire.cut():
        raise ConnectionAbortedError("cut at the deadline")


def _info(response: BaseHTTPResponse) -> ObjectInfo:
    length = response.headers.get("Content-Length")
    return ObjectInfo(response.headers.get("ETag"),
                      int(length) if length and length.isdigit() else None)


def _xml_field(body: bytes, name: str) -> str | None:
    # OBS's error bodies are flat XML; a regex reads them without an XML parser's entity
    # expansion, on a body that is already size-limited.
    match = re.search(rf"<{name}>([^<]{{0,500}})</{name}>".encode(), body)
    return " ".join(match.group(1).decode("utf-8", "replace").split()) if match else None


def default_endpoint(region: str) -> str:
    return f"https://obs.{region}.myhuaweicloud.com"


def verify_setting(verify_tls: bool, ca_bundle: str | None) -> bool | str:
    """requests' `verify` from the [drs] keys (one TLS policy for every endpoint we call)."""
    if ca_bundle:
        return os.fspath(ca_bundle)
    return verify_tls
