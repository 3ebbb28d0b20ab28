"""What servers send back, decoded once where it enters: JSON with a depth bound, secrets masked.

Used by the DRS client and by every channel, so nothing downstream (the parsers, the store,
the renderer, an error message quoting a vendor) has to think about two hazards:

- Depth. `json.loads` raises RecursionError on an answer nested 100,000 deep, and one nested
  a few hundred deep decodes but breaks whatever walks it later (json.dumps into the store,
  repr in a message). DRS answers are five levels deep; past MAX_DEPTH an answer is malformed.
- Echoed credentials. Gateways and WAFs quote the request in their error text (the
  Authorization header with the AK, X-Security-Token). Every string of the decoded answer,
  keys included, has each registered secret replaced by `***`.

Both need a walk over the decoded value, so it is taken only when it can matter: when the
body holds more brackets than MAX_DEPTH (it might be that deep) or might hold a registered
secret (a substring search over the bytes, `logs.may_hide_secret`).
"""

from __future__ import annotations

import json
from typing import Any

from drs_report import logs

MAX_DEPTH = 32


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
    if mask or content.count(b"[") + content.count(b"{") > MAX_DEPTH:
        data = _walk(data, mask=mask)
    return data


def decode_text(content: bytes, limit: int = 200) -> str:
    """A vendor's non-JSON answer as one short line, secrets masked."""
    return logs.redact(" ".join(content[:limit * 4].decode("utf-8", "replace").split()))[:limit]


def _walk(data: Any, *, mask: bool) -> Any:
    """Check the depth and mask strings in place, without recursion (the depth is hostile)."""
    redact = logs.redact
    if isinstance(data, str):
        return redact(data) if mask else data
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedAnswer(f"JSON nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            if mask and any(redact(key) != key for key in node):
                masked = {redact(key): value for key, value in node.items()}
                node.clear()
                node.update(masked)
            for key, value in node.items():
                if isinstance(value, str):
                    if mask:
                        node[key] = redact(value)
                elif isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if isinstance(value, str):
                    if mask:
                        node[i] = redact(value)
                elif isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
    return data
