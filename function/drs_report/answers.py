"""What servers send back, decoded once where it enters: JSON with a depth bound, secrets masked.

Used by the DRS client and by every channel, so nothing downstream (the parsers, the store,
the renderer, an error message quoting a vendor) has to think about two hazards:

- Depth. `json.loads` raises RecursionError on an answer nested 100,000 deep, and one nested
  a few hundred deep decodes but breaks whatever walks it later (json.dumps into the store,
  repr in a message). DRS answers are five levels deep; past MAX_DEPTH an answer is malformed.
- Echoed credentials. Gateways and WAFs quote the request in their error text (the
  Authorization header with the AK, X-Security-Token). Every string of the decoded answer,
  keys included, has each registered secret replaced by `***`.
- Lone surrogates. JSON may spell half a UTF-16 pair (`"\\ud800"`), and json.loads keeps it
  as a code point no UTF-8 encoder accepts: the report files, the email and every chat body
  would fail to encode. Each one becomes U+FFFD (a proper pair is one character already).

All need a walk over the decoded value, so it is taken only when it can matter: when the
body holds more brackets than MAX_DEPTH (it might be that deep), might hold a registered
secret (a substring search over the bytes, `logs.may_hide_secret`) or a surrogate (a
`\\uD800`-`\\uDFFF` escape, or those code points as raw CESU-8 bytes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from drs_report import logs

MAX_DEPTH = 32
# A surrogate escape or its raw bytes (json.loads decodes bytes with "surrogatepass").
_MAY_HOLD_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedAnswer(ValueError):
    """The body is not usable JSON; the message says why in a few words."""


def decode_json(content: bytes) -> Any:
    """The decoded body with registered secrets masked, or MalformedAnswer."""
    if not content.strip():
        raise MalformedAnswer("empty body")
    try:
        data = json.loads(content)
    except RecursionError:
        raise MalformedAnswer(f"JSON nested more than {MAX_DEPTH} levels deep") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        head = content[:40].decode("utf-8", "replace").strip().lower()
        raise MalformedAnswer("an HTML page" if head.startswith(("<!doctype", "<html"))
                              else "not JSON") from None
    mask = logs.may_hide_secret(content)
    surrogates = _MAY_HOLD_SURROGATE.search(content) is not None
    if mask or surrogates or content.count(b"[") + content.count(b"{") > MAX_DEPTH:
        data = _walk(data, clean=_cleaner(mask=mask, surrogates=surrogates))
    return data


def replace_surrogates(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so it encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def _cleaner(*, mask: bool, surrogates: bool) -> Callable[[str], str] | None:
    redact = logs.redact
    if mask and surrogates:
        return lambda text: redact(replace_surrogates(text))
    if mask:
        return redact
    return replace_surrogates if surrogates else None


def decode_text(content: bytes, limit: int = 200) -> str:
    """A vendor's non-JSON answer as one short line, secrets masked."""
    return logs.redact(" ".join(content[:limit * 4].decode("utf-8", "replace").split()))[:limit]


def _walk(data: Any, *, clean: Callable[[str], str] | None) -> Any:
    """Check the depth and clean strings in place (masked secrets, no lone surrogates),
    without recursion (the depth is hostile)."""
    if isinstance(data, str):
        return clean(data) if clean else data
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedAnswer(f"JSON nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            if clean and any(clean(key) != key for key in node):
                cleaned = {clean(key): value for key, value in node.items()}
                node.clear()
                node.update(cleaned)
            for key, value in node.items():
                if isinstance(value, str):
                    if clean:
                        node[key] = clean(value)
                elif isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str):
                    if clean:
                        node[i] = clean(value)
                elif isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
    return data
