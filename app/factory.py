"""``create_app(settings)``: wires settings, secrets, database, Redis and views into an application.

Resources (engine, Redis client, notifier task) are opened and closed in ``cleanup_ctx``; the
database is migrated to the newest revision there, before the first request (see :mod:`app.db`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from app import flows_api, keys, metrics, route_api
from app.accounts.store import AccountStore
from app.auth import TokenBook
from app.callbacks import http as callbacks_http
from app.callbacks.scheduler import CallbackScheduler
from app.calls import http as calls_http
from app.calls.context import CallContext
from app.calls.services import CallService
from app.console import api as console_api
from app.console import pages as console_pages
from app.console.admin_ops import AdminOps
from app.console.floor import floor_event
from app.db import Database, make_engine, upgrade_engine
from app.exchange import http as exchange_http
from app.exchange.outbox import Outbox, Sender
from app.exchange.receiver import Receiver
from app.exchange.wiring import ExchangeKeys, Transport, retry_ceiling
from app.harassment import http as harassment_http
from app.harassment.services import HarassmentService
from app.health import setup_routes as health_routes
from app.http_util import MAX_BODY
from app.middleware import auth_middleware, errors_middleware
from app.notifier import EventNotifier, TranscriptNotifier
from app.redis_link import RedisLink
from app.transcripts import http as transcripts_http
from app.transcripts import live
from app.transcripts.services import TranscriptService
from app.transcripts.sockets import LiveHub
from app.work_orders import http as work_orders_http
from app.work_orders import loop_http
from app.work_orders.alerts import LifeThreatAlerts
from app.work_orders.creator import WorkOrderCreator
from app.work_orders.deadlines import calendar_of, limits_of
from app.work_orders.dispatch import known_districts
from app.work_orders.handlers import Handlers
from app.work_orders.handover import Handover
from app.work_orders.loop import WorkOrderLoop
from app.work_orders.services import WorkOrderService
from app.work_orders.sweep import DeadlineSweep
from hotline.redis_client import connect
from hotline.redis_keys import EVENTS_CHANNEL, WORK_ORDERS_CHANNEL
from hotline.secrets import Secrets, load_secrets
from hotline.settings import Settings
from hotline.site import Site, load_site

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, secrets: Secrets | None = None, *, migrate: bool = True, flows: Any = None,
    conference_flows: Any = None, site: Site | None = None, redis: Redis | None = None,
    admin_ops: AdminOps | None = None,
) -> web.Application:
    """The API application. ``secrets`` defaults to ``settings.secrets_file`` (read here, not at import).

    ``migrate=False`` skips the upgrade at start; ``/ready`` then says 503 until someone migrates.
    ``site`` (for ``[transcription] auto_handover_110``) defaults to ``settings.site_file``, read when
    the app starts. ``redis``: the process's Redis client, when the app shares its process (`hotline
    up`); by default the app opens its own from ``settings.redis_url``.
    """
    app = web.Application(middlewares=[metrics.timing_middleware, errors_middleware, auth_middleware],
                          client_max_size=MAX_BODY)
    secrets = secrets if secrets is not None else load_secrets(settings.secrets_file)
    app[keys.SETTINGS] = settings
    app[keys.SECRETS] = secrets
    app[keys.TOKENS] = TokenBook(secrets)
    if site is not None:
        app[keys.SITE] = site
    if admin_ops is not None:
        app[keys.ADMIN_OPS] = admin_ops
    app.cleanup_ctx.append(_database(migrate))
    app.cleanup_ctx.append(_redis(redis))
    app.cleanup_ctx.append(_services)
    health_routes(app)
    calls_http.setup_routes(app)
    harassment_http.setup_routes(app)
    route_api.setup_routes(app)
    transcripts_http.setup_routes(app)
    live.setup_routes(app)
    work_orders_http.setup_routes(app)
    loop_http.setup_routes(app)
    exchange_http.setup_routes(app)
    callbacks_http.setup_routes(app)
    console_api.setup_routes(app)
    console_pages.setup_routes(app)
    metrics.setup_routes(app)
    # flows: call_flows.flows.FlowService / ConferenceFlows, wired in by `hotline up`
    flows_api.setup_routes(app, flows, conference_flows)
    return app


def _database(migrate: bool):  # noqa: ANN202 - a cleanup_ctx factory
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        url = app[keys.SETTINGS].effective_database_url
        # Pre-ping survives a PostgreSQL restart; a SQLite file needs no such check (and it costs a hop).
        engine = make_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        try:
            if migrate:
                await upgrade_engine(engine)
            app[keys.DATABASE] = Database(engine)
            yield
        finally:
            await engine.dispose()

    return ctx


def _redis(client: Redis | None):  # noqa: ANN202 - a cleanup_ctx factory
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        url = settings.redis_url
        # `hotline up` hands in its process's one client (shared with the AMI listener and taps); on
        # its own the app makes one (hotline.redis_client: bounded pool). Only an own client is closed.
        own = client is None and bool(url)
        link = RedisLink(client=client if client is not None else
                         (connect(url, max_connections=settings.redis_max_connections) if url else None))
        if link.client is None:
            log.warning("REDIS_URL not set: events are stored but not broadcast; harassment list unavailable")
        app[keys.REDIS] = link
        app[keys.LIVE_SOCKETS] = LiveHub(link, max_sockets=settings.live_max_sockets,
                                         max_per_token=settings.live_max_per_token,
                                         queue_max=settings.live_queue_max)
        # console sockets see call events with the fields a screen needs, numbers masked
        app[keys.LIVE_SOCKETS].shape(EVENTS_CHANNEL, floor_event)
        try:
            yield
        finally:
            await app[keys.LIVE_SOCKETS].stop()
            if own:
                await link.close()

    return ctx


async def _services(app: web.Application) -> AsyncIterator[None]:
    if keys.SITE not in app:
        app[keys.SITE] = load_site(app[keys.SETTINGS].site_file)
    db, redis = app[keys.DATABASE], app[keys.REDIS]
    settings = app[keys.SETTINGS]
    app[keys.ACCOUNTS] = AccountStore(db, idle_s=settings.session_idle_min * 60,
                                      max_s=settings.session_max_h * 3600,
                                      max_failures=settings.login_max_failures,
                                      lockout_s=settings.login_lockout_min * 60)
    calls = CallService(db, EventNotifier(redis, enrich=CallContext(db).enrich))
    transcript_notifier = TranscriptNotifier(redis)
    transcripts = TranscriptService(db)
    alerts = LifeThreatAlerts(db, calls, transcript_notifier, app[keys.SITE], app.get(keys.CONFERENCE_FLOWS))
    app[keys.NOTIFIER] = calls.notifier
    app[keys.HARASSMENT] = HarassmentService(redis)
    app[keys.CALLS] = calls
    app[keys.TRANSCRIPT_NOTIFIER] = transcript_notifier
    app[keys.TRANSCRIPTS] = transcripts
    districts = known_districts(app[keys.SITE].phrases)
    flows = app.get(keys.FLOWS)
    app[keys.WORK_ORDER_CREATOR] = WorkOrderCreator(db, transcripts, calls, app[keys.ROUTER],
                                                    transcript_notifier, alerts, districts,
                                                    tag_ticket=flows.tag_ticket if flows else None)
    site = app[keys.SITE]
    outbox = Outbox()

    def publish(message: dict[str, Any]) -> None:
        calls.notifier.send((WORK_ORDERS_CHANNEL,), message)

    loop = WorkOrderLoop(db, Handlers(site), limits_of(site.deadlines), calendar_of(site.deadlines), outbox,
                         publish, repeat_window_s=site.deadlines.repeat_window_h * 3600,
                         transcript_base=settings.api_base_url or f"http://{settings.api_host}:{settings.api_port}")
    exchange_keys = ExchangeKeys(site, app[keys.SECRETS])
    receiver = Receiver(db, loop, exchange_keys, site.exchange.platforms, site.exchange.window_s)
    transport = Transport(site, receiver)
    ceilings = retry_ceiling(site)
    sender = Sender(db, outbox, transport, exchange_keys, retry_max_s=lambda peer: ceilings.get(peer, 60.0))
    sweep = DeadlineSweep(db, site.deadlines.urge_after_h, publish, interval_s=site.deadlines.sweep_s,
                          also=receiver.prune_nonces)
    handover = Handover(calls, loop)
    calls.watchers.append(handover.watch)
    calls.watchers.append(app[metrics.METRICS].watch)
    calendar = calendar_of(site.deadlines)
    callbacks = CallbackScheduler(db, calls, loop, site.callbacks, site.exchange.platforms,
                                  flows.originate if flows else None, harassment=app[keys.HARASSMENT],
                                  sounds_dir=settings.effective_sounds_dir,
                                  tick_s=settings.callback_tick_ms / 1000, is_workday=calendar.is_workday)
    loop.on_all_replied = callbacks.schedule_survey
    calls.watchers.append(callbacks.on_events)
    app[keys.CALLBACKS] = callbacks
    app[keys.LOOP] = loop
    app[keys.HANDOVER] = handover
    app[keys.RECEIVER] = receiver
    app[keys.SENDER] = sender
    app[keys.SWEEP] = sweep
    app[keys.WORK_ORDERS] = WorkOrderService(db, calls, app[keys.ROUTER], transcript_notifier, districts,
                                             loop=loop)
    calls.notifier.start()
    transcript_notifier.start()
    if site.exchange.enabled:
        sender.start()
        sweep.start()
    if flows is not None:  # placing calls needs Asterisk (AMI): an API-only process only queues them
        callbacks.start()
    try:
        yield
    finally:
        await callbacks.stop()
        await handover.stop()
        await sweep.stop()
        await sender.stop()
        await transport.close()
        await alerts.stop()
        await transcript_notifier.stop()
        await calls.notifier.stop()
