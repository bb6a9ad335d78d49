"""Routing errors with stable ids (clients may rely on ``error_id``)."""

from __future__ import annotations


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
        self.error_id = error_id
        self.message = message
        self.status = status
        super().__init__(f"{error_id}: {message}")

    def to_json(self) -> dict[str, object]:
        return {"error_id": self.error_id, "message": self.message, "status": self.status}
