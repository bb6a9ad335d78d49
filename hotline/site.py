"""The site configuration (``site.toml``): numbers, seats, trunk hosts, ports.

Loaded and validated in one place; errors name the key and what is wrong.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hotline.contracts import LINKAGE_HOTLINES, Service

_SEAT_RE = re.compile(r"^[0-9]{2,8}$")
_NUMBER_RE = re.compile(r"^[0-9*#+]{2,20}$")


class SiteError(ValueError):
    """The site file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Site:
    name: str
    sip_bind: str
    sip_port: int
    rtp_start: int
    rtp_end: int
    ami_bind: str
    ami_port: int
    agi_host: str
    agi_port: int
    trunk_hosts: tuple[str, ...]
    numbers: dict[Service, tuple[str, ...]]
    operators: dict[Service, tuple[str, ...]]
    linkage: dict[Service, tuple[str, ...]]
    supervisors: tuple[str, ...]
    ring_seat_s: int = 15
    retry_s: int = 2
    transfer_timeout_s: int = 20
    transfer_back_timeout_s: int = 20
    feature_codes: dict[str, str] = field(default_factory=lambda: {"one_touch_transfer": "*1",
                                                                   "three_way": "*4"})
    supervisor_codes: dict[str, str] = field(default_factory=lambda: {"listen": "*70", "whisper": "*71",
                                                                      "barge": "*72"})
    linkage_dial: dict[str, str] = field(default_factory=dict)  # hotline -> Asterisk dial string
    linkage_trunk: tuple[str, int] | None = None  # (host, port) of the hotline gateway
    transcribe: bool = True            # tap and transcribe every answered call
    auto_handover_110: bool = False    # a life threat heard at 12345 starts the 110 three-way at once
    phrases: tuple[str, ...] = ()      # local place and road names the recognizer should know

    @property
    def all_seats(self) -> tuple[str, ...]:
        seats: list[str] = []
        for svc in Service:
            seats += self.operators[svc]
            seats += self.linkage[svc]
        return tuple(seats) + self.supervisors

    def service_of_seat(self, seat: str) -> Service | None:
        for svc in Service:
            if seat in self.operators[svc] or seat in self.linkage[svc]:
                return svc
        return None

    def with_ports(self, *, sip_port: int, ami_port: int, agi_port: int, rtp_start: int) -> Site:
        from dataclasses import replace

        return replace(
            self, sip_port=sip_port, ami_port=ami_port, agi_port=agi_port,
            rtp_start=rtp_start, rtp_end=rtp_start + (self.rtp_end - self.rtp_start),
        )


def _get(d: dict, path: str, typ: type, default: object = ...) -> object:
    cur: object = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            if default is ...:
                raise SiteError(f"site: missing key {path!r}")
            return default
        cur = cur[part]
    if not isinstance(cur, typ) or (typ is int and isinstance(cur, bool)):
        raise SiteError(f"site: {path!r} must be {typ.__name__}, got {cur!r}")
    return cur


def _int(d: dict, path: str, default: int) -> int:
    v = _get(d, path, int, default)
    assert isinstance(v, int)
    return v


def _bool(d: dict, path: str, default: bool) -> bool:
    v = _get(d, path, bool, default)
    assert isinstance(v, bool)
    return v


def _phrases(d: dict) -> tuple[str, ...]:
    raw = _get(d, "transcription.phrases", list, [])
    assert isinstance(raw, list)
    out: list[str] = []
    for i, p in enumerate(raw):
        if not isinstance(p, str) or not p.strip() or len(p) > 64:
            raise SiteError(f"site: transcription.phrases[{i}] must be a non-empty string of <= 64 chars")
        out.append(p.strip())
    return tuple(out)


def _str(d: dict, path: str, default: str) -> str:
    v = _get(d, path, str, default)
    assert isinstance(v, str)
    return v


_DIAL_RE = re.compile(r"^[A-Za-z]+/[A-Za-z0-9@._+*#-]{1,80}$")


def _linkage(d: dict) -> dict[str, str]:
    raw = _get(d, "linkage", dict, {})
    assert isinstance(raw, dict)
    out = {}
    for name, dial in raw.items():
        if name not in LINKAGE_HOTLINES:
            raise SiteError(f"site: linkage.{name}: unknown hotline (known: {', '.join(LINKAGE_HOTLINES)})")
        if not isinstance(dial, str) or not _DIAL_RE.fullmatch(dial):
            raise SiteError(f"site: linkage.{name} must be a dial string like 'PJSIP/119@trunk', "
                            f"got {dial!r}")
        out[name] = dial
    return out


def _linkage_trunk(d: dict) -> tuple[str, int] | None:
    if "linkage_trunk" not in d:
        return None
    host = _str(d, "linkage_trunk.host", "")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SiteError(f"site: linkage_trunk.host {host!r} is not an IP address") from None
    return host, _int(d, "linkage_trunk.port", 5060)


