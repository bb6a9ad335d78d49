"""What a route declares about itself: its bodies, query, answer and the errors it may raise.

``@endpoint(...)`` stores an :class:`Endpoint` on the view; :mod:`app.openapi` reads it from the
aiohttp route table, so the document is derived from the same models the view validates with.
Path parameters need no declaration: their type comes from :data:`PATH_PARAMS` by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import Field

from app.errors import ApiError
from hotline.exchange import PartNo
from hotline.types import CallId, SeatId, Ticket

F = TypeVar("F", bound=Callable[..., Any])
SPEC_ATTR = "_hotline_endpoint"

# a callback task's id (app/callbacks/): digits, as the view checks them
TaskId = Annotated[int, Field(ge=1, le=999_999_999_999_999_999)]
Login = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{1,31}$")]
AdminAction = Annotated[str, Field(pattern=r"^(dialplan-check|dialplan-reload)$")]
Asset = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
PATH_PARAMS: dict[str, Any] = {"linkedid": CallId, "ticket": Ticket, "part": PartNo, "task": TaskId,
                               "seat": SeatId, "login": Login, "action": AdminAction, "name": Asset}


@dataclass(frozen=True)
class Endpoint:
    summary: str
    body: Any = None           # a model (or a union of models) validated by parse_body
    body_optional: bool = False
    query: Any = None          # a model validated by parse_query
    response: Any = None       # the answer's model
    status: int = 200
    errors: tuple[type[ApiError], ...] = ()
    # error ids of components below the app that the route passes on: "flows", "routing"
    passes_on: tuple[str, ...] = ()
    websocket: bool = False
    extra_statuses: dict[int, str] = field(default_factory=dict)


def endpoint(summary: str, **kw: Any) -> Callable[[F], F]:
    spec = Endpoint(summary, **kw)

    def mark(fn: F) -> F:
        setattr(fn, SPEC_ATTR, spec)
        return fn

    return mark


def spec_of(handler: Any) -> Endpoint | None:
    return getattr(handler, SPEC_ATTR, None)
