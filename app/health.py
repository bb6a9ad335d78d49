"""Liveness, readiness and the OpenAPI document: the public routes."""

from __future__ import annotations

import logging

from aiohttp import web

from app import keys
from app.auth import public
from app.http_util import json_response
from app.openapi import openapi_document

log = logging.getLogger(__name__)


@public
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@public
async def ready(request: web.Request) -> web.Response:
    """503 unless the database answers and is at the newest revision; Redis is reported, not required."""
    db_status = "ok"
    try:
        if not await request.app[keys.DATABASE].is_migrated():
            db_status = "not_migrated"
    except Exception as exc:  # any driver error means "not reachable"
        log.warning("readiness: database check failed: %s", exc)
        db_status = "unavailable"
    redis_status = await request.app[keys.REDIS].status()
    ok = db_status == "ok"
    body = {"status": "ready" if ok else "not_ready", "database": db_status, "redis": redis_status}
    if not ok:
        body["error_id"] = "not_ready"
    return json_response(body, status=200 if ok else 503)


@public
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(request.app))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/api/openapi.json", openapi)
