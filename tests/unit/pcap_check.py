"""Read back a classic libpcap file of Ethernet/IPv4/UDP frames as SIPp's ``play_pcap_audio``
does, checking the framing it relies on (no truncation, checksums, UDP length)."""

from __future__ import annotations

import struct
from pathlib import Path


def sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def read_udp_frames(path: Path) -> list[tuple[int, bytes, bytes]]:
    """Each frame as (capture time in µs, its 20-byte IPv4 header, its UDP datagram)."""
    data = path.read_bytes()
    magic, major, minor, _tz, _sig, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)  # classic pcap, Ethernet
    assert snaplen >= 65535
    off, out = 24, []
    while off < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        assert incl == orig == len(frame), "no truncated packets (SIPp refuses them)"
        assert struct.unpack_from("!H", frame, 12)[0] == 0x0800
        ip, udp = frame[14:34], frame[34:]
        vihl, _tos, total, _id, _frag, _ttl, proto, _sum = struct.unpack_from("!BBHHHBBH", ip)
        assert vihl == 0x45 and proto == 17 and total == len(frame) - 14
        assert sum16(ip) == 0xFFFF, "IPv4 header checksum"
        ulen = struct.unpack_from("!H", udp, 4)[0]
        assert ulen == len(udp), "SIPp takes the payload length from the UDP header"
        assert sum16(ip[12:20] + struct.pack("!BBH", 0, 17, ulen) + udp) == 0xFFFF, "UDP checksum"
        out.append((sec * 1_000_000 + usec, ip, udp))
    return out
