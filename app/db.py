"""Engine, schema migrations and the write path's serialisation.

Migrations: Alembic scripts live in ``app/migrations``. :func:`upgrade` (sync, for the CLI) and
:func:`upgrade_async` (for the running app and tests) bring a database to the newest revision.
The app **runs the upgrade at start** (inside its ``cleanup_ctx``) so the embedded SQLite default just
works; on PostgreSQL the upgrade holds an advisory lock, so several instances starting at once
migrate exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hotline.private import private_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_file(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def _private_sqlite(path: Path) -> None:
    """The database holds callers' numbers and words: 0600 before SQLite first opens it. SQLite
    gives the -wal and -shm files the database's mode; older ones are tightened too."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_file(path)
    for extra in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + extra)
        if side.exists():
            private_file(side)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg); SQLite gets WAL and a busy wait."""
    if (path := _sqlite_file(url)) is not None:
        _private_sqlite(path)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

    return engine


def _alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _upgrade_on(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


async def upgrade_engine(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_on)


async def upgrade_async(url: str) -> None:
    """Bring the database at ``url`` to the newest schema revision."""
    engine = make_engine(url)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


def upgrade(url: str) -> None:
    """Sync wrapper for the CLI: ``app.db.upgrade(settings.effective_database_url)``."""
    asyncio.run(upgrade_async(url))


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(conn: AsyncConnection) -> str | None:
    return await conn.run_sync(_current_revision)


class Database:
    """The engine plus the write serialisation the dialect needs.

    SQLite allows one writer at a time; queueing writers on an asyncio lock is cheaper and fairer than
    letting them spin on ``busy_timeout``. PostgreSQL writers run concurrently and lock call rows.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def serialised(self) -> bool:
        """True when writers queue on the in-process lock (SQLite): no row locks needed."""
        return self._write_lock is not None

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction that commits on success and rolls back on error."""
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def is_migrated(self) -> bool:
        async with self.read() as conn:
            return await current_revision(conn) == head_revision()
