"""The HTTP side's one way to the history: a read-only Store, opened once per process.

Answering chat or serving a page must never disturb a timer run, so the store is opened
read-only at the database's own level (SQLite `mode=ro`, PostgreSQL
`default_transaction_read_only`): a write would fail, not just be avoided. With
`store.sync` the history is the SQLite file kept in OBS: the HTTP side keeps a copy of its
own (store.sync.ReadOnlyCopy), revalidated by conditional GET at most every few seconds,
never written back, and never touches the run's lease.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from drs_report import logs
from drs_report.config import Settings
from drs_report.errors import StoreError
from drs_report.store import Store
from drs_report.store.engine import runtime_url

if TYPE_CHECKING:
    from drs_report.secrets import Credentials
    from drs_report.store.sync import ReadOnlyCopy

log = logs.get_logger("web")


def open_read_only(url: str) -> Store:
    """A Store whose connections cannot write."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(runtime_url(url))  # where the run keeps it (only /tmp in FG)
        if parsed.get_backend_name() == "sqlite":
            path = parsed.database or ""
            if not path or path == ":memory:":
                raise StoreError("store.url: an in-memory SQLite store has no history to read")
            ro = f"sqlite:///file:{quote(path)}?mode=ro&uri=true"
            engine = create_engine(ro, connect_args={"timeout": 30, "check_same_thread": False})
        else:
            engine = create_engine(
                url, pool_pre_ping=True, pool_size=2, max_overflow=4,
                connect_args={"options": "-c default_transaction_read_only=on"})
    except (ArgumentError, SQLAlchemyError, ImportError) as e:
        raise StoreError(f"cannot open {Store.masked_url(url)}: {type(e).__name__}") from None
    return Store.open(url, engine=engine)


class ArchiveSource:
    """The read-only store, and the latest report.json parsed once per stored run.

    `credentials` answers the credentials of the moment (in FunctionGraph the agency's,
    per invocation): the synced store's copy is fetched with them.
    """

    def __init__(self, settings: Settings, *, store: Store | None = None,
                 credentials: Callable[[], Credentials | None] | None = None,
                 revalidate_seconds: float | None = None) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()
        self._latest: tuple[int, dict[str, Any]] | None = None
        self._copy: ReadOnlyCopy | None = None
        if store is None and settings.store.sync:
            from drs_report.store.sync import ReadOnlyCopy

            self._copy = ReadOnlyCopy(settings, credentials or (lambda: None),
                                      revalidate_seconds=revalidate_seconds)

    @property
    def store(self) -> Store:
        if self._copy is not None:
            return self._copy.store()
        with self._lock:
            if self._store is None:
                self._store = open_read_only(self._settings.store.url)
            return self._store

    def latest_report(self) -> tuple[int, dict[str, Any]] | None:
        """(run id, report.json) of the newest stored run; None before the first run.

        A stored report never changes, so one cheap query for the newest run id decides
        whether the parsed copy is still the latest: 5,000 jobs parse once, not per answer.
        """
        run_id = self.store.latest_report_run("json")
        if run_id is None:
            return None
        cached = self._latest
        if cached is not None and cached[0] == run_id:
            return cached
        content = self.store.report(run_id, "json")
        if content is None:  # pruned between the two queries
            return None
        try:
            data = json.loads(content)
        except ValueError:
            raise StoreError(f"the stored report.json of run {run_id} is not JSON") from None
        if not isinstance(data, dict):
            raise StoreError(f"the stored report.json of run {run_id} is not an object")
        self._latest = (run_id, data)
        return self._latest

    def close(self) -> None:
        if self._copy is not None:
            self._copy.close()
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
