"""Bodies of the transcript routes: ``POST /api/transcripts`` and ``GET .../transcript``."""

from __future__ import annotations

from pydantic import Field

from app.schemas import MAX_BATCH, Answer, Body
from hotline.contracts import Segment, Speaker


class SegmentsBody(Body):
    segments: list[Segment] = Field(min_length=1, max_length=MAX_BATCH)


class WorkOrderRef(Answer):
    call: str
    ticket: str
    status: str


class StoreAnswer(Answer):
    received: int
    stored: int
    duplicates: int
    work_orders: list[WorkOrderRef]


class TranscriptGap(Answer):
    speaker: Speaker
    seat: str | None
    tap: str
    from_: float = Field(alias="from")
    to: float
    reason: str


class TranscriptAnswer(Answer):
    call: str
    link: str
    segments: list[Segment]
    finals: int
    counts: dict[str, int]
    gaps: list[TranscriptGap]
