"""Every typed application and request key, in one module.

Only views, middlewares and the factory import this module; services never do, so there are no cycles.
"""

from __future__ import annotations

from aiohttp import web

from app.auth import Principal, TokenBook
from app.calls.services import CallService
from app.db import Database
from app.harassment.services import HarassmentService
from app.notifier import EventNotifier
from app.redis_link import RedisLink
from app.route_api import RouterHolder
from call_flows.flows import ConferenceFlows, FlowService
from hotline.secrets import Secrets
from hotline.settings import Settings

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

PRINCIPAL = web.RequestKey("principal", Principal)
