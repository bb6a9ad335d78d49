"""The site configuration (``site.toml``): numbers, seats, trunk hosts, ports.

The file is described once, by the pydantic models below (one per table, unknown keys refused);
:func:`parse_site` validates it and returns the :class:`Site` the rest of the code reads. Every
value here ends up in generated Asterisk configuration, so each is checked against a strict
pattern: a newline or a ``${...}`` in a seat or a host would otherwise become a config line or a
dialplan expression. Errors are :class:`SiteError` naming the key (``seats.12345[0]: ...``).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from hotline.callback_site import CallbacksTable, SurveyTable
from hotline.contracts import Service
from hotline.loop_site import DeadlinesTable, ExchangeTable, HandlerTable, check_handlers
from hotline.types import IpAddress, LinkageHotline, PhoneNumber, Port, SeatId, Text


class SiteError(ValueError):
    """The site file is missing, unreadable or inconsistent."""


# --- value types ---------------------------------------------------------------------------------

def _trunk_host(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"trunk host {value!r} is not an IP address or network") from None
    return value


def _matching(regex: str, what: str) -> Any:
    pattern = re.compile(regex)

    def check(value: str) -> str:
        if pattern.fullmatch(value) is None:
            raise ValueError(f"must be {what}, got {value!r}")
        return value

    return AfterValidator(check)


def _phrase(value: str) -> str:
    if not value.strip():
        raise ValueError("a phrase must not be blank")
    return value.strip()


_StrictStr = Annotated[str, Field(strict=True)]
# Where Asterisk reaches the FastAGI server: an IP address or a host name (letters, digits, - and .).
Host = Annotated[_StrictStr, _matching(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9a-fA-F:]{2,39}",
                                       "an IP address or a host name")]
TrunkHost = Annotated[_StrictStr, AfterValidator(_trunk_host)]
Seconds = Annotated[StrictInt, Field(ge=1, le=600)]
# A dialled number reaching a platform: a short code or a full number (the dialplan's exten).
DialledNumber = Annotated[PhoneNumber, Field(min_length=2, max_length=20)]
# Keys pressed in a call or dialled before a seat: DTMF only.
KeyCode = Annotated[_StrictStr, _matching(r"[0-9*#]{1,6}", "1-6 of 0-9 * #")]
DialString = Annotated[_StrictStr, _matching(r"[A-Za-z]+/[A-Za-z0-9@._+*#-]{1,80}",
                                             "a dial string like 'PJSIP/119@trunk'")]
if TYPE_CHECKING:  # Text() builds the type at run time; mypy sees the plain string
    SiteName = str
    Phrase = str
else:
    SiteName = Text(120, min_length=1)
    Phrase = Annotated[Text(64, min_length=1), AfterValidator(_phrase)]

# Asterisk's own in-call codes (features.conf): ours must not shadow them, nor they ours.
ASTERISK_TRANSFER_CODES = ("##", "*2")


# --- one model per table -----------------------------------------------------------------------

class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SiteTable(_Table):
    name: SiteName = "hotline"


class SipTable(_Table):
    bind: IpAddress = "127.0.0.1"
    port: Port = 5060
    rtp_start: Port = 20000
    rtp_end: Port = 20999
    # Asterisk asks each registered phone every this many seconds whether it is still there (SIP
    # OPTIONS); one that does not answer is not rung until it does. 0: never asked.
    qualify_s: Annotated[int, Field(ge=0, le=3600)] = 30


class AmiTable(_Table):
    bind: IpAddress = "127.0.0.1"
    port: Port = 5038


class AgiTable(_Table):
    host: Host = "127.0.0.1"
    port: Port = 4573


class TrunkTable(_Table):
    hosts: tuple[TrunkHost, ...] = Field(min_length=1)


class NumbersTable(_Table):
    hotline_12345: tuple[DialledNumber, ...] = Field(alias="12345", min_length=1)
    police_110: tuple[DialledNumber, ...] = Field(alias="110", min_length=1)


class SeatsTable(_Table):
    # A platform's queue with no seat would ring nobody: at least one operator each.
    hotline_12345: tuple[SeatId, ...] = Field(alias="12345", min_length=1)
    police_110: tuple[SeatId, ...] = Field(alias="110", min_length=1)
    linkage_12345: tuple[SeatId, ...] = ()
    linkage_110: tuple[SeatId, ...] = ()
    supervisors: tuple[SeatId, ...] = ()


class QueuesTable(_Table):
    ring_seat_s: Seconds = 15
    retry_s: Annotated[StrictInt, Field(ge=0, le=600)] = 2


class FlowsTable(_Table):
    transfer_timeout_s: Seconds = 20
    transfer_back_timeout_s: Seconds = 20


class FeatureCodesTable(_Table):
    one_touch_transfer: KeyCode = "*1"
    three_way: KeyCode = "*4"


class SupervisorCodesTable(_Table):
    listen: KeyCode = "*70"
    whisper: KeyCode = "*71"
    barge: KeyCode = "*72"


class LinkageTrunkTable(_Table):
    host: IpAddress
    port: Port = 5060


class TranscriptionTable(_Table):
    enabled: StrictBool = True
    auto_handover_110: StrictBool = False
    phrases: tuple[Phrase, ...] = ()


# Tables that may be left out: a missing one is read as empty, so its own defaults apply and a
# required key inside it is reported by its full name (``numbers.12345``), not as the table.
_TABLES = ("site", "sip", "ami", "agi", "trunk", "numbers", "seats", "queues", "flows", "feature_codes",
           "supervisor_codes", "linkage", "transcription", "deadlines", "exchange", "survey", "callbacks")


class SiteFile(_Table):
    """``site.toml`` as a whole, with the checks that span tables."""

    site: SiteTable
    sip: SipTable
    ami: AmiTable
    agi: AgiTable
    trunk: TrunkTable
    numbers: NumbersTable
    seats: SeatsTable
    queues: QueuesTable
    flows: FlowsTable
    feature_codes: FeatureCodesTable
    supervisor_codes: SupervisorCodesTable
    linkage: dict[LinkageHotline, DialString]  # hotline -> where Asterisk dials it
    linkage_trunk: LinkageTrunkTable | None = None  # the gateway towards the hotlines
    transcription: TranscriptionTable
    handlers: tuple[HandlerTable, ...] = ()
    deadlines: DeadlinesTable
    exchange: ExchangeTable
    survey: SurveyTable
    callbacks: CallbacksTable

    @model_validator(mode="before")
    @classmethod
    def _missing_tables_are_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**{t: {} for t in _TABLES}, **data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SiteFile:
        if self.sip.rtp_end <= self.sip.rtp_start:
            raise ValueError("sip.rtp_end must be above sip.rtp_start")
        s = self.seats
        all_ids = [*s.hotline_12345, *s.police_110, *s.linkage_12345, *s.linkage_110, *s.supervisors]
        if dup := sorted({x for x in all_ids if all_ids.count(x) > 1}):
            raise ValueError(f"seats listed twice: {dup} (a seat has one role on one platform)")
        if shared := sorted(set(self.numbers.hotline_12345) & set(self.numbers.police_110)):
            # numbers.conf would hold two `exten => N` lines and Asterisk keeps one of them.
            raise ValueError(f"numbers listed for both platforms: {shared}")
        _no_prefixes("feature code", [self.feature_codes.one_touch_transfer, self.feature_codes.three_way,
                                      *ASTERISK_TRANSFER_CODES])
        _no_prefixes("supervisor code", [self.supervisor_codes.listen, self.supervisor_codes.whisper,
                                         self.supervisor_codes.barge])
        check_handlers(self.handlers)
        if here := sorted(set(self.exchange.peers) & set(self.exchange.platforms)):
            raise ValueError(f"exchange.peers: {here} is taken here (exchange.platforms), not a peer")
        return self


def _no_prefixes(what: str, codes: list[str]) -> None:
    """Asterisk acts on a code as soon as its keys match, so a code that starts another would
    make the longer one unreachable."""
    for i, a in enumerate(codes):
        for j, b in enumerate(codes):
            if i != j and b.startswith(a):
                problem = "is used twice" if a == b else f"is a prefix of {b!r}"
                raise ValueError(f"{what} {a!r} {problem}")


# --- what the code reads -----------------------------------------------------------------------

@dataclass(frozen=True)
class Site:
    """The validated site, flattened for its readers (built by :func:`parse_site`)."""

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
    feature_codes: dict[str, str] = field(default_factory=lambda: FeatureCodesTable().model_dump())
    supervisor_codes: dict[str, str] = field(default_factory=lambda: SupervisorCodesTable().model_dump())
    linkage_dial: dict[str, str] = field(default_factory=dict)  # hotline -> Asterisk dial string
    linkage_trunk: tuple[str, int] | None = None  # (host, port) of the hotline gateway
    transcribe: bool = True            # tap and transcribe every answered call
    auto_handover_110: bool = False    # a life threat heard at 12345 starts the 110 three-way at once
    phrases: tuple[str, ...] = ()      # local place and road names the recognizer should know
    qualify_s: int = 30                # SIP OPTIONS to each registered phone (0: off)
    handlers: tuple[HandlerTable, ...] = ()  # departments and local governments (承办单位)
    deadlines: DeadlinesTable = field(default_factory=DeadlinesTable)
    exchange: ExchangeTable = field(default_factory=ExchangeTable)
    survey: SurveyTable = field(default_factory=SurveyTable)
    callbacks: CallbacksTable = field(default_factory=CallbacksTable)

    @classmethod
    def from_file(cls, f: SiteFile) -> Site:
        s, n = f.seats, f.numbers
        return cls(
            name=f.site.name, sip_bind=f.sip.bind, sip_port=f.sip.port, rtp_start=f.sip.rtp_start,
            rtp_end=f.sip.rtp_end, ami_bind=f.ami.bind, ami_port=f.ami.port, agi_host=f.agi.host,
            agi_port=f.agi.port, trunk_hosts=f.trunk.hosts,
            numbers={Service.HOTLINE_12345: n.hotline_12345, Service.POLICE_110: n.police_110},
            operators={Service.HOTLINE_12345: s.hotline_12345, Service.POLICE_110: s.police_110},
            linkage={Service.HOTLINE_12345: s.linkage_12345, Service.POLICE_110: s.linkage_110},
            supervisors=s.supervisors,
            ring_seat_s=f.queues.ring_seat_s, retry_s=f.queues.retry_s,
            transfer_timeout_s=f.flows.transfer_timeout_s,
            transfer_back_timeout_s=f.flows.transfer_back_timeout_s,
            feature_codes=f.feature_codes.model_dump(), supervisor_codes=f.supervisor_codes.model_dump(),
            linkage_dial=dict(f.linkage),
            linkage_trunk=(f.linkage_trunk.host, f.linkage_trunk.port) if f.linkage_trunk else None,
            transcribe=f.transcription.enabled, auto_handover_110=f.transcription.auto_handover_110,
            phrases=f.transcription.phrases, qualify_s=f.sip.qualify_s,
            handlers=f.handlers, deadlines=f.deadlines, exchange=f.exchange,
            survey=f.survey, callbacks=f.callbacks,
        )

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

    @property
    def secret_needs(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What :func:`hotline.secrets.ensure_secrets` makes beyond seats: handler tokens, peer keys."""
        return tuple(h.id for h in self.handlers), tuple(p.value for p in self.exchange.peers)

    def handler(self, handler_id: str) -> HandlerTable | None:
        return next((h for h in self.handlers if h.id == handler_id), None)

    def with_ports(self, *, sip_port: int, ami_port: int, agi_port: int, rtp_start: int) -> Site:
        return replace(
            self, sip_port=sip_port, ami_port=ami_port, agi_port=agi_port,
            rtp_start=rtp_start, rtp_end=rtp_start + (self.rtp_end - self.rtp_start),
        )


