"""The HTTP side's one way to the history: a read-only Store, opened once per process.

Answering chat or serving a page must never disturb a timer run, so the store is opened
read-only at the database's own level (SQLite `mode=ro`, PostgreSQL
`default_transaction_read_only`): a write would fail, not just be avoided. This module is
the seam where the OBS-synced store will plug in (a local copy in /tmp revalidated with a
conditional GET); today it reads `store.url` directly.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from drs_report import environment, logs
from drs_report.config import Settings
from drs_report.errors import StoreError
from drs_report.store import Store

log = logs.get_logger("web")


def _in_functiongraph() -> bool:
    return any(name in os.environ for name in environment.FUNCTIONGRAPH_MARKERS)


def open_read_only(url: str) -> Store:
    """A Store whose connections cannot write."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            path = parsed.database or ""
            if not path or path == ":memory:":
                raise StoreError("store.url: an in-memory SQLite store has no history to read")
            if _in_functiongraph() and not path.startswith("/tmp/"):
                # Where the run keeps it there (store/): only /tmp is writable.
                path = str(Path("/tmp") / Path(path).name)
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
    """The read-only store, and the latest report.json parsed once per stored run."""

    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()
        self._latest: tuple[int, dict[str, Any]] | None = None

    @property
    def store(self) -> Store:
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
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
