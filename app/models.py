"""Database models. Times are epoch seconds (UTC) as doubles: identical on SQLite and PostgreSQL.

The ``calls`` row is a summary recomputed from all of the call's ``call_events`` (see
:mod:`app.calls.summary`); the events are the record.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Double, Index, Integer, String
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
    type: Mapped[str] = mapped_column(String(16))
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
