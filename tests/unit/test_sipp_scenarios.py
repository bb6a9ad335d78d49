"""The generated SIPp scenarios: well-formed XML, the expected SIP message flow, sane SIP messages.

SIPp itself is not run here (the integration tier does that against Asterisk); these catch a broken
scenario before it turns into a confusing SIPp error or a hung load test.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from agents.sipp import caller_scenario, register_scenario, seat_scenario

Step = tuple[str, str]  # (kind, what): ("send", "INVITE"), ("recv", "200"), ("pause", "100"), ...


def parse(xml_text: str) -> ET.Element:
    # SIPp reads the file as the declared ISO-8859-1; keep the scenario plain ASCII so the UTF-8 file
    # that SippRun writes reads the same
    assert xml_text.isascii()
    root = ET.fromstring(xml_text.encode("iso-8859-1"))
    assert root.tag == "scenario"
    return root


def first_line(el: ET.Element) -> str:
    return (el.text or "").strip().splitlines()[0]


def steps(root: ET.Element) -> list[Step]:
    out: list[Step] = []
    for el in root:
        if el.tag == "send":
            line = first_line(el)
            out.append(("send", line.split()[1] if line.startswith("SIP/2.0") else line.split()[0]))
        elif el.tag == "recv":
            out.append(("recv", el.get("response") or el.get("request") or "?"))
        elif el.tag == "pause":
            out.append(("pause", el.get("milliseconds", "")))
        elif el.tag in ("nop", "label"):
            out.append((el.tag, el.get("next") or el.get("id") or ""))
        else:
            out.append((el.tag, ""))
    return out


def message(el: ET.Element) -> tuple[str, dict[str, str], list[str], str]:
    """(start line, headers by lower-case name, keyword lines like [last_Via:], body) of a <send>."""
    text = (el.text or "").strip("\n")
    head, sep, body = text.partition("\n\n")
    lines = head.splitlines()
    headers: dict[str, str] = {}
    keywords: list[str] = []
    for line in lines[1:]:
        if re.fullmatch(r"\[[A-Za-z_-]+:?\][^:]*", line):
            keywords.append(line)
            continue
        name, colon, value = line.partition(":")
        assert colon and re.fullmatch(r"[A-Za-z-]+", name), f"not a header line: {line!r}"
        headers[name.lower()] = value.strip()
    return lines[0], headers, keywords, body.strip() if sep else ""


def check_messages(root: ET.Element) -> None:
    for el in root.iter("send"):
        start, headers, keywords, body = message(el)
        if start.startswith("SIP/2.0"):  # a response copies the request's dialog headers
            assert re.fullmatch(r"SIP/2\.0 \d{3} [A-Za-z ]+", start), start
            for h in ("Via", "From", "To", "Call-ID", "CSeq"):
                assert any(k.startswith(f"[last_{h}:]") for k in keywords), (start, h)
        else:
            method, uri, version = start.split()
            assert version == "SIP/2.0" and uri.startswith("sip:"), start
            for h in ("via", "from", "to", "call-id", "cseq", "max-forwards"):
                assert h in headers or any(k.lower().startswith(f"[last_{h}:]") for k in keywords), (start, h)
            assert headers["cseq"].split()[1] == method, start
            assert "branch=[branch]" in headers["via"]
        assert "content-length" in headers, start
        if body:
            assert headers["content-length"] == "[len]" and headers["content-type"] == "application/sdp"
            sdp = body.splitlines()
            assert [line[:2] for line in sdp[:5]] == ["v=", "o=", "s=", "c=", "t="]
            assert any(line.startswith("m=audio [media_port] RTP/AVP 0") for line in sdp)
        else:
            assert headers["content-length"] == "0", start


def check_jumps(root: ET.Element) -> None:
    labels = {el.get("id") for el in root.iter("label")}
    for el in root:
        for attr in ("next", "ontimeout", "onunexpected"):
            if el.get(attr):
                assert el.get(attr) in labels, f"<{el.tag} {attr}={el.get(attr)!r}> has no label"


SCENARIOS: dict[str, Callable[[], str]] = {
    "caller": lambda: caller_scenario(2000),
    "register": lambda: register_scenario(),
    "seat": lambda: seat_scenario(),
}


@pytest.mark.parametrize("make", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_scenario_is_well_formed(make: Callable[[], str]) -> None:
    root = parse(make())
    check_messages(root)
    check_jumps(root)


def test_caller_flow() -> None:
    root = parse(caller_scenario(talk_ms=4321))
    assert steps(root) == [
        ("send", "INVITE"),
        ("recv", "100"), ("recv", "180"), ("recv", "183"),
        ("recv", "200"),
        ("send", "ACK"),
        ("recv", "BYE"),           # Asterisk ends the call ...
        ("send", "200"),
        ("nop", "end"),
        ("label", "hangup"),       # ... or the caller does, after talk_ms
        ("send", "BYE"),
        ("recv", "200"),
        ("label", "end"),
    ]
    recvs = list(root.iter("recv"))
    assert [r.get("optional") for r in recvs[:4]] == ["true", "true", "true", None]
    bye_wait = recvs[4]
    assert bye_wait.get("timeout") == "4321" and bye_wait.get("ontimeout") == "hangup"
    invite, ack, _ok, bye = (message(el) for el in root.iter("send"))
    assert invite[0].startswith("INVITE sip:[service]@")
    assert invite[1]["cseq"] == "1 INVITE" and ack[1]["cseq"] == "1 ACK" and bye[1]["cseq"] == "2 BYE"
    assert invite[1]["from"] == ack[1]["from"] == bye[1]["from"]  # same dialog, same tag
    assert "[last_To:]" in ack[2] and "[last_To:]" in bye[2]      # the to-tag from the 200
    assert "[caller]" in invite[1]["from"]


def test_caller_timeout_is_baked_in() -> None:
    assert 'timeout="90000"' in caller_scenario(90000)
    assert caller_scenario(1) != caller_scenario(2)


def test_register_flow() -> None:
    root = parse(register_scenario(expires=120))
    assert steps(root) == [("send", "REGISTER"), ("recv", "401"), ("send", "REGISTER"), ("recv", "200")]
    challenge = root.findall("recv")[0]
    assert challenge.get("auth") == "true"
    first, second = (message(el) for el in root.iter("send"))
    assert "[authentication]" not in first[2]
    assert "[authentication]" in second[2]
    assert (first[1]["cseq"], second[1]["cseq"]) == ("1 REGISTER", "2 REGISTER")
    assert first[1]["call-id"] == second[1]["call-id"] == "[call_id]"
    assert first[1]["expires"] == second[1]["expires"] == "120"
    assert first[1]["contact"] == "<sip:[seat]@[local_ip]:[local_port]>"


def test_seat_flow() -> None:
    root = parse(seat_scenario(ring_ms=250))
    assert steps(root) == [
        ("recv", "INVITE"),
        ("send", "180"),
        ("pause", "250"),
        ("send", "200"),
        ("recv", "ACK"),
        ("recv", "BYE"),
        ("send", "200"),
    ]
    ringing, ok, bye_ok = (message(el) for el in root.iter("send"))
    # 180 and 200 to the INVITE carry the same to-tag; the 200 to the BYE reuses the dialog's
    to_lines = [[k for k in m[2] if k.startswith("[last_To:]")] for m in (ringing, ok)]
    assert to_lines[0] == to_lines[1]
    assert any(k.startswith("[last_To:];tag=") for k in ok[2])
    assert ok[3] and "contact" in ok[1]  # answers with SDP and a contact for the ACK/BYE
    assert bye_ok[3] == ""
    assert root.findall("send")[1].get("retrans") == "500"  # the 200 is retransmitted until ACKed
