"""Reading requests into models and writing JSON answers: the one place where bad input becomes an error.

``parse_body(request, Model)`` and ``parse_query(request, Model)`` validate with the pydantic model the
route declares (the same model the OpenAPI document shows); path parameters go through the shared
types of :mod:`hotline.types` (:func:`call_id`, :func:`ticket`). Every refusal is one envelope:
``{"error_id", "message", "details": [{"loc": [...], "msg": "..."}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from app.errors import (
    ApiError,
    BodyTooLarge,
    InvalidCallId,
    InvalidTicket,
    MalformedJson,
    UnknownOutcome,
    UnsupportedMediaType,
    ValidationFailed,
)
from hotline.types import CALL_ID_RE, TICKET_RE, fullmatch

MAX_BODY = 1024 * 1024
JSON_TYPE = "application/json"
M = TypeVar("M", bound=BaseModel)
# Chooses the error class for a model's errors (e.g. a bad segment is ``transcript.invalid_segment``).
Classify = Callable[[Sequence[Any]], type[ApiError]]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: web.Request) -> Any:
    if request.content_type != JSON_TYPE:
        raise UnsupportedMediaType(details=[{"loc": ["header", "Content-Type"],
                                             "msg": f"got {request.content_type[:64]}"}])
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyTooLarge(details=[{"loc": ["body"], "msg": f"at most {MAX_BODY} bytes"}])
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(details=[{"loc": ["body"], "msg": f"at most {MAX_BODY} bytes"}]) from None
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(details=[{"loc": ["body"], "msg": str(exc)[:200]}]) from None


def error_details(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    """pydantic's errors as the envelope's ``details`` (at most 50, inputs never echoed)."""
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"]} for e in exc.errors(include_url=False)[:50]]


def default_classify(errors: Sequence[Any]) -> type[ApiError]:
    return UnknownOutcome if any(e["type"] == "unknown_outcome" for e in errors) else ValidationFailed


def refuse(exc: ValidationError, *, classify: Classify = default_classify,
           prefix: Sequence[str | int] = ()) -> ApiError:
    """The API error for a model's validation errors (raise it ``from None``)."""
    details = error_details(exc, prefix)
    first = details[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return classify(exc.errors(include_url=False))(f"{where}: {first['msg']}", details=details)


def validate(model: type[M], raw: Any, *, classify: Classify = default_classify,
             prefix: Sequence[str | int] = ()) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise refuse(exc, classify=classify, prefix=prefix) from None


async def parse_body(request: web.Request, model: type[M], *, classify: Classify = default_classify,
                     optional: bool = False) -> M:
    """The JSON body as ``model``. With ``optional``, a request without a body is ``{}``."""
    raw = await read_json(request) if (request.can_read_body or not optional) else {}
    return validate(model, raw, classify=classify, prefix=("body",))


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``: unknown parameters and repeated ones are refused."""
    repeated = [k for k in set(request.query) if len(request.query.getall(k)) > 1]
    if repeated:
        raise ValidationFailed(f"query.{sorted(repeated)[0][:64]}: given more than once",
                               details=[{"loc": ["query", k[:64]], "msg": "given more than once"}
                                        for k in sorted(repeated)])
    return validate(model, dict(request.query), prefix=("query",))


def check_query(request: web.Request, allowed: set[str]) -> None:
    """For routes whose query is a fixed set of names (no values to parse)."""
    problems = [{"loc": ["query", k[:64]], "msg": "unknown query parameter"}
                for k in sorted(set(request.query) - allowed)]
    problems += [{"loc": ["query", k[:64]], "msg": "given more than once"}
                 for k in sorted(set(request.query)) if len(request.query.getall(k)) > 1]
    if problems:
        raise ValidationFailed(f"query.{problems[0]['loc'][1]}: {problems[0]['msg']}", details=problems)


def call_id(request: web.Request) -> str:
    """The ``{linkedid}`` of the URL: malformed is 400 ``invalid_call_id`` on every route (an unknown,
    well-formed one is the route's 404 ``unknown_call``)."""
    linkedid = request.match_info["linkedid"]
    if not fullmatch(CALL_ID_RE, linkedid):
        raise InvalidCallId(details=[{"loc": ["path", "linkedid"], "msg": "not a call id"}])
    return linkedid


def ticket(request: web.Request) -> str:
    value = request.match_info["ticket"]
    if not fullmatch(TICKET_RE, value):
        raise InvalidTicket(details=[{"loc": ["path", "ticket"], "msg": "not a ticket number"}])
    return value


def part_number(request: web.Request) -> int:
    """The ``{part}`` of the URL: a part's number, 1-999."""
    value = request.match_info["part"]
    if not (value.isascii() and value.isdigit() and len(value) <= 3 and 1 <= int(value) <= 999):
        raise ValidationFailed("path.part: a part number 1-999",
                               details=[{"loc": ["path", "part"], "msg": "a part number 1-999"}])
    return int(value)


def dumps(data: Any) -> str:
    """JSON as UTF-8 text: Chinese stays readable (no ``\\uXXXX``)."""
    return json.dumps(data, ensure_ascii=False)


def json_response(data: Any, status: int = 200) -> web.Response:
    # text= makes aiohttp send "application/json; charset=utf-8"
    return web.Response(text=dumps(data), status=status, content_type=JSON_TYPE)
