"""Shared fixtures: real Redis and PostgreSQL (started here when missing), and the app under test.

- ``redis_url``: ``REDIS_URL`` when set, else a throwaway redis-server (operations.redis_server).
- ``postgres_url``: a fresh database ``hotline_test_<random>`` on 127.0.0.1:5432 (or the server in
  ``DATABASE_URL``), dropped after the session. If PostgreSQL does not answer, the local cluster is
  started with pg_ctlcluster; if it still does not, PostgreSQL tests skip saying so loudly.
- ``db_url``: parametrized over sqlite and postgresql, so the database suite runs on both.
- ``app_client``: factory for an aiohttp TestClient on ``app.factory.create_app``.
"""

from __future__ import annotations

import asyncio
import glob
import secrets as _secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from hotline.secrets import API_ROLES, Secrets
from hotline.settings import Settings
from operations.redis_server import RedisServer

T = TypeVar("T")

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PG_TABLES = ("calls", "call_events", "audit_log", "transcript_segments", "work_orders", "work_order_parts",
             "work_order_history", "deadline_alerts", "exchange_outbox", "exchange_inbox", "exchange_nonces",
             "work_order_corrections", "callback_tasks", "callback_attempts", "callback_slots",
             "no_call_numbers", "users", "sessions")


def run_private(coro: Awaitable[T]) -> T:
    """Run a coroutine on a private loop, leaving pytest-asyncio's loops alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.fixture(scope="session")
def env_settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def redis_url(env_settings: Settings) -> Iterator[str]:
    if env_settings.redis_url:
        yield env_settings.redis_url
        return
    with RedisServer() as server:
        yield server.url


async def _pg_admin(url: str, sql: list[str]) -> None:
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username or "postgres",
        password=u.password,
        database=u.database or "postgres",
        timeout=5,
    )
    try:
        for stmt in sql:
            await conn.execute(stmt)
    finally:
        await conn.close()


def _start_local_postgres() -> str:
    versions = sorted(p.rsplit("/", 1)[-1] for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        return "no cluster under /etc/postgresql"
    proc = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return (proc.stdout + proc.stderr).strip() or f"pg_ctlcluster exited {proc.returncode}"


@pytest.fixture(scope="session")
def postgres_url(env_settings: Settings) -> Iterator[str]:
    admin = env_settings.database_url if env_settings.database_url.startswith("postgresql") else DEFAULT_PG
    try:
        run_private(_pg_admin(admin, ["SELECT 1"]))
    except Exception as first:
        try:
            note = _start_local_postgres()
            run_private(_pg_admin(admin, ["SELECT 1"]))
        except Exception as second:
            pytest.skip(
                f"PostgreSQL NOT TESTED: {admin} unreachable ({first!r}); start attempt: "
                f"{locals().get('note', '')} -> {second!r}"
            )
    name = f"hotline_test_{_secrets.token_hex(4)}"
    run_private(_pg_admin(admin, [f'CREATE DATABASE "{name}"']))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        run_private(_pg_admin(admin, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}"
    url: str = request.getfixturevalue("postgres_url")
    # One database per session; each test starts from empty tables (the schema stays migrated).
    tables = ", ".join(PG_TABLES)
    run_private(
        _pg_admin(
            url,
            [
                f"DO $$ BEGIN IF to_regclass('calls') IS NOT NULL THEN "
                f"TRUNCATE {tables} RESTART IDENTITY; END IF; END $$"
            ],
        )
    )
    return url


@pytest.fixture(scope="session")
def api_secrets() -> Secrets:
    """One token per role; ``api_secrets.token_for(role)``."""
    return Secrets(
        ami_secret="test-ami",
        sip_passwords={},
        api_tokens={
            f"tok-{role}-{_secrets.token_hex(8)}": {"name": f"test-{role}", "role": role}
            for role in API_ROLES
        },
    )


ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def app_client(tmp_path: Any, api_secrets: Secrets) -> AsyncIterator[ClientFactory]:
    """``await app_client(database_url=..., redis_url=...)`` -> a started TestClient; closed at teardown."""
    from app.factory import create_app

    clients: list[TestClient] = []

    async def make(database_url: str, redis_url: str = "", *, settings_kw: dict[str, Any] | None = None,
                   **create_kw: Any) -> TestClient:
        settings = Settings(state_dir=tmp_path, database_url=database_url, redis_url=redis_url,
                            **(settings_kw or {}))
        client = TestClient(TestServer(create_app(settings, api_secrets, **create_kw)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        await client.close()


class Api:
    """A TestClient that knows the tokens, plus an event builder (``Api.event``)."""

    T0 = 1_760_000_000.0  # a fixed epoch so tests read like timelines: T0 + seconds

    def __init__(self, client: TestClient, secrets: Secrets) -> None:
        self.client = client
        self.secrets = secrets

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets.token_for(role)}"} if role else {}

    async def call(self, method: str, path: str, role: str | None = "admin", **kw: Any) -> tuple[int, Any]:
        headers = {**self.headers(role), **kw.pop("headers", {})}
        async with self.client.request(method, path, headers=headers, **kw) as resp:
            return resp.status, await resp.json()

    async def post_events(self, body: Any, role: str = "service") -> tuple[int, Any]:
        return await self.call("POST", "/api/events", role, json=body)

    async def get_call(self, linkedid: str, role: str = "supervisor") -> tuple[int, Any]:
        return await self.call("GET", f"/api/calls/{linkedid}", role)

    @classmethod
    def event(cls, linkedid: str, type: str, dt: float, *, event_id: str | None = None, **kw: Any) -> dict:
        return {"event_id": event_id or f"{linkedid}-{type}-{dt}", "linkedid": linkedid, "type": type,
                "at": cls.T0 + dt, "source": "ami", "service": "12345", "caller": None, "seat": None,
                "data": {}, **kw}

    @classmethod
    def answered_call(cls, linkedid: str, caller: str = "13812345678", seat: str = "1201") -> list:
        return [
            cls.event(linkedid, "arrived", 0, caller=caller, source="agi", data={"flags": ["repeat"]}),
            cls.event(linkedid, "queued", 1, data={"queue": "hotline-12345"}),
            cls.event(linkedid, "ringing", 2, seat=seat),
            cls.event(linkedid, "answered", 10, seat=seat),
            cls.event(linkedid, "bridged", 10.5, seat=seat),
            cls.event(linkedid, "hangup", 70, data={"cause": "16", "cause_txt": "Normal Clearing"}),
        ]



@pytest.fixture
def api_class() -> type[Api]:
    """The client class itself, for tests that build their own app (``from conftest import`` would
    find whichever conftest module was imported first when the integration tier runs too)."""
    return Api

@pytest.fixture
async def api(db_url: str, redis_url: str, app_client: ClientFactory, api_secrets: Secrets) -> Api:
    """The app on each database (sqlite, postgresql) with the session's Redis."""
    return Api(await app_client(db_url, redis_url), api_secrets)
