"""``python -m agi``: the FastAGI server as its own process (what ``hotline up`` runs).

Its own process keeps intake's latency away from the API's database writes and the AMI event
stream; it is stateless (Redis and the API hold everything), so several can run behind
``hagi://`` DNS SRV. Settings come from the environment (``HOTLINE_AGI_HOST/PORT``, ``REDIS_URL``,
``HOTLINE_API_URL``, ``HOTLINE_STATE_DIR`` for the service token).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from agi.server import start_agi_server
from hotline.logs import configure
from hotline.redis_client import connect
from hotline.secrets import load_secrets
from hotline.settings import Settings
from hotline.sink import EventSink


async def serve(settings: Settings) -> None:
    token = load_secrets(settings.secrets_file).token_for("service")
    redis = (connect(settings.redis_url, max_connections=settings.redis_max_connections, timeout_s=0.5)
             if settings.redis_url else None)
    sink = EventSink.from_settings(settings, token)
    await sink.start()
    server = await start_agi_server(settings, redis=redis, sink=sink)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {settings.agi_host}:{server.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await sink.aclose(timeout=3)
        if redis is not None:
            await redis.aclose()


def main() -> int:
    settings = Settings.from_env()
    configure(settings.log_level, settings.log_format, "%(asctime)s %(levelname)s agi: %(message)s")
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
