"""One tapped party's stream (transcription.stream.TapStream) with a scripted decoder in a real
DecoderPool and a clock the test moves: the backlog bound and its overload gap, the sample clock
through bursts and upstream loss, partial and final segments on wall-clock time, and a recognizer
that fails on one chunk."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from hotline.contracts import Segment, SegmentKind, Speaker
from transcription import stream as stream_module
from transcription.recognizer import DecoderPool, Utterance, Word
from transcription.stream import TapMeta, TapStream

T0 = 1_760_000_000.0
FRAME_S = 0.02  # one AudioSocket message: 20 ms, 320 bytes
META = TapMeta(tap="tap-1", call="1760000000.42", speaker=Speaker.OPERATOR_110, seat="1101")


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class ScriptedDecoder:
    """Stands in for StreamDecoder: counts the audio fed (before answering, as Vosk's wrapper does)
    and answers from ``script(decoder)``. ``gate`` cleared: accept() blocks in its pool thread."""

    def __init__(self, script: Callable[[ScriptedDecoder], Utterance | None] = lambda d: None,
                 last: Utterance | None = None) -> None:
        self.script = script
        self.last = last
        self.fed_s = 0.0
        self.chunks: list[bytes] = []
        self.finishes = 0
        self.finish_at: list[int] = []  # how many chunks had been fed at each finish()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def accept(self, pcm: bytes, partials: bool = True) -> Utterance | None:
        self.entered.set()
        if not self.gate.wait(10):
            raise RuntimeError("decoder gate never opened")
        self.fed_s += len(pcm) / 16000
        self.chunks.append(pcm)
        return self.script(self)

    def finish(self) -> Utterance | None:
        self.finishes += 1
        self.finish_at.append(len(self.chunks))
        last, self.last = self.last, None
        return last

    @property
    def finished(self) -> bool:
        return self.finishes > 0

    def frames_heard(self) -> list[int]:
        return [struct.unpack_from("<h", c, i)[0] for c in self.chunks for i in range(0, len(c), 320)]


def frame(n: int) -> bytes:
    """20 ms of audio whose samples all carry the frame's number, so the decoder's input says which
    frames reached it."""
    return struct.pack("<h", n) * 160


def feed(stream: TapStream, clock: Clock, frames: Iterable[int], *, late_s: float = 0.0,
         at: float | None = None) -> None:
    """Frame n of the party's audio, spoken from T0 + 0.02 n, arrives when it ends (+ ``late_s``), or
    all at ``at`` (a burst)."""
    for n in frames:
        clock.t = at if at is not None else T0 + (n + 1) * FRAME_S + late_s
        stream.feed(frame(n))


@pytest.fixture
async def pool() -> AsyncIterator[DecoderPool]:
    p = DecoderPool(1)
    yield p
    p.close()


@pytest.fixture
def no_catch_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk 100 ms, however far behind: for the tests of where each chunk's audio belongs."""
    monkeypatch.setattr(stream_module, "CATCH_UP_S", 1e9)


def make_stream(decoder: ScriptedDecoder, pool: DecoderPool, clock: Clock,
                **kw: float) -> tuple[TapStream, list[Segment]]:
    out: list[Segment] = []
    return TapStream(META, decoder, pool, out.append, clock=clock, **kw), out  # type: ignore[arg-type]


async def drain(stream: TapStream, task: asyncio.Task[None] | None = None) -> None:
    stream.close()
    await asyncio.wait_for(task if task is not None else stream.run(), 5)


async def until(event: threading.Event) -> None:
    for _ in range(500):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the decoder was never called")


async def decoded(stream: TapStream, seconds: float) -> None:
    for _ in range(500):
        if stream.stats.decoded_s >= seconds - 1e-9:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"decoded {stream.stats.decoded_s} s, not {seconds} s")


def partial_each_chunk(d: ScriptedDecoder) -> Utterance:
    return Utterance(False, f"so far {len(d.chunks)}")


