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
from agi.survey import AgiSession, SurveyService
from hotline.names import (
    AGI_ROUTE_INTAKE,
    AGI_ROUTE_QUEUE_CALLBACK,
    AGI_ROUTE_RATING,
    AGI_ROUTE_SURVEY,
    VAR_INTAKE,
    VAR_QUEUE_CALLBACK,
)

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
    survey: SurveyService | None = None  # the interactive routes (rating, survey)


Handler = Callable[[AgiCall, AgiDeps], Awaitable[dict[str, str]]]
# An interactive handler speaks AGI commands with Asterisk (prompts, keys) through the session.
InteractiveHandler = Callable[[AgiCall, AgiDeps, AgiSession], Awaitable[dict[str, str]]]


def _no_variables() -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Route:
    handler: Handler | None = None
    fallback: Callable[[], dict[str, str]] = _no_variables  # the answer on timeout or error
    interactive: InteractiveHandler | None = None
    budget_s: float | None = None  # interactive routes: their own limit (prompts take seconds)


async def intake(call: AgiCall, deps: AgiDeps) -> dict[str, str]:
    """``agi://.../intake,${HOTLINE_SERVICE},${CHANNEL(linkedid)}``: classify the call, pick its queue."""
    req = IntakeRequest.from_agi(call.env, call.args, at=call.received_at)
    decision = await deps.intake.intake(req)
    return decision.variables


async def rating(call: AgiCall, deps: AgiDeps, session: AgiSession) -> dict[str, str]:
    """``agi://.../rating,${HOTLINE_LINKEDID}``: the end-of-call rating (一次一评)."""
    assert deps.survey is not None
    return await deps.survey.rate(session, call.env, call.args)


async def survey(call: AgiCall, deps: AgiDeps, session: AgiSession) -> dict[str, str]:
    """``agi://.../survey,<task>,<attempt>,<platform>``: a work order's 回访 call."""
    assert deps.survey is not None
    return await deps.survey.survey_call(session, call.env, call.args)


async def queue_callback(call: AgiCall, deps: AgiDeps) -> dict[str, str]:
    """``agi://.../queue-callback,${HOTLINE_LINKEDID},${QUEUEPOSITION}``: 排队回拨. ``ok`` only once
    the backend has stored the callback; anything else sends the caller back to their place."""
    assert deps.survey is not None
    registered = await deps.survey.register_queue_callback(call.args)
    return {VAR_QUEUE_CALLBACK: "ok" if registered else "failed"}


def _not_registered() -> dict[str, str]:
    return {VAR_QUEUE_CALLBACK: "failed"}


ROUTES: Mapping[str, Route] = MappingProxyType({
    AGI_ROUTE_INTAKE: Route(handler=intake, fallback=degraded_answer),
    # a prompt, up to `tries` times, and the key's timeout: well under a minute
    AGI_ROUTE_RATING: Route(interactive=rating, budget_s=60.0),
    # who calls, the matter and the reply read out, two questions
    AGI_ROUTE_SURVEY: Route(interactive=survey, budget_s=240.0),
    # one confirmed request to the API (the caller waits in silence meanwhile: keep it short)
    AGI_ROUTE_QUEUE_CALLBACK: Route(handler=queue_callback, fallback=_not_registered, budget_s=2.0),
})


async def run_route(route: Route, call: AgiCall, deps: AgiDeps, budget_s: float) -> dict[str, str]:
    """Run a handler within ``budget_s``; on timeout or any error answer with its fallback.

    Returns only variables that can be written safely; an unsafe value is left out and the call
    marked degraded.
    """
    budget_s = route.budget_s or budget_s
    try:
        async with asyncio.timeout(budget_s):
            assert route.handler is not None, "an interactive route is run by run_interactive"
            variables = await route.handler(call, deps)
    except TimeoutError:
        log.warning("AGI route %s over its %d ms budget; answered with defaults", call.route,
                    round(budget_s * 1000))
        return route.fallback()
    except Exception:
        log.exception("AGI route %s failed; answered with defaults", call.route)
        return route.fallback()
    return safe_variables(variables)


async def run_interactive(route: Route, call: AgiCall, deps: AgiDeps, session: AgiSession) -> None:
    """Run an interactive handler within its own budget; a failure only ends the prompts (the
    dialplan goes on, and the caller is never held by it)."""
    assert route.interactive is not None
    try:
        async with asyncio.timeout(route.budget_s or 60.0):
            await route.interactive(call, deps, session)
    except TimeoutError:
        log.warning("AGI route %s over its %.0f s budget; ended", call.route, route.budget_s or 60.0)
    except Exception:
        log.exception("AGI route %s failed; the dialplan goes on", call.route)


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
