"""The asyncio FastAGI server (panoramisk), serving the route table in ``agi.routes``.

panoramisk's ``Application`` keeps the routes and its ``Request`` speaks the command/answer part of
the protocol. Its front door is replaced (``handler``): panoramisk reads the header block with no
size limit and spins forever on a connection that closes early, and it has no notion of who may
connect. Here a connection from a host outside ``settings.agi_allowed_hosts`` is closed before a
byte is read; the header block is bounded in size and time; every route runs under
``settings.agi_budget_ms`` and answers with the dialplan's defaults when it cannot finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from panoramisk.fast_agi import Application, Request

from agi.intake import IntakeService, Sink
from agi.protocol import MAX_ENV_BYTES, agi_args, parse_env, route_name, set_variable_command
from agi.routes import ROUTES, AgiCall, AgiDeps, Route, run_interactive, run_route
from agi.stats import RedisSessionLog, SessionStats
from agi.survey import PanoramiskSession, SurveyService
from agi.survey import Sink as SurveySink
from hotline.settings import Settings
from hotline.site import load_site

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 5.0   # Asterisk sends the header block at once; a silent peer is not Asterisk
ANSWER_TIMEOUT_S = 5.0   # writing the variables: Asterisk answers each SET VARIABLE at once

IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed_hosts(entries: Iterable[str]) -> tuple[IpNet, ...]:
    """Addresses or networks (``10.0.0.0/24``). Anything else is ignored with a warning."""
    nets: list[IpNet] = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            log.warning("agi_allowed_hosts: %r is not an IP address or network; ignored", entry)
    return tuple(nets)


def peer_allowed(peer: Any, allowed: tuple[IpNet, ...]) -> bool:
    if not peer:
        return False
    try:
        addr = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except (ValueError, TypeError, IndexError):
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in allowed)


class FastAgiApplication(Application):
    """panoramisk Application with a guarded front door and the budgeted route runner."""

    def __init__(self, *, allowed_hosts: Iterable[str], budget_s: float) -> None:
        super().__init__()
        self._allowed = parse_allowed_hosts(allowed_hosts)
        self._budget_s = budget_s

    def add_agi_route(self, name: str, route: Route, deps: AgiDeps) -> None:
        budget_s = self._budget_s

        async def endpoint(request: Request) -> None:
            call = AgiCall(route=name, env=request.headers, args=tuple(agi_args(request.headers)),
                           received_at=time.time())
            if route.interactive is not None:
                await run_interactive(route, call, deps, PanoramiskSession(request))
                return
            variables = await run_route(route, call, deps, budget_s)
            await send_variables(request, variables)

        self.add_route(name, endpoint)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            if not peer_allowed(peer, self._allowed):
                log.warning("FastAGI: refused connection from %s (not in agi_allowed_hosts)",
                            peer[0] if peer else "?")
                return
            try:
                async with asyncio.timeout(HEADER_TIMEOUT_S):
                    block = await reader.readuntil(b"\n\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError) as exc:
                log.warning("FastAGI: no valid AGI header from %s (%s)", peer[0], type(exc).__name__)
                return
            env = parse_env(block)
            name = route_name(env)
            endpoint = self._route.get(name)
            if endpoint is None:
                log.error("FastAGI: no route %r (from %s)", name[:64], peer[0])
                return
            request = Request(app=self, headers=env, reader=reader, writer=writer,
                              encoding=self.default_encoding)
            try:
                await endpoint(request)
            except Exception:
                log.exception("FastAGI: route %s failed", name)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def send_variables(request: Request, variables: Mapping[str, str]) -> None:
    """``SET VARIABLE`` each one, in order; stop at the first error or hangup.

    One command, one answer, strictly in turn: writing the commands at once (pipelining) was tried
    and Asterisk 22 loses the channel's AGI session (the integration tier caught it)."""
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            for name, value in variables.items():
                result = await request.send_command(set_variable_command(name, value))
                if "error" in result:
                    log.warning("FastAGI: SET VARIABLE %s answered %s; stopping", name, result.get("msg"))
                    return
    except TimeoutError:
        log.warning("FastAGI: Asterisk did not answer SET VARIABLE in %.0fs", ANSWER_TIMEOUT_S)
    except (ValueError, OSError, ConnectionError) as exc:  # hung up mid-answer, or garbage back
        log.warning("FastAGI: answer cut short (%s: %s)", type(exc).__name__, exc)


class AgiServer:
    """The listening FastAGI server. ``start()`` binds, ``stop()`` lets running calls finish."""

    def __init__(self, settings: Settings, deps: AgiDeps, routes: Mapping[str, Route] = ROUTES) -> None:
        self._settings = settings
        self._deps = deps
        self._routes = routes
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[Any]] = set()
        self.stats = SessionStats()
        self.session_log: RedisSessionLog | None = None

    @property
    def server(self) -> asyncio.Server:
        assert self._server is not None, "not started"
        return self._server

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self, host: str | None = None, port: int | None = None) -> asyncio.Server:
        app = FastAgiApplication(allowed_hosts=self._settings.agi_allowed_hosts,
                                 budget_s=self._settings.agi_budget_ms / 1000)
        for name, route in self._routes.items():
            app.add_agi_route(name, route, self._deps)

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._sessions.add(task)
            t0 = time.perf_counter()
            try:
                await app.handler(reader, writer)
            finally:
                elapsed = time.perf_counter() - t0
                self.stats.record(elapsed)
                if self.session_log is not None:
                    self.session_log.record(elapsed)
                if task is not None:
                    self._sessions.discard(task)

        host = self._settings.agi_host if host is None else host
        port = self._settings.agi_port if port is None else port
        self._server = await asyncio.start_server(on_connect, host, port, limit=MAX_ENV_BYTES,
                                                  reuse_address=True)
        log.info("FastAGI listening on %s:%d (routes: %s; allowed: %s)", host, self.port,
                 ", ".join(self._routes), ", ".join(self._settings.agi_allowed_hosts))
        return self._server

    async def stop(self, grace_s: float = 5.0) -> None:
        if self.session_log is not None:
            await self.session_log.stop()
            self.session_log = None
        if self._server is None:
            return
        self._server.close()
        if self._sessions:
            _, pending = await asyncio.wait(set(self._sessions), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> AgiServer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def start_agi_server(
    settings: Settings,
    *,
    redis: Redis | None,
    sink: Sink | None,
    intake: IntakeService | None = None,
    host: str | None = None,
    port: int | None = None,
) -> AgiServer:
    """Build the intake service and start listening. Stop it with ``await server.stop()``.

    Redis reads get half the budget so that a slow Redis still yields intake's own (degraded)
    answer, with the call id set, rather than the bare fallback.
    """
    if intake is None:
        intake = IntakeService(redis=redis, sink=sink, redis_timeout_s=settings.agi_budget_ms / 2000)
    # the event sink also answers FastAGI's one confirmed request (排队回拨); a bare emitter does not
    survey_sink = cast("SurveySink", sink) if sink is not None and hasattr(sink, "ask") else None
    survey = SurveyService(sink=survey_sink, survey=load_site(settings.site_file).survey,
                           prompts_dir=settings.effective_asterisk_sounds_dir,
                           local_sounds_dir=settings.effective_sounds_dir)
    server = AgiServer(settings, AgiDeps(intake=intake, survey=survey))
    if redis is not None:
        server.session_log = RedisSessionLog(redis)
        server.session_log.start()
    await server.start(host=host, port=port)
    return server