async def test_backlog_stops_at_its_bound_and_the_dropped_audio_is_one_overload_gap(pool) -> None:
    clock = Clock()
    dec = ScriptedDecoder(lambda d: Utterance(True, "help", (Word("help", 0.1, 0.2, 0.9),))
                          if len(d.chunks) == 2 else None)
    dec.gate.clear()
    stream, segs = make_stream(dec, pool, clock, max_backlog_s=1.0)
    task = asyncio.create_task(stream.run())
    try:
        feed(stream, clock, range(5))  # one 100 ms chunk: the decoder takes it and hangs
        await until(dec.entered)
        peak = 0.0
        for n in range(5, 105):  # 2 s more while it hangs: 1 s fits, frames 5..54 are dropped
            feed(stream, clock, [n])
            peak = max(peak, stream.backlog_s)
        assert peak == pytest.approx(1.0)
        assert stream.stats.dropped_s == pytest.approx(1.0)
        assert segs == [], "the gap is reported when decoding resumes"
    finally:
        dec.gate.set()
    await drain(stream, task)

    assert dec.frames_heard() == [*range(5), *range(55, 105)], "the oldest audio went, the rest in order"
    gap, final = segs
    assert (gap.kind, gap.text, gap.seq) == (SegmentKind.GAP, "overload", 0)
    assert gap.start == pytest.approx(T0 + 0.1, abs=1e-3)  # frame 5 was spoken at 0.1 s
    assert gap.end == pytest.approx(T0 + 1.1, abs=1e-3)    # frame 54 ended at 1.1 s
    # The word the decoder placed right after the drop maps onto the audio that was kept.
    assert (final.kind, final.seq, final.text) == (SegmentKind.FINAL, 1, "help")
    assert (final.start, final.end) == (pytest.approx(T0 + 1.1, abs=1e-3), pytest.approx(T0 + 1.2, abs=1e-3))
    assert stream.stats.gaps == 1
    assert stream.stats.received_s == pytest.approx(2.1)
    assert stream.stats.decoded_s == pytest.approx(1.1)
    assert dec.finishes == 2, "the utterance before the hole was finished there (and once at the end)"
    assert dec.finish_at == [1, 11], "before any audio after the hole was fed"


async def test_each_stall_is_its_own_gap(pool) -> None:
    clock = Clock()
    dec = ScriptedDecoder()
    stream, segs = make_stream(dec, pool, clock, max_backlog_s=0.5)
    task = asyncio.create_task(stream.run())
    for first, decoded_s in ((0, 0.6), (55, 1.2)):
        dec.gate.clear()
        dec.entered.clear()
        feed(stream, clock, range(first, first + 5))
        await until(dec.entered)
        feed(stream, clock, range(first + 5, first + 55))  # 0.5 s kept, the 0.5 s before it dropped
        dec.gate.set()
        await decoded(stream, decoded_s)
    await drain(stream, task)
    gaps = [(s.start - T0, s.end - T0) for s in segs if s.kind is SegmentKind.GAP]
    assert gaps == [pytest.approx((0.1, 0.6), abs=1e-3), pytest.approx((1.2, 1.7), abs=1e-3)]
    assert stream.stats.dropped_s == pytest.approx(1.0)


@pytest.mark.parametrize("stall_s", [1.0, 2.5])  # shorter and longer than the resync window
async def test_a_burst_after_a_stall_keeps_the_time_the_audio_was_spoken(pool, no_catch_up,
                                                                        stall_s: float) -> None:
    clock = Clock()
    dec = ScriptedDecoder(partial_each_chunk)
    stream, segs = make_stream(dec, pool, clock, max_backlog_s=5.0)
    feed(stream, clock, range(50))  # 1 s on time
    held = int(stall_s / FRAME_S)
    feed(stream, clock, range(50, 50 + held), at=T0 + 1.0 + stall_s)  # then all the stall's audio at once
    await drain(stream)

    chunks = (50 + held) // 5
    assert [s.end - T0 for s in segs] == pytest.approx([0.1 * k for k in range(1, chunks + 1)], abs=1e-3), \
        "each chunk at its place in the audio, the burst not squeezed into its arrival"
    assert [s.kind for s in segs] == [SegmentKind.PARTIAL] * chunks
    assert stream.stats.dropped_s == 0


