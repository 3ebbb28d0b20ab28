"""Who may read the archive: a bearer token, or a signed link that expires.

    Authorization: Bearer <web.token>
    /reports/17?expires=<unix seconds>&signature=<base64url HMAC-SHA256>

The signature is HMAC-SHA256 with `web.link_secret` over "<path>\\n<expires>", so a link
opens one path until its expiry, and changing either breaks it. Digests and alerts carry
such links when `web.base_url` is set (`report_link`, `job_link`). Every refusal is the same
401: it says nothing about which part was wrong. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from drs_report.config import WebConfig
from drs_report.secrets import Secret
from drs_report.web.http import HttpError, Request

EXPIRES = "expires"
SIGNATURE = "signature"


@dataclass(frozen=True)
class Access:
    """How a request was let in; a link's expiry carries over to the links on its page."""

    by: str  # "token" | "link"
    expires: int | None = None


def _signature(secret: Secret, path: str, expires: int) -> str:
    mac = hmac.new(secret.reveal().encode(), f"{path}\n{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def signed_query(secret: Secret, path: str, expires: int) -> str:
    return urlencode({EXPIRES: str(expires), SIGNATURE: _signature(secret, path, expires)})


def signed_path(secret: Secret, path: str, expires: int) -> str:
    return f"{path}?{signed_query(secret, path, expires)}"


def link_for(web: WebConfig, path: str, *, now: float | None = None) -> str | None:
    """An absolute signed link to `path` valid for web.link_expiry_hours, if links are on."""
    if web.base_url is None or web.link_secret is None:
        return None
    expires = int((time.time() if now is None else now) + web.link_expiry_hours * 3600)
    return web.base_url + signed_path(web.link_secret, path, expires)


def report_link(web: WebConfig, run_id: int | None = None, *, now: float | None = None
                ) -> str | None:
    """"Open the full report": one run's stored HTML, or the latest one."""
    return link_for(web, f"/reports/{run_id}" if run_id is not None else "/reports/latest",
                    now=now)


def job_link(web: WebConfig, job_id: str, *, now: float | None = None) -> str | None:
    """"Open this job": its page with 7 days of delay and progress."""
    return link_for(web, f"/jobs/{quote(job_id, safe='')}", now=now)


def unauthorized() -> HttpError:
    return HttpError(401, "unauthorized", **{"WWW-Authenticate": 'Bearer realm="drs-report"'})


def authorize(request: Request, web: WebConfig, *, now: float | None = None) -> Access:
    """The archive's gate: a valid bearer token or a valid, unexpired signed link."""
    header = request.header("authorization") or ""
    scheme, _, value = header.partition(" ")
    if web.token is not None and scheme.lower() == "bearer" and value.strip():
        if hmac.compare_digest(value.strip().encode(), web.token.reveal().encode()):
            return Access("token")
        raise unauthorized()
    expires_text, signature = request.arg(EXPIRES), request.arg(SIGNATURE)
    if web.link_secret is not None and expires_text and signature:
        if not expires_text.isdigit() or len(expires_text) > 12:
            raise unauthorized()
        expires = int(expires_text)
        expected = _signature(web.link_secret, request.path, expires)
        valid = hmac.compare_digest(signature.encode(), expected.encode())
        if valid and expires >= (time.time() if now is None else now):
            return Access("link", expires)
    raise unauthorized()
