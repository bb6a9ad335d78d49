"""RFC 4733 (RFC 2833) key presses as a libpcap file, for SIPp's ``<exec play_pcap_audio>``.

A softphone sends a key as RTP telephone-events: packets every 20 ms that share the event's RTP
timestamp and report a growing duration (the first with the marker bit), then the end packet three
times with the E bit. One file holds a whole key string: sequence numbers rise across every packet
and every key has its own timestamp, because a receiver takes a repeated (seq, timestamp) for a
retransmission and drops it (which is why SIPp's one-key pcaps replayed back to back lose every
key after the first).

SIPp sends each packet's UDP payload to the media address of the peer's SDP, from its own ``-mi``
address and media port, with the pcap's timing; the addresses and ports here only frame the file.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# RFC 4733 section 3.2: event codes of the DTMF keys.
DTMF_EVENTS: dict[str, int] = {
    **{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15,
}

CLOCK_RATE = 8000          # telephone-event/8000, as the SDP offers it
PACKET_MS = 20             # one event update per 20 ms, like an RTP audio frame
END_PACKETS = 3            # the end packet is sent three times (RFC 4733 section 2.5.1.4)
MAX_DURATION_MS = 0xFFFF * 1000 // CLOCK_RATE  # the duration field is 16 bits of clock ticks

# Fixed framing: a loopback host talking to itself, one destination port (SIPp offsets the peer's
# media port by a packet's port minus the file's lowest destination port, so one port means "the
# port in the SDP").
SRC_IP, DST_IP = "127.0.0.1", "127.0.0.1"
SRC_PORT, DST_PORT = 40000, 40002
CAPTURE_EPOCH = 1_700_000_000  # pcap time of the first packet; SIPp only uses the gaps

_PCAP_HEADER = struct.Struct("<IHHiIII")   # magic, version 2.4, tz, sigfigs, snaplen, linktype
_PCAP_RECORD = struct.Struct("<IIII")      # ts_sec, ts_usec, incl_len, orig_len
_ETHERNET = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_RTP = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")
PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1


@dataclass(frozen=True)
class EventPacket:
    """One RTP telephone-event packet and when it leaves, in ms from the first packet."""

    at_ms: int
    seq: int
    timestamp: int
    marker: bool
    event: int
    end: bool
    volume: int
    duration: int  # in clock ticks


def event_packets(keys: str, *, start_seq: int = 1000, start_ts: int = 160000, duration_ms: int = 100,
                  gap_ms: int = 60, volume: int = 10) -> list[EventPacket]:
    """The packets of ``keys``, in sending order, 20 ms apart within a key (each reports the tone's
    length up to the next packet); the next key starts ``duration_ms + gap_ms`` after the last."""
    check_keys(keys)
    if not 1 <= duration_ms <= MAX_DURATION_MS:
        raise ValueError(f"duration_ms must be 1..{MAX_DURATION_MS}, not {duration_ms}")
    if gap_ms < 0:
        raise ValueError(f"gap_ms must not be negative, not {gap_ms}")
    if not 0 <= volume <= 63:
        raise ValueError(f"volume is 0..63 (-dBm0), not {volume}")
    ticks_per_ms = CLOCK_RATE // 1000
    total = duration_ms * ticks_per_ms
    updates = math.ceil(duration_ms / PACKET_MS) - 1  # packets before the end one
    out: list[EventPacket] = []
    seq, start_ms = start_seq, 0
    for key in keys:
        event, ts = DTMF_EVENTS[key.upper()], (start_ts + start_ms * ticks_per_ms) % 2**32
        for n in range(updates):
            out.append(EventPacket(start_ms + n * PACKET_MS, seq % 2**16, ts, n == 0, event, False,
                                   volume, (n + 1) * PACKET_MS * ticks_per_ms))
            seq += 1
        for n in range(END_PACKETS):
            out.append(EventPacket(start_ms + updates * PACKET_MS, seq % 2**16, ts, updates == 0 and n == 0,
                                   event, True, volume, total))
            seq += 1
        start_ms += duration_ms + gap_ms
    return out


def pcap_length_ms(keys: str, *, duration_ms: int = 100, gap_ms: int = 60) -> int:
    """How long SIPp takes to play the pcap of ``keys``: from its first packet to its last."""
    return event_packets(keys, duration_ms=duration_ms, gap_ms=gap_ms)[-1].at_ms


def check_keys(keys: str) -> None:
    if not keys:
        raise ValueError("no keys to send")
    bad = sorted({k for k in keys if k.upper() not in DTMF_EVENTS})
    if bad:
        raise ValueError(f"not DTMF keys: {bad!r} (keys are 0-9, *, #, A-D)")


def rtp_payload(p: EventPacket, *, ssrc: int, payload_type: int) -> bytes:
    header = _RTP.pack(0x80, (0x80 if p.marker else 0) | payload_type, p.seq, p.timestamp, ssrc)
    return header + _EVENT.pack(p.event, (0x80 if p.end else 0) | p.volume, p.duration)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _frame(payload: bytes, ident: int) -> bytes:
    src, dst = bytes(map(int, SRC_IP.split("."))), bytes(map(int, DST_IP.split(".")))
    udp_len = _UDP.size + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp_sum = _checksum(pseudo + _UDP.pack(SRC_PORT, DST_PORT, udp_len, 0) + payload) or 0xFFFF
    udp = _UDP.pack(SRC_PORT, DST_PORT, udp_len, udp_sum) + payload
    ip_fields = (0x45, 0xB8, _IPV4.size + len(udp), ident, 0x4000, 64, 17)  # DSCP EF, don't fragment
    ip_sum = _checksum(_IPV4.pack(*ip_fields, 0, src, dst))
    ip = _IPV4.pack(*ip_fields, ip_sum, src, dst)
    return _ETHERNET.pack(b"\0" * 6, b"\0" * 6, 0x0800) + ip + udp


def write_dtmf_pcap(path: str | Path, keys: str, *, payload_type: int = 101, ssrc: int = 0x484C4E31,
                    start_seq: int = 1000, start_ts: int = 160000, duration_ms: int = 100,
                    gap_ms: int = 60, volume: int = 10) -> int:
    """Write ``keys`` as RFC 4733 events to a classic libpcap file; returns its length in ms (the
    time from the first packet to the last, which is how long SIPp takes to play it)."""
    if not 96 <= payload_type <= 127:
        raise ValueError(f"telephone-event takes a dynamic payload type (96..127), not {payload_type}")
    packets = event_packets(keys, start_seq=start_seq, start_ts=start_ts, duration_ms=duration_ms,
                            gap_ms=gap_ms, volume=volume)
    write_rtp_pcap(path, ((p.at_ms, rtp_payload(p, ssrc=ssrc, payload_type=payload_type)) for p in packets))
    return packets[-1].at_ms


def write_rtp_pcap(path: str | Path, packets: Iterable[tuple[int, bytes]]) -> None:
    """Write RTP payloads, each with its sending time in ms from the first, as a libpcap file."""
    out = bytearray(_PCAP_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
    for n, (at_ms, payload) in enumerate(packets):
        frame = _frame(payload, ident=n & 0xFFFF)
        sec, ms = divmod(at_ms, 1000)
        out += _PCAP_RECORD.pack(CAPTURE_EPOCH + sec, ms * 1000, len(frame), len(frame)) + frame
    Path(path).write_bytes(bytes(out))
