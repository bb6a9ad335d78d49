"""Routing engine: who takes this call (12345, 110, both, or neither), with its reasons.

``route(text, at)`` uses a default :class:`Router` built on first use from ``routing/data/``;
services that reload rules should hold their own ``Router`` and call ``reload()``.
"""

from __future__ import annotations

import functools

from .engine import MAX_TEXT_CHARS, PLATFORMS, Router
from .errors import RoutingDataError, RoutingInputError
from .result import Matter, RouteResult

__all__ = [
    "MAX_TEXT_CHARS", "PLATFORMS", "Matter", "RouteResult", "Router", "RoutingDataError",
    "RoutingInputError", "default_router", "route",
]


@functools.cache
def default_router() -> Router:
    return Router()


def route(text: str, at: str = "12345") -> RouteResult:
    """Route one text arriving at ``at`` ("12345" or "110") with the default rules."""
    return default_router().route(text, at)
