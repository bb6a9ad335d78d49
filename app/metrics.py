"""``GET /metrics``: the app's figures for Prometheus (``prometheus-client``, the text format 0.0.4).

Counted as they happen, in this process (each instance is its own target; sum them in Prometheus):
call events stored by type and platform, queue waits (queued -> a seat answered), transfer
key-to-ring latency (transferred -> the next seat ringing), transcript segments stored by kind (gaps
included), HTTP requests by route and status with their latency.

Read when scraped (at most every ``CACHE_S``, shared by the instances through Redis and the
database): live calls and media taps (Redis), the FastAGI sessions' latency (the AGI servers' recent
durations list), the exchange outbox's backlog and the callback scheduler's lag (database).

The route takes a bearer token of role ``service`` or ``admin`` (Prometheus' ``authorization``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from app import keys
from app.auth import ADMIN, SERVICE, requires
from app.endpoint import endpoint
from app.models import CallbackTaskRow, OutboxRow
from hotline import redis_keys

log = logging.getLogger(__name__)

CACHE_S = 5.0
WAIT_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300)
RING_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_KEEP = 20_000  # calls whose queue entry / transfer start this process remembers


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter("hotline_call_events", "Call events stored, by type and platform",
                              ("type", "service"), registry=r)
        self.queue_wait = Histogram("hotline_queue_wait_seconds", "Queue and ring time of answered calls",
                                    ("service",), buckets=WAIT_BUCKETS, registry=r)
        self.transfer_ring = Histogram("hotline_transfer_ring_seconds",
                                       "From a transfer's start to the other side's seat ringing",
                                       buckets=RING_BUCKETS, registry=r)
        self.segments = Counter("hotline_transcript_segments_received",
                                "Transcript segments received from the transcriber, by kind (gap: audio "
                                "not transcribed)", ("kind",), registry=r)
        self.http = Histogram("hotline_http_request_seconds", "API requests by route, method and status",
                              ("route", "method", "status"), buckets=HTTP_BUCKETS, registry=r)
        self._queued: OrderedDict[str, float] = OrderedDict()
        self._transfers: OrderedDict[str, float] = OrderedDict()
        self._scraped: GaugeSource | None = None

    def watch(self, stored: list[dict[str, Any]]) -> None:
        """A :class:`app.calls.services.CallService` watcher: every batch of newly stored events."""
        for ev in sorted(stored, key=lambda e: float(e.get("at") or 0)):  # stored in event-id order
            kind, linkedid, at = str(ev.get("type")), str(ev.get("linkedid")), float(ev.get("at") or 0)
            service = str(ev.get("service") or "none")
            self.events.labels(kind, service).inc()
            data = ev.get("data") or {}
            if kind == "queued":
                _remember(self._queued, linkedid, at)
            elif kind == "answered" and not data.get("leg"):
                queued = self._queued.pop(linkedid, None)
                if queued is not None and at >= queued:
                    self.queue_wait.labels(service).observe(at - queued)
            elif kind == "transferred":
                _remember(self._transfers, linkedid, at)
            elif kind == "ringing":
                started = self._transfers.pop(linkedid, None)
                if started is not None and at >= started:
                    self.transfer_ring.observe(at - started)

    def stored_segments(self, kinds: Iterable[str]) -> None:
        for kind in kinds:
            self.segments.labels(kind).inc()

    def attach(self, app: web.Application) -> None:
        self._scraped = GaugeSource(app)
        self.registry.register(self._scraped)

    async def exposition(self) -> bytes:
        """The text format, with the scrape-time figures read first (at most every CACHE_S)."""
        if self._scraped is not None:
            await self._scraped.refresh()
        return generate_latest(self.registry)


def _remember(book: OrderedDict[str, float], key: str, value: float) -> None:
    book[key] = value
    book.move_to_end(key)
    while len(book) > _KEEP:
        book.popitem(last=False)


class GaugeSource:
    """The figures read at scrape time, cached for :data:`CACHE_S`."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._at = 0.0
        self._families: list[Any] = []

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        return self._families

    async def refresh(self) -> None:
        if time.monotonic() - self._at < CACHE_S:
            return
        self._at = time.monotonic()
        families: list[Any] = []
        redis = self.app[keys.REDIS].client
        if redis is not None:
            try:
                live = await redis.scard(redis_keys.LIVE_CALLS)
                taps = 0
                async for _ in redis.scan_iter(match=redis_keys.media_tap("*"), count=500):
                    taps += 1
                recent = [float(x) for x in await redis.lrange(redis_keys.AGI_SESSION_MS, 0, 1999)]
                families.append(_gauge("hotline_live_calls", "Calls live now", live))
                families.append(_gauge("hotline_media_taps", "Media taps (transcriber streams) set up now",
                                       taps))
                q = GaugeMetricFamily("hotline_intake_latency_ms",
                                      "FastAGI intake session duration over the recent sessions, ms",
                                      labels=["quantile"])
                for name, p in (("0.5", 50), ("0.95", 95), ("0.99", 99)):
                    q.add_metric([name], _quantile(recent, p))
                families.append(q)
            except Exception as exc:  # noqa: BLE001 - a scrape without Redis still answers
                log.info("metrics without Redis figures: %s", exc)
        now = time.time()
        try:
            async with self.app[keys.DATABASE].read() as conn:
                backlog = (await conn.execute(select(func.count(), func.min(OutboxRow.created_at)).where(
                    OutboxRow.delivered_at.is_(None)))).one()
                due = (await conn.execute(select(func.count(), func.min(CallbackTaskRow.due_at)).where(
                    CallbackTaskRow.state == "scheduled", CallbackTaskRow.due_at <= now))).one()
            families.append(_gauge("hotline_exchange_backlog", "Exchange messages not yet acknowledged",
                                   backlog[0] or 0))
            families.append(_gauge("hotline_exchange_oldest_seconds", "Age of the oldest unacknowledged "
                                   "exchange message", now - backlog[1] if backlog[1] else 0))
            families.append(_gauge("hotline_callbacks_due", "Callback tasks due and not yet placed",
                                   due[0] or 0))
            families.append(_gauge("hotline_scheduler_lag_seconds", "How late the most overdue callback "
                                   "task is (0: none waiting)", now - due[1] if due[1] else 0))
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics without database figures: %s", exc)
        hub = self.app.get(keys.LIVE_SOCKETS)
        if hub is not None:
            families.append(_gauge("hotline_console_sockets", "Console and live WebSockets open", len(hub)))
        self._families = families


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def _quantile(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


METRICS = web.AppKey("metrics", Metrics)


@endpoint("Prometheus metrics (text format)")
@requires(SERVICE, ADMIN)
async def metrics_view(request: web.Request) -> web.Response:
    return web.Response(body=await request.app[METRICS].exposition(),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        info = request.match_info
        known = info.http_exception is None and info.route.resource is not None
        route = info.route.resource.canonical if known and info.route.resource else "other"
        if route not in ("/metrics",) and not request.headers.get("Upgrade"):
            request.app[METRICS].http.labels(route, request.method, str(status)).observe(
                time.perf_counter() - started)


def setup_routes(app: web.Application) -> None:
    m = Metrics()
    app[METRICS] = m
    m.attach(app)
    app.router.add_get("/metrics", metrics_view)