def _describe(exc: ValidationError) -> str:
    """``seats.12345[0]: must be ..., got '12a1'`` for each problem, keys as the file spells them."""
    out = []
    errors = exc.errors(include_url=False)
    for err in errors:
        if err["type"] == "too_short" and any(e["loc"][:len(err["loc"])] == err["loc"] and e is not err
                                              for e in errors):
            continue  # "no item left" after a bad item says nothing more than the bad item
        path = ""
        for part in err["loc"]:
            if part == "[key]":
                continue
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "string_pattern_mismatch":
            msg = f"must match {err['ctx']['pattern'].removeprefix('^(?:').removesuffix(')$')}"
        if err["type"] not in ("value_error", "missing", "extra_forbidden") and not isinstance(
                err.get("input"), dict | list | tuple):
            msg += f" (got {err.get('input')!r:.80})"
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{path}: {msg}" if path else msg)
    return "; ".join(out)


def parse_site(data: dict[str, Any]) -> Site:
    try:
        return Site.from_file(SiteFile.model_validate(data))
    except ValidationError as exc:
        raise SiteError(f"site: {_describe(exc)}") from None


def load_site(path: Path) -> Site:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteError(f"site: file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SiteError(f"site: {path}: {exc}") from None
    try:
        return parse_site(data)
    except SiteError as exc:
        raise SiteError(f"{exc} (in {path})") from None
