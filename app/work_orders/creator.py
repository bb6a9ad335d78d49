"""The work-order creator: keeps each call's work order in step with what the caller has said.

When caller finals of a call are stored, all the caller's final text so far (in time order) is routed
by the routing engine at the call's platform, and the call's draft is created or updated from the
answer. Once an operator has confirmed the work order, the engine's later answers go into its
``suggestion`` and the operator's version stays. The ``work_order`` call event (on creation) and the
``alert`` event (the first danger to life) commit in the same transaction as the work order.

The creator is idempotent: a work order already built from as many caller finals is left alone, so a
replayed batch (after a failure) finishes the job without doing it twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.calls.services import CallService
from app.db import Database
from app.models import WorkOrderRow as W
from app.notifier import TranscriptNotifier
from app.transcripts.services import TranscriptService
from app.work_orders.alerts import LifeThreatAlerts
from app.work_orders.drafting import caller_text, draft_fields, kind_of, trigger_sentence
from app.work_orders.store import DRAFT, load, number_order, work_order_event, work_order_json
from hotline.contracts import Service
from routing.engine import Router

log = logging.getLogger(__name__)


class RouterSource(Protocol):
    async def get(self) -> Router: ...


@dataclass
class _Written:
    work_order: dict[str, Any]
    stored_events: list[dict[str, Any]]
    alert: dict[str, Any] | None


class WorkOrderCreator:
    def __init__(self, db: Database, transcripts: TranscriptService, calls: CallService, router: RouterSource,
                 notifier: TranscriptNotifier, alerts: LifeThreatAlerts, districts: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.time,
                 tag_ticket: Callable[[str, str], Coroutine[Any, Any, None]] | None = None) -> None:
        self.db = db
        self.transcripts = transcripts
        self.calls = calls
        self.router = router
        self.notifier = notifier
        self.alerts = alerts
        self.districts = districts  # the site's own district/county/banner names
        self.clock = clock
        self.tag_ticket = tag_ticket  # FlowService.tag_ticket: the ticket onto the call's channel
        self._tagging: set[asyncio.Task[None]] = set()
        upsert_into = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        self._insert = upsert_into(W).on_conflict_do_nothing(index_elements=["linkedid"]).returning(W.id)

    async def refresh(self, linkedid: str) -> dict[str, Any] | None:
        """Bring the call's work order up to date; returns it, or None when nothing changed."""
        finals = [f["text"] for f in await self.transcripts.caller_finals(linkedid) if f["text"].strip()]
        if not finals:
            return None
        async with self.db.read() as conn:
            current = await load(conn, linkedid=linkedid)
        if current is not None and current["caller_segments"] >= len(finals):
            return None
        call = await self.calls.exists(linkedid)
        service = (call or {}).get("service") or (current or {}).get("service") or Service.HOTLINE_12345.value
        router = await self.router.get()
        text = caller_text(finals)
        result = await asyncio.to_thread(router.route, text, service)
        fields = draft_fields(result, finals, self.districts)
        fields.update(words=text[:8000], caller=(call or {}).get("caller") or (current or {}).get("caller"))
        danger = trigger_sentence(result, text) if result.life_threat else None
        written = await self._write(linkedid, service, fields, danger)
        if written is None:
            return None
        self.calls.announce(written.stored_events)
        if written.alert is not None:
            self.alerts.announce(linkedid, written.alert)
        self.notifier.to_call(linkedid, {"type": "work_order", "call": linkedid,
                                         "work_order": written.work_order})
        if current is None and self.tag_ticket is not None:
            task = asyncio.create_task(self.tag_ticket(linkedid, written.work_order["ticket"]))
            self._tagging.add(task)
            task.add_done_callback(self._tagging.discard)
        return written.work_order

    async def _write(self, linkedid: str, service: str, fields: dict[str, Any],
                     danger: str | None) -> _Written | None:
        now = self.clock()
        async with self.db.write() as conn:
            row = await load(conn, linkedid=linkedid, for_update=True)
            created = row is None and await self._create(conn, linkedid, service, fields, now)
            row = row or await load(conn, linkedid=linkedid, for_update=True)
            assert row is not None
            values: dict[str, Any] = {}
            if not created:
                if row["caller_segments"] >= fields["caller_segments"]:
                    return None  # another writer got there with as many words or more
                if row["status"] == DRAFT:
                    values = {**fields, "service": service, "kind": kind_of(service)}
                else:  # accepted: the operator's version stays; the engine's answer is kept beside it
                    values = {"words": fields["words"],
                              "suggestion": {**{k: v for k, v in fields.items() if k not in ("words",
                                                                                             "caller")},
                                             "at": now},
                              "caller_segments": fields["caller_segments"]}
                values["updated_at"] = now
            alert = None
            if danger is not None and row["alert"] is None:
                category = ({"code": fields["category_code"], "name": fields["category_name"]}
                            if fields["category_code"] else None)
                alert = self.alerts.new_alert(service, danger, category, row["ticket"], now)
                values["alert"] = alert
            if values:
                await conn.execute(update(W).where(W.id == row["id"]).values(**values))
                row.update(values)
            wo = work_order_json(row)
            events = [work_order_event(wo, "created", now)] if created else []
            if alert is not None:
                events.append(self.alerts.event(linkedid, alert))
            stored = await self.calls.record_in(conn, events)
        return _Written(wo, stored, alert)

    async def _create(self, conn: AsyncConnection, linkedid: str, service: str, fields: dict[str, Any],
                      now: float) -> bool:
        """Insert the draft; False when a concurrent writer inserted the call's work order first."""
        new_id = (await conn.execute(self._insert.values(
            ticket=uuid.uuid4().hex, linkedid=linkedid, kind=kind_of(service), service=service, status=DRAFT,
            created_at=now, updated_at=now, confirmed_by=None, confirmed_at=None, suggestion=None, alert=None,
            **fields))).scalar_one_or_none()
        if new_id is None:
            return False
        ticket = await number_order(conn, new_id, service, now)
        log.info("work order %s drafted for call %s", ticket, linkedid)
        return True
