"""Constrained types shared by every schema: the one definition of what a call id, a seat, a ticket,
a time or a platform may look like.

Every value from outside (HTTP bodies, paths and queries, AGI arguments, AMI events, a peer's
messages) is checked against one of these where it enters. Patterns are full matches (a trailing
newline is refused), strings are strict (no coercion from numbers) and text
must be valid Unicode (a lone surrogate cannot be stored, encoded or sent anywhere).

The patterns are also plain ``re`` objects (``*_RE``), for the few places that check a string
outside a pydantic model (the AMI guard, the dialplan renderer).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictInt, StringConstraints

from hotline.platforms import LINKAGE_HOTLINES, Service

# Asterisk's linkedid/uniqueid ("1700000000.12", or "<systemname>-1700000000.12") and our own ids.
CALL_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# A seat (softphone account / queue member): digits only, as the dialplan patterns are generated.
SEAT_RE = re.compile(r"[0-9]{2,8}")
# A dialled number or a caller's number after cleaning (hotline.phone.clean_number).
NUMBER_RE = re.compile(r"[0-9*#+]{1,32}")
# A work-order ticket: platform prefix, date, sequence (12345-20261202-000123, 110-...).
TICKET_RE = re.compile(r"(12345|110)-[0-9]{8}-[0-9]{4,8}")
EVENT_ID_RE = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
# A handler (承办单位) of the site: lower-case letters, digits, - and _ (a department's API name).
HANDLER_RE = re.compile(r"[a-z][a-z0-9_-]{1,31}")
# An annex category code: A01-A16, B1-B7, C1-C4, D1-D7, X.
CATEGORY_RE = re.compile(r"[A-Z][0-9]{0,2}")

MAX_EPOCH = 1e11  # year 5138: anything later is a unit error (milliseconds sent as seconds)


def fullmatch(pattern: re.Pattern[str], value: str) -> bool:
    """The one way to check an id: the whole string, no trailing newline."""
    return pattern.fullmatch(value) is not None


def _valid_unicode(value: str) -> str:
    """Refuse lone surrogates (``"\\ud800"`` from JSON): they cannot be encoded to UTF-8, so they
    would be stored and then fail every later read."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (lone surrogate)") from None
    if "\x00" in value:  # PostgreSQL text and jsonb cannot hold NUL: it would fail on storing
        raise ValueError("text must not contain NUL")
    return value


def _pattern(regex: re.Pattern[str]) -> Any:
    # pydantic's ``pattern`` searches; anchored at both ends. Its (Rust) engine's ``$`` is the end
    # of the text, never before a final newline.
    return StringConstraints(strict=True, pattern=rf"^(?:{regex.pattern})$")


CallId = Annotated[str, _pattern(CALL_ID_RE)]
SeatId = Annotated[str, _pattern(SEAT_RE)]
PhoneNumber = Annotated[str, _pattern(NUMBER_RE)]
Ticket = Annotated[str, _pattern(TICKET_RE)]
EventId = Annotated[str, _pattern(EVENT_ID_RE)]
HandlerId = Annotated[str, _pattern(HANDLER_RE)]
CategoryCode = Annotated[str, _pattern(CATEGORY_RE)]
EpochSeconds = Annotated[float, Field(ge=0, lt=MAX_EPOCH, allow_inf_nan=False)]
Platform = Service
LinkageHotline = Annotated[str, StringConstraints(strict=True), AfterValidator(
    lambda v: v if v in LINKAGE_HOTLINES else _bad_hotline(v))]


def _bad_hotline(value: str) -> str:
    raise ValueError(f"unknown hotline {value!r}: one of {', '.join(LINKAGE_HOTLINES)}")


def Text(max_length: int, *, min_length: int = 0) -> Any:  # noqa: N802 - a type factory
    """Free text from outside: bounded, strict, valid Unicode."""
    return Annotated[str, StringConstraints(strict=True, min_length=min_length, max_length=max_length),
                     AfterValidator(_valid_unicode)]


def _ip_address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    return value


# An address in site configuration (SIP bind, trunks, gateways) and a port.
IpAddress = Annotated[str, Field(strict=True), AfterValidator(_ip_address)]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
