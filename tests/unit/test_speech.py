"""Synthesized speech for the demo and the end-to-end tests (agents.speech): G.711 mu-law, the RTP
pcap SIPp plays, espeak-ng + sox synthesis; and the wire check of a transcript segment
(hotline.contracts.Segment.from_json)."""

from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
import wave
from pathlib import Path
from typing import Any

import pytest
from pcap_check import read_udp_frames

from agents import speech
from agents.speech import SpeechError, silence, synthesize, ulaw_encode, write_speech_pcap
from hotline.contracts import SEGMENT_TEXT_MAX, Segment, SegmentKind, Speaker

# --- G.711 mu-law -----------------------------------------------------------------------------------


def ulaw_decode(code: int) -> int:
    """ITU-T G.711 mu-law expansion (16-bit scale), written from the standard, not from the encoder."""
    u = ~code & 0xFF
    exponent, mantissa = (u >> 4) & 0x07, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if u & 0x80 else magnitude


def pcm(*samples: int) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


@pytest.mark.parametrize(("sample", "code"), [(0, 0xFF), (32767, 0x80), (-32768, 0x00), (-1, 0x7F),
                                              (1, 0xFF), (32635, 0x80)])
def test_mu_law_of_known_samples(sample: int, code: int) -> None:
    assert ulaw_encode(pcm(sample)) == bytes([code])


def test_mu_law_round_trip_stays_within_the_quantisation_step() -> None:
    every = list(range(-32768, 32768))
    codes = ulaw_encode(pcm(*every))
    assert len(codes) == len(every)
    decoded = [ulaw_decode(c) for c in codes]
    for sample, code, back in zip(every, codes, decoded, strict=True):
        if abs(sample) > 32635:  # beyond G.711's range: clipped to the top level
            assert back == (32124 if sample > 0 else -32124)
            continue
        half_step = 1 << (((~code >> 4) & 0x07) + 2)  # segment e quantises in steps of 2^(e+3)
        assert abs(sample - back) <= half_step, (sample, hex(code), back)
    assert decoded == sorted(decoded), "louder in, never quieter out"
    assert {(s > 0) == (d > 0) for s, d in zip(every, decoded, strict=True) if abs(s) > 8} == {True}


def test_mu_law_needs_whole_samples() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        ulaw_encode(b"\x00\x01\x02")


def test_silence_is_zero_samples() -> None:
    assert silence(20) == b"\0" * 320 and silence(0) == b""


# --- the RTP pcap SIPp plays ------------------------------------------------------------------------


def read_rtp_pcap(path: Path) -> list[dict[str, Any]]:
    """Read a classic libpcap file of Ethernet/IPv4/UDP/RTP frames back, checking its framing."""
    out = []
    for at_us, _ip, udp in read_udp_frames(path):
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", udp, 8)
        out.append({"at_us": at_us, "v": b0 >> 6, "marker": bool(b1 & 0x80), "pt": b1 & 0x7F, "seq": seq,
                    "ts": ts, "ssrc": ssrc, "payload": udp[20:]})
    return out


def tone(seconds: float, hz: float = 440.0) -> bytes:
    n = int(seconds * 8000)
    return pcm(*(int(8000 * math.sin(2 * math.pi * hz * i / 8000)) for i in range(n)))


def test_speech_pcap_is_pcmu_in_20_ms_packets(tmp_path: Path) -> None:
    audio = tone(1.01)  # 50 and a half packets
    path = tmp_path / "speech.pcap"
    assert write_speech_pcap(path, audio, ssrc=0x11223344, start_seq=100, start_ts=8000) == 1020

    packets = read_rtp_pcap(path)
    assert len(packets) == 51
    assert {(p["v"], p["pt"], p["ssrc"]) for p in packets} == {(2, 0, 0x11223344)}
    assert [p["seq"] for p in packets] == list(range(100, 151))
    assert [p["ts"] for p in packets] == [8000 + 160 * n for n in range(51)]
    assert [p["at_us"] - packets[0]["at_us"] for p in packets] == [20_000 * n for n in range(51)]
    assert [p["marker"] for p in packets] == [True] + [False] * 50, "the talkspurt starts once"
    assert {len(p["payload"]) for p in packets} == {160}
    payload = b"".join(p["payload"] for p in packets)
    assert payload[:8080] == ulaw_encode(audio)
    assert payload[8080:] == b"\xff" * 80, "the last packet is padded with mu-law silence"


def test_speech_pcap_sequence_and_timestamp_wrap(tmp_path: Path) -> None:
    path = tmp_path / "wrap.pcap"
    write_speech_pcap(path, silence(60), start_seq=65535, start_ts=2**32 - 160)
    packets = read_rtp_pcap(path)
    assert [p["seq"] for p in packets] == [65535, 0, 1]
    assert [p["ts"] for p in packets] == [2**32 - 160, 0, 160]


# --- espeak-ng + sox ------------------------------------------------------------------------------


