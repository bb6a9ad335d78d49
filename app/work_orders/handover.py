"""When a call goes to the other platform, its order goes too.

A 12345 call transferred to 110 (one-touch transfer, or the handover of annex part 3), a 110 call
passed to 12345 (annex part 4), or a three-way call the other platform took (the operator set the
outcome ``three_way`` with that platform): the call's order is accepted if it was still a draft
(by the system, saying why) and a part is dispatched to the other platform, which the exchange
delivers as a linked 警单 / 工单. A call with no order yet (nothing transcribed) gets a minimal one
so that nothing is lost. A matter of annex part 3 (``handover_110``, categories C1-C4) also goes,
at the same time, to the local government and the department its dispatch suggestion names. Each
platform gets one part per order, however often the events repeat.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.calls.services import CallService
from app.work_orders.drafting import kind_of
from app.work_orders.history import Moves, parts_of
from app.work_orders.lifecycle import State, Step
from app.work_orders.loop import SYSTEM, WorkOrderLoop, classify
from app.work_orders.store import insert_order, load
from hotline.contracts import Outcome
from hotline.platforms import Service

log = logging.getLogger(__name__)

WATCHED = frozenset({"transferred", "outcome", "hangup"})
TO_PLATFORM = {
    Outcome.TRANSFERRED_110.value: Service.POLICE_110,
    Outcome.TRANSFERRED_12345.value: Service.HOTLINE_12345,
}
NO_WORDS = "（通话已转接，转接前未转写到来电人的话）"  # the call went over before anything was transcribed


class Handover:
    def __init__(self, calls: CallService, loop: WorkOrderLoop) -> None:
        self.calls = calls
        self.loop = loop
        self._tasks: set[asyncio.Task[Any]] = set()

    def watch(self, stored: list[dict[str, Any]]) -> None:
        """A :attr:`CallService.watchers` entry: look at the calls whose events may have moved them."""
        for linkedid in sorted({e["linkedid"] for e in stored if e["type"] in WATCHED}):
            task = asyncio.create_task(self.check(linkedid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def check(self, linkedid: str) -> dict[str, Any] | None:
        try:
            call = await self.calls.exists(linkedid)
            target = self._target(call)
            if call is None or target is None:
                return None
            return await self.hand_over(linkedid, call, target)
        except asyncio.CancelledError:
            raise
        except Exception:  # the call is unaffected; the next event of the call tries again
            log.exception("handover of call %s's order failed", linkedid)
            return None

    @staticmethod
    def _target(call: dict[str, Any] | None) -> Service | None:
        if not call or not call.get("service"):
            return None
        outcome, detail = call.get("outcome"), call.get("outcome_detail")
        target = TO_PLATFORM.get(outcome or "")
        if outcome == Outcome.THREE_WAY.value and detail in (
            Service.POLICE_110.value,
            Service.HOTLINE_12345.value,
        ):
            target = Service(detail)
        return target if target is not None and target.value != call["service"] else None

    async def hand_over(self, linkedid: str, call: dict[str, Any], target: Service) -> dict[str, Any] | None:
        loop = self.loop
        try:
            handler = loop.handlers.get(target.value)
        except Exception:
            log.warning(
                "call %s went to %s, which this installation cannot reach (no [exchange.peers.%s])",
                linkedid,
                target.value,
                target.value,
            )
            return None
        async with loop.db.write() as conn:
            moves = Moves(conn, SYSTEM, loop.clock())
            row = await load(conn, linkedid=linkedid, for_update=True)
            if row is None:
                row = await self._minimal(conn, linkedid, call, moves.now)
            if any(p["handler"] == handler.id for p in await parts_of(conn, row["ticket"])):
                return None
            why = f"call {call['outcome']} to {target.value}"
            if row["status"] == State.DRAFT:
                kind = classify(
                    " ".join(filter(None, (row["words"], row["summary"]))),
                    row["life_threat"],
                    row["linkage"] or [],
                )
                await moves.order(
                    row,
                    Step.ACCEPT,
                    why,
                    {"auto": True},
                    request_kind=kind,
                    caller=row["caller"] or call.get("caller"),
                    confirmed_by=SYSTEM.name,
                    confirmed_at=moves.now,
                )
            targets = [handler]
            if row["action"] == "handover_110" or (row["category_code"] or "").startswith("C"):
                # annex part 3: to 110 at once, and at the same time to the local government and the
                # department concerned (those the dispatch suggestion names and this site has)
                targets += [loop.handlers.get(h) for h in loop.handlers.suggest(row["dispatch"] or [])
                            if h != handler.id and loop.handlers.get(h).platform is None]
            parts = await loop.dispatch_in(moves, row, targets, why)
        loop.published(moves)
        log.info(
            "call %s: order %s handed to %s (part %d)", linkedid, row["ticket"], target.value, parts[0]["no"]
        )
        return row

    @staticmethod
    async def _minimal(conn: Any, linkedid: str, call: dict[str, Any], now: float) -> dict[str, Any]:
        service = call["service"]
        await insert_order(conn, {
            "linkedid": linkedid, "kind": kind_of(service), "service": service, "status": State.DRAFT.value,
            "action": "transfer_110" if service == Service.HOTLINE_12345 else "transfer_12345",
            "summary": NO_WORDS, "rules_version": "none", "caller": call.get("caller"), "words": ""}, now)
        row = await load(conn, linkedid=linkedid, for_update=True)
        assert row is not None
        return row