async def test_steady_upstream_loss_moves_the_sample_clock_forward(pool, no_catch_up) -> None:
    clock = Clock()
    dec = ScriptedDecoder(partial_each_chunk)
    stream, segs = make_stream(dec, pool, clock, max_backlog_s=10.0)
    feed(stream, clock, range(50))                    # 1 s on time
    feed(stream, clock, range(50, 200), late_s=1.0)   # then 1 s of audio never came: 3 s, each 1 s late
    await drain(stream)

    ends = [s.end - T0 for s in segs]
    assert len(ends) == 40
    assert ends[:10] == pytest.approx([0.1 * k for k in range(1, 11)], abs=1e-3)
    assert ends[-1] == pytest.approx(5.0, abs=1e-3), "the last audio is placed when it really was spoken"
    steps = [round(b - a, 3) for a, b in zip(ends, ends[1:], strict=False)]
    assert sorted(steps)[-1] == pytest.approx(1.1, abs=1e-3), "one jump of the lost second"
    assert sorted(steps)[:-1] == pytest.approx([0.1] * 38, abs=1e-3)


async def test_late_audio_for_a_moment_does_not_move_the_clock(pool, no_catch_up) -> None:
    clock = Clock()
    dec = ScriptedDecoder(partial_each_chunk)
    stream, segs = make_stream(dec, pool, clock, max_backlog_s=10.0)
    feed(stream, clock, range(50))
    feed(stream, clock, range(50, 100), late_s=1.0)  # a second of late audio (jitter), then on time
    feed(stream, clock, range(100, 150))
    await drain(stream)
    assert [s.end - T0 for s in segs] == pytest.approx([0.1 * k for k in range(1, 31)], abs=1e-3)


async def test_partials_then_finals_on_wall_clock_time(pool) -> None:
    script: dict[int, Utterance] = {
        2: Utterance(False, "my neighbour"),
        3: Utterance(False, "my neighbour is"),
        4: Utterance(True, "my neighbour is shouting", (
            Word("my", 0.12, 0.16, 0.9), Word("neighbour", 0.17, 0.25, 0.7),
            Word("is", 0.26, 0.3, 0.8), Word("shouting", 0.31, 0.38, 0.6))),
    }
    dec = ScriptedDecoder(lambda d: script.get(len(d.chunks)),
                          last=Utterance(True, "thank you", (Word("thank", 0.45, 0.52, 1.0),
                                                             Word("you", 0.53, 0.6, 1.0))))
    clock = Clock(T0)
    stream, segs = make_stream(dec, pool, clock)
    task = asyncio.create_task(stream.run())
    feed(stream, clock, range(25))  # 0.5 s
    await decoded(stream, 0.5)
    assert not dec.finished and len(segs) == 3, "the last words stay open until the stream ends"
    await drain(stream, task)

    assert dec.finished, "close() flushes the decoder"
    assert [s.kind for s in segs] == [SegmentKind.PARTIAL, SegmentKind.PARTIAL, SegmentKind.FINAL,
                                      SegmentKind.FINAL]
    assert [s.seq for s in segs] == [0, 1, 2, 3]
    assert [s.text for s in segs] == ["my neighbour", "my neighbour is", "my neighbour is shouting",
                                      "thank you"]
    p1, p2, f1, f2 = segs
    assert p1.start == pytest.approx(T0, abs=1e-3) and p1.end == pytest.approx(T0 + 0.2, abs=1e-3)
    assert p2.start == p1.start and p2.end == pytest.approx(T0 + 0.3, abs=1e-3)
    assert (f1.start, f1.end) == (pytest.approx(T0 + 0.12, abs=1e-3), pytest.approx(T0 + 0.38, abs=1e-3))
    assert f1.confidence == pytest.approx(0.75)
    assert (f2.start, f2.end) == (pytest.approx(T0 + 0.45, abs=1e-3), pytest.approx(T0 + 0.6, abs=1e-3))
    assert {(s.call, s.tap, s.speaker, s.seat) for s in segs} == {(META.call, META.tap, META.speaker,
                                                                   META.seat)}
    assert (stream.stats.partials, stream.stats.finals, stream.stats.gaps) == (2, 2, 0)
    for s in segs:
        assert Segment.from_json(s.to_json()) == s, "what the stream emits passes the wire check"


