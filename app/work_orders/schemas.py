"""Bodies of the work-order routes: confirm (with corrections), the list queries, the answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool
from pydantic_core import PydanticCustomError

from app.schemas import Answer, Body
from app.work_orders.store import STATUSES
from hotline.platforms import Service
from hotline.types import CategoryCode, LinkageHotline, Text, Ticket

MAX_LIMIT = 500
MAX_ADDRESS = 256
MAX_SUMMARY = 256
FIELDS = ("category", "action", "life_threat", "linkage", "address", "summary", "confidential")
CorrectableField = Literal["category", "action", "life_threat", "linkage", "address", "summary",
                           "confidential"]
Status = Literal["draft", "accepted", "dispatched", "signed", "in_progress", "extension_requested",
                 "extended",
                 "returned", "replied", "callback", "closed", "reopened", "merged", "resolved_on_call"]
assert set(STATUSES) == set(Status.__args__)  # type: ignore[attr-defined]  # one list of states


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent(description: str | None = None) -> Any:
    """A field that may be left out but not given as null (no default in the schema)."""
    return Field(None, description=description, json_schema_extra=_no_default)


ActionName = Annotated[str, Field(strict=True, pattern=r"^[a-z_0-9]{1,32}$")]


def _distinct(v: list[str]) -> list[str]:
    if len(set(v)) != len(v):
        raise PydanticCustomError("not_distinct", "each hotline at most once")
    return v


def _summary(v: str) -> str:
    if not v.strip():
        raise PydanticCustomError("blank", "a non-empty summary")
    return v.strip()


Hotlines = Annotated[list[LinkageHotline], Field(max_length=7), AfterValidator(_distinct)]


class Corrections(Body):
    """What an operator may correct. ``category`` and ``action`` are checked again against the routing
    rules in service and the work order's platform when confirming."""

    # Absent means "keep the engine's value"; only address may be null (no address).
    category: CategoryCode = absent(  # type: ignore[assignment]
        "a category code of the routing rules (A01-A16, B1-B7, C1-C4, D1-D7, X)")
    action: ActionName = absent("an action the work order's platform takes")  # type: ignore[assignment]
    life_threat: StrictBool = absent()  # type: ignore[assignment]
    linkage: Hotlines = absent("the hotlines to link, each once")  # type: ignore[assignment]
    address: Text(MAX_ADDRESS) | None = None  # type: ignore[valid-type]
    # 保密: the caller asked not to be named to handlers (GB/T 33358-2016); departments then see no
    # number, contact or words of the caller, and the other platform gets no number
    confidential: StrictBool = absent()  # type: ignore[assignment]
    summary: Annotated[Text(MAX_SUMMARY), AfterValidator(_summary)] = absent(  # type: ignore[valid-type,assignment]
    )


class ConfirmBody(Body):
    corrections: Corrections = Field(default_factory=lambda: Corrections.model_validate({}))


class WorkOrdersQuery(Body):
    status: Status | None = None
    service: Service | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT)


class CorrectionsQuery(Body):
    ticket: Ticket | None = None
    field: CorrectableField | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT)


class WorkOrderAnswer(Answer):
    ticket: Ticket
    kind: str
    call: str
    service: Service
    status: Status
    category: dict[str, str] | None
    action: str | None
    life_threat: bool
    linkage: list[str]
    address: str | None
    slots: dict[str, Any]
    summary: str | None
    dispatch: list[dict[str, Any]]
    transcript: str
    rules_version: str | None
    caller_segments: int
    created_at: float


class WorkOrderList(Answer):
    work_orders: list[WorkOrderAnswer]
    total: int
    limit: int


class CorrectionAnswer(Answer):
    ticket: Ticket
    field: CorrectableField
    engine_value: Any
    operator_value: Any
    by: str
    at: float


class ConfirmAnswer(Answer):
    work_order: WorkOrderAnswer
    corrections: list[CorrectionAnswer]


class CorrectionList(Answer):
    corrections: list[CorrectionAnswer]
    limit: int
