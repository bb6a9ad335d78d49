"""The exchange endpoint (signed messages from the other platform) and the admins' exchange log."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from app import keys
from app.auth import ADMIN, public, requires
from app.endpoint import endpoint
from app.errors import (
    BodyTooLarge,
    ExchangeBadSignature,
    ExchangeInvalidMessage,
    ExchangeReplayed,
    ExchangeStaleTimestamp,
    ExchangeUnknownOrder,
    ExchangeUnknownPeer,
    ExchangeUnsigned,
    InvalidTransition,
)
from app.http_util import check_query, json_response, parse_query
from app.models import InboxRow as I
from app.models import OutboxRow as O
from app.work_orders.loop_schemas import ExchangeAnswer, ExchangeLogAnswer, ExchangeLogQuery
from hotline.exchange import MAX_MESSAGE_BYTES, PATH, Message


@endpoint(
    "A message from the other platform (schema hotline.exchange/1, HMAC-signed; see docs/exchange.md)",
    body=Message,
    response=ExchangeAnswer,
    errors=(
        ExchangeUnsigned,
        ExchangeUnknownPeer,
        ExchangeBadSignature,
        ExchangeStaleTimestamp,
        ExchangeReplayed,
        ExchangeInvalidMessage,
        ExchangeUnknownOrder,
        InvalidTransition,
        BodyTooLarge,
    ),
)
@public  # not a bearer token: the signature says who sent it (app.exchange.receiver)
async def receive(request: web.Request) -> web.Response:
    check_query(request, set())
    if request.content_length is not None and request.content_length > MAX_MESSAGE_BYTES:
        raise BodyTooLarge()
    body = await request.read()
    return json_response(await request.app[keys.RECEIVER].receive(request.headers, body))


def _outgoing(r: Any) -> dict[str, Any]:
    return {
        "message_id": r["message_id"],
        "peer": r["peer"],
        "kind": r["kind"],
        "ticket": r["ticket"],
        "created_at": r["created_at"],
        "attempts": r["attempts"],
        "delivered_at": r["delivered_at"],
        "last_error": r["last_error"],
        "answer": r["answer"],
        "state": "delivered" if r["delivered_at"] else ("refused" if r["next_at"] >= 1e11 else "pending"),
    }


def _incoming(r: Any) -> dict[str, Any]:
    return {
        "message_id": r["message_id"],
        "peer": r["peer"],
        "kind": r["kind"],
        "ticket": r["ticket"],
        "received_at": r["received_at"],
        "outcome": r["outcome"],
        "error_id": r["error_id"],
        "answer": r["answer"],
    }


@endpoint(
    "The exchange log: messages sent (with delivery state) or received (applied, duplicate, refused)",
    query=ExchangeLogQuery,
    response=ExchangeLogAnswer,
)
@requires(ADMIN)
async def exchange_log(request: web.Request) -> web.Response:
    q = parse_query(request, ExchangeLogQuery)
    db = request.app[keys.DATABASE]
    table, order, shape = (O, O.id, _outgoing) if q.direction == "out" else (I, I.id, _incoming)
    async with db.write() as conn:
        res = await conn.execute(select(table.__table__).order_by(order.desc()).limit(q.limit))
        messages = [shape(r) for r in res.mappings()]
        await request.app[keys.CALLS].audit_in(
            conn,
            request[keys.PRINCIPAL],
            "read_exchange_log",
            "exchange",
            {"direction": q.direction, "returned": len(messages)},
        )
    return json_response({"direction": q.direction, "messages": messages})


def setup_routes(app: web.Application) -> None:
    app.router.add_post(PATH, receive)
    app.router.add_get("/api/exchange/log", exchange_log)
