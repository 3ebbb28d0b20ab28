"""HTTP requests that end by a wall-clock deadline, whatever the server does.

urllib3's timeouts bound each socket operation, not a request: an endless chunked body, an
answer dripping a byte every two seconds or endless headers run on for ever under a 30 s
read timeout. Here every request has an absolute deadline. One watchdog thread keeps the
deadlines of the requests in flight; when one passes, it shuts that request's socket down,
which ends a blocked read or write at once. It does so through a duplicate of the socket's
descriptor, taken when the request starts and closed when it ends, so a socket closed by
urllib3 meanwhile cannot have its number reused by another connection under us. The
connection classes below hand their socket to the watch of the request running on their
thread, for new and for reused connections alike.

Also here, because the DRS client and the channels both need them: redirects are never
followed; an answer is read up to a cap and, past it, the connection is closed instead of
drained; every failure is one `WireError` that names its cause and the host (DNS, refused,
unreachable, connect timeout, TLS not trusted, TLS handshake, read timeout, deadline, closed
early), because each has a different fix.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from typing import TYPE_CHECKING, Any

from urllib3.connection import HTTPConnection, HTTPSConnection

if TYPE_CHECKING:
    import requests


class WireError(Exception):
    """One request failed before a whole answer arrived.

    `kind`: dns | refused | unreachable | connect_timeout | tls_untrusted | tls |
    read_timeout | deadline | closed | failed. `transient` says whether trying again can
    help. `handed_over` is True when the whole request, body included, had been written
    before the failure: the server may have acted on it.
    """

    def __init__(self, kind: str, message: str, *, transient: bool,
                 handed_over: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient
        self.handed_over = handed_over


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False  # longer than the cap: cut there, and the connection closed


# -- the watchdog ----------------------------------------------------------------------------


class Watch:
    """The deadline of one request, and the means to end it."""

    __slots__ = ("_fd", "_lock", "deadline", "done", "fired", "handed_over")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self.done = False
        self.handed_over = False
        self._fd = -1  # our duplicate of the socket's descriptor
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            if self.done or self._fd >= 0:
                return
            try:
                self._fd = os.dup(sock.fileno())
            except OSError:
                return
            if self.fired:
                self._shutdown()

    def fire(self) -> None:
        with self._lock:
            if not self.done:
                self.fired = True
                self._shutdown()

    def cancel(self) -> None:
        with self._lock:
            self.done = True
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _shutdown(self) -> None:
        if self._fd >= 0:
            # shutdown() acts on the socket, not the descriptor: every copy sees it.
            sock = socket.socket(fileno=self._fd)
            try:
                with contextlib.suppress(OSError):  # already closed by the peer
                    sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.detach()  # the descriptor stays ours, closed by cancel()


class _Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        with self._cond:
            heap = self._heap
            while heap and heap[0][2].done:  # finished requests, earliest deadlines first
                heapq.heappop(heap)
            heapq.heappush(heap, (watch.deadline, next(self._seq), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="drs-deadlines",
                                                daemon=True)
                self._thread.start()
            elif heap[0][2] is watch:
                self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, watch = self._heap[0]
                if watch.done:
                    heapq.heappop(self._heap)
                    continue
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                watch.fire()

    def reset(self) -> None:
        """In a forked child: the parent's thread and requests are not ours."""
        self._heap = []
        self._cond = threading.Condition()
        self._thread = None


_WATCHDOG = _Watchdog()
_local = threading.local()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG.reset)


def _current() -> Watch | None:
    return getattr(_local, "watch", None)


@contextlib.contextmanager
def watching(deadline: float) -> Iterator[Watch]:
    """Sockets opened or reused on this thread inside the block (see `attach`) are shut
    down when `deadline` (a time.monotonic() value) passes."""
    watch = Watch(deadline)
    _local.watch = watch
    _WATCHDOG.add(watch)
    try:
        yield watch
    finally:
        _local.watch = None
        watch.cancel()


def cut() -> bool:
    """Whether the request running on this thread was cut at its deadline: a body without
    a length then reads as complete, so check before trusting one."""
    watch = _current()
    return watch is not None and watch.fired


def attach(sock: socket.socket) -> None:
    """Put `sock` under the deadline of the request running on this thread, if any."""
    watch = _current()
    if watch is not None:
        watch.attach(sock)


def handed_over() -> None:
    """The request running on this thread has written its whole body."""
    watch = _current()
    if watch is not None:
        watch.handed_over = True


