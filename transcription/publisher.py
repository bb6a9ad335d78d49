"""Segments out: every segment on Redis pub/sub at once (the call's channel and the all-calls
channel, which the app's WebSockets relay), and final and gap segments to the app, which stores
them and runs the work-order creator (``POST /api/transcripts`` through a retrying sink).

:meth:`SegmentPublisher.emit` never blocks and never raises: decoding and calls go on whatever
Redis or the app do. Both queues are bounded; what does not fit is dropped and counted.
"""

from __future__ import annotations

import logging
from typing import Any

from hotline import redis_keys
from hotline.contracts import Segment, SegmentKind
from hotline.pubsub import Broadcaster, dumps

log = logging.getLogger(__name__)

MAX_PENDING = 20_000


def segment_message(seg: Segment) -> str:
    return dumps({"type": "segment", **seg.to_json()})


class SegmentPublisher(Broadcaster):
    def __init__(self, redis: Any, sink: Any) -> None:
        super().__init__(redis, "segment-publisher", max_pending=MAX_PENDING)
        self._sink = sink  # hotline.sink.transcript_sink(...), or None (nothing stored)
        self.listeners: list[Any] = []  # callables(seg) in this process (benchmarks, tests)

    def emit(self, seg: Segment) -> None:
        """Publish one segment (and have finals and gaps stored). Never blocks, never raises."""
        try:
            for listener in self.listeners:
                listener(seg)
            if seg.kind is not SegmentKind.PARTIAL and self._sink is not None:
                self._sink.emit(seg)
            self.put((redis_keys.transcript_channel(seg.call), redis_keys.TRANSCRIPTS_CHANNEL),
                     segment_message(seg))
        except Exception:  # the decoding path must not fail because of publishing
            log.exception("segment not published")
