"""Health, readiness, migrations and the OpenAPI document."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app import db as app_db
from app.factory import create_app
from app.models import Base
from hotline.settings import Settings


async def test_health_and_ready(api) -> None:
    assert await api.call("GET", "/health", None) == (200, {"status": "ok"})
    assert await api.call("GET", "/ready", None) == (
        200,
        {"status": "ready", "database": "ok", "redis": "ok"},
    )


async def test_not_migrated_is_not_ready(tmp_path, app_client) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    client = await app_client(db_url, "", migrate=False)
    async with client.get("/ready") as resp:
        assert resp.status == 503
        assert await resp.json() == {
            "status": "not_ready",
            "database": "not_migrated",
            "redis": "not_configured",
            "error_id": "not_ready",
        }
    await app_db.upgrade_async(db_url)
    async with client.get("/ready") as resp:
        assert resp.status == 200


async def test_unreachable_database_is_not_ready(app_client) -> None:
    client = await app_client("postgresql+asyncpg://nobody@127.0.0.1:1/none", "", migrate=False)
    async with client.get("/ready") as resp:
        assert resp.status == 503 and (await resp.json())["database"] == "unavailable"
    async with client.get("/health") as resp:
        assert resp.status == 200


async def test_migrations_match_the_models(db_url: str) -> None:
    await app_db.upgrade_async(db_url)
    await app_db.upgrade_async(db_url)  # idempotent
    engine = app_db.make_engine(db_url)
    try:
        async with engine.connect() as conn:
            assert await app_db.current_revision(conn) == app_db.head_revision()
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()


def test_sync_upgrade_for_the_cli(tmp_path) -> None:
    url = Settings(state_dir=tmp_path / "new-state").effective_database_url
    app_db.upgrade(url)
    assert (tmp_path / "new-state" / "hotline.db").exists()


def test_create_app_does_no_io(tmp_path, api_secrets) -> None:
    # No engine, no Redis client, no migration until the app starts.
    app = create_app(
        Settings(
            state_dir=tmp_path / "absent",
            database_url="sqlite+aiosqlite:///" + str(tmp_path / "absent" / "x.db"),
        ),
        api_secrets,
    )
    assert not (tmp_path / "absent").exists()
    assert len(app.cleanup_ctx) == 3


async def test_openapi_documents_every_route(api) -> None:
    status, doc = await api.call("GET", "/api/openapi.json", None)
    assert status == 200 and doc["openapi"].startswith("3.")
    registered = set()
    for route in api.client.server.app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        registered.add((route.resource.canonical, route.method.lower()))
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert registered == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("responses"), (path, method)