async def test_a_final_without_word_times_spans_its_partials(pool) -> None:
    script = {1: Utterance(False, "hello"), 3: Utterance(True, "hello there")}
    dec = ScriptedDecoder(lambda d: script.get(len(d.chunks)))
    clock = Clock()
    stream, segs = make_stream(dec, pool, clock)
    feed(stream, clock, range(20))
    await drain(stream)
    partial, final = segs
    assert final.kind is SegmentKind.FINAL and final.confidence is None
    assert final.start == partial.start == pytest.approx(T0, abs=1e-3)
    assert final.end == pytest.approx(T0 + 0.3, abs=1e-3)


async def test_a_decoder_error_loses_the_chunk_not_the_stream(pool) -> None:
    def script(d: ScriptedDecoder) -> Utterance | None:
        if len(d.chunks) == 2:
            raise RuntimeError("recognizer hiccup")
        if len(d.chunks) == 4:
            words = (Word("still", 0.31, 0.35, 1.0), Word("here", 0.36, 0.4, 1.0))
            return Utterance(True, "still here", words)
        return None

    dec = ScriptedDecoder(script, last=Utterance(True, "bye", (Word("bye", 0.42, 0.48, 1.0),)))
    clock = Clock()
    stream, segs = make_stream(dec, pool, clock)
    feed(stream, clock, range(25))
    await drain(stream)

    assert len(dec.chunks) == 5 and dec.finished
    assert stream.stats.decoded_s == pytest.approx(0.4), "the failed chunk is not counted as decoded"
    assert [(s.kind, s.text, s.seq) for s in segs] == [(SegmentKind.FINAL, "still here", 0),
                                                       (SegmentKind.FINAL, "bye", 1)]
    assert segs[0].start == pytest.approx(T0 + 0.31, abs=1e-3), "later word times still map"


async def test_a_failing_flush_ends_the_stream_quietly(pool) -> None:
    dec = ScriptedDecoder(lambda d: Utterance(True, "one", (Word("one", 0.0, 0.1, 1.0),)))

    def broken() -> Utterance | None:
        raise RuntimeError("recognizer gone")

    dec.finish = broken  # type: ignore[assignment]
    clock = Clock()
    stream, segs = make_stream(dec, pool, clock)
    feed(stream, clock, range(5))
    await drain(stream)
    assert [s.text for s in segs] == ["one"]


async def test_audio_after_close_is_ignored(pool) -> None:
    dec = ScriptedDecoder()
    clock = Clock()
    stream, _ = make_stream(dec, pool, clock)
    feed(stream, clock, range(5))
    stream.close()
    feed(stream, clock, range(5, 10))
    await asyncio.wait_for(stream.run(), 5)
    assert dec.frames_heard() == list(range(5))
    assert stream.stats.received_s == pytest.approx(0.1)


async def test_a_party_who_goes_quiet_mid_utterance_gets_the_final_without_hanging_up(
        pool, monkeypatch: pytest.MonkeyPatch) -> None:
    # Silence suppression: after speech the phone sends nothing, so Vosk never hears the silence
    # that would end the utterance.
    monkeypatch.setattr(stream_module, "QUIET_S", 0.05)
    dec = ScriptedDecoder(lambda d: Utterance(False, "the lift") if len(d.chunks) == 1 else None,
                          last=Utterance(True, "the lift is stuck", (Word("the", 0.02, 0.04, 1.0),
                                                                     Word("stuck", 0.08, 0.1, 1.0))))
    clock = Clock()
    stream, segs = make_stream(dec, pool, clock)
    task = asyncio.create_task(stream.run())
    feed(stream, clock, range(5))
    for _ in range(200):
        if len(segs) == 2:
            break
        await asyncio.sleep(0.01)
    assert [(s.kind, s.text) for s in segs] == [(SegmentKind.PARTIAL, "the lift"),
                                                (SegmentKind.FINAL, "the lift is stuck")]
    assert segs[1].start == pytest.approx(T0 + 0.02, abs=1e-3)
    assert segs[1].end == pytest.approx(T0 + 0.1, abs=1e-3)
    assert dec.finishes == 1
    await asyncio.sleep(0.2)
    assert dec.finishes == 1, "quiet with no utterance open: nothing to finish"
    feed(stream, clock, range(5, 10))  # the party speaks again: the stream goes on
    await decoded(stream, 0.2)
    await drain(stream, task)
    assert len(dec.chunks) == 2 and dec.finishes == 2


