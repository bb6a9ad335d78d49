"""Run the API until cancelled: ``await serve(settings)``."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from app.access_log import MaskingAccessLogger
from app.factory import create_app
from hotline.secrets import Secrets
from hotline.settings import Settings

log = logging.getLogger(__name__)


async def serve(settings: Settings, secrets: Secrets | None = None) -> None:
    """Listen on ``settings.api_host:api_port`` until the task is cancelled, then shut down cleanly."""
    runner = web.AppRunner(create_app(settings, secrets), access_log_format='%a "%r" %s %b %Tfs',
                           access_log_class=MaskingAccessLogger)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.api_host, settings.api_port)
        await site.start()
        log.info("API listening on %s", settings.effective_api_base_url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
