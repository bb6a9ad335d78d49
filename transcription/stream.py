"""One tapped party: audio in, partial / final / gap segments out.

The socket reader calls :meth:`TapStream.feed` for every audio message; it never blocks. A
consumer task takes the audio in chunks of ``chunk_s`` and decodes each in the pool, one at a time
per stream. When decoding falls behind (the pool is saturated or the recognizer is slow), the
backlog stops at ``max_backlog_s``: the oldest audio is dropped and the transcript gets a gap
segment (reason ``overload``) covering exactly what was lost. Before that, a stream more than
``CATCH_UP_S`` behind decodes in bigger bites and skips partial results, which would be stale.
Memory per stream is therefore the backlog bound plus the recognizer's own state.

Times: Vosk reports word times in seconds of audio it was fed. Each chunk fed is anchored to the
wall-clock time its audio was spoken, so a word's time maps back to the wall clock even after
audio was dropped. When audio was spoken is the stream's sample clock (its first arrival plus the
audio received since), not each message's arrival: after a stall the socket delivers seconds of
audio at once, and arrival times would squeeze them into an instant. The sample clock only falls
behind the wall clock for good when audio was lost before it reached us; when every message of
the last ``RESYNC_WINDOW_S`` arrived at least ``RESYNC_LAG_S`` late, it is moved forward.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from hotline.contracts import GapReason, Segment, SegmentKind, Speaker
from transcription.audiosocket import BYTES_PER_SECOND
from transcription.recognizer import DecoderPool, StreamDecoder, Utterance

log = logging.getLogger(__name__)

MAX_ANCHORS = 3000  # 5 minutes of 100 ms chunks: longer than any utterance Vosk keeps open
CATCH_UP_S = 1.0        # this much audio waiting: the stream is behind real time ...
CATCH_UP_CHUNK_S = 0.5  # ... and decodes in bigger bites, without partials (stale by then anyway)
QUIET_S = 0.8  # no audio this long with an utterance open: the party stopped sending, finish it
WORD_FRAME_S = 0.06  # two of Vosk's 30 ms frames: how far a word time may fall short of its audio
RESYNC_WINDOW_S = 2.0
RESYNC_LAG_S = 0.5


@dataclass(frozen=True)
class TapMeta:
    tap: str
    call: str
    speaker: Speaker
    seat: str | None = None


@dataclass
class StreamStats:
    received_s: float = 0.0
    decoded_s: float = 0.0
    dropped_s: float = 0.0
    decode_busy_s: float = 0.0  # time spent in the recognizer
    partials: int = 0
    finals: int = 0
    gaps: int = 0


class TapStream:
    def __init__(self, meta: TapMeta, decoder: StreamDecoder, pool: DecoderPool,
                 emit: Callable[[Segment], None], *, max_backlog_s: float = 2.0, chunk_s: float = 0.1,
                 clock: Callable[[], float] = time.time) -> None:
        self.meta = meta
        self._decoder = decoder
        self._pool = pool
        self._emit = emit
        self._clock = clock
        self._max_backlog = int(max_backlog_s * BYTES_PER_SECOND)
        self._chunk = max(320, int(chunk_s * BYTES_PER_SECOND) // 2 * 2)
        self._catch_up = max(self._chunk, int(CATCH_UP_CHUNK_S * BYTES_PER_SECOND) // 2 * 2)
        self._buf: collections.deque[tuple[float, bytes]] = collections.deque()  # (spoken at, pcm)
        self._buffered = 0
        self._anchors: collections.deque[tuple[float, float]] = collections.deque(maxlen=MAX_ANCHORS)
        self._dropped: list[float] | None = None  # [from, to] of audio dropped and not yet reported
        self._utt_start: float | None = None  # decoder offset where the current utterance began
        self._seq = 0
        self._clock0: float | None = None  # wall time of the stream's first audio sample
        self._received = 0  # bytes of audio received so far
        self._lags: collections.deque[tuple[float, float]] = collections.deque()  # (arrival, lag)
        self._data = asyncio.Event()
        self._closed = False
        self.stats = StreamStats()

    # --- input (socket side) ---------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        if self._closed or not pcm:
            return
        now = self._clock()
        seconds = len(pcm) / BYTES_PER_SECOND
        if self._clock0 is None:
            self._clock0 = now - seconds
        spoken = self._clock0 + self._received / BYTES_PER_SECOND
        self._resync(now, now - seconds - spoken)
        spoken = self._clock0 + self._received / BYTES_PER_SECOND
        self._received += len(pcm)
        self._buf.append((spoken, pcm))
        self._buffered += len(pcm)
        self.stats.received_s += seconds
        while self._buffered > self._max_backlog and len(self._buf) > 1:  # keep the newest message
            spoken, old = self._buf.popleft()
            self._buffered -= len(old)
            lost = len(old) / BYTES_PER_SECOND
            self.stats.dropped_s += lost
            if self._dropped is None:
                self._dropped = [spoken, spoken + lost]
            else:
                self._dropped[1] = spoken + lost
        self._data.set()

    def _resync(self, now: float, lag: float) -> None:
        """Move the sample clock forward when audio was lost upstream (a steady lag, not a burst)."""
        self._lags.append((now, lag))
        while self._lags and self._lags[0][0] < now - RESYNC_WINDOW_S:
            self._lags.popleft()
        if lag < RESYNC_LAG_S or self._lags[0][0] > now - RESYNC_WINDOW_S * 0.9:
            return
        steady = min(v for _, v in self._lags)
        if steady >= RESYNC_LAG_S and self._clock0 is not None:
            self._clock0 += steady
            self._lags.clear()

    @property
    def backlog_s(self) -> float:
        return self._buffered / BYTES_PER_SECOND

    # --- decoding (consumer task) ------------------------------------------------------------------

    async def run(self) -> None:
        """Decode until :meth:`close` and the backlog is empty, then flush the last utterance."""
        while True:
            if not self._buf:
                if self._closed:
                    break
                self._data.clear()
                try:
                    quiet = QUIET_S if self._utt_start is not None else None
                    await asyncio.wait_for(self._data.wait(), quiet)
                except TimeoutError:
                    # A phone with silence suppression (or a tap whose party went quiet) sends no
                    # audio at all after speech, so Vosk never sees the trailing silence that ends
                    # an utterance: finish it now rather than at the next words or the hang-up.
                    await self._finish_utterance()
                continue
            if self._buffered < self._chunk and not self._closed:
                # wait for a whole chunk, but never longer than a chunk's worth of time
                self._data.clear()
                try:
                    await asyncio.wait_for(self._data.wait(), self._chunk / BYTES_PER_SECOND)
                except TimeoutError:
                    pass
            behind = self._buffered > CATCH_UP_S * BYTES_PER_SECOND
            spoken_at, pcm = self._take(self._catch_up if behind else self._chunk)
            if self._report_drop():
                # The words before the hole end their utterance: no final spans audio we never heard.
                await self._finish_utterance()
            self._anchors.append((self._decoder.fed_s, spoken_at))
            t0 = time.perf_counter()
            try:
                utt = await self._pool.run(self._decoder.accept, pcm, not behind)
            except Exception:  # a recognizer error loses this chunk, never the stream or the call
                log.exception("tap %s: decoding failed", self.meta.tap)
                continue
            self.stats.decode_busy_s += time.perf_counter() - t0
            self.stats.decoded_s += len(pcm) / BYTES_PER_SECOND
            if utt is not None:
                self._publish(utt)
        self._report_drop()
        await self._finish_utterance()

    async def _finish_utterance(self) -> None:
        try:
            last = await self._pool.run(self._decoder.finish)
        except Exception:
            log.exception("tap %s: final decoding failed", self.meta.tap)
            self._utt_start = None  # that utterance is lost: not retried (and logged) every quiet period
            return
        if last is not None:
            self._publish(last)
        self._utt_start = None

    def close(self) -> None:
        """No more audio: the consumer drains the backlog, flushes, and :meth:`run` returns."""
        self._closed = True
        self._data.set()

    def _take(self, want: int) -> tuple[float, bytes]:
        spoken_at = self._buf[0][0]
        parts: list[bytes] = []
        size = 0
        while self._buf and size < want:
            _, pcm = self._buf.popleft()
            parts.append(pcm)
            size += len(pcm)
        self._buffered -= size
        return spoken_at, b"".join(parts)

    # --- output ---------------------------------------------------------------------------------

    def _wall(self, offset: float) -> float:
        """Wall-clock time of ``offset`` seconds of fed audio.

        Vosk's word times are whole 30 ms frames, so a word that begins with the audio after a hole
        can come back a hair before that audio's anchor: it is placed after the hole, not in it."""
        if not self._anchors:
            return self._clock()
        best, after = self._anchors[0], None
        for n in range(len(self._anchors) - 1, -1, -1):
            if self._anchors[n][0] <= offset:
                best = self._anchors[n]
                after = self._anchors[n + 1] if n + 1 < len(self._anchors) else None
                break
        if after is not None and after[0] - offset < WORD_FRAME_S:
            hole = (after[1] - best[1]) - (after[0] - best[0])
            if hole > WORD_FRAME_S:
                return after[1]
        return best[1] + (offset - best[0])

    def _next(self, kind: SegmentKind, start: float, end: float, text: str,
              confidence: float | None = None) -> Segment:
        seg = Segment(call=self.meta.call, tap=self.meta.tap, seq=self._seq, speaker=self.meta.speaker,
                      kind=kind, start=round(start, 3), end=round(max(end, start), 3), text=text[:2000],
                      confidence=None if confidence is None else round(confidence, 3), seat=self.meta.seat)
        self._seq += 1
        return seg

    def _publish(self, utt: Utterance) -> None:
        fed = self._decoder.fed_s
        if not utt.final:
            if self._utt_start is None:
                self._utt_start = max(0.0, fed - 1.0)
            self.stats.partials += 1
            start = self._wall(self._utt_start)
            self._emit(self._next(SegmentKind.PARTIAL, start, self._wall(fed), utt.text))
            return
        if utt.words:
            start, end = self._wall(utt.words[0].start), self._wall(utt.words[-1].end)
        else:
            start, end = self._wall(self._utt_start if self._utt_start is not None else fed), self._wall(fed)
        self._utt_start = None
        self.stats.finals += 1
        self._emit(self._next(SegmentKind.FINAL, start, end, utt.text, utt.confidence))

    def _report_drop(self) -> bool:
        if self._dropped is None:
            return False
        start, end = self._dropped
        self._dropped = None
        self.stats.gaps += 1
        log.warning("tap %s (%s of %s): decoding fell behind, %.1f s of audio dropped",
                    self.meta.tap, self.meta.speaker.value, self.meta.call, end - start)
        self._emit(self._next(SegmentKind.GAP, start, end, GapReason.OVERLOAD.value))
        return True
