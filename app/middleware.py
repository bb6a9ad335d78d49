"""Error mapping and authentication, as aiohttp middlewares.

Every failure leaves as JSON ``{"error_id", "message", "details"}``; an unexpected exception becomes
``500 internal_error`` with one log line carrying the traceback.

Who is calling: a bearer token (the workers, scripts) or, without one, a console session's cookie
(:mod:`app.accounts.store`). A session's request that changes anything (any method but GET, HEAD,
OPTIONS) must carry the session's CSRF token in ``X-CSRF-Token`` (or a form's ``csrf`` field); a
session's WebSocket must come from the console's own origin. A console page without a session
redirects to the login page.
"""

from __future__ import annotations

import html
import logging
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from app import keys
from app.accounts.store import csrf_matches
from app.auth import PAGE_ATTR, allow, authorize, is_public, presented_token
from app.errors import (
    ApiError,
    BodyTooLarge,
    CsrfRefused,
    Forbidden,
    HttpError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
)
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


SESSION_COOKIE = "hotline_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PAGE = "/console/login"


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None:  # unknown route or method: answer that first
        return await handler(request)
    handler_fn = request.match_info.handler
    header = presented_token(handler_fn, request.headers.get("Authorization"), request.query)
    cookie = request.cookies.get(SESSION_COOKIE)
    if header is None and cookie and not is_public(handler_fn) and keys.ACCOUNTS in request.app:
        try:
            await _session(request, handler_fn, cookie)
        except (Unauthorized, Forbidden) as exc:
            if getattr(handler_fn, PAGE_ATTR, False):
                return _page_refusal(request, exc)
            raise
        return await handler(request)
    try:
        principal = authorize(handler_fn, header, request.app[keys.TOKENS])
    except Unauthorized as exc:
        if getattr(handler_fn, PAGE_ATTR, False):
            return _page_refusal(request, exc)
        raise
    if principal is not None:
        request[keys.PRINCIPAL] = principal
    return await handler(request)


async def _session(request: web.Request, handler_fn: object, cookie: str) -> None:
    found = await request.app[keys.ACCOUNTS].session(cookie)
    if found is None:
        raise Unauthorized("the console session has ended: log in again")
    account, csrf = found
    principal = allow(handler_fn, account.principal())
    if request.method not in SAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER)
        if presented is None and request.content_type in ("application/x-www-form-urlencoded",
                                                           "multipart/form-data"):
            form = await request.post()  # aiohttp keeps it: the view reads the same form again
            value = form.get("csrf")
            presented = value if isinstance(value, str) else None
        if not csrf_matches(csrf, presented):
            raise CsrfRefused()
    elif request.headers.get("Upgrade", "").lower() == "websocket" and not _same_origin(request):
        raise CsrfRefused("a console WebSocket must come from the console's own page")
    request[keys.PRINCIPAL] = principal
    request[keys.CSRF] = csrf


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return origin == f"{request.scheme}://{request.host}" or origin == request.app[
        keys.SETTINGS].effective_api_base_url


def _page_refusal(request: web.Request, exc: ApiError) -> web.StreamResponse:
    if isinstance(exc, Unauthorized):
        return web.Response(status=303, headers={
            "Location": f"{LOGIN_PAGE}?next={quote(request.rel_url.path, safe='/')}"})
    return web.Response(status=403, content_type="text/html", charset="utf-8",
                        text=f"<!doctype html><meta charset=utf-8><title>403</title>"
                             f"<h1>无权访问 (403)</h1><p>{html.escape(exc.message)}</p>"
                             f"<p><a href=\"/console/\">返回</a></p>")

