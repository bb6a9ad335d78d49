"""Life-threat alerts: the first time the engine hears a danger to life on a call, an ``alert`` call
event is stored with the work order, broadcast on the call's transcript channels, and, where the site
says so (``[transcription] auto_handover_110``) and the call is at 12345, the three-way call with 110
is started in the background. The handover's result goes into the alert's record (the work order's
``alert``); it never reaches the request that brought the words in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from app.auth import SERVICE, Principal
from app.calls.services import CallService
from app.db import Database
from app.models import WorkOrderRow as W
from app.notifier import TranscriptNotifier
from app.work_orders.store import load, work_order_json
from call_flows.flows import FlowError
from hotline.contracts import CallEvent, CallEventType, Service
from hotline.site import Site

log = logging.getLogger(__name__)

LIFE_THREAT = "life_threat"
HANDOVER_OFF, NOT_AT_12345, FLOWS_UNAVAILABLE = "off", "not_at_12345", "flows_unavailable"
STARTING, STARTED, FAILED = "starting", "started", "failed"
AUTOMATON = Principal("work-order creator", SERVICE)  # who the audit names for the automatic handover


class LifeThreatAlerts:
    def __init__(self, db: Database, calls: CallService, notifier: TranscriptNotifier, site: Site,
                 conference_flows: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.calls = calls
        self.notifier = notifier
        self.site = site
        self.conference_flows = conference_flows
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def new_alert(self, service: str, text: str, category: dict[str, str] | None, ticket: str,
                  at: float) -> dict[str, Any]:
        """The alert's record, kept in the work order's ``alert``."""
        if not self.site.auto_handover_110:
            status = HANDOVER_OFF
        elif service != Service.HOTLINE_12345.value:
            status = NOT_AT_12345  # at 110 the police desk already has the caller
        elif self.conference_flows is None:
            status = FLOWS_UNAVAILABLE  # this API instance runs without the call flows
        else:
            status = STARTING
        return {"reason": LIFE_THREAT, "text": text, "category": category, "ticket": ticket, "at": at,
                "auto_handover": {"status": status}}

    @staticmethod
    def event(linkedid: str, alert: dict[str, Any]) -> CallEvent:
        """The ``alert`` call event (one per call: its id is fixed). ``flags`` marks the call."""
        category = alert["category"]["code"] if alert["category"] else None
        return CallEvent(
            event_id=f"{linkedid}:alert:{LIFE_THREAT}", linkedid=linkedid, type=CallEventType.ALERT,
            at=alert["at"], source="api",
            data={"reason": LIFE_THREAT, "text": alert["text"], "category": category,
                  "ticket": alert["ticket"], "auto_handover": alert["auto_handover"]["status"],
                  "flags": [LIFE_THREAT]})

    def announce(self, linkedid: str, alert: dict[str, Any]) -> None:
        """Broadcast the stored alert, then start the automatic handover when it is due."""
        self.notifier.to_call(linkedid, {"type": "alert", "call": linkedid, **alert})
        if alert["auto_handover"]["status"] == STARTING:
            task = asyncio.create_task(self._handover(linkedid), name=f"auto-handover-{linkedid}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handover(self, linkedid: str) -> None:
        try:
            try:
                result = await self.conference_flows.three_way(linkedid, Service.POLICE_110)
                outcome: dict[str, Any] = {"status": STARTED, "result": result}
                log.info("life threat on %s: three-way with 110 started", linkedid)
            except FlowError as exc:
                outcome = {"status": FAILED, "error_id": exc.error_id, "message": exc.message}
            except (TimeoutError, ConnectionError) as exc:
                outcome = {"status": FAILED, "error_id": "flows_unavailable", "message": repr(exc)[:200]}
            if outcome["status"] == FAILED:
                log.warning("life threat on %s: automatic three-way with 110 failed: %s %s", linkedid,
                            outcome["error_id"], outcome["message"])
            await self._record_handover(linkedid, outcome)
        except asyncio.CancelledError:
            raise
        except Exception:  # a background task: nothing above it would hear
            log.exception("life threat on %s: automatic handover to 110 went wrong", linkedid)

    async def _record_handover(self, linkedid: str, outcome: dict[str, Any]) -> None:
        outcome = {**outcome, "at": self.clock()}
        async with self.db.write() as conn:
            row = await load(conn, linkedid=linkedid, for_update=True)
            if row is None or not row["alert"]:
                return
            alert = {**row["alert"], "auto_handover": outcome}
            await conn.execute(update(W).where(W.id == row["id"]).values(alert=alert))
            row["alert"] = alert
        await self.calls.audit(AUTOMATON, "auto_handover_110", linkedid,
                               {k: v for k, v in outcome.items() if k != "result"})
        self.notifier.to_call(linkedid, {"type": "work_order", "call": linkedid,
                                         "work_order": work_order_json(row)})

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
