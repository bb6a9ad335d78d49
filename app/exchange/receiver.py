"""The receiving end of the exchange: verify, apply once, answer, log.

A message is refused, and changes nothing, unless it carries the four signature headers, comes from
a platform this installation has a key for, is signed within the timestamp window with a nonce not
seen before, and follows the schema. The nonce, the change and the inbox row (whose ``applied_key``
makes the same ``message_id`` apply once) commit in one transaction; a message already applied is
answered as it was the first time. Refusals are logged too (in a transaction of their own), so the
exchange log shows every message that arrived.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from app.db import Database
from app.errors import (
    ApiError,
    ExchangeBadSignature,
    ExchangeInvalidMessage,
    ExchangeReplayed,
    ExchangeStaleTimestamp,
    ExchangeUnknownPeer,
    ExchangeUnsigned,
)
from app.http_util import error_details
from app.models import InboxRow as I
from app.models import NonceRow as N
from app.work_orders.loop import WorkOrderLoop
from hotline.exchange import (
    MAX_MESSAGE_BYTES,
    NONCE_HEADER,
    NONCE_RE,
    PLATFORM_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Message,
    signature_matches,
)
from hotline.platforms import Service

log = logging.getLogger(__name__)
UNAUTHENTICATED = (ExchangeUnsigned, ExchangeUnknownPeer, ExchangeStaleTimestamp, ExchangeBadSignature)
LOGGED_BODY = 4096  # of a refused message: enough to see what it was, not a store for junk


class Receiver:
    def __init__(
        self,
        db: Database,
        loop: WorkOrderLoop,
        keys: Callable[[str], str | None],
        local: tuple[Service, ...],
        window_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.loop = loop
        self.keys = keys  # sender platform -> the key it signs with (None: not a peer of ours)
        self.local = local
        self.window_s = window_s
        self.clock = clock

    async def receive(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        now = self.clock()
        peer = headers.get(PLATFORM_HEADER)
        try:
            nonce, msg = self._verify(headers, body, now)
            return await self._apply(peer or "", nonce, msg, body, now)
        except ApiError as exc:
            await self._log_refusal(peer, body, exc, now)
            raise

    def _verify(self, headers: Mapping[str, str], body: bytes, now: float) -> tuple[str, Message]:
        peer, ts = headers.get(PLATFORM_HEADER), headers.get(TIMESTAMP_HEADER)
        nonce, sig = headers.get(NONCE_HEADER), headers.get(SIGNATURE_HEADER)
        if (
            not (peer and ts and nonce and sig)
            or not ts.isdigit()
            or len(ts) > 12
            or NONCE_RE.fullmatch(nonce) is None
            or not sig.isascii()
        ):
            raise ExchangeUnsigned()
        key = self.keys(peer)
        if key is None:
            raise ExchangeUnknownPeer(details={"peer": peer[:16]})
        if abs(now - int(ts)) > self.window_s:
            raise ExchangeStaleTimestamp(
                details={"timestamp": int(ts), "now": int(now), "window_s": self.window_s}
            )
        if len(body) > MAX_MESSAGE_BYTES or not signature_matches(key, ts, nonce, body, sig):
            raise ExchangeBadSignature()
        try:
            msg = Message.model_validate_json(body)
        except ValidationError as exc:
            raise ExchangeInvalidMessage(details=error_details(exc, ("body",))) from None
        if msg.sender.value != peer or msg.recipient not in self.local:
            raise ExchangeInvalidMessage(
                f"from {msg.sender.value} to {msg.recipient.value}: not from {peer} to here",
                details={"sender": msg.sender.value, "recipient": msg.recipient.value},
            )
        return nonce, msg

    async def _apply(self, peer: str, nonce: str, msg: Message, body: bytes, now: float) -> dict[str, Any]:
        key = f"{peer}:{msg.message_id}"
        for attempt in (1, 2):
            try:
                async with self.db.write() as conn:
                    try:
                        await conn.execute(insert(N).values(peer=peer, nonce=nonce, at=now))
                    except IntegrityError:
                        raise ExchangeReplayed(details={"nonce": nonce}) from None
                    done = (await conn.execute(select(I.answer).where(I.applied_key == key))).first()
                    if done is not None:
                        await self._inbox(conn, peer, msg, now, "duplicate", None, None, body)
                        return {**(done.answer or {}), "duplicate": True}
                    answer, moves = await self.loop.receive_in(conn, msg, now)
                    await self._inbox(conn, peer, msg, now, "applied", key, answer, body)
                self.loop.published(moves)
                return {**answer, "duplicate": False}
            except IntegrityError:  # the same message applied meanwhile by another request
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _inbox(
        self,
        conn: Any,
        peer: str | None,
        msg: Message | None,
        now: float,
        outcome: str,
        applied_key: str | None,
        answer: dict[str, Any] | None,
        body: bytes,
        error_id: str | None = None,
    ) -> None:
        ticket = (msg.order.ticket if msg.order else msg.step.ticket if msg.step else None) if msg else None
        await conn.execute(
            insert(I).values(
                peer=(peer or "")[:8] or None,
                message_id=msg.message_id if msg else None,
                kind=msg.kind if msg else None,
                ticket=ticket,
                received_at=now,
                outcome=outcome,
                error_id=error_id,
                applied_key=applied_key,
                answer=answer,
                body=body.decode("utf-8", "replace")[: LOGGED_BODY if outcome == "refused" else None],
            )
        )

    async def _log_refusal(self, peer: str | None, body: bytes, exc: ApiError, now: float) -> None:
        msg = None
        if isinstance(exc, UNAUTHENTICATED):
            # Anyone can send those: the log keeps that they came and why they were refused, not what
            # they carried (no store for a stranger's bytes, and nothing of theirs parsed).
            body = b""
        else:
            try:
                msg = Message.model_validate_json(body)
            except (ValidationError, ValueError):
                pass
        try:
            async with self.db.write() as conn:
                await self._inbox(
                    conn, peer, msg, now, "refused", None, {"status": exc.status_code}, body, exc.id
                )
        except Exception:  # the refusal still goes back to the sender
            log.exception("could not log a refused exchange message")
        log.warning("exchange message from %s refused: %s", (peer or "?")[:16], exc.id)

    async def prune_nonces(self) -> int:
        """Nonces older than the window cannot be replayed any more (the timestamp check refuses them)."""
        async with self.db.write() as conn:
            res = await conn.execute(delete(N).where(N.at < self.clock() - 2 * self.window_s))
        return res.rowcount

