"""The snapshot history store: runs, readings, rendered reports and deliveries.

`Store` is the one face callers use; each concern lives in a module of its own behind it:

    engine.py       opening, errors, the schema (Alembic), SQLite's WAL and busy timeout
    sanitise.py     values from outside made storable on every backend (NaN, NUL, lengths)
    runs.py         runs: trigger, times, outcome, counts; closing abandoned ones
    readings.py     job and comparison snapshots: written in bulk, read back as history
    reports.py      each run's rendered outputs (stored compressed), the previous report.json
    deliveries.py   exactly-once delivery claims (ordered by a sequence) and every attempt
    retention.py    pruning old rows in bounded batches, never by a clock far ahead
    downsampling.py thinning old readings of a synced file (fewer rows, no raw answers)
    lease.py        one writer at a time for a store kept in OBS (no conditional PUT there)
    sync.py         the SQLite file fetched from OBS before a run and written back after,
                    and the HTTP side's read-only copy of it, revalidated by conditional GET
    archive.py      read-only queries of the HTTP side: stored runs, a job's readings

SQLite by default, PostgreSQL through psycopg 3 for history shared by many function
instances. One run's snapshot is written in one transaction. Errors are StoreError with the
password masked.
"""

from __future__ import annotations

from drs_report.store.archive import ArchiveMixin
from drs_report.store.deliveries import ClaimHolder, DeliveriesMixin, SentDelivery
from drs_report.store.downsampling import DownsamplingMixin
from drs_report.store.engine import SCHEMA_HEAD
from drs_report.store.readings import ReadingsMixin, reading_to_json
from drs_report.store.reports import ReportsMixin
from drs_report.store.retention import RetentionMixin
from drs_report.store.runs import AbandonedRun, RunsMixin

__all__ = ["SCHEMA_HEAD", "AbandonedRun", "ClaimHolder", "SentDelivery", "Store",
           "reading_to_json"]


class Store(RunsMixin, ReadingsMixin, ReportsMixin, DeliveriesMixin, RetentionMixin,
            DownsamplingMixin, ArchiveMixin):
    """The history database: open it with `Store.open(url)`, close it with `close()`."""
