"""The exceptions drs-report raises, one small tree.

    DrsReportError                  anything this package raises on purpose
    ├── ConfigError                 bad configuration or usage (exit 2); names the key
    ├── StoreError                  the snapshot store cannot be read or written (exit 1)
    └── DeliveryError               a channel could not deliver; `permanent` says retry or not

Messages are one line, meant for a DBA's terminal or a chat room, and never carry secrets.
DRS API failures are not exceptions: they become a FetchError on the job or comparison they
concern (models.py), so one failed request never stops a run.
"""

from __future__ import annotations


class DrsReportError(Exception):
    """Base of every error drs-report raises on purpose."""


class ConfigError(DrsReportError):
    """Bad configuration or usage. `key` is the dotted configuration key at fault."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        text = f"{key}: {problem}" if key else problem
        # One line, whatever a file put in its keys or values.
        super().__init__(" ".join(text.replace("\r", " ").replace("\n", " ").split(" ")))


class StoreError(DrsReportError):
    """The snapshot store could not be opened, migrated, read or written."""


class DeliveryError(DrsReportError):
    """A channel failed to deliver.

    `permanent` is True when trying again cannot help (bad credentials, a vendor error code,
    4xx other than 429); transient failures (5xx, 429, connection errors, SMTP 4xx) are False.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        self.permanent = permanent
        super().__init__(message)