def lookup_in_time(host: str, port: int, timeout: float) -> list[str] | None:
    """The addresses of `host`, looked up on a thread of its own so that the request's time
    bounds the lookup too: getaddrinfo blocks for as long as the resolver retries (5 s per
    try and server by default), and no socket timeout reaches it. None when `host` is an
    address already, or a name the resolver cannot even take (IDNA: the caller's own
    connect then says why).

    Raises WireError("dns") when no answer came within `timeout`, and the resolver's own
    socket.gaierror when it answered "no such name" (never looked up twice, unbounded)."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return None  # an address: nothing to look up
    except OSError:
        pass
    found: list[list[str]] = []
    failed: list[OSError] = []

    def lookup() -> None:
        try:
            found.append(list(dict.fromkeys(
                str(info[4][0]) for info in socket.getaddrinfo(host, port, 0,
                                                               socket.SOCK_STREAM))))
        except OSError as e:
            failed.append(e)
        except UnicodeError:
            pass

    thread = threading.Thread(target=lookup, name="drs-report-dns", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if thread.is_alive():  # left behind: it ends when the resolver gives up, and holds nothing
        raise WireError("dns", f"no DNS answer for {host} within {timeout:.3g}s",
                        transient=True)
    if failed:
        raise failed[0]
    return found[0] if found and found[0] else None


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        watch = _current()
        limit = self.timeout if isinstance(self.timeout, (int, float)) else None
        if watch is not None:
            left = watch.deadline - time.monotonic()
            limit = left if limit is None else min(limit, left)
        addresses = (lookup_in_time(self._dns_host, self.port, limit)
                     if limit is not None else None)
        sock = self._connect_any(addresses) if addresses else super()._new_conn()
        attach(sock)
        return sock

    def _connect_any(self, addresses: list[str]) -> socket.socket:
        """Connect to the looked-up addresses in turn, as urllib3 would to the name's (the
        name still goes into TLS's SNI and the certificate check)."""
        from urllib3.exceptions import ConnectTimeoutError

        name = self._dns_host
        last: ConnectTimeoutError | None = None
        try:
            for address in addresses:
                self._dns_host = address
                try:
                    return super()._new_conn()
                except ConnectTimeoutError as e:  # and NewConnectionError, its subclass
                    last = e
        finally:
            self._dns_host = name
        assert last is not None
        raise last

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection
            attach(self.sock)
        super().request(*args, **kwargs)
        handed_over()


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


def pool_for(session: requests.Session, url: str) -> Any:
    """The session's own urllib3 pool for `url`, set up as requests would, deadline-aware.

    Going to the pool directly skips requests' per-request preparation (settings merge,
    hooks, cookie jars), which costs more CPU than the signing and the HTTP together.
    """
    from requests.adapters import HTTPAdapter
    from requests.utils import DEFAULT_CA_BUNDLE_PATH
    from urllib3.connectionpool import HTTPSConnectionPool

    adapter = session.get_adapter(url)
    if not isinstance(adapter, HTTPAdapter):
        raise TypeError(f"the session's adapter for {url.split('://')[0]} must be an "
                        "HTTPAdapter")
    verify = session.verify
    if verify is False:
        pool_kwargs: dict[str, Any] = {"cert_reqs": "CERT_NONE"}
    else:
        bundle = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
        pool_kwargs = {"cert_reqs": "CERT_REQUIRED", "ca_certs": bundle}
    pool = adapter.poolmanager.connection_from_url(url, pool_kwargs=pool_kwargs)
    pool.ConnectionCls = (_WatchedHTTPSConnection if isinstance(pool, HTTPSConnectionPool)
                          else _WatchedHTTPConnection)
    return pool


# -- one request -----------------------------------------------------------------------------


