"""The AudioSocket protocol (Asterisk ``AudioSocket()``), server side.

Each message: one byte of kind, two bytes of payload length (big endian), the payload. Asterisk
sends the stream's id first (16 bytes, a UUID), then audio (signed linear 16-bit, 8 kHz, mono,
little endian, 20 ms = 320 bytes a message), and a hangup (kind 0, or the socket closes).
"""

from __future__ import annotations

import asyncio
import struct
import uuid

KIND_HANGUP = 0x00
KIND_ID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF

SAMPLE_RATE = 8000
BYTES_PER_SECOND = SAMPLE_RATE * 2
_HEADER = struct.Struct("!BH")
MAX_PAYLOAD = 0xFFFF


class ProtocolError(ValueError):
    """The peer did not speak AudioSocket."""


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One message. Raises ``asyncio.IncompleteReadError`` when the peer closes."""
    kind, length = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    payload = await reader.readexactly(length) if length else b""
    return kind, payload


def encode(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("AudioSocket payload too long")
    return _HEADER.pack(kind, len(payload)) + payload


def parse_id(kind: int, payload: bytes) -> str:
    """The stream id of the first message, as a UUID string."""
    if kind != KIND_ID:
        raise ProtocolError(f"expected the stream id first, got message kind {kind:#x}")
    if len(payload) != 16:
        raise ProtocolError(f"stream id must be 16 bytes, got {len(payload)}")
    return str(uuid.UUID(bytes=payload))


def id_message(stream_id: str) -> bytes:
    return encode(KIND_ID, uuid.UUID(stream_id).bytes)
