"""`drs-report serve`: the application on the standard library's WSGI server.

wsgiref with a thread per request is enough for a team's chat commands and archive reads,
and adds no dependency; a socket timeout bounds what a slow or dripping client can hold.
Put it behind a TLS-terminating proxy to expose it beyond loopback.
"""

from __future__ import annotations

import signal
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from drs_report import logs
from drs_report.errors import ConfigError

log = logs.get_logger("web.server")

REQUEST_TIMEOUT_SECONDS = 10.0


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS  # per socket operation: a drip of bytes times out

    def get_environ(self) -> dict[str, Any]:
        from drs_report.web.app import BODY_SECONDS_KEY

        environ: dict[str, Any] = super().get_environ()
        environ[BODY_SECONDS_KEY] = self.timeout * 2
        return environ

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # The path only: a signed link's query string is a credential.
        path = self.path.split("?", 1)[0]
        log.info("%s %s %s %s", self.address_string(), self.command, path[:200], code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("server: " + format, *args)


def make(app: Any, host: str, port: int, *, timeout: float = REQUEST_TIMEOUT_SECONDS
         ) -> WSGIServer:
    handler = type("Handler", (_Handler,), {"timeout": timeout})
    return make_server(host, port, app.wsgi, server_class=_ThreadingServer,
                       handler_class=handler)


def serve(*, config: Path, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT; exit 0 when stopped, 2 on a bad configuration or port."""
    import os

    from drs_report.config import load_settings
    from drs_report.secrets import credentials_from_environment
    from drs_report.web.app import App

    settings = load_settings(config)
    app = App(settings, credentials=credentials_from_environment(os.environ))
    web = settings.web
    if web.token is None and web.link_secret is None:
        log.warning("neither web.token nor web.link_secret is set: the archive answers 401 "
                    "to everyone")
    try:
        server = make(app, host, port)
    except OSError as e:
        raise ConfigError("--port", f"cannot listen on {host}:{port}: {e.strerror or e}; "
                          "choose another --port (0 picks a free one) or --host") from None
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    thread = threading.Thread(target=server.serve_forever, name="drs-serve", daemon=True)
    thread.start()
    try:
        bound_port = server.server_address[1]
        print(f"listening on http://{host}:{bound_port}", flush=True)
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        app.close()
    print("stopped", file=sys.stderr)
    return 0
