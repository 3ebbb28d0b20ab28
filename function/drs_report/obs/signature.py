"""The OBS header signature (obs_04_0010), for the client and the emulator alike.

    Authorization: OBS <AK>:Base64(HMAC-SHA1(SK, StringToSign))
    StringToSign = VERB \\n Content-MD5 \\n Content-Type \\n Date \\n
                   CanonicalizedHeaders  (x-obs-* lower-case, sorted, "name:value\\n")
                   CanonicalizedResource (/bucket/object, then sorted sub-resources)

With an `x-obs-date` header the Date line is empty. Temporary credentials add
`x-obs-security-token`, which is signed like any other x-obs-* header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

HEADER_PREFIX = "x-obs-"
SECURITY_TOKEN = "x-obs-security-token"
# Query parameters that name a sub-resource and so take part in the signature; the few an
# object store client uses (the documented list is longer, and none of the rest is ours).
SUB_RESOURCES = frozenset({"acl", "uploads", "uploadid", "partnumber", "versionid", "delete",
                           "append", "position", "metadata", "tagging"})


def string_to_sign(method: str, resource: str, headers: Mapping[str, str],
                   query: Iterable[tuple[str, str]] = ()) -> str:
    """The text OBS signs for a request to `resource` ("/bucket/key", URL-encoded as sent)."""
    lower: dict[str, str] = {}
    for name, value in headers.items():
        lower[name.lower()] = str(value)
    obs_headers = sorted((name, value.strip()) for name, value in lower.items()
                         if name.startswith(HEADER_PREFIX))
    date = "" if f"{HEADER_PREFIX}date" in lower else lower.get("date", "")
    lines = [method.upper(), lower.get("content-md5", ""), lower.get("content-type", ""),
             date]
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in obs_headers)
    subs = sorted((k, v) for k, v in query if k.lower() in SUB_RESOURCES)
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    return "\n".join(lines) + "\n" + canonical_headers + resource


def signature(secret_key: str, text: str) -> str:
    digest = hmac.new(secret_key.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def authorization(access_key: str, secret_key: str, text: str) -> str:
    return f"OBS {access_key}:{signature(secret_key, text)}"
