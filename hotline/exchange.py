"""The 12345 ⇄ 110 exchange interface, version 1: the messages two installations send each other,
and how each is signed.

Published as JSON Schema in ``docs/exchange/v1.schema.json`` (generated from these models:
``python -m hotline.exchange > docs/exchange/v1.schema.json``; a test keeps the two equal), so that
another vendor's 110 接处警 system can implement the same interface.

Two kinds of message:

- ``order.dispatch``: one part of an order is handed to the recipient platform (a one-touch
  transfer, a handover of annex part 3, a three-way call the other side took, or a dispatch; or,
  from 110, a matter of annex part 4). The recipient makes an order of its own, linked to the
  sender's, and answers with its ticket.
- ``part.step``: a step on that part, either way: signed, progress, replied, extension asked for,
  returned (from the handler's side); extension approved or refused, reopened (from the side that
  took the call, which follows up and calls back).

Transport: ``POST <peer>/api/exchange/v1/messages`` with the JSON body and four headers:
``X-Hotline-Platform`` (the sender), ``X-Hotline-Timestamp`` (epoch seconds), ``X-Hotline-Nonce``
(16-64 of ``A-Za-z0-9_-``, never reused) and ``X-Hotline-Signature``: ``v1=`` and the hex
HMAC-SHA256, under the key both installations share, of ``timestamp \\n nonce \\n body``. A message
outside the timestamp window, with a used nonce, or with a bad signature is refused (401/409 with
an ``error_id``) and changes nothing. The same ``message_id`` again (a retry with a fresh nonce) is
answered as the first time and applied once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sys
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from hotline.platforms import Service
from hotline.types import (
    CallId,
    CategoryCode,
    EpochSeconds,
    HandlerId,
    LinkageHotline,
    PhoneNumber,
    Text,
    Ticket,
)

SCHEMA = "hotline.exchange/1"
PATH = "/api/exchange/v1/messages"
PLATFORM_HEADER, TIMESTAMP_HEADER = "X-Hotline-Platform", "X-Hotline-Timestamp"
NONCE_HEADER, SIGNATURE_HEADER = "X-Hotline-Nonce", "X-Hotline-Signature"
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
MAX_MESSAGE_BYTES = 256 * 1024

MessageId = Annotated[str, Field(strict=True, pattern=r"^[0-9a-f]{32}$")]
PartNo = Annotated[int, Field(strict=True, ge=1, le=999)]
Url = Annotated[str, Field(strict=True, max_length=512, pattern=r"^https?://[^\s\x00-\x1f]{1,500}$")]
RequestKindName = Literal[
    "emergency", "utilities", "consultation", "help", "suggestion", "complaint", "report"
]
PeerStep = Literal[
    "sign",
    "progress",
    "reply",
    "request_extension",
    "return",
    "approve_extension",
    "refuse_extension",
    "reopen",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Category(_Model):
    code: CategoryCode
    name: Text(64)  # type: ignore[valid-type]


class Party(_Model):
    name: Text(128, min_length=1)  # type: ignore[valid-type]
    role: Annotated[str, Field(strict=True, pattern=r"^[a-z_]{2,16}$")]


class HandlerRef(_Model):
    id: HandlerId | Service
    name: Text(128)  # type: ignore[valid-type]


class Attachment(_Model):
    """By reference: the file stays with the sender."""

    name: Text(128, min_length=1)  # type: ignore[valid-type]
    url: Url
    sha256: Annotated[str, Field(strict=True, pattern=r"^[0-9a-f]{64}$")] | None = None
    bytes: Annotated[int, Field(strict=True, ge=0)] | None = None


class ReturnNote(_Model):
    reason: Text(1000, min_length=1)  # type: ignore[valid-type]
    basis: Text(500) | None = None  # type: ignore[valid-type]  # the legal basis (依据)
    suggested_handler: Text(128) | None = None  # type: ignore[valid-type]


class OrderPart(_Model):
    """The order as handed over: everything the recipient needs to act without calling back."""

    ticket: Ticket = Field(description="the sender's number of the order")
    part: PartNo = Field(description="the sender's number of the part handed to the recipient")
    kind: Literal["工单", "警单"]
    call: CallId | None = Field(None, description="the sender's call id (for its recording and transcript)")
    received_at: EpochSeconds = Field(description="when the caller called")
    caller: PhoneNumber | None = Field(
        None, description="the caller's number; absent when confidential (unless a life is at risk)")
    contact: PhoneNumber | None = None
    confidential: StrictBool = Field(description="保密: the caller asked not to be named to handlers")
    address: Text(256) | None = None  # type: ignore[valid-type]
    district: Text(32) | None = None  # type: ignore[valid-type]
    category: Category | None = None
    request_kind: RequestKindName
    summary: Text(256)  # type: ignore[valid-type]
    words: Text(8000) = Field(description="the caller's words as transcribed")  # type: ignore[valid-type]
    transcript: Url | None = Field(None, description="where the sender serves the call's transcript")
    urgency: Literal["normal", "urgent", "emergency"]
    life_threat: StrictBool
    linkage: list[LinkageHotline] = Field(max_length=7)
    due_at: EpochSeconds = Field(description="the sender's deadline for this part")
    handler: HandlerRef = Field(description="the recipient as the sender names it")
    note: Text(2000) | None = None  # type: ignore[valid-type]
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)


class PartStep(_Model):
    """A step on a part handed over, sent by either side to the other."""

    ticket: Ticket = Field(description="the recipient's number of the order")
    part: PartNo = Field(description="the recipient's number of the part")
    sender_ticket: Ticket
    sender_part: PartNo
    step: PeerStep
    state: Annotated[str, Field(strict=True, pattern=r"^[a-z_]{2,24}$")] = Field(
        description="the part's state on the sender's side after the step"
    )
    at: EpochSeconds
    by: Party
    note: Text(2000) | None = None  # type: ignore[valid-type]
    result: Text(4000) | None = None  # type: ignore[valid-type]  # reply: what was done (处理结果)
    extension_wd: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] | None = None
    due_at: EpochSeconds | None = None  # approve_extension / reopen: the new deadline
    returned: ReturnNote | None = None


class Message(_Model):
    schema_: Literal["hotline.exchange/1"] = Field(alias="schema")
    message_id: MessageId
    kind: Literal["order.dispatch", "part.step"]
    sent_at: EpochSeconds
    sender: Service
    recipient: Service
    order: OrderPart | None = None
    step: PartStep | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Message:
        if self.sender == self.recipient:
            raise ValueError("sender and recipient are the same platform")
        want = {"order.dispatch": "order", "part.step": "step"}[self.kind]
        if getattr(self, want) is None or getattr(self, "step" if want == "order" else "order") is not None:
            raise ValueError(f"a {self.kind} message carries {want!r} and nothing else")
        if self.step is not None and self.step.step == "return" and self.step.returned is None:
            raise ValueError("a return carries its reason (step.returned)")
        if self.step is not None and self.step.step == "request_extension" and self.step.extension_wd is None:
            raise ValueError("an extension request says how long (step.extension_wd)")
        return self

    def body(self) -> bytes:
        return json.dumps(
            self.model_dump(mode="json", by_alias=True, exclude_none=True),
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=True,
        ).encode()


def new_message_id() -> str:
    return secrets.token_hex(16)


def signature(key: str, timestamp: str, nonce: str, body: bytes) -> str:
    mac = hmac.new(key.encode(), timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(key: str, sender: str, body: bytes, now: float) -> dict[str, str]:
    timestamp, nonce = str(int(now)), secrets.token_urlsafe(18)
    return {
        PLATFORM_HEADER: sender,
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(key, timestamp, nonce, body),
        "Content-Type": "application/json",
    }


def signature_matches(key: str, timestamp: str, nonce: str, body: bytes, presented: str) -> bool:
    return hmac.compare_digest(
        signature(key, timestamp, nonce, body).encode(), presented.encode("ascii", "replace")
    )


def json_schema() -> dict[str, Any]:
    schema = Message.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA,
        "title": "12345 ⇄ 110 exchange message, version 1",
        **schema,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n")
