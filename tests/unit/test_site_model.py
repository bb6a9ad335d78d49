"""The site file's models (hotline/site.py): every rule refused with a message naming the key, the
repository's site.toml accepted, and the `Site` the rest of the code reads unchanged."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hotline.contracts import LINKAGE_HOTLINES, Service
from hotline.site import Site, SiteError, SiteFile, load_site, parse_site

REPO = Path(__file__).resolve().parents[2]

MINIMAL: dict[str, Any] = {
    "trunk": {"hosts": ["127.0.0.2"]},
    "numbers": {"12345": ["12345"], "110": ["110"]},
    "seats": {"12345": ["1201"], "110": ["1101"]},
}


def with_(table: str, **values: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    data.setdefault(table, {}).update(values)
    return data


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(SiteError) as err:
        parse_site(data)
    return str(err.value)


def test_the_repository_site_toml_is_accepted_in_full() -> None:
    data = tomllib.loads((REPO / "site.toml").read_text(encoding="utf-8"))
    site = parse_site(data)
    assert set(site.linkage_dial) == set(LINKAGE_HOTLINES)
    assert site.linkage_trunk == ("127.0.0.3", 5062)
    assert site.feature_codes == {"one_touch_transfer": "*1", "three_way": "*4"}
    assert site.supervisor_codes == {"listen": "*70", "whisper": "*71", "barge": "*72"}
    assert site.phrases and all(p == p.strip() for p in site.phrases)
    assert site.name.startswith("巴彦淖尔市")
    # every table the file has is a table of the model: none is silently ignored
    assert set(data) <= set(SiteFile.model_fields)


def test_minimal_site_gets_every_default() -> None:
    site = parse_site(MINIMAL)
    assert site == Site(
        name="hotline", sip_bind="127.0.0.1", sip_port=5060, rtp_start=20000, rtp_end=20999,
        ami_bind="127.0.0.1", ami_port=5038, agi_host="127.0.0.1", agi_port=4573,
        trunk_hosts=("127.0.0.2",),
        numbers={Service.HOTLINE_12345: ("12345",), Service.POLICE_110: ("110",)},
        operators={Service.HOTLINE_12345: ("1201",), Service.POLICE_110: ("1101",)},
        linkage={Service.HOTLINE_12345: (), Service.POLICE_110: ()}, supervisors=(),
    )
    assert site.linkage_dial == {} and site.linkage_trunk is None and site.transcribe is True


def test_site_stays_a_frozen_dataclass_callers_can_replace() -> None:
    site = parse_site(MINIMAL)
    changed = dataclasses.replace(site, auto_handover_110=True, transfer_timeout_s=4)
    assert (changed.auto_handover_110, changed.transfer_timeout_s) == (True, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.sip_port = 1  # type: ignore[misc]


REFUSED: dict[str, tuple[dict[str, Any], list[str]]] = {
    # unknown keys and tables: a typo is an error, not a silent default
    "unknown key": (with_("sip", prot=5060), ["sip.prot", "unknown key"]),
    "unknown table": ({**MINIMAL, "seat": {}}, ["seat", "unknown key"]),
    "unknown hotline": (with_("linkage", fire="PJSIP/119@linkage-trunk"),
                        ["linkage.fire", "unknown hotline"]),
    # values that would become config lines or dialplan text
    "dial string with a newline": (with_("linkage", **{"119": "PJSIP/119@x\n[evil]"}),
                                   ["linkage.119", "dial string"]),
    "dial string with an expression": (with_("linkage", **{"120": "PJSIP/${SHELL(id)}"}), ["linkage.120"]),
    "seat with a newline": (with_("seats", supervisors=["1901\n"]), ["seats.supervisors[0]"]),
    "seat with an expression": (with_("seats", linkage_110=["${X}"]), ["seats.linkage_110[0]"]),
    "agi host with a newline": (with_("agi", host="127.0.0.1\nbindaddr=0.0.0.0"), ["agi.host"]),
    "sip bind not an address": (with_("sip", bind="localhost"), ["sip.bind", "not an IP address"]),
    "ami bind not an address": (with_("ami", bind="0.0.0.0; evil"), ["ami.bind"]),
    "linkage trunk host a name": (with_("linkage_trunk", host="gw.example.com"), ["linkage_trunk.host"]),
    "linkage trunk without host": (with_("linkage_trunk", port=5062), ["linkage_trunk.host", "required"]),
    "trunk host a name": (with_("trunk", hosts=["carrier.example.com"]), ["trunk.hosts[0]", "trunk host"]),
    "no trunk host": (with_("trunk", hosts=[]), ["trunk.hosts"]),
    # numbers
    "short dialled number": (with_("numbers", **{"110": ["1"]}), ["numbers.110[0]"]),
    "long dialled number": (with_("numbers", **{"110": ["1" * 21]}), ["numbers.110[0]"]),
    "number on both platforms": (with_("numbers", **{"110": ["110", "12345"]}), ["both platforms", "12345"]),
    # ports and times
    "port 0": (with_("sip", port=0), ["sip.port"]),
    "port above 65535": (with_("agi", port=70000), ["agi.port"]),
    "rtp range upside down": (with_("sip", rtp_start=30000, rtp_end=20000), ["sip.rtp_end"]),
    "ring time 0": (with_("queues", ring_seat_s=0), ["queues.ring_seat_s"]),
    "transfer timeout as string": (with_("flows", transfer_timeout_s="20"), ["flows.transfer_timeout_s"]),
    # seats
    "seat twice on one platform": (with_("seats", **{"12345": ["1201", "1201"]}),
                                   ["seats listed twice", "1201"]),
    "linkage seat also an operator": (with_("seats", linkage_12345=["1101"]), ["seats listed twice", "1101"]),
    # codes
    "feature code not DTMF": (with_("feature_codes", three_way="*A"), ["feature_codes.three_way"]),
    "feature code too long": (with_("feature_codes", three_way="*123456"), ["feature_codes.three_way"]),
    "feature code prefix of another": (with_("feature_codes", one_touch_transfer="*", three_way="*4"),
                                       ["feature code '*' is a prefix of '*4'"]),
    "feature code prefix of ##": (with_("feature_codes", one_touch_transfer="#"),
                                  ["feature code '#' is a prefix of '##'"]),
    "feature code shadowed by *2": (with_("feature_codes", three_way="*21"),
                                    ["feature code '*2' is a prefix of '*21'"]),
    "feature codes equal": (with_("feature_codes", three_way="*1"), ["feature code '*1' is used twice"]),
    "supervisor code prefix": (with_("supervisor_codes", listen="*7"), ["supervisor code '*7' is a prefix"]),
    "supervisor codes equal": (with_("supervisor_codes", barge="*70"),
                               ["supervisor code '*70' is used twice"]),
    # transcription
    "enabled as a string": (with_("transcription", enabled="yes"), ["transcription.enabled"]),
    "blank phrase": (with_("transcription", phrases=["临河区", "  "]), ["transcription.phrases[1]"]),
    "long phrase": (with_("transcription", phrases=["路" * 65]), ["transcription.phrases[0]"]),
    "phrase not a string": (with_("transcription", phrases=[7]), ["transcription.phrases[0]"]),
    "empty site name": (with_("site", name=""), ["site.name"]),
}


@pytest.mark.parametrize(("data", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_every_rule_is_refused_with_the_key_in_the_message(data: dict[str, Any], expected: list[str]) -> None:
    message = refused(data)
    assert message.startswith("site: ")
    for part in expected:
        assert part in message, message


def test_every_problem_is_reported_at_once_without_noise() -> None:
    message = refused({**with_("sip", port="x"), "seats": {"12345": ["a"], "110": ["1101"]}})
    assert "sip.port" in message and "seats.12345[0]" in message
    assert "at least 1 item" not in message  # the bad seat, not "no seat left" on top of it


def test_phrases_are_trimmed() -> None:
    assert parse_site(with_("transcription", phrases=[" 临河区 "])).phrases == ("临河区",)


def test_a_bad_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "site.toml"
    p.write_text('[trunk]\nhosts = ["127.0.0.2"]\n[numbers]\n"12345" = ["12345"]\n"110" = ["110"]\n'
                 '[seats]\n"12345" = ["1201"]\n"110" = ["x"]\n', encoding="utf-8")
    with pytest.raises(SiteError) as err:
        load_site(p)
    assert "seats.110[0]" in str(err.value) and str(p) in str(err.value)


def test_a_file_that_is_not_utf8_is_a_site_error(tmp_path: Path) -> None:
    p = tmp_path / "site.toml"
    p.write_bytes(b'[site]\nname = "\xff"\n')
    with pytest.raises(SiteError, match=str(p)):
        load_site(p)
