"""API errors: each has an HTTP status, a stable ``error_id`` clients may rely on, and a message.

Every error leaves the server as one envelope, ``{"error_id", "message", "details"}``; for bad input
``details`` is a list of ``{"loc": [...], "msg": "..."}``. Each subclass registers itself in
:data:`REGISTRY`, which the OpenAPI document lists (with the flow and routing errors the API passes
on), so a new error id is documented by being declared.
"""

from __future__ import annotations

from typing import Any, ClassVar

REGISTRY: dict[str, type[ApiError]] = {}


class ApiError(Exception):
    status: ClassVar[int] = 500
    error_id: ClassVar[str] = "internal_error"
    message = "internal error"
    # Errors that carry another component's id and status (flows, routing) set this; the ids they
    # may carry are listed from that component's own registry.
    passes_on: ClassVar[bool] = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not cls.passes_on:
            REGISTRY[cls.error_id] = cls

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.status_code = self.status
        self.id = self.error_id

    def to_json(self) -> dict[str, Any]:
        return {"error_id": self.id, "message": self.message, "details": self.details}


class PassedOn(ApiError):
    """An error of a component below the app (a flow, the routing engine), with its own id and status."""

    passes_on = True

    def __init__(self, status: int, error_id: str, message: str, details: Any = None) -> None:
        super().__init__(message, details)
        self.status_code = status
        self.id = error_id


class MalformedJson(ApiError):
    status, error_id, message = 400, "malformed_json", "request body is not valid JSON"


class ValidationFailed(ApiError):
    status, error_id, message = 400, "validation_failed", "request failed validation"


class InvalidCallId(ApiError):
    status, error_id, message = 400, "invalid_call_id", "not a call id (1-64 of A-Z a-z 0-9 . _ : -)"


class UnknownOutcome(ApiError):
    status, error_id, message = 400, "unknown_outcome", "unknown outcome"


class Unauthorized(ApiError):
    status, error_id, message = 401, "unauthorized", "missing or invalid bearer token"


class Forbidden(ApiError):
    status, error_id, message = 403, "forbidden", "your role may not do this"


class CsrfRefused(ApiError):
    status, error_id, message = 403, "csrf_refused", "missing or wrong X-CSRF-Token for this session"


class NotFound(ApiError):
    status, error_id, message = 404, "not_found", "no such resource"


class UnknownCall(ApiError):
    status, error_id, message = 404, "unknown_call", "no call with this linkedid"


class MethodNotAllowed(ApiError):
    status, error_id, message = 405, "method_not_allowed", "method not allowed on this resource"


class BodyTooLarge(ApiError):
    status, error_id, message = 413, "body_too_large", "request body is too large"


class UnsupportedMediaType(ApiError):
    status, error_id, message = 415, "unsupported_media_type", "expected Content-Type: application/json"


class HttpError(ApiError):
    """Any other HTTP error aiohttp raises (its status is kept)."""

    status, error_id, message = 400, "http_error", "the request could not be served"


class NotReady(ApiError):
    status, error_id, message = 503, "not_ready", "service is not ready"


class RedisUnavailable(ApiError):
    status, error_id, message = 503, "redis_unavailable", "Redis is unavailable"


class FlowsUnavailable(ApiError):
    status, error_id, message = 503, "flows_unavailable", "call flows are not wired to this API instance"


class UnknownHotline(ApiError):
    """A hotline outside the closed set (the same id the linkage flow refuses with)."""

    status, error_id, message = 400, "unknown_hotline", "unknown hotline"


class InternalError(ApiError):
    status, error_id, message = 500, "internal_error", "internal error"


# --- transcripts and work orders --------------------------------------------------------------------
class InvalidSegment(ApiError):
    status, error_id, message = 400, "transcript.invalid_segment", "a segment is not valid"


class PartialNotStored(ApiError):
    status, error_id = 400, "transcript.partial_not_stored"
    message = "partial segments are not stored (they live only on pub/sub)"


class InvalidTicket(ApiError):
    status, error_id = 400, "work_order.invalid_ticket"
    message = "not a ticket number (12345-YYYYMMDD-NNNNNN)"


class WorkOrderNotFound(ApiError):
    status, error_id, message = 404, "work_order.not_found", "no such work order"


class WorkOrderAlreadyConfirmed(ApiError):
    status, error_id, message = 409, "work_order.already_confirmed", "the work order is already confirmed"


class InvalidCorrection(ApiError):
    status, error_id, message = 400, "work_order.invalid_correction", "a correction is not valid"


class WorkOrderNotUpdated(ApiError):
    status, error_id = 503, "work_order.not_updated"
    message = "segments stored, but the work order could not be updated: send them again"


class InvalidTransition(ApiError):
    status, error_id, message = 409, "work_order.invalid_transition", "the order cannot take that step now"


class UnknownHandler(ApiError):
    status, error_id, message = 400, "work_order.unknown_handler", "no such handler in the site"


class PartNotFound(ApiError):
    status, error_id, message = 404, "work_order.part_not_found", "the work order has no such part"


class ReturnWindowClosed(ApiError):
    status, error_id = 409, "work_order.return_window_closed"
    message = "a part may be returned only within the return window after dispatch"


class ExtensionTooLong(ApiError):
    status, error_id, message = 400, "work_order.extension_too_long", "the extension asked for is too long"


class StaleWorkOrder(ApiError):
    status, error_id = 409, "work_order.stale"
    message = "the work order changed meanwhile: read it again and retry"


# --- the 12345 <-> 110 exchange ---------------------------------------------------------------------
class ExchangeUnsigned(ApiError):
    status, error_id, message = 401, "exchange.unsigned", "the message carries no valid signature headers"


class ExchangeUnknownPeer(ApiError):
    status, error_id, message = 401, "exchange.unknown_peer", "no exchange key for that peer"


class ExchangeBadSignature(ApiError):
    status, error_id, message = 401, "exchange.bad_signature", "the signature does not match the message"


class ExchangeStaleTimestamp(ApiError):
    status, error_id, message = 401, "exchange.stale_timestamp", "the timestamp is outside the window"


class ExchangeReplayed(ApiError):
    status, error_id, message = 409, "exchange.replayed", "that nonce was already used: a replayed message"


class ExchangeInvalidMessage(ApiError):
    status, error_id, message = 400, "exchange.invalid_message", "the message does not follow the schema"


class ExchangeUnknownOrder(ApiError):
    status, error_id, message = 404, "exchange.unknown_order", "no order here matches the message"


class RulesNotReloaded(ApiError):
    status, error_id, message = 400, "route.reload_failed", "the routing rules were not reloaded"


# --- callbacks (app/callbacks/) ---
class TaskNotOpen(ApiError):
    status, error_id, message = 409, "callback.not_open", "the callback task is not waiting to be placed"


class NotCallable(ApiError):
    status, error_id = 409, "callback.not_callable"
    message = "this call cannot be called back now (no number, not a 12345 call, or outside calling hours)"


class UnknownSeat(ApiError):
    status, error_id, message = 400, "callback.unknown_seat", "not an operator seat of the task's platform"
