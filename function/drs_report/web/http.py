"""The HTTP vocabulary of the web side: a request, a response, and the errors routes raise.

Both ways of serving (WSGI for `drs-report serve`, the APIG adapter in FunctionGraph) turn
what they receive into a `Request` and send a `Response` back, so the application never sees
which one carried it. Every response gets the security headers here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

# Pages are server-rendered with no script, no font, no external anything: the policy allows
# only what a page carries inline. Route-specific policies widen it where a page needs more.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # names lower-case
    body: bytes = b""
    remote: str = ""
    received_at: float = 0.0  # time.monotonic() when it arrived (Slack's 3 s count from here)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (Slack's slash commands)."""
        text = self.body.decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise HttpError(400, "the body is not JSON") from None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, text: str, **headers: str) -> Response:
        return cls(status, text.encode("utf-8"),
                   {"Content-Type": "text/plain; charset=utf-8", **headers})

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8"})

    @classmethod
    def html(cls, html: str, *, status: int = 200, csp: str = DEFAULT_CSP) -> Response:
        return cls(status, html.encode("utf-8"),
                   {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": csp})

    def secured(self) -> Response:
        """The headers every answer carries, whatever route made it."""
        self.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
        self.headers.setdefault("X-Content-Type-Options", "nosniff")
        # Signed links carry their key in the query string: never hand them on as a Referer.
        self.headers.setdefault("Referrer-Policy", "no-referrer")
        self.headers.setdefault("X-Frame-Options", "DENY")
        self.headers.setdefault("Cache-Control", "no-store")
        self.headers["Content-Length"] = str(len(self.body))
        return self


class HttpError(Exception):
    """A route's refusal: the status and one line for the person or bot that asked."""

    def __init__(self, status: int, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def response(self) -> Response:
        return Response.text(self.status, self.message + "\n", **self.headers)


REASONS = {
    200: "OK", 302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
}
