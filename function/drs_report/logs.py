"""Logging set-up: one line per event, secrets masked before anything is written."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from drs_report.secrets import Redactor

LOGGER_NAME = "drs_report"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The libraries we drive: at DEBUG they would drown our lines (SQLAlchemy alone writes most
# of a DEBUG run), so they stay at WARNING unless named, e.g. --log-level DEBUG,sqlalchemy=DEBUG.
LIBRARIES = ("urllib3", "sqlalchemy", "alembic", "huaweicloudsdkcore")


def get_logger(name: str | None = None) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


class RedactingFilter(logging.Filter):
    """Masks every known secret in the formatted message and in exception text.

    The message is rendered here (args merged in) so a secret passed as an argument is
    masked too; handlers then see a plain string.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True


_redactor = Redactor()
_filter = RedactingFilter(_redactor)


def add_secrets(secrets: Iterable[str]) -> None:
    """Register secret values to be masked in every log line from now on."""
    _redactor.add(secrets)


def redact(text: str) -> str:
    """Mask every registered secret in free text (error messages, report fields)."""
    return _redactor(text)


def may_hide_secret(content: bytes) -> bool:
    """Whether a body from outside could carry a registered secret once decoded."""
    return _redactor.may_hide_in(content)


def install(handler: logging.Handler) -> None:
    """Attach the redacting filter to a handler (handlers, not loggers, see every record)."""
    if _filter not in handler.filters:
        handler.addFilter(_filter)


def configure(level: str | int = "INFO", *, stream: object = None,
              libraries: Mapping[str, str | int] | None = None) -> logging.Handler:
    """CLI logging: to stderr, redacted, with the level from the flag or environment.

    `level` is drs-report's own; each library in LIBRARIES logs at WARNING unless
    `libraries` names it (any other logger named there is set the same way).
    """
    import sys

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install(handler)
    root = logging.getLogger(LOGGER_NAME)
    root.handlers = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
    root.propagate = False
    asked = dict(libraries or {})
    # The libraries log URLs and headers at DEBUG; route them through the filter too.
    for name in dict.fromkeys([*LIBRARIES, *asked]):
        if name == LOGGER_NAME:
            continue
        lib = logging.getLogger(name)
        lib.handlers = [handler]
        lib.propagate = False
        wanted = asked.get(name, logging.WARNING)
        lib.setLevel(wanted if isinstance(wanted, int) else wanted.upper())
    if LOGGER_NAME in asked:
        wanted = asked[LOGGER_NAME]
        root.setLevel(wanted if isinstance(wanted, int) else wanted.upper())
    return handler


# The libraries we drive; they log URLs and headers at DEBUG, and speak only of warnings
# unless the user asked for DEBUG.
LIBRARY_LOGGERS = ("urllib3", "sqlalchemy", "alembic", "huaweicloudsdkcore")


def install_function_handler(handler: logging.Handler, level: str) -> None:
    """Function-side logging: our loggers and the libraries' through one redacting handler,
    not propagated to the runtime's root logger (which would print every line twice)."""
    install(handler)
    wanted = level.upper() if level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO"
    root = logging.getLogger(LOGGER_NAME)
    root.handlers = [handler]
    root.propagate = False
    root.setLevel(wanted)
    for name in LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        lib.handlers = [handler]
        lib.propagate = False
        lib.setLevel(logging.DEBUG if wanted == "DEBUG" else logging.WARNING)
