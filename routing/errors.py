"""Routing errors with stable ids (clients may rely on ``error_id``).

:data:`INPUT_ERRORS` is every id (and status) a :class:`RoutingInputError` may carry; the API's
OpenAPI document lists them from here.
"""

from __future__ import annotations

INPUT_ERRORS: dict[str, int] = {
    "route.invalid_utf8": 400,
    "route.invalid_json": 400,
    "route.invalid_body": 400,
    "route.invalid_text": 400,
    "route.empty_text": 400,
    "route.invalid_at": 400,
    "route.text_too_long": 413,
    "route.body_too_large": 413,
}


class RoutingDataError(ValueError):
    """A rule or lexicon file is invalid. Names the file, the key and the problem."""

    error_id = "route.bad_rules"

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        super().__init__(f"{file}: {key}: {problem}")


class RoutingInputError(ValueError):
    """The text to route is unusable (empty, too long, wrong platform)."""

    def __init__(self, error_id: str, message: str, status: int = 400) -> None:
        if INPUT_ERRORS.get(error_id) != status:
            raise ValueError(f"undeclared routing error {error_id!r} ({status}): add it to INPUT_ERRORS")
        self.error_id = error_id
        self.message = message
        self.status = status
        super().__init__(f"{error_id}: {message}")

    def to_json(self) -> dict[str, object]:
        """The API's one error envelope."""
        return {"error_id": self.error_id, "message": self.message, "details": None}