def send(pool: Any, method: str, path: str, *, body: bytes | None,
         headers: Mapping[str, str], host: str, connect_timeout: float,
         read_timeout: float, deadline: float, max_bytes: int) -> Answer:
    """One request on `pool`, over by `deadline` (a time.monotonic() value), no redirects.

    Raises WireError; any other exception is a bug and propagates.
    """
    import urllib3

    left = deadline - time.monotonic()
    if left <= 0:
        raise WireError("deadline", f"no time was left for a request to {host}",
                        transient=True)
    response = None
    keep = False
    with watching(deadline) as watch:
        try:
            response = pool.urlopen(
                method, path, body=body or None, headers=headers, retries=False,
                redirect=False, preload_content=False, assert_same_host=False,
                timeout=urllib3.Timeout(connect=min(connect_timeout, left),
                                        read=min(read_timeout, left)))
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                # Said up front: not a byte of it is worth reading.
                return Answer(response.status, response.headers, b"", truncated=True)
            content = response.read(max_bytes + 1, decode_content=True)
            if watch.fired:  # a body without a length reads as complete when we cut it
                raise ConnectionAbortedError("cut at the deadline")
            if len(content) > max_bytes:
                return Answer(response.status, response.headers, bytes(content[:max_bytes]),
                              truncated=True)
            keep = True
            return Answer(response.status, response.headers, bytes(content))
        except (urllib3.exceptions.HTTPError, OSError, HTTPException) as e:
            if watch.fired:
                raise WireError("deadline", f"no complete answer from {host} within "
                                            f"{round(left, 1):g}s", transient=True,
                                handed_over=watch.handed_over) from None
            raise classify(e, host, connect_timeout=min(connect_timeout, left),
                           read_timeout=min(read_timeout, left),
                           handed_over=watch.handed_over) from None
        finally:
            watch.cancel()  # before the connection goes back to the pool for others
            if response is not None:
                if not keep:
                    response.close()  # close, never drain: the rest may be endless
                response.release_conn()


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and every error it wraps (causes, contexts, urllib3's reasons and args)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__, getattr(e, "reason", None),
                                *e.args) if isinstance(x, BaseException))


_WRONG_PROTOCOL = ("WRONG_VERSION_NUMBER", "wrong version number", "PACKET_LENGTH_TOO_LONG",
                   "packet length too long", "record layer failure", "HTTP_REQUEST",
                   "http request")


def classify(error: BaseException, host: str, *, connect_timeout: float,
             read_timeout: float, handed_over: bool = False) -> WireError:
    """One line naming the cause and the host, and whether trying again can help."""
    from urllib3 import exceptions as ux

    chain = list(_chain(error))

    def has(*types: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, types)), None)

    if has(ux.NameResolutionError, socket.gaierror):
        return WireError("dns", f"cannot resolve {host} (DNS lookup failed)", transient=True)
    untrusted = has(ssl.SSLCertVerificationError)
    if untrusted is not None:
        detail = getattr(untrusted, "verify_message", None) or str(untrusted)
        return WireError("tls_untrusted", f"the TLS certificate of {host} is not trusted "
                                          f"({detail})", transient=False)
    tls = has(ssl.SSLError, ux.SSLError)
    if tls is not None:
        text = " ".join(str(e) for e in chain)
        if any(marker in text for marker in _WRONG_PROTOCOL):
            return WireError("tls", f"TLS handshake with {host} failed: the server does not "
                                    "speak TLS there (an http:// endpoint?)", transient=False)
        if has(ssl.SSLEOFError) or "UNEXPECTED_EOF" in text or "EOF occurred" in text:
            return WireError("tls", f"TLS with {host} failed: the server closed the "
                                    "connection during the handshake (not a TLS port?)",
                             transient=True)
        reason = getattr(tls, "reason", None) or type(tls).__name__
        return WireError("tls", f"TLS with {host} failed ({reason})", transient=True)
    if has(ConnectionRefusedError):
        return WireError("refused", f"{host} refused the connection (nothing listens there)",
                         transient=True)
    if has(ux.NewConnectionError):
        unreachable = next((e for e in chain if isinstance(e, OSError) and e.errno), None)
        if unreachable is not None and not isinstance(unreachable, TimeoutError):
            return WireError("unreachable", f"cannot connect to {host} "
                                            f"({unreachable.strerror or unreachable})",
                             transient=True)
        if has(socket.timeout, TimeoutError) is None:
            return WireError("unreachable", f"cannot connect to {host}", transient=True)
    if has(ux.ConnectTimeoutError):
        return WireError("connect_timeout", f"no connection to {host} within "
                                            f"{connect_timeout:.3g}s (connect timeout)",
                         transient=True)
    if has(ux.ReadTimeoutError, socket.timeout, TimeoutError):
        return WireError("read_timeout", f"{host} sent nothing for {read_timeout:.3g}s "
                                         "(read timeout)", transient=True,
                         handed_over=handed_over)
    if has(ux.ProtocolError, HTTPException, ConnectionError):
        return WireError("closed", f"{host} closed the connection before a whole answer "
                                   "arrived", transient=True, handed_over=handed_over)
    return WireError("failed", f"the request to {host} failed ({type(error).__name__})",
                     transient=True, handed_over=handed_over)
