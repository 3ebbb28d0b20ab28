"""Opening the database, its errors and its schema: the part of the store every other uses.

SQLite by default (WAL, busy timeout), PostgreSQL through psycopg 3. The schema is Alembic's,
shipped in store/migrations/ and applied by `upgrade()`, safe to call from several processes
at once. Errors are StoreError with the password masked.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from drs_report import environment, logs
from drs_report.errors import StoreError

log = logs.get_logger("store")

SCHEMA_HEAD = "0005"  # the newest revision in store/migrations/versions
IN_CHUNK = 500  # ids per IN (...) list: well under every backend's parameter limit
# psycopg's and SQLite's words for "the database could not be reached or opened".
_CONNECT_FAILURE = re.compile(
    r"connection failed|could not connect|connection refused|could not translate host"
    r"|failed to resolve host"
    r"|unable to open database file|password authentication failed"
    r"|database \"[^\"]*\" does not exist",
    re.IGNORECASE)
_MIGRATION_LOCK = 0x44525352  # "DRSR": pg_advisory_lock key for schema upgrades
_S = TypeVar("_S", bound="StoreBase")


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def running_in_functiongraph() -> bool:
    return any(name in os.environ for name in environment.FUNCTIONGRAPH_MARKERS)


def runtime_url(url: str, *, in_functiongraph: bool | None = None) -> str:
    """The URL the store opens for `store.url` here: the one home of the rule that inside
    FunctionGraph an SQLite file lives in /tmp (the only writable place there). The run's
    store and the HTTP side's read-only copy both find the file through it."""
    if in_functiongraph is None:
        in_functiongraph = running_in_functiongraph()
    if not url.startswith("sqlite") or not in_functiongraph:
        return url
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("/tmp/"):
        return url  # `sqlite://` is a database in memory (a dry run's empty history), no file
    return parsed.set(database=str(Path("/tmp") / Path(database).name)).render_as_string(
        hide_password=False)


class StoreBase:
    """The engine, its URL, sessions that turn database errors into one-line StoreErrors."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.runs_begun: list[int] = []  # by this process: what a synced write-back merges
        # The raw API answers beside the typed columns; a synced copy keeps none (its size
        # is every run's cost, and every field the API documents has a column of its own).
        self.keeps_raw_answers = True

    # -- opening -----------------------------------------------------------------------

    @staticmethod
    def masked_url(url: str) -> str:
        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)

    @classmethod
    def open(cls: type[_S], url: str, *, in_functiongraph: bool | None = None,
             engine: Engine | None = None) -> _S:
        if engine is not None:
            return cls(engine, url)
        if in_functiongraph is None:
            in_functiongraph = running_in_functiongraph()
        if url.startswith("sqlite") and in_functiongraph:
            url = runtime_url(url, in_functiongraph=True)
            log.warning("SQLite history at %s lives only as long as this function instance "
                        "unless store.sync keeps it in OBS; set store.sync, or store.url to "
                        "PostgreSQL, for history that lasts", make_url(url).database)
        try:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                engine = create_engine(url, connect_args={"timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
                quiet_pipeline_aborts()
        except (ArgumentError, SQLAlchemyError, ImportError) as e:
            raise StoreError(f"cannot open {cls.masked_url(url)}: "
                             f"{one_line(e, url)}") from None
        return cls(engine, url)

    def close(self) -> None:
        self.engine.dispose()

    def _fail(self, action: str, error: BaseException) -> StoreError:
        reason = one_line(error, self.url)
        if _CONNECT_FAILURE.search(reason):
            # The one failure a user fixes outside the database: say where to look.
            return StoreError(f"cannot connect to {self.masked_url(self.url)}: {reason}; "
                              "check [store] url and that the database is reachable")
        return StoreError(f"{action} failed on {self.masked_url(self.url)}: {reason}")

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        try:
            with Session(self.engine) as session, session.begin():
                yield session
        except StoreError:
            raise
        except SQLAlchemyError as e:
            raise self._fail(action, e) from None

    # -- schema --------------------------------------------------------------------------

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                if not self.engine.dialect.has_table(conn, "alembic_version"):
                    return None
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError as e:
            raise self._fail("reading the schema version", e) from None

    def upgrade(self, revision: str = "head", *, project_id: str | None = None) -> None:
        """Create or migrate the schema; a no-op (one query) when it is already current.

        `project_id`: the configured single target's project, which readings stored before
        revision 0005 are attributed to (without it they stay unattributed, '').
        """
        if revision == "head" and self.current_revision() == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.config import Config
        from alembic.util.exc import CommandError

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        try:
            with self._migration_lock() as conn:
                config.attributes["connection"] = conn
                config.attributes["project_id"] = project_id or ""
                command.upgrade(config, revision)
                conn.commit()
        except SQLAlchemyError as e:
            raise self._fail("upgrading the schema", e) from None
        except CommandError:
            # The one way Alembic refuses a database it can reach: a revision it does not
            # know, written by a newer drs-report.
            found = self.current_revision()
            raise StoreError(f"{self.masked_url(self.url)} is at schema revision {found}, "
                             f"which this drs-report (schema {SCHEMA_HEAD}) does not know: a "
                             "newer drs-report wrote it; upgrade drs-report, or point "
                             "store.url at another database") from None
        log.info("schema at revision %s on %s", self.current_revision(),
                 self.masked_url(self.url))

    @contextmanager
    def _migration_lock(self) -> Iterator[Any]:
        """Only one process migrates at a time; the others wait, then find nothing to do."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()
                try:
                    yield conn
                finally:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                    conn.commit()
            return
        with self.engine.connect() as conn:
            # BEGIN IMMEDIATE takes SQLite's write lock before Alembic reads the version.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn




_WAL_SWITCH_SECONDS = 30.0


class _PipelineAbortFilter(logging.Filter):
    """psycopg's "error ignored terminating <Pipeline ...>: pipeline aborted" warning.

    When a bulk insert fails, psycopg raises the real error (a StoreError to us, one clear
    line) and, closing its pipeline, logs the abort that follows from it as a WARNING of its
    own, which reached stderr beside our line. It says nothing the error did not."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "error ignored terminating %r: %s" or not record.args:
            return True
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        return "Pipeline" not in type(args[0]).__name__


_PIPELINE_ABORTS = _PipelineAbortFilter()


def quiet_pipeline_aborts() -> None:
    """Install the filter on psycopg's logger (once; idempotent)."""
    psycopg_log = logging.getLogger("psycopg")
    if _PIPELINE_ABORTS not in psycopg_log.filters:
        psycopg_log.addFilter(_PIPELINE_ABORTS)


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # overlapping runs wait instead of failing
    # A new file gives freed pages back (downsampling.py); no effect on an existing one.
    cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """WAL, so readers never block the writer; retried while another process holds a lock.

    Two processes opening a new database race to switch it, and the loser gets "database
    is locked" at once: SQLite refuses to wait when waiting could deadlock, so busy_timeout
    does not help. It clears as soon as the winner's first transaction ends. A database
    that cannot be WAL (in memory) just keeps its mode.
    """
    import sqlite3  # here, not at the top: PostgreSQL users never load it

    deadline = time.monotonic() + _WAL_SWITCH_SECONDS
    pause = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def one_line(error: BaseException, url: str) -> str:
    original = getattr(error, "orig", None) or error
    message = " ".join(str(original).split()) or type(original).__name__
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return logs.redact(message)[:300]

