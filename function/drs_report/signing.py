"""SDK-HMAC-SHA256 request signing through huaweicloudsdkcore (the SDK signs; we never do).

Used by the DRS client and by the SMN channel: both hand over method, URL, headers and body,
and get back the headers to send (Authorization, X-Sdk-Date, Host, X-Project-Id and, for
temporary credentials, X-Security-Token).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from drs_report.secrets import Credentials

SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


class RequestSigner:
    """Signs requests for one project with one set of credentials.

    The SDK's credential object is built once: it is what costs, not the HMAC.
    """

    def __init__(self, credentials: Credentials, project_id: str | None) -> None:
        from huaweicloudsdkcore.auth.credentials import BasicCredentials

        creds = BasicCredentials(credentials.ak.reveal(), credentials.sk.reveal(), project_id)
        if credentials.security_token is not None:
            creds = creds.with_security_token(credentials.security_token.reveal())
        self._credentials = creds

    def sign(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        query: Sequence[tuple[str, Any]] = (),
        body: bytes = b"",
        now: datetime | None = None,
    ) -> dict[str, str]:
        """The headers to send with this request, Authorization included.

        `url` carries scheme, host and path; `query` is the query as (name, value) pairs, so
        the signature covers exactly what is sent. We set X-Sdk-Date ourselves (the SDK's
        fallback uses the deprecated datetime.utcnow()).
        """
        from huaweicloudsdkcore.sdk_request import SdkRequest

        parts = urlsplit(url)
        header_params = dict(headers or {})
        stamp = (now or datetime.now(timezone.utc)).strftime(SDK_DATE_FORMAT)
        header_params["X-Sdk-Date"] = stamp
        request = SdkRequest(
            method=method.upper(),
            schema=parts.scheme,
            host=parts.netloc,
            resource_path=parts.path or "/",
            query_params=list(query),
            header_params=header_params,
            body=body,
        )
        signed = self._credentials.sign_request(request)
        return {str(k): str(v) for k, v in signed.header_params.items()}
