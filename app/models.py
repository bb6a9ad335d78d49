"""Database models. Times are epoch seconds (UTC) as doubles: identical on SQLite and PostgreSQL.

The ``calls`` row is a summary recomputed from all of the call's ``call_events`` (see
:mod:`app.calls.summary`); the events are the record.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Double, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT on PostgreSQL; INTEGER on SQLite so the column is the rowid and autoincrements.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Call(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)
    service: Mapped[str | None] = mapped_column(String(8))
    caller: Mapped[str | None] = mapped_column(String(32))
    seat: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(64))
    arrived_at: Mapped[float] = mapped_column(Double())
    queued_at: Mapped[float | None] = mapped_column(Double())
    answered_at: Mapped[float | None] = mapped_column(Double())
    ended_at: Mapped[float | None] = mapped_column(Double())
    wait_s: Mapped[float | None] = mapped_column(Double())
    talk_s: Mapped[float | None] = mapped_column(Double())
    total_s: Mapped[float | None] = mapped_column(Double())
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    outcome_detail: Mapped[str | None] = mapped_column(String(256))
    outcome_source: Mapped[str | None] = mapped_column(String(16))
    outcome_by: Mapped[str | None] = mapped_column(String(128))
    outcome_at: Mapped[float | None] = mapped_column(Double())
    flags: Mapped[list[str]] = mapped_column(JSON())
    event_count: Mapped[int] = mapped_column(Integer())
    updated_at: Mapped[float] = mapped_column(Double())

    __table_args__ = (
        Index("ix_calls_arrived_at", "arrived_at"),
        Index("ix_calls_service_arrived_at", "service", "arrived_at"),
        Index("ix_calls_seat", "seat"),
        Index("ix_calls_outcome", "outcome"),
    )


class CallEventRow(Base):
    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    linkedid: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))  # 16 in 0001; "conference_joined" needs 17
    at: Mapped[float] = mapped_column(Double())
    source: Mapped[str] = mapped_column(String(8))
    service: Mapped[str | None] = mapped_column(String(8))
    caller: Mapped[str | None] = mapped_column(String(32))
    seat: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON())
    received_at: Mapped[float] = mapped_column(Double())

    __table_args__ = (Index("ix_call_events_linkedid_at", "linkedid", "at"),)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    who: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(512))
    at: Mapped[float] = mapped_column(Double())
    detail: Mapped[dict[str, Any]] = mapped_column(JSON())

    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_target", "target"))


class TranscriptSegmentRow(Base):
    """A final or gap segment of a call's live transcript (partials live only on pub/sub).

    ``(tap, seq)`` is the idempotency key: a replayed segment is stored once. The call need not be in
    ``calls`` yet: segments and call events reach the app independently.
    """

    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    linkedid: Mapped[str] = mapped_column(String(64))
    tap: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer())
    speaker: Mapped[str] = mapped_column(String(16))
    seat: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(8))
    start_at: Mapped[float] = mapped_column(Double())
    end_at: Mapped[float] = mapped_column(Double())
    text: Mapped[str] = mapped_column(Text())
    confidence: Mapped[float | None] = mapped_column(Double())
    stored_at: Mapped[float] = mapped_column(Double())

    __table_args__ = (
        UniqueConstraint("tap", "seq", name="uq_transcript_segments_tap_seq"),
        Index("ix_transcript_segments_linkedid_start", "linkedid", "start_at"),
    )


class WorkOrderRow(Base):
    """One work order per call (工单 at 12345, 警单 at 110): a draft kept up to date from the caller's
    words by the routing engine until an operator confirms it."""

    __tablename__ = "work_orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket: Mapped[str] = mapped_column(String(32), unique=True)
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    service: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    category_code: Mapped[str | None] = mapped_column(String(8))
    category_name: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    life_threat: Mapped[bool] = mapped_column(Boolean())
    linkage: Mapped[list[str]] = mapped_column(JSON())
    address: Mapped[str | None] = mapped_column(String(256))
    slots: Mapped[dict[str, Any]] = mapped_column(JSON())
    summary: Mapped[str] = mapped_column(String(256))
    dispatch: Mapped[list[dict[str, Any]]] = mapped_column(JSON())
    rules_version: Mapped[str] = mapped_column(String(32))
    caller_segments: Mapped[int] = mapped_column(Integer())
    suggestion: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    alert: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[float] = mapped_column(Double())
    updated_at: Mapped[float] = mapped_column(Double())
    confirmed_by: Mapped[str | None] = mapped_column(String(128))
    confirmed_at: Mapped[float | None] = mapped_column(Double())

    __table_args__ = (
        Index("ix_work_orders_status_created", "status", "created_at"),
        Index("ix_work_orders_service_created", "service", "created_at"),
    )


class WorkOrderCorrectionRow(Base):
    """A field an operator changed when confirming: the engine's value beside the operator's."""

    __tablename__ = "work_order_corrections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(16))
    engine_value: Mapped[Any] = mapped_column(JSON(), nullable=True)
    operator_value: Mapped[Any] = mapped_column(JSON(), nullable=True)
    corrected_by: Mapped[str] = mapped_column(String(128))
    corrected_at: Mapped[float] = mapped_column(Double())

    __table_args__ = (
        Index("ix_work_order_corrections_ticket", "ticket"),
        Index("ix_work_order_corrections_at", "corrected_at"),
    )