def test_synthesize_speaks_at_the_telephone_rate() -> None:
    text = "안녕하세요 불이 났어요"
    audio = synthesize(text)
    assert audio and len(audio) % 2 == 0
    wav = subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "--stdout", text], capture_output=True,
                         check=True, timeout=60).stdout
    with wave.open(io.BytesIO(wav)) as w:  # espeak-ng streams: its header gives no length, the data does
        frames = len(w.readframes(w.getnframes())) // (w.getsampwidth() * w.getnchannels())
        spoken_s = frames / w.getframerate()
    assert 0.5 < spoken_s < 10
    assert len(audio) / 16000 == pytest.approx(spoken_s, rel=0.01), "8 kHz, 16-bit, mono"
    samples = struct.unpack(f"<{len(audio) // 2}h", audio)
    assert max(abs(s) for s in samples) > 1000, "speech, not silence"


@pytest.mark.parametrize("text", ["", "   \n"])
def test_synthesize_without_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="no text"):
        synthesize(text)


def test_synthesize_says_which_tool_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(speech.shutil, "which", lambda tool: None if tool == "sox" else real(tool))
    with pytest.raises(SpeechError, match="sox is not installed"):
        synthesize("hello")


# --- Segment.from_json ------------------------------------------------------------------------------

GOOD: dict[str, Any] = {"call": "1760000000.42", "tap": "0f8d5f7e-2a8f-4f43-9d1e-6f0c1c2b3a4d", "seq": 7,
                        "speaker": "operator_110", "kind": "final", "start": 1_760_000_010.25,
                        "end": 1_760_000_012.5, "text": "there is a fire", "confidence": 0.82, "seat": "1101"}


def test_segment_round_trip() -> None:
    seg = Segment.from_json(GOOD)
    assert seg == Segment(call="1760000000.42", tap=GOOD["tap"], seq=7, speaker=Speaker.OPERATOR_110,
                          kind=SegmentKind.FINAL, start=1_760_000_010.25, end=1_760_000_012.5,
                          text="there is a fire", confidence=0.82, seat="1101")
    assert seg.to_json() == GOOD
    assert Segment.from_json(seg.to_json()) == seg


@pytest.mark.parametrize("changes", [
    {"kind": "gap", "text": "overload", "confidence": None, "seat": None},
    {"kind": "partial", "text": "", "start": 5, "end": 5},  # whole seconds, an empty partial
    {"text": "x" * SEGMENT_TEXT_MAX, "confidence": 1},
    {"seq": 0, "confidence": 0},
], ids=["gap", "ints", "longest-text", "zeros"])
def test_segment_edges_that_are_fine(changes: dict[str, Any]) -> None:
    seg = Segment.from_json({**GOOD, **changes})
    assert isinstance(seg.start, float) and isinstance(seg.end, float)
    assert Segment.from_json(seg.to_json()) == seg


def test_segment_optional_fields_may_be_left_out() -> None:
    raw = {k: v for k, v in GOOD.items() if k not in ("text", "confidence", "seat")}
    seg = Segment.from_json(raw)
    assert (seg.text, seg.confidence, seg.seat) == ("", None, None)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("call", None, "segment.call"),
    ("call", "", "segment.call"),
    ("call", "1760000000.42; DROP", "segment.call"),
    ("call", 1760000000, "segment.call"),
    ("tap", None, "segment.tap"),
    ("tap", "t" * 65, "segment.tap"),
    ("seq", -1, "segment.seq"),
    ("seq", 1.5, "segment.seq"),
    ("seq", True, "segment.seq"),
    ("seq", "7", "segment.seq"),
    ("seq", 2**31, "segment.seq"),
    ("speaker", "bystander", "segment.speaker"),
    ("speaker", None, "segment.speaker"),
    ("kind", "draft", "segment.kind"),
    ("start", -1, "segment.start"),
    ("start", "1760000010", "segment.start"),
    ("start", True, "segment.start"),
    ("start", 1e11, "segment.start"),
    ("start", float("nan"), "segment.start"),
    ("end", None, "segment.end"),
    ("end", 1_760_000_010.0, "segment.end: before start"),
    ("text", "x" * (SEGMENT_TEXT_MAX + 1), "segment.text"),
    ("text", 5, "segment.text"),
    ("confidence", 1.5, "segment.confidence"),
    ("confidence", -0.1, "segment.confidence"),
    ("confidence", "0.5", "segment.confidence"),
    ("confidence", False, "segment.confidence"),
    ("seat", "seat-1101", "segment.seat"),
    ("seat", "1", "segment.seat"),
    ("seat", 1101, "segment.seat"),
    ("seat", "123456789", "segment.seat"),
])
def test_segment_bad_field_is_named(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        Segment.from_json({**GOOD, field: value})


@pytest.mark.parametrize("missing", ["call", "tap", "seq", "speaker", "kind", "start", "end"])
def test_segment_required_field_missing_is_named(missing: str) -> None:
    with pytest.raises(ValueError, match=rf"segment\.{missing}"):
        Segment.from_json({k: v for k, v in GOOD.items() if k != missing})


def test_segment_unknown_fields_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown fields \['language', 'words'\]"):
        Segment.from_json({**GOOD, "words": [], "language": "ko"})


@pytest.mark.parametrize("raw", [None, [], "segment", 3])
def test_segment_must_be_an_object(raw: Any) -> None:
    with pytest.raises(ValueError, match="expected an object"):
        Segment.from_json(raw)
