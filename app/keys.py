"""Every typed application and request key, in one module.

Only views, middlewares and the factory import this module; services never do, so there are no cycles.
"""

from __future__ import annotations

from aiohttp import web

from app.accounts.store import AccountStore
from app.auth import Principal, TokenBook
from app.callbacks.scheduler import CallbackScheduler
from app.calls.services import CallService
from app.console.admin_ops import AdminOps
from app.db import Database
from app.exchange.outbox import Sender
from app.exchange.receiver import Receiver
from app.harassment.services import HarassmentService
from app.notifier import EventNotifier, TranscriptNotifier
from app.redis_link import RedisLink
from app.route_api import RouterHolder
from app.transcripts.services import TranscriptService
from app.transcripts.sockets import LiveHub
from app.work_orders.creator import WorkOrderCreator
from app.work_orders.handover import Handover
from app.work_orders.loop import WorkOrderLoop
from app.work_orders.services import WorkOrderService
from app.work_orders.sweep import DeadlineSweep
from call_flows.flows import ConferenceFlows, FlowService
from hotline.secrets import Secrets
from hotline.settings import Settings
from hotline.site import Site

SETTINGS = web.AppKey("settings", Settings)
SECRETS = web.AppKey("secrets", Secrets)
TOKENS = web.AppKey("tokens", TokenBook)
DATABASE = web.AppKey("database", Database)
REDIS = web.AppKey("redis", RedisLink)
NOTIFIER = web.AppKey("notifier", EventNotifier)
CALLS = web.AppKey("calls", CallService)
HARASSMENT = web.AppKey("harassment", HarassmentService)
ROUTER = web.AppKey("router", RouterHolder)
FLOWS = web.AppKey("flows", FlowService)
CONFERENCE_FLOWS = web.AppKey("conference_flows", ConferenceFlows)
SITE = web.AppKey("site", Site)
TRANSCRIPT_NOTIFIER = web.AppKey("transcript_notifier", TranscriptNotifier)
TRANSCRIPTS = web.AppKey("transcripts", TranscriptService)
WORK_ORDERS = web.AppKey("work_orders", WorkOrderService)
WORK_ORDER_CREATOR = web.AppKey("work_order_creator", WorkOrderCreator)
LIVE_SOCKETS = web.AppKey("live_sockets", LiveHub)
LOOP = web.AppKey("work_order_loop", WorkOrderLoop)
RECEIVER = web.AppKey("exchange_receiver", Receiver)
SENDER = web.AppKey("exchange_sender", Sender)
SWEEP = web.AppKey("deadline_sweep", DeadlineSweep)
CALLBACKS = web.AppKey("callbacks", CallbackScheduler)
HANDOVER = web.AppKey("handover", Handover)
ACCOUNTS = web.AppKey("accounts", AccountStore)
ADMIN_OPS = web.AppKey("admin_ops", AdminOps)  # Asterisk's admin buttons, when `hotline up` runs it

PRINCIPAL = web.RequestKey("principal", Principal)
CSRF = web.RequestKey("csrf", str)  # the session's CSRF token (console sessions only)
