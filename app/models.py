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
    rating: Mapped[str | None] = mapped_column(String(24))         # 一次一评: very_satisfied ... or None
    rating_result: Mapped[str | None] = mapped_column(String(16))  # rated | no_key | invalid | hung_up
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
    # None for an order the other platform sent: it has no call here (its call is on the peer's side).
    linkedid: Mapped[str | None] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    service: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(24))  # app.work_orders.lifecycle.State
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
    # The closed loop (0003): who called, what they asked for, where it came from, how it ended.
    caller: Mapped[str | None] = mapped_column(String(32))
    contact: Mapped[str | None] = mapped_column(String(32))  # a callback number other than the caller's
    confidential: Mapped[bool] = mapped_column(Boolean(), default=False)  # 保密: caller asked to stay unnamed
    request_kind: Mapped[str | None] = mapped_column(String(16))  # app.work_orders.deadlines.RequestKind
    words: Mapped[str | None] = mapped_column(Text())  # the caller's words, for an order sent by a peer
    origin: Mapped[str | None] = mapped_column(String(8))  # the platform that sent it; None: taken here
    peer_ticket: Mapped[str | None] = mapped_column(String(32))  # the order's number on the other platform
    peer_transcript: Mapped[str | None] = mapped_column(String(256))
    merged_into: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[float | None] = mapped_column(Double())
    version: Mapped[int] = mapped_column(Integer(), default=0)  # bumped by every transition

    __table_args__ = (
        Index("ix_work_orders_status_created", "status", "created_at"),
        Index("ix_work_orders_service_created", "service", "created_at"),
        Index("ix_work_orders_caller_created", "caller", "created_at"),
        Index("ix_work_orders_origin_peer_ticket", "origin", "peer_ticket"),
    )


class WorkOrderPartRow(Base):
    """One handler's part of a work order (110, a district government, a department): its own state,
    clock and answer. ``no`` numbers the parts of an order from 1."""

    __tablename__ = "work_order_parts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket: Mapped[str] = mapped_column(String(32))
    no: Mapped[int] = mapped_column(Integer())
    handler: Mapped[str] = mapped_column(String(32))       # a site handler id, or a platform ("110")
    handler_kind: Mapped[str] = mapped_column(String(16))  # platform | local_government | department
    handler_name: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(24))
    dispatched_at: Mapped[float] = mapped_column(Double())
    dispatched_by: Mapped[str] = mapped_column(String(128))
    sign_due_at: Mapped[float] = mapped_column(Double())
    warn_at: Mapped[float] = mapped_column(Double())
    due_at: Mapped[float] = mapped_column(Double())
    calendar_covered: Mapped[bool] = mapped_column(Boolean())  # False: counted Monday-Friday only
    signed_at: Mapped[float | None] = mapped_column(Double())
    replied_at: Mapped[float | None] = mapped_column(Double())
    overdue_at: Mapped[float | None] = mapped_column(Double())
    result: Mapped[str | None] = mapped_column(Text())
    extension: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    returned: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The mirror of this part on the other platform (a part sent to it, or one received from it).
    peer: Mapped[str | None] = mapped_column(String(8))
    peer_ticket: Mapped[str | None] = mapped_column(String(32))
    peer_part: Mapped[int | None] = mapped_column(Integer())
    updated_at: Mapped[float] = mapped_column(Double())

    __table_args__ = (
        UniqueConstraint("ticket", "no", name="uq_work_order_parts_ticket_no"),
        Index("ix_work_order_parts_handler_state", "handler", "state"),
        Index("ix_work_order_parts_state_due", "state", "due_at"),
        Index("ix_work_order_parts_state_warn", "state", "warn_at"),
        Index("ix_work_order_parts_state_sign_due", "state", "sign_due_at"),
        Index("ix_work_order_parts_peer", "peer", "peer_ticket", "peer_part"),
    )


