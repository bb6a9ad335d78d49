"""Error mapping and authentication, as aiohttp middlewares.

Every failure leaves as JSON ``{"error_id", "message", "details"}``; an unexpected exception becomes
``500 internal_error`` with one log line carrying the traceback.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from app import keys
from app.auth import authorize, presented_token
from app.errors import ApiError, BodyTooLarge, HttpError, InternalError, MethodNotAllowed, NotFound
from app.http_util import json_response

log = logging.getLogger(__name__)

_BY_STATUS: dict[int, type[ApiError]] = {404: NotFound, 405: MethodNotAllowed, 413: BodyTooLarge}


def error_response(err: ApiError, status: int | None = None) -> web.Response:
    return json_response(err.to_json(), status=status or err.status_code)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        mapped = _BY_STATUS.get(exc.status, HttpError)(exc.reason if exc.status not in _BY_STATUS else None)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            mapped.details = {"allowed": sorted(exc.allowed_methods)}
        resp = error_response(mapped, status=exc.status)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            resp.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return resp
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.rel_url.path)
        return error_response(InternalError())


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:  # unknown route or method: answer that first
        return await handler(request)
    handler_fn = request.match_info.handler
    header = presented_token(handler_fn, request.headers.get("Authorization"), request.query)
    principal = authorize(handler_fn, header, request.app[keys.TOKENS])
    if principal is not None:
        request[keys.PRINCIPAL] = principal
    return await handler(request)