async def test_quiet_without_an_open_utterance_finishes_nothing(pool,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "QUIET_S", 0.02)
    dec = ScriptedDecoder()
    clock = Clock()
    stream, _ = make_stream(dec, pool, clock)
    task = asyncio.create_task(stream.run())
    feed(stream, clock, range(5))
    await decoded(stream, 0.1)
    await asyncio.sleep(0.15)
    assert dec.finishes == 0
    await drain(stream, task)
    assert dec.finishes == 1


async def test_a_failing_finish_on_a_quiet_stream_is_not_retried_over_and_over(
        pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "QUIET_S", 0.02)
    dec = ScriptedDecoder(lambda d: Utterance(False, "hello"))
    calls = []

    def broken() -> Utterance | None:
        calls.append(1)
        raise RuntimeError("recognizer gone")

    dec.finish = broken  # type: ignore[assignment]
    clock = Clock()
    stream, segs = make_stream(dec, pool, clock)
    task = asyncio.create_task(stream.run())
    feed(stream, clock, range(5))
    await decoded(stream, 0.1)
    await asyncio.sleep(0.3)  # fifteen quiet periods
    assert len(calls) == 1, "the utterance is lost once, not retried (and logged) every quiet period"
    await drain(stream, task)
    assert [s.kind for s in segs] == [SegmentKind.PARTIAL]


async def test_a_stream_behind_real_time_catches_up_in_bigger_bites_without_partials(pool) -> None:
    clock = Clock()
    seen: list[tuple[int, bool]] = []

    class Recording(ScriptedDecoder):
        def accept(self, pcm: bytes, partials: bool = True) -> Utterance | None:
            seen.append((len(pcm), partials))
            return super().accept(pcm, partials)

    dec = Recording(partial_each_chunk)
    stream, segs = make_stream(dec, pool, clock, max_backlog_s=10.0)
    feed(stream, clock, range(150))  # 3 s arrive before decoding starts: 2 s beyond the catch-up mark
    await drain(stream)
    bite = int(stream_module.CATCH_UP_CHUNK_S * 16000)
    behind = [n for n, partials in seen if not partials]
    assert behind and set(behind) == {bite}, "behind: half-second bites, no partials asked for"
    assert seen[-1][1], "caught up: 100 ms chunks with partials again"
    assert sum(n for n, _ in seen) == 150 * 320, "nothing skipped: all the audio decoded"
    assert stream.stats.dropped_s == 0


async def test_a_word_a_frame_short_of_the_audio_after_a_hole_is_placed_after_the_hole(pool) -> None:
    stream, _ = make_stream(ScriptedDecoder(), pool, Clock())
    stream._anchors.extend([(0.0, T0), (0.5, T0 + 0.5), (1.0, T0 + 4.0)])  # 2.5 s dropped after 1.0 s
    assert stream._wall(0.9) == pytest.approx(T0 + 0.9), "before the hole: where it was spoken"
    assert stream._wall(0.99) == pytest.approx(T0 + 4.0), "Vosk's 30 ms frames: after the hole"
    assert stream._wall(1.2) == pytest.approx(T0 + 4.2)
    stream._anchors.clear()
    stream._anchors.extend([(0.0, T0), (0.5, T0 + 0.5), (1.0, T0 + 1.0)])  # no hole
    assert stream._wall(0.99) == pytest.approx(T0 + 0.99), "no hole: nothing to snap to"
