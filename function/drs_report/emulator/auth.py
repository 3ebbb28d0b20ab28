"""Checks SDK-HMAC-SHA256 signatures the way the API gateway does.

Written from the signing scheme (canonical request -> string to sign -> HMAC-SHA256 with the
SK), so that a client which signs wrongly fails here as it would against the real service.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = timedelta(minutes=15)
_AUTH_RE = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]+)$"
)


class SignatureError(Exception):
    """Why a request was refused; `error_code` is the gateway's (APIG.0301 and friends)."""

    def __init__(self, message: str, error_code: str = "APIG.0301") -> None:
        self.error_code = error_code
        super().__init__(message)


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_request(
    method: str, path: str, query: str, headers: Mapping[str, str], signed: list[str],
    body: bytes,
) -> str:
    segments = [_encode(s) for s in unquote(path).split("/")]
    uri = "/".join(segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in pairs)
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    canonical_headers = "".join(f"{name}:{lower.get(name, '')}\n" for name in signed)
    payload_hash = hashlib.sha256(body).hexdigest()
    return "\n".join([method.upper(), uri, canonical_query, canonical_headers,
                      ";".join(signed), payload_hash])


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    keys: Mapping[str, str],
    security_token: str | None = None,
    now: datetime | None = None,
) -> str:
    """Return the access key of a correctly signed request, else raise SignatureError."""
    lower = {k.lower(): v for k, v in headers.items()}
    match = _AUTH_RE.match(lower.get("authorization", "").strip())
    if match is None:
        raise SignatureError("Incorrect IAM authentication information: Authorization header "
                             "missing or not SDK-HMAC-SHA256")
    access, signed_text, signature = match.groups()
    if access not in keys:
        raise SignatureError("Incorrect IAM authentication information: unknown access key")
    signed = signed_text.split(";")
    if "x-sdk-date" not in signed or "host" not in signed:
        raise SignatureError("Incorrect IAM authentication information: host and x-sdk-date "
                             "must be signed")
    try:
        stamp = datetime.strptime(lower.get("x-sdk-date", ""), DATE_FORMAT).replace(
            tzinfo=timezone.utc)
    except ValueError:
        raise SignatureError("Incorrect IAM authentication information: bad X-Sdk-Date") from None
    current = now or datetime.now(timezone.utc)
    if abs(current - stamp) > MAX_SKEW:
        raise SignatureError("Incorrect IAM authentication information: verify aksk signature "
                             "fail, X-Sdk-Date is more than 15 minutes from the server's clock")
    if security_token is not None and (
        lower.get("x-security-token") != security_token or "x-security-token" not in signed
    ):
        raise SignatureError("Incorrect IAM authentication information: security token "
                             "missing, wrong or not signed")
    canonical = canonical_request(method, path, query, headers, signed, body)
    string_to_sign = "\n".join([ALGORITHM, lower["x-sdk-date"],
                                hashlib.sha256(canonical.encode()).hexdigest()])
    expected = hmac.new(keys[access].encode(), string_to_sign.encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), signature):
        raise SignatureError("Incorrect IAM authentication information: verify aksk signature "
                             "fail")
    return access
