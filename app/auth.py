"""Who is calling: bearer tokens and roles from :mod:`hotline.secrets`, and per-route role rules.

Views declare their roles with :func:`requires` or :func:`public`; a route declaring neither is
refused, so forgetting a declaration fails closed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from app.errors import Forbidden, Unauthorized
from hotline.secrets import Secrets

F = TypeVar("F", bound=Callable[..., Any])

SERVICE, OPERATOR, SUPERVISOR, ADMIN = "service", "operator", "supervisor", "admin"
DEPARTMENT = "department"  # one handler's staff (hotline.secrets.DEPARTMENT): its own orders only
PEER = "peer"              # the other platform's installation, known by its signature, not a token
READERS = (OPERATOR, SUPERVISOR, ADMIN)
ROLES_ATTR = "_hotline_roles"
QUERY_TOKEN_ATTR = "_hotline_query_token"
QUERY_TOKEN_PARAM = "access_token"
PUBLIC = "public"
PAGE_ATTR = "_hotline_page"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    handler: str | None = None  # departments: the handler (site.toml [[handlers]] id) they work for
    # A person logged in to the console (app.accounts): their platform (operators, supervisors of one
    # floor), their seat (operators), the name the audit and the screens show. Tokens have none.
    platform: str | None = None
    seat: str | None = None
    display_name: str | None = None
    session: bool = False


def requires(*roles: str) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        setattr(fn, ROLES_ATTR, frozenset(roles))
        return fn

    return mark


def public(fn: F) -> F:
    setattr(fn, ROLES_ATTR, PUBLIC)
    return fn


def page(fn: F) -> F:
    """A console page: without a session the browser is sent to the login page (not a JSON 401)."""
    setattr(fn, PAGE_ATTR, True)
    return fn


def query_token(fn: F) -> F:
    """The route also takes its bearer token as ``?access_token=``: browsers cannot set headers on a
    WebSocket. Only the live WebSocket routes are marked; everywhere else a token in the URL is
    ignored (URLs end up in logs and histories)."""
    setattr(fn, QUERY_TOKEN_ATTR, True)
    return fn


def presented_token(handler: Any, header: str | None, query: Mapping[str, str]) -> str | None:
    """The ``Authorization`` header, or for :func:`query_token` routes the query's token as one."""
    if header is None and getattr(handler, QUERY_TOKEN_ATTR, False) and query.get(QUERY_TOKEN_PARAM):
        return f"Bearer {query[QUERY_TOKEN_PARAM]}"
    return header


class TokenBook:
    def __init__(self, secrets: Secrets) -> None:
        self._tokens = {
            t.encode(): Principal(str(who.get("name", "?")), str(who.get("role", "")),
                                  str(who["handler"]) if who.get("handler") else None)
            for t, who in secrets.api_tokens.items()
        }

    def authenticate(self, header: str | None) -> Principal:
        if not header or not header.startswith("Bearer "):
            raise Unauthorized()
        try:  # a header with bytes that are not ASCII holds no token of ours (not a 500)
            presented = header[len("Bearer ") :].strip().encode("ascii")
        except UnicodeEncodeError:
            raise Unauthorized("the bearer token is not ASCII") from None
        found = None
        for token, principal in self._tokens.items():  # constant time per token
            if hmac.compare_digest(token, presented):
                found = principal
        if found is None:
            raise Unauthorized("unknown bearer token")
        return found


def is_public(handler: Any) -> bool:
    return getattr(handler, ROLES_ATTR, None) == PUBLIC


def allow(handler: Any, principal: Principal) -> Principal:
    """``principal`` if its role may call ``handler``; else 403 (a route with no rule refuses all)."""
    rule = getattr(handler, ROLES_ATTR, None)
    if rule is None or rule == PUBLIC or principal.role not in rule:
        raise Forbidden(f"role {principal.role!r} may not do this",
                        details={"allowed": sorted(rule) if isinstance(rule, frozenset) else []})
    return principal


def authorize(handler: Any, header: str | None, book: TokenBook) -> Principal | None:
    """The caller's principal for ``handler``, ``None`` for public routes; raises 401/403."""
    if is_public(handler):
        return None
    return allow(handler, book.authenticate(header))
