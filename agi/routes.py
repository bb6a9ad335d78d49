"""The AGI route table, and the one way a route is run (FastAGI and classic AGI alike).

A handler is thin: it turns the AGI request into a service call and returns the channel variables
to set. The transport (``agi.server`` or ``agi.classic``) writes them. ``run_route`` puts every
handler under the time budget and turns any failure into the route's fallback answer, which leaves
the dialplan's defaults in place: the caller always reaches a queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from agi.intake import IntakeRequest, IntakeService, degraded_answer
from agi.protocol import AgiValueError, set_variable_command
from hotline.names import AGI_ROUTE_INTAKE, VAR_INTAKE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgiCall:
    """One AGI request: the ``agi_*`` environment, the arguments, when it arrived."""

    route: str
    env: Mapping[str, str]
    args: tuple[str, ...]
    received_at: float


@dataclass(frozen=True)
class AgiDeps:
    """What handlers may use. Built once by the server (or the classic script)."""

    intake: IntakeService


Handler = Callable[[AgiCall, AgiDeps], Awaitable[dict[str, str]]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    fallback: Callable[[], dict[str, str]]  # the answer on timeout or error


async def intake(call: AgiCall, deps: AgiDeps) -> dict[str, str]:
    """``agi://.../intake,${HOTLINE_SERVICE},${CHANNEL(linkedid)}``: classify the call, pick its queue."""
    req = IntakeRequest.from_agi(call.env, call.args, at=call.received_at)
    decision = await deps.intake.intake(req)
    return decision.variables


ROUTES: Mapping[str, Route] = MappingProxyType({
    AGI_ROUTE_INTAKE: Route(handler=intake, fallback=degraded_answer),
})


async def run_route(route: Route, call: AgiCall, deps: AgiDeps, budget_s: float) -> dict[str, str]:
    """Run a handler within ``budget_s``; on timeout or any error answer with its fallback.

    Returns only variables that can be written safely; an unsafe value is left out and the call
    marked degraded.
    """
    try:
        async with asyncio.timeout(budget_s):
            variables = await route.handler(call, deps)
    except TimeoutError:
        log.warning("AGI route %s over its %d ms budget; answered with defaults", call.route,
                    round(budget_s * 1000))
        return route.fallback()
    except Exception:
        log.exception("AGI route %s failed; answered with defaults", call.route)
        return route.fallback()
    return safe_variables(variables)


def safe_variables(variables: Mapping[str, str]) -> dict[str, str]:
    """Drop variables whose name or value cannot be written as one AGI command."""
    safe: dict[str, str] = {}
    unsafe: list[str] = []
    for name, value in variables.items():
        try:
            set_variable_command(name, value)
        except AgiValueError:
            unsafe.append(name)
            continue
        safe[name] = value
    if unsafe:
        log.error("left out channel variables with unsafe values: %s", ", ".join(unsafe))
        safe[VAR_INTAKE] = "degraded"
    return safe
