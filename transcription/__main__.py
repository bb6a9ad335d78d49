"""``python -m transcription``: the transcriber process (AudioSocket server + Vosk + publishing).

Prints ``READY <port>`` on stdout once the model is loaded and the server listens, so a parent
(``hotline up``, the tests) knows when it may start tapping calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from hotline.logs import configure
from hotline.redis_client import connect
from hotline.secrets import load_secrets
from hotline.settings import Settings
from hotline.sink import transcript_sink
from hotline.site import load_site
from transcription.publisher import SegmentPublisher
from transcription.recognizer import DecoderPool, ModelError, SpeechModel, resolve_model_path
from transcription.service import Transcriber

log = logging.getLogger("transcription")


async def main(settings: Settings) -> int:
    try:
        path = resolve_model_path(settings.vosk_model)
    except ModelError as exc:
        log.error("%s", exc)
        return 2
    model = await asyncio.to_thread(SpeechModel, path)
    site = load_site(settings.site_file)
    if site.phrases and (missing := model.unknown_words(site.phrases)):
        log.warning("the model cannot recognise %d of the site's phrases: %s", len(missing),
                    ", ".join(missing[:20]))
    redis = connect(settings.redis_url, max_connections=settings.redis_max_connections) \
        if settings.redis_url else None
    secrets = load_secrets(settings.secrets_file)
    sink = transcript_sink(settings, secrets.token_for("service"))
    await sink.start()
    pool = DecoderPool(settings.transcribe_workers)
    transcriber = Transcriber(model, pool, SegmentPublisher(redis, sink), redis,
                              max_backlog_s=settings.transcribe_backlog_ms / 1000,
                              max_streams=settings.transcribe_max_streams or 2 * (os.cpu_count() or 1))
    port = await transcriber.start(settings.audiosocket_host, settings.audiosocket_port)
    log.info("transcriber on %s:%d, model %s, %d decoding threads, at most %d streams",
             settings.audiosocket_host, port, path, pool.size, transcriber.max_streams)
    print(f"READY {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await transcriber.stop()
    await sink.aclose(timeout=3)
    pool.close()
    if redis is not None:
        with contextlib.suppress(Exception):
            await redis.aclose()
    return 0


if __name__ == "__main__":
    s = Settings.from_env()
    configure(s.log_level, s.log_format)
    sys.exit(asyncio.run(main(s)))