_CODE_RE = re.compile(r"^[0-9*#]{1,6}$")


def _code(d: dict, path: str, default: str) -> str:
    v = _str(d, path, default)
    if not _CODE_RE.fullmatch(v):
        raise SiteError(f"site: {path!r} must be 1-6 of 0-9 * #, got {v!r}")
    return v


def _ids(d: dict, path: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    raw = _get(d, path, list, [])
    assert isinstance(raw, list)
    out = []
    for v in raw:
        if not isinstance(v, str) or not pattern.fullmatch(v):
            raise SiteError(f"site: {path!r} has an invalid entry {v!r}")
        out.append(v)
    return tuple(out)


def parse_site(data: dict) -> Site:
    numbers = {svc: _ids(data, f"numbers.{svc.value}", _NUMBER_RE) for svc in Service}
    operators = {svc: _ids(data, f"seats.{svc.value}", _SEAT_RE) for svc in Service}
    linkage = {svc: _ids(data, f"seats.linkage_{svc.value}", _SEAT_RE) for svc in Service}
    supervisors = _ids(data, "seats.supervisors", _SEAT_RE)
    raw_hosts = _get(data, "trunk.hosts", list)
    assert isinstance(raw_hosts, list)
    trunk_hosts = tuple(str(h) for h in raw_hosts)
    for h in trunk_hosts:
        try:
            ipaddress.ip_network(h, strict=False)
        except ValueError:
            raise SiteError(f"site: trunk host {h!r} is not an IP address or network") from None
    all_ids = [s for t in (*operators.values(), *linkage.values(), supervisors) for s in t]
    dup = {s for s in all_ids if all_ids.count(s) > 1}
    if dup:
        raise SiteError(f"site: seats listed twice: {sorted(dup)}")
    shared = set(numbers[Service.HOTLINE_12345]) & set(numbers[Service.POLICE_110])
    if shared:
        raise SiteError(f"site: numbers listed for both platforms: {sorted(shared)}")
    for svc in Service:
        if not numbers[svc]:
            raise SiteError(f"site: numbers.{svc.value} is empty")
        if not operators[svc]:
            raise SiteError(f"site: seats.{svc.value} is empty; the queue would have no seat")
    site = Site(
        name=_str(data, "site.name", "hotline"),
        sip_bind=_str(data, "sip.bind", "127.0.0.1"),
        sip_port=_int(data, "sip.port", 5060),
        rtp_start=_int(data, "sip.rtp_start", 20000),
        rtp_end=_int(data, "sip.rtp_end", 20999),
        ami_bind=_str(data, "ami.bind", "127.0.0.1"),
        ami_port=_int(data, "ami.port", 5038),
        agi_host=_str(data, "agi.host", "127.0.0.1"),
        agi_port=_int(data, "agi.port", 4573),
        trunk_hosts=trunk_hosts,
        numbers=numbers,
        operators=operators,
        linkage=linkage,
        supervisors=supervisors,
        ring_seat_s=_int(data, "queues.ring_seat_s", 15),
        retry_s=_int(data, "queues.retry_s", 2),
        transfer_timeout_s=_int(data, "flows.transfer_timeout_s", 20),
        transfer_back_timeout_s=_int(data, "flows.transfer_back_timeout_s", 20),
        feature_codes={"one_touch_transfer": _code(data, "feature_codes.one_touch_transfer", "*1"),
                       "three_way": _code(data, "feature_codes.three_way", "*4")},
        supervisor_codes={m: _code(data, f"supervisor_codes.{m}", d)
                          for m, d in (("listen", "*70"), ("whisper", "*71"), ("barge", "*72"))},
        linkage_dial=_linkage(data),
        linkage_trunk=_linkage_trunk(data),
        transcribe=_bool(data, "transcription.enabled", True),
        auto_handover_110=_bool(data, "transcription.auto_handover_110", False),
        phrases=_phrases(data),
    )
    codes = list(site.feature_codes.values()) + ["##", "*2"]
    sup = list(site.supervisor_codes.values())
    for a in sup:
        for b in sup:
            if a is not b and b.startswith(a):
                raise SiteError(f"site: supervisor code {a!r} is a prefix of {b!r}")
    for a in codes:
        for b in codes:
            if a is not b and b.startswith(a):
                raise SiteError(f"site: feature code {a!r} is a prefix of {b!r}")
    if site.rtp_end <= site.rtp_start:
        raise SiteError("site: sip.rtp_end must be above sip.rtp_start")
    return site


def load_site(path: Path) -> Site:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteError(f"site: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SiteError(f"site: {path}: {exc}") from None
    return parse_site(data)
