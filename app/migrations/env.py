"""Alembic environment. Runs on a connection handed in by :mod:`app.db` (``config.attributes``).

Driven programmatically only (``app.db.upgrade(url)`` / ``hotline db upgrade``); the async engine is
opened by the caller, which passes the sync face of its connection here through ``run_sync``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from app.models import Base

# Any constant works; it only has to be the same for every instance migrating this database.
_PG_MIGRATION_LOCK = 7_212_345_110

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through app.db.upgrade(url), which provides the connection")

if connection.dialect.name == "postgresql":
    # Several instances may start at once; the lock holds until the caller's transaction commits.
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
