"""The bodies every route shares: the error envelope, and the base classes of request bodies,
queries and answers. A route's own bodies live beside its views (``app/calls/schemas.py`` ...)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 500  # events or segments in one POST


class Body(BaseModel):
    """A request body or query: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Answer(BaseModel):
    """A response body, documented (answers are built by the services, not validated again)."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    loc: list[str | int] = Field(description="where: body/query/path/header, then the field path")
    msg: str


class ErrorBody(BaseModel):
    """Every error the API answers, whatever the route."""

    error_id: str = Field(description="stable: clients may rely on it (see ErrorId)")
    message: str
    details: list[ErrorDetail] | dict[str, Any] | None = Field(
        description="bad input: a list of {loc, msg}; other errors: facts about the refusal, or null")


class Empty(Body):
    """No fields: ``{}`` (or no body at all)."""