class WorkOrderHistoryRow(Base):
    """Every transition of an order or of one of its parts, appended and never changed."""

    __tablename__ = "work_order_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket: Mapped[str] = mapped_column(String(32))
    part: Mapped[int | None] = mapped_column(Integer())  # the part's ``no``; None for the order itself
    step: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    who: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Double())
    note: Mapped[str | None] = mapped_column(Text())
    data: Mapped[dict[str, Any]] = mapped_column(JSON())

    __table_args__ = (Index("ix_work_order_history_ticket_at", "ticket", "at"),
                      Index("ix_work_order_history_step_at", "step", "at"))


class DeadlineAlertRow(Base):
    """A warning, an overdue mark or a 催办/督办 notice, fired once: the unique key is what keeps two
    app instances (or a restarted one) from firing it twice."""

    __tablename__ = "deadline_alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    part_id: Mapped[int] = mapped_column(BigInteger())
    ticket: Mapped[str] = mapped_column(String(32))
    handler: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # warning | sign_overdue | overdue | urge
    level: Mapped[int] = mapped_column(Integer())  # urge: 1 handler, 2 its supervisor, 3 leading group
    due_at: Mapped[float] = mapped_column(Double())
    fired_at: Mapped[float] = mapped_column(Double())

    __table_args__ = (
        UniqueConstraint("part_id", "kind", "level", "due_at", name="uq_deadline_alerts_once"),
        Index("ix_deadline_alerts_ticket", "ticket"),
        Index("ix_deadline_alerts_fired_at", "fired_at"),
    )


class OutboxRow(Base):
    """A message to the other platform, written in the transaction of the change it reports and
    delivered by the sender until acknowledged."""

    __tablename__ = "exchange_outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    peer: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(32))
    ticket: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text())
    created_at: Mapped[float] = mapped_column(Double())
    attempts: Mapped[int] = mapped_column(Integer())
    next_at: Mapped[float] = mapped_column(Double())
    claimed_until: Mapped[float | None] = mapped_column(Double())
    delivered_at: Mapped[float | None] = mapped_column(Double())
    last_error: Mapped[str | None] = mapped_column(String(256))
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))

    __table_args__ = (Index("ix_exchange_outbox_pending", "delivered_at", "next_at"),
                      Index("ix_exchange_outbox_ticket", "ticket"))


class InboxRow(Base):
    """Every message that reached this installation's exchange endpoint, applied or refused.
    ``applied_key`` (peer and message id, set only once applied) makes the receiver idempotent."""

    __tablename__ = "exchange_inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    peer: Mapped[str | None] = mapped_column(String(8))
    message_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(32))
    ticket: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[float] = mapped_column(Double())
    outcome: Mapped[str] = mapped_column(String(16))  # applied | duplicate | refused
    error_id: Mapped[str | None] = mapped_column(String(64))
    applied_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    body: Mapped[str] = mapped_column(Text())

    __table_args__ = (Index("ix_exchange_inbox_received_at", "received_at"),)


class NonceRow(Base):
    """Nonces of signed messages seen within the timestamp window: a replay carries a used one."""

    __tablename__ = "exchange_nonces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    peer: Mapped[str] = mapped_column(String(8))
    nonce: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Double())

    __table_args__ = (UniqueConstraint("peer", "nonce", name="uq_exchange_nonces_peer_nonce"),
                      Index("ix_exchange_nonces_at", "at"))


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


