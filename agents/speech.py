"""Synthesized speech for tests, the demo and the benchmarks: text -> 8 kHz audio -> an RTP pcap.

``espeak-ng`` speaks the text (Debian package; the only Vosk model these machines can install is
Korean, so the default voice is Korean) and ``sox`` resamples it to the telephone rate. The pcap
carries G.711 mu-law (RTP payload type 0) in 20 ms packets, for SIPp's ``play_pcap_audio``: a
caller or a seat then talks on a real call, and the transcriber hears it through Asterisk.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from agents.rtp_dtmf import write_rtp_pcap

RATE = 8000
FRAME_SAMPLES = 160  # 20 ms
PT_PCMU = 0
_RTP = struct.Struct("!BBHII")


class SpeechError(RuntimeError):
    """espeak-ng or sox is missing or failed."""


def synthesize(text: str, *, voice: str = "ko", words_per_min: int = 140) -> bytes:
    """``text`` spoken by espeak-ng as signed 16-bit little-endian mono PCM at 8 kHz."""
    if not text.strip():
        raise ValueError("no text to speak")
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SpeechError(f"{tool} is not installed (scripts/install.sh installs it)")
    spoken = subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_min), "--stdout", text],
                            capture_output=True, timeout=60, check=False)
    if spoken.returncode != 0 or not spoken.stdout:
        raise SpeechError(f"espeak-ng failed: {spoken.stderr.decode(errors='replace')[:200]}")
    pcm = subprocess.run(["sox", "-t", "wav", "-", "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16",
                          "-e", "signed-integer", "-L", "-"],
                         input=spoken.stdout, capture_output=True, timeout=60, check=False)
    if pcm.returncode != 0:
        raise SpeechError(f"sox failed: {pcm.stderr.decode(errors='replace')[:200]}")
    return pcm.stdout


def silence(ms: int) -> bytes:
    return b"\0\0" * (RATE * ms // 1000)


def _ulaw_byte(sample: int) -> int:
    """G.711 mu-law of one 16-bit sample (ITU-T G.711, with the usual bias of 0x84)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


_ULAW = bytes(_ulaw_byte(s - 32768) for s in range(65536))


def ulaw_encode(pcm: bytes) -> bytes:
    """Signed 16-bit little-endian PCM -> G.711 mu-law, one byte a sample."""
    if len(pcm) % 2:
        raise ValueError("PCM must be whole 16-bit samples")
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    return bytes(_ULAW[s + 32768] for s in samples)


def write_speech_pcap(path: str | Path, pcm: bytes, *, ssrc: int = 0x484C5350, start_seq: int = 2000,
                      start_ts: int = 320000) -> int:
    """Write 8 kHz PCM as PCMU RTP packets, 20 ms apart; returns the audio's length in ms."""
    ulaw = ulaw_encode(pcm)
    frames = [ulaw[i:i + FRAME_SAMPLES] for i in range(0, len(ulaw), FRAME_SAMPLES)]
    if frames and len(frames[-1]) < FRAME_SAMPLES:
        frames[-1] = frames[-1] + b"\xff" * (FRAME_SAMPLES - len(frames[-1]))  # 0xFF: mu-law silence
    write_rtp_pcap(path, (
        (n * 20, _RTP.pack(0x80, (0x80 if n == 0 else 0) | PT_PCMU, (start_seq + n) % 2**16,
                           (start_ts + n * FRAME_SAMPLES) % 2**32, ssrc) + frame)
        for n, frame in enumerate(frames)))
    return len(frames) * 20
