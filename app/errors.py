"""API errors: each has an HTTP status, a stable ``error_id`` clients may rely on, and a message."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 500
    error_id = "internal_error"
    message = "internal error"

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"error_id": self.error_id, "message": self.message, "details": self.details}


class MalformedJson(ApiError):
    status, error_id, message = 400, "malformed_json", "request body is not valid JSON"


class ValidationFailed(ApiError):
    status, error_id, message = 400, "validation_failed", "request failed validation"


class UnknownOutcome(ApiError):
    status, error_id, message = 400, "unknown_outcome", "unknown outcome"


class Unauthorized(ApiError):
    status, error_id, message = 401, "unauthorized", "missing or invalid bearer token"


class Forbidden(ApiError):
    status, error_id, message = 403, "forbidden", "your role may not do this"


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


class NotReady(ApiError):
    status, error_id, message = 503, "not_ready", "service is not ready"


class RedisUnavailable(ApiError):
    status, error_id, message = 503, "redis_unavailable", "Redis is unavailable"


class InternalError(ApiError):
    status, error_id, message = 500, "internal_error", "internal error"


# --- transcripts and work orders --------------------------------------------------------------------
class InvalidSegment(ApiError):
    status, error_id, message = 400, "transcript.invalid_segment", "a segment is not valid"


class PartialNotStored(ApiError):
    status, error_id = 400, "transcript.partial_not_stored"
    message = "partial segments are not stored (they live only on pub/sub)"


class WorkOrderNotFound(ApiError):
    status, error_id, message = 404, "work_order.not_found", "no such work order"


class WorkOrderAlreadyConfirmed(ApiError):
    status, error_id, message = 409, "work_order.already_confirmed", "the work order is already confirmed"


class InvalidCorrection(ApiError):
    status, error_id, message = 400, "work_order.invalid_correction", "a correction is not valid"


class WorkOrderNotUpdated(ApiError):
    status, error_id = 503, "work_order.not_updated"
    message = "segments stored, but the work order could not be updated: send them again"