class CallbackTaskRow(Base):
    """One outbound call to make: a work order's 回访 (``survey``), a missed call (``missed``), or a
    caller who asked in the queue to be called back (``requested``). Durable: the scheduler claims
    it with a conditional update, so one task is placed by one app instance, once per attempt."""

    __tablename__ = "callback_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    platform: Mapped[str] = mapped_column(String(8))
    ticket: Mapped[str | None] = mapped_column(String(32))
    linkedid: Mapped[str | None] = mapped_column(String(64))  # the call it is about
    number: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # scheduled | placing | done | failed | cancelled
    result: Mapped[str | None] = mapped_column(String(24))
    due_at: Mapped[float] = mapped_column(Double())
    expires_at: Mapped[float | None] = mapped_column(Double())
    attempts: Mapped[int] = mapped_column(Integer(), default=0)
    max_attempts: Mapped[int] = mapped_column(Integer())
    owner: Mapped[str | None] = mapped_column(String(64))      # the app instance placing it now
    lease_until: Mapped[float | None] = mapped_column(Double())
    seat: Mapped[str | None] = mapped_column(String(16))       # placed from this seat (operator)
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    note: Mapped[str | None] = mapped_column(String(256))
    waited_s: Mapped[float | None] = mapped_column(Double())  # missed: how long the caller had waited
    dedupe_key: Mapped[str] = mapped_column(String(96), unique=True)
    created_at: Mapped[float] = mapped_column(Double())
    updated_at: Mapped[float] = mapped_column(Double())
    version: Mapped[int] = mapped_column(Integer(), default=0)

    __table_args__ = (
        Index("ix_callback_tasks_state_due", "state", "due_at"),
        Index("ix_callback_tasks_ticket", "ticket"),
        Index("ix_callback_tasks_linkedid", "linkedid"),
    )


class CallbackAttemptRow(Base):
    """One call placed for a task: when, how it ended, the SIP cause."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(BigInteger())
    no: Mapped[int] = mapped_column(Integer())
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)  # the outbound call's linkedid
    started_at: Mapped[float] = mapped_column(Double())
    ended_at: Mapped[float | None] = mapped_column(Double())
    result: Mapped[str | None] = mapped_column(String(24))
    cause: Mapped[int | None] = mapped_column(Integer())
    cause_txt: Mapped[str | None] = mapped_column(String(64))
    placed_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (UniqueConstraint("task_id", "no", name="uq_callback_attempts_task_no"),)


class CallbackSlotRow(Base):
    """The outbound lines of a platform: a task holds one while its call is up, so at most
    ``callbacks.max_outbound`` calls are out at once however many app instances place them."""

    __tablename__ = "callback_slots"

    platform: Mapped[str] = mapped_column(String(8), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer(), primary_key=True)
    task_id: Mapped[int | None] = mapped_column(BigInteger())
    taken_at: Mapped[float | None] = mapped_column(Double())


class NoCallRow(Base):
    """A number that asked not to be called (不再回访): no callback is ever placed to it."""

    __tablename__ = "no_call_numbers"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(256))
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[float] = mapped_column(Double())


class UserRow(Base):
    """A person who logs in to the console (0005): an operator bound to a seat and a platform, a
    supervisor, an admin, or a department's staff (bound to a handler). Workers keep their tokens."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    platform: Mapped[str | None] = mapped_column(String(8))   # operators and supervisors: 12345 | 110
    seat: Mapped[str | None] = mapped_column(String(16))      # operators: their softphone's seat id
    handler: Mapped[str | None] = mapped_column(String(32))   # departments: the site handler id
    password_hash: Mapped[str] = mapped_column(String(256))   # argon2id, PHC string
    disabled: Mapped[bool] = mapped_column(Boolean(), default=False)
    failed_logins: Mapped[int] = mapped_column(Integer(), default=0)
    locked_until: Mapped[float | None] = mapped_column(Double())
    last_login_at: Mapped[float | None] = mapped_column(Double())
    password_changed_at: Mapped[float] = mapped_column(Double())
    created_at: Mapped[float] = mapped_column(Double())
    updated_at: Mapped[float] = mapped_column(Double())


class SessionRow(Base):
    """A console login. Only the SHA-256 of the cookie's token is stored; ``csrf`` is the token every
    state-changing request of the session must carry in ``X-CSRF-Token``."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie token
    login: Mapped[str] = mapped_column(String(32))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Double())
    seen_at: Mapped[float] = mapped_column(Double())
    expires_at: Mapped[float] = mapped_column(Double())  # absolute end; idle expiry is seen_at + idle
    address: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_sessions_login", "login"), Index("ix_sessions_expires_at", "expires_at"))
