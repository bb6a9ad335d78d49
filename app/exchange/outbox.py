"""The transactional outbox and its sender.

:meth:`Outbox.put` writes a message in the caller's transaction, beside the change it reports, so
either both are stored or neither. The :class:`Sender` (one task per app instance) claims due
messages one at a time with a conditional ``UPDATE`` (several instances never send one message at
once), signs each afresh (new timestamp and nonce) and posts it until the peer acknowledges; a
failure backs off exponentially. Messages of one order go in the order they were written: a later
one waits while an earlier one of the same ticket is undelivered. A message the peer refuses for
good (a 4xx other than a replay) is set aside with the refusal and does not hold up the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.background import Background
from app.db import Database
from app.models import OutboxRow as O
from app.models import WorkOrderPartRow as P
from hotline.exchange import Message, signed_headers

log = logging.getLogger(__name__)

REFUSED_FOR_GOOD = 1e11  # next_at of a message the peer refused: never tried again on its own
CLAIM_S = 30.0


@dataclass(frozen=True)
class Delivery:
    status: int  # HTTP status, or 0 when the peer could not be reached
    answer: dict[str, Any] | None
    error: str | None = None

    @property
    def retry(self) -> bool:
        if self.status == 0 or self.status >= 500 or self.status == 429:
            return True
        return self.status == 409 and (self.answer or {}).get("error_id") == "exchange.replayed"


# peer platform, signed headers, body -> the peer's answer
Transport = Callable[[str, dict[str, str], bytes], Awaitable[Delivery]]


class Outbox:
    def __init__(self) -> None:
        self._wake = asyncio.Event()

    async def put(self, conn: AsyncConnection, message: Message, ticket: str, now: float) -> None:
        await conn.execute(
            insert(O).values(
                message_id=message.message_id,
                peer=message.recipient.value,
                kind=message.kind,
                ticket=ticket,
                body=message.body().decode(),
                created_at=now,
                attempts=0,
                next_at=now,
                claimed_until=None,
                delivered_at=None,
                last_error=None,
                answer=None,
            )
        )

    def wake(self) -> None:
        """After the transaction that put messages committed: send without waiting for the next poll."""
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()


class HttpTransport:
    """Posts to each peer's ``[exchange.peers.<platform>] url``."""

    def __init__(self, urls: dict[str, str], timeouts: dict[str, float]) -> None:
        self.urls = urls
        self.timeouts = timeouts
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, peer: str, headers: dict[str, str], body: bytes) -> Delivery:
        url = self.urls.get(peer)
        if url is None:
            return Delivery(0, None, f"no url for peer {peer}")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeouts.get(peer, 5)),
            ) as resp:
                text = await resp.text()
                try:
                    answer = json.loads(text) if text else None
                except ValueError:
                    answer = None
                return Delivery(
                    resp.status,
                    answer if isinstance(answer, dict) else None,
                    None if resp.status < 300 else text[:200],
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Delivery(0, None, f"{type(exc).__name__}: {exc}"[:200])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Sender(Background):
    name = "exchange-sender"

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        transport: Transport,
        keys: Callable[[str], str | None],
        *,
        retry_max_s: Callable[[str], float] = lambda _peer: 60.0,
        poll_s: float = 1.0,
        concurrency: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.transport = transport
        self.keys = keys  # peer -> the key to sign with
        self.retry_max_s = retry_max_s
        self.poll_s = poll_s
        self.clock = clock
        self._slots = asyncio.Semaphore(concurrency)  # messages in flight at once
        self.delivered = 0

    async def _run(self) -> None:
        while True:
            try:
                if await self.run_once() == 0:
                    await self.outbox.wait(self.poll_s)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be restarting: try again shortly
                log.exception("exchange sender round failed")
                await asyncio.sleep(self.poll_s)

    async def run_once(self, limit: int = 100) -> int:
        """Deliver what is due; returns how many messages were acknowledged."""
        now = self.clock()
        async with self.db.read() as conn:
            due = (
                (
                    await conn.execute(
                        select(O.id, O.ticket, O.next_at)
                        .where(O.delivered_at.is_(None), O.next_at < REFUSED_FOR_GOOD)
                        .order_by(O.id)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        # The oldest undelivered message of each order is its head: later ones wait for it, so each
        # order's messages arrive in the order they were written; different orders go in parallel.
        heads: list[int] = []
        seen: set[str] = set()
        for row in due:
            if row["ticket"] not in seen:
                seen.add(row["ticket"])
                if row["next_at"] <= now:
                    heads.append(row["id"])
        done = sum(await asyncio.gather(*(self._bounded(i) for i in heads)))
        self.delivered += done
        return done

    async def _bounded(self, message_id: int) -> bool:
        async with self._slots:
            return await self._deliver(message_id)

    async def _claim(self, message_id: int, now: float) -> dict[str, Any] | None:
        async with self.db.write() as conn:
            claimed = await conn.execute(
                update(O)
                .where(
                    O.id == message_id,
                    O.delivered_at.is_(None),
                    or_(O.claimed_until.is_(None), O.claimed_until < now),
                )
                .values(claimed_until=now + CLAIM_S, attempts=O.attempts + 1)
            )
            if claimed.rowcount != 1:
                return None  # another instance has it
            row = (await conn.execute(select(O.__table__).where(O.id == message_id))).mappings().one()
        return dict(row)

    async def _deliver(self, message_id: int) -> bool:
        row = await self._claim(message_id, self.clock())
        if row is None:
            return False
        key = self.keys(row["peer"])
        body = row["body"].encode()
        sender = json.loads(row["body"])["sender"]
        result = (
            Delivery(0, None, f"no exchange key for {row['peer']}")
            if key is None
            else await self.transport(row["peer"], signed_headers(key, sender, body, self.clock()), body)
        )
        now = self.clock()
        async with self.db.write() as conn:
            if 200 <= result.status < 300:
                await conn.execute(
                    update(O)
                    .where(O.id == message_id)
                    .values(delivered_at=now, claimed_until=None, answer=result.answer, last_error=None)
                )
                await self._acknowledged(conn, row, result.answer or {})
                return True
            error = f"{result.status} {(result.answer or {}).get('error_id') or result.error or ''}".strip()
            if result.retry:
                backoff = min(self.retry_max_s(row["peer"]), 0.25 * 2 ** min(row["attempts"], 20))
                next_at = now + backoff * random.uniform(0.8, 1.2)
                log.warning(
                    "exchange %s to %s: %s (attempt %d, again in %.1fs)",
                    row["kind"],
                    row["peer"],
                    error,
                    row["attempts"],
                    next_at - now,
                )
            else:
                next_at = REFUSED_FOR_GOOD
                log.error("exchange %s to %s refused for good: %s", row["kind"], row["peer"], error)
            await conn.execute(
                update(O)
                .where(O.id == message_id)
                .values(next_at=next_at, claimed_until=None, last_error=error[:256])
            )
        return False

    async def _acknowledged(self, conn: AsyncConnection, row: dict[str, Any], answer: dict[str, Any]) -> None:
        """An order handed over: keep the peer's number of it on the part it went out as."""
        if row["kind"] != "order.dispatch" or not answer.get("ticket"):
            return
        sent = json.loads(row["body"])["order"]
        await conn.execute(
            update(P)
            .where(P.ticket == sent["ticket"], P.no == sent["part"], P.peer_ticket.is_(None))
            .values(peer_ticket=str(answer["ticket"])[:32], peer_part=int(answer.get("part", 1)))
        )

