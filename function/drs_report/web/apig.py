"""FunctionGraph's APIG trigger: the event becomes a Request, the Response an APIG answer.

The event carries `httpMethod`, `path`, `headers` (lower-case), `queryStringParameters`,
`body` and `isBase64Encoded` (true by default: the body arrives base64-encoded). APIG wants
back exactly {"statusCode", "headers", "body", "isBase64Encoded"} or it answers 500; the body
goes back base64-encoded, so any bytes survive. One App is kept per warm instance.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from pathlib import Path
from typing import Any

from drs_report import environment, logs
from drs_report.web.http import HttpError, Request, Response

log = logs.get_logger("web.apig")

_apps: dict[tuple[str, float], Any] = {}
_apps_lock = threading.Lock()


def is_apig_event(event: Any) -> bool:
    return isinstance(event, dict) and "httpMethod" in event and "path" in event


def request_from_event(event: dict[str, Any], *, max_body_bytes: int) -> Request:
    received = time.monotonic()
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query: dict[str, list[str]] = {}
    for key, value in (event.get("queryStringParameters") or {}).items():
        values = value if isinstance(value, list) else [value]
        query[str(key)] = [str(v) for v in values]
    raw = event.get("body") or ""
    encoded = event.get("isBase64Encoded", True) is not False
    if not isinstance(raw, str):
        raise HttpError(400, "the body is not text")
    # Refuse before decoding: a 4 MB APIG body is not ours to hold twice.
    if len(raw) > (max_body_bytes * 4 // 3 + 4 if encoded else max_body_bytes * 4):
        raise HttpError(413, "request body too large")
    try:
        body = base64.b64decode(raw, validate=True) if encoded else raw.encode("utf-8")
    except (binascii.Error, ValueError):
        raise HttpError(400, "the body is not base64 although isBase64Encoded is true") from None
    if len(body) > max_body_bytes:
        raise HttpError(413, "request body too large")
    from urllib.parse import unquote

    return Request(method=str(event.get("httpMethod", "GET")).upper(),
                   path=unquote(str(event.get("path") or "/")), query=query, headers=headers,
                   body=body, remote=str((event.get("requestContext") or {}).get("sourceIp", "")),
                   received_at=received)


def answer(response: Response) -> dict[str, Any]:
    return {"statusCode": response.status, "headers": dict(response.headers),
            "body": base64.b64encode(response.body).decode("ascii"), "isBase64Encoded": True}


def _config_path(environ: Any, code_dir: Path | None) -> Path | None:
    named = environ.get(environment.CONFIG_PATH)
    base = code_dir or Path.cwd()
    if named:
        path = Path(named)
        return path if path.is_absolute() or code_dir is None else code_dir / path
    return base / "config.toml" if (base / "config.toml").is_file() else None


def _app(environ: Any, code_dir: Path | None) -> Any:
    from drs_report.config import load_settings
    from drs_report.web.app import App

    path = _config_path(environ, code_dir)
    key = (str(path), path.stat().st_mtime if path is not None and path.exists() else 0.0)
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            for old in _apps.values():
                old.close()
            _apps.clear()
            app = _apps[key] = App(load_settings(path, environ))
        return app


def handle_apig(event: dict[str, Any], context: Any, environ: Any, *,
                code_dir: Path | None = None) -> dict[str, Any]:
    """Never raises: a bad configuration is a 503 here and one line in the log."""
    from drs_report.errors import ConfigError
    from drs_report.secrets import agency_credentials, credentials_from_environment

    try:
        app = _app(environ, code_dir)
    except ConfigError as e:
        log.error("configuration error: %s", e)
        return answer(Response.text(503, "drs-report is not configured correctly\n").secured())
    except Exception as e:
        log.debug("unexpected error", exc_info=True)
        log.error("internal error: %s", type(e).__name__)
        return answer(Response.text(500, "internal error\n").secured())
    app.credentials = (agency_credentials(context) if context is not None else None) or \
        credentials_from_environment(environ if environ is not None else os.environ)
    try:
        request = request_from_event(event, max_body_bytes=app.settings.web.max_body_bytes)
    except HttpError as e:
        return answer(e.response().secured())
    return answer(app.handle(request))
