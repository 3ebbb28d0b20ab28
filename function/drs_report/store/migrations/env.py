"""Alembic environment: always run programmatically by drs_report.store, on its connection."""

from __future__ import annotations

from alembic import context

from drs_report.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
