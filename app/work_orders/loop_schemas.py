"""Bodies and answers of the closed-loop routes (dispatch, a part's steps, follow-up)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool
from pydantic_core import PydanticCustomError

from app.schemas import Answer, Body
from hotline.exchange import PartNo
from hotline.platforms import Service
from hotline.types import HandlerId, Text, Ticket

MAX_NOTE, MAX_RESULT = 2000, 4000


def _not_blank(v: str) -> str:
    if not v.strip():
        raise PydanticCustomError("blank", "must not be blank")
    return v.strip()


if TYPE_CHECKING:  # Text() builds the type at run time; mypy sees the plain string
    Note = str
    Required = str
else:
    Note = Text(MAX_NOTE)
    Required = Annotated[Text(MAX_NOTE, min_length=1), AfterValidator(_not_blank)]


def _distinct(v: list[str]) -> list[str]:
    if len(set(v)) != len(v):
        raise PydanticCustomError("not_distinct", "each handler at most once")
    return v


class DispatchBody(Body):
    """派单 / 改派: hand the order to these handlers (site handler ids, or "110" / "12345")."""

    handlers: Annotated[
        list[HandlerId | Service], Field(min_length=1, max_length=10), AfterValidator(_distinct)
    ]
    note: Note | None = None  # type: ignore[valid-type]


class NoteBody(Body):
    note: Note | None = None  # type: ignore[valid-type]


class ReplyBody(Body):
    result: Annotated[Text(MAX_RESULT, min_length=1), AfterValidator(_not_blank)]  # type: ignore[valid-type]
    note: Note | None = None  # type: ignore[valid-type]


class ExtensionBody(Body):
    working_days: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False, strict=True)]
    reason: Required  # type: ignore[valid-type]


class ReturnBody(Body):
    """回退: why the handler refuses it, on what legal basis, and who should have it."""

    reason: Required  # type: ignore[valid-type]
    basis: Required  # type: ignore[valid-type]
    suggested_handler: Text(128) | None = None  # type: ignore[valid-type]


class CloseBody(Body):
    satisfied: StrictBool
    note: Note | None = None  # type: ignore[valid-type]


class ReopenBody(Body):
    note: Required  # type: ignore[valid-type]


class MergeBody(Body):
    into: Ticket
    note: Note | None = None  # type: ignore[valid-type]


class HandlerOrdersQuery(Body):
    state: (
        Literal[
            "dispatched",
            "signed",
            "in_progress",
            "extension_requested",
            "extended",
            "returned",
            "replied",
            "reopened",
        ]
        | None
    ) = None
    limit: int = Field(100, ge=1, le=500)


class ExchangeLogQuery(Body):
    direction: Literal["in", "out"] = "out"
    limit: int = Field(100, ge=1, le=500)


class PartAnswer(Answer):
    no: PartNo
    handler: dict[str, Any]
    state: str
    dispatched_at: float
    sign_due_at: float
    due_at: float
    calendar_covered: bool


class LoopOrderAnswer(Answer):
    work_order: dict[str, Any]
    parts: list[PartAnswer]
    history: list[dict[str, Any]] = Field(default_factory=list)
    alerts: list[dict[str, Any]] = Field(default_factory=list)


class HandlerOrdersAnswer(Answer):
    orders: list[LoopOrderAnswer]
    limit: int


class RepeatsAnswer(Answer):
    ticket: Ticket
    candidates: list[dict[str, Any]]
    window_s: float


class HandlersAnswer(Answer):
    handlers: list[dict[str, Any]]


class ExchangeAnswer(Answer):
    ticket: str
    part: int
    state: str
    duplicate: bool


class ExchangeLogAnswer(Answer):
    direction: str
    messages: list[dict[str, Any]]
