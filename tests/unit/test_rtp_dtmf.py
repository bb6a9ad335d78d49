"""RFC 4733 key presses written as a pcap for SIPp: read the file back byte by byte (as SIPp and a
receiver would) and check what makes Asterisk see each key once, in order."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from pcap_check import read_udp_frames

from agents.rtp_dtmf import DST_PORT, pcap_length_ms, write_dtmf_pcap
from agents.sipp import seat_scenario


@dataclass
class Packet:
    at_us: int
    src: str
    dst: str
    sport: int
    dport: int
    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    event: int
    end: bool
    volume: int
    duration: int


def read_pcap(path: Path) -> list[Packet]:
    out = []
    for at_us, ip, udp in read_udp_frames(path):
        sport, dport = struct.unpack_from("!HH", udp)
        rtp = udp[8:]
        assert len(rtp) == 16  # 12-byte RTP header, 4-byte event
        b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", rtp)
        event, flags, duration = struct.unpack_from("!BBH", rtp, 12)
        assert b0 == 0x80  # version 2, no padding, extension or CSRCs
        assert flags & 0x40 == 0  # the reserved bit
        out.append(Packet(at_us, ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20])), sport, dport,
                          bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, event, bool(flags & 0x80), flags & 0x3F,
                          duration))
    return out


def by_event(pkts: list[Packet]) -> list[list[Packet]]:
    groups: list[list[Packet]] = []
    for p in pkts:
        if not groups or groups[-1][0].ts != p.ts:
            groups.append([])
        groups[-1].append(p)
    return groups


@pytest.fixture
def star_one(tmp_path: Path) -> list[Packet]:
    path = tmp_path / "keys.pcap"
    write_dtmf_pcap(path, "*1", ssrc=0x11223344, start_seq=500, start_ts=8000)
    return read_pcap(path)


def test_one_stream_to_one_port(star_one: list[Packet]) -> None:
    # SIPp sends to the peer's SDP port plus (a packet's port - the file's lowest): one port only
    assert {(p.src, p.dst, p.sport, p.dport) for p in star_one} == {("127.0.0.1", "127.0.0.1", 40000,
                                                                      DST_PORT)}
    assert {(p.pt, p.ssrc) for p in star_one} == {(101, 0x11223344)}


def test_sequence_numbers_rise_across_every_packet_and_key(star_one: list[Packet]) -> None:
    assert [p.seq for p in star_one] == list(range(500, 500 + len(star_one)))


def test_each_key_is_one_event_with_its_own_timestamp(star_one: list[Packet]) -> None:
    events = by_event(star_one)
    assert [[p.event for p in e] for e in events] == [[10] * 7, [1] * 7]  # * is event 10
    assert events[0][0].ts == 8000
    # the next key's timestamp is where it starts on the 8 kHz clock: 100 ms tone + 60 ms gap
    assert events[1][0].ts == 8000 + 160 * 8


def test_marker_on_the_first_packet_of_each_key_only(star_one: list[Packet]) -> None:
    for e in by_event(star_one):
        assert [p.marker for p in e] == [True] + [False] * (len(e) - 1)


def test_duration_rises_then_the_end_packet_three_times(star_one: list[Packet]) -> None:
    for e in by_event(star_one):
        assert [p.duration for p in e] == [160, 320, 480, 640, 800, 800, 800]
        assert [p.end for p in e] == [False] * 4 + [True] * 3
        assert {p.volume for p in e} == {10}


def test_packets_are_spaced_in_real_time(star_one: list[Packet]) -> None:
    t0 = star_one[0].at_us
    assert [(p.at_us - t0) // 1000 for p in star_one] == [0, 20, 40, 60, 80, 80, 80,
                                                          160, 180, 200, 220, 240, 240, 240]
    assert pcap_length_ms("*1") == 240


def test_every_key_maps_to_its_event(tmp_path: Path) -> None:
    path = tmp_path / "all.pcap"
    write_dtmf_pcap(path, "0123456789*#ABCD", duration_ms=40, gap_ms=40)
    events = by_event(read_pcap(path))
    assert [e[0].event for e in events] == list(range(16))
    assert {tuple(p.duration for p in e) for e in events} == {(160, 320, 320, 320)}
    assert len({e[0].ts for e in events}) == 16


def test_wrapping_sequence_numbers_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "wrap.pcap"
    write_dtmf_pcap(path, "12", start_seq=0xFFFE, start_ts=0xFFFFFF00)
    pkts = read_pcap(path)
    assert [p.seq for p in pkts[:4]] == [0xFFFE, 0xFFFF, 0, 1]
    assert by_event(pkts)[1][0].ts == (0xFFFFFF00 + 1280) % 2**32


@pytest.mark.parametrize("keys", ["", "1E", "12 ", "x", "١"])
def test_bad_keys_are_refused(tmp_path: Path, keys: str) -> None:
    with pytest.raises(ValueError, match="keys"):
        write_dtmf_pcap(tmp_path / "bad.pcap", keys)
    assert not (tmp_path / "bad.pcap").exists()


@pytest.mark.parametrize("kwargs", [{"payload_type": 0}, {"duration_ms": 0}, {"duration_ms": 9000},
                                    {"gap_ms": -1}, {"volume": 64}])
def test_bad_parameters_are_refused(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        write_dtmf_pcap(tmp_path / "bad.pcap", "1", **kwargs)


def test_seat_scenario_plays_the_pcap_instead_of_sending_info() -> None:
    xml_text = seat_scenario(dtmf="*1", dtmf_after_ms=700, dtmf_mode="rfc4733", dtmf_pcap="/tmp/a b/k.pcap")
    root = ET.fromstring(xml_text.encode("iso-8859-1"))
    tags = [el.tag for el in root]
    assert tags == ["recv", "send", "pause", "send", "recv", "pause", "nop", "recv", "send"]
    assert root[5].get("milliseconds") == "700"
    execs = root.findall("./nop/action/exec")
    assert [e.get("play_pcap_audio") for e in execs] == ["/tmp/a b/k.pcap"]
    assert "INFO" not in xml_text
    assert root[-2].get("request") == "BYE"  # no pause after the keys: a BYE may come while they play


def test_seat_scenario_modes_are_checked() -> None:
    with pytest.raises(ValueError, match="dtmf_mode"):
        seat_scenario(dtmf="1", dtmf_mode="inband")
    with pytest.raises(ValueError, match="dtmf_pcap"):
        seat_scenario(dtmf="1", dtmf_mode="rfc4733")
    with pytest.raises(ValueError, match="keys"):
        seat_scenario(dtmf="1x", dtmf_mode="rfc4733", dtmf_pcap="k.pcap")
    assert seat_scenario(dtmf="*1") == seat_scenario(dtmf="*1", dtmf_mode="info")
