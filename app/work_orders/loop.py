"""The closed loop of a work order after the call: dispatch to handlers, their steps, follow-up.

Each operation is one write transaction: the order and part rows move through
:mod:`app.work_orders.lifecycle` (conditional updates), every move is appended to the history, and a
message for the other platform goes into the outbox in the same transaction when a part is handed
to it or mirrors one of its parts. After the commit the moves are published on
``hotline.redis_keys.WORK_ORDERS_CHANNEL`` and the sender is woken.

Who may do what:
- operators and supervisors dispatch (派单 / 改派), resolve on the call, merge, start the callback and
  close; only supervisors approve or refuse an extension and reopen a replied order;
- a department takes its handler's steps (sign, progress, reply, ask for an extension, return) on its
  own parts only; operators and supervisors take them on the part the other platform handed here;
- the other platform takes the steps of the part handed to it, through the exchange (``peer``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import DEPARTMENT, OPERATOR, PEER, SUPERVISOR, Principal
from app.db import Database
from app.errors import (
    ExchangeInvalidMessage,
    ExchangeUnknownOrder,
    ExtensionTooLong,
    Forbidden,
    InvalidTransition,
    ReturnWindowClosed,
    UnknownHandler,
    WorkOrderNotFound,
)
from app.exchange.messages import dispatch_message, step_message
from app.exchange.outbox import Outbox
from app.models import WorkOrderPartRow as P
from app.models import WorkOrderRow as W
from app.work_orders.deadlines import Limit, Limits, RequestKind, WorkCalendar, request_kind
from app.work_orders.drafting import kind_of
from app.work_orders.handlers import Handler, Handlers
from app.work_orders.history import Moves, alerts_of, history_of, load_order, part_no, parts_of
from app.work_orders.lifecycle import FINAL_ORDER_STATES, HANDLER_STEPS, LIVE_PART_STATES, State, Step
from app.work_orders.store import insert_order
from app.work_orders.views import order_view
from hotline.exchange import Message

log = logging.getLogger(__name__)

SYSTEM = Principal("system", "service")


@dataclass(frozen=True)
class StepInput:
    """What a step carries besides who and when (each step reads what it needs)."""

    note: str | None = None
    result: str | None = None  # reply
    extension_wd: float | None = None  # request_extension
    reason: str | None = None  # request_extension, return
    basis: str | None = None  # return: the legal basis
    suggested_handler: str | None = None  # return
    due_at: float | None = None  # from a peer: the new deadline it set


def order_in_scope(row: Any, parts: list[dict[str, Any]], who: Principal) -> bool:
    """A person bound to a platform sees its orders and those exchanged with it: sent by it, or with
    a part handled by it (one installation holding both platforms)."""
    if not who.platform:
        return True
    return row["service"] == who.platform or row.get("origin") == who.platform or any(
        p["handler"] == who.platform for p in parts)


class WorkOrderLoop:
    def __init__(
        self,
        db: Database,
        handlers: Handlers,
        limits: Limits,
        calendar: WorkCalendar,
        outbox: Outbox,
        publish: Callable[[dict[str, Any]], None],
        *,
        repeat_window_s: float = 30 * 86400,
        transcript_base: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.handlers = handlers
        self.limits = limits
        self.calendar = calendar
        self.outbox = outbox
        self.publish = publish
        self.repeat_window_s = repeat_window_s
        self.transcript_base = transcript_base  # this installation's public URL, for links a peer can follow
        self.clock = clock
        # Told (inside the transaction) when an order's every part has replied: the 回访 is scheduled.
        self.on_all_replied: Callable[[AsyncConnection, dict[str, Any], float], Awaitable[None]] | None = None

    # --- reading ---------------------------------------------------------------------------------
    async def get(self, ticket: str, who: Principal, audit: Callable[..., Any]) -> dict[str, Any]:
        async with self.db.write() as conn:
            row = await load_order(conn, ticket)
            parts = await parts_of(conn, ticket) if row else []
            if row is None or not self._may_see(parts, who) or not order_in_scope(row, parts, who):
                raise WorkOrderNotFound(f"no work order {ticket}", details={"ticket": ticket})
            view = self._with_suggestion(order_view(row, parts, who, await history_of(conn, ticket),
                                                    await alerts_of(conn, ticket)), row, who)
            if who.role != DEPARTMENT:  # proposed for merging (并单); the operator decides
                view["repeats"] = [r["ticket"] for r in await self._repeats_in(conn, row)]
            await audit(conn, who, "read_work_order", ticket, {"ticket": ticket})
        return view

    async def for_handler(
        self, who: Principal, states: tuple[str, ...], limit: int, audit: Callable[..., Any]
    ) -> dict[str, Any]:
        """A department's own parts, newest first, each with its order as the department may see it."""
        handler = who.handler or ""
        conds = [P.handler == handler, *([P.state.in_(states)] if states else [])]
        async with self.db.write() as conn:
            res = await conn.execute(
                select(P.ticket).where(*conds).order_by(P.dispatched_at.desc()).limit(limit)
            )
            tickets = list(dict.fromkeys(r[0] for r in res))
            orders = []
            for t in tickets:
                row = await load_order(conn, t)
                if row is not None:
                    orders.append(order_view(row, await parts_of(conn, t), who))
            await audit(
                conn,
                who,
                "list_handler_orders",
                f"handler:{handler}",
                {"states": list(states), "returned": len(orders)},
            )
        return {"orders": orders, "limit": limit}

    async def repeat_candidates(
        self, ticket: str, who: Principal, audit: Callable[..., Any]
    ) -> dict[str, Any]:
        """Open orders that look like this one (并单): same caller or same address, same category, within
        the repeat window. The operator decides whether to merge."""
        async with self.db.write() as conn:
            row = await load_order(conn, ticket)
            if row is None:
                raise WorkOrderNotFound(f"no work order {ticket}", details={"ticket": ticket})
            found = await self._repeats_in(conn, row)
            await audit(conn, who, "repeat_candidates", ticket, {"found": len(found)})
        return {"ticket": ticket, "candidates": found, "window_s": self.repeat_window_s}

    async def _repeats_in(self, conn: AsyncConnection, row: dict[str, Any]) -> list[dict[str, Any]]:
        same = [c for c in (W.caller == row["caller"] if row["caller"] else None,
                            W.address == row["address"] if row["address"] else None) if c is not None]
        if not same or not row["category_code"] or row["status"] in FINAL_ORDER_STATES:
            return []
        res = await conn.execute(
            select(W.ticket, W.status, W.summary, W.created_at, W.caller, W.address)
            .where(W.ticket != row["ticket"], W.category_code == row["category_code"], or_(*same),
                   W.created_at >= row["created_at"] - self.repeat_window_s,
                   W.status.not_in([s.value for s in (*FINAL_ORDER_STATES, State.RESOLVED_ON_CALL)]))
            .order_by(W.created_at.desc()).limit(20))
        return [{"ticket": r.ticket, "status": r.status, "summary": r.summary, "created_at": r.created_at,
                 "same_caller": bool(row["caller"]) and r.caller == row["caller"],
                 "same_address": bool(row["address"]) and r.address == row["address"]} for r in res]

    @staticmethod
    def _may_see(parts: list[dict[str, Any]], who: Principal) -> bool:
        return who.role != DEPARTMENT or any(p["handler"] == who.handler for p in parts)

    # --- the dispatcher's steps ------------------------------------------------------------------
    async def dispatch(
        self, ticket: str, handler_ids: list[str], note: str | None, who: Principal
    ) -> dict[str, Any]:
        async with self._moving(who) as (conn, moves):
            row = await self._order(conn, ticket)
            await self.dispatch_in(moves, row, [self.handlers.get(h) for h in handler_ids], note)
        return await self._view(row["ticket"], who)  # read after the commit: the write lock is free

    async def dispatch_in(
        self, moves: Moves, row: dict[str, Any], targets: list[Handler], note: str | None
    ) -> list[dict[str, Any]]:
        parts = await parts_of(moves.conn, row["ticket"])
        live = {p["handler"] for p in parts if p["state"] in LIVE_PART_STATES}
        if row["status"] == State.DRAFT:
            raise InvalidTransition(
                f"{row['ticket']} is a draft: accept it (confirm) before dispatching",
                details={"state": row["status"], "step": "dispatch", "allowed": ["accept"]},
            )
        made = []
        for h in targets:
            if h.platform is not None and h.platform.value == row["service"]:
                raise UnknownHandler(f"{row['ticket']} is {h.id}'s own order", details={"handler": h.id})
            if h.id in live:
                raise InvalidTransition(
                    f"{row['ticket']} is already with {h.id}",
                    details={"state": row["status"], "step": "dispatch", "handler": h.id},
                )
            if h.platform is not None and not row["caller"] and not row["summary"]:
                raise InvalidTransition("nothing to hand over", details={"ticket": row["ticket"]})
            part = await moves.new_part(
                self._part_values(row, h, moves.now, moves.who), note, {"kind": h.kind, "name": h.name}
            )
            if h.platform is not None:
                link = (
                    f"{self.transcript_base.rstrip('/')}/api/calls/{row['linkedid']}/transcript"
                    if self.transcript_base and row["linkedid"]
                    else None
                )
                await self.outbox.put(
                    moves.conn,
                    dispatch_message(row, part, h.platform, moves.now, note, link),
                    row["ticket"],
                    moves.now,
                )
            made.append(part)
            live.add(h.id)
        await moves.order(row, Step.DISPATCH, note, {"handlers": [h.id for h in targets]})
        return made

    def _part_values(
        self, row: dict[str, Any], h: Handler, now: float, who: Principal, due_at: float | None = None
    ) -> dict[str, Any]:
        kind = RequestKind(row["request_kind"] or RequestKind.HELP)
        due = due_at if due_at is not None else self.calendar.add(now, self.limits.for_kind(kind))
        return {
            "ticket": row["ticket"],
            "handler": h.id,
            "handler_kind": h.kind,
            "handler_name": h.name,
            "dispatched_at": now,
            "dispatched_by": who.name,
            "sign_due_at": self.calendar.add(now, self.limits.sign),
            "warn_at": due - self.limits.warn_before * max(0.0, due - now),
            "due_at": due,
            "calendar_covered": not self.calendar.beyond_coverage(now, due),
            "peer": h.id if h.platform else None,
        }

    async def resolve_on_call(self, ticket: str, note: str | None, who: Principal) -> dict[str, Any]:
        return await self._order_step(ticket, Step.RESOLVE_ON_CALL, note, who)

    async def start_callback(self, ticket: str, note: str | None, who: Principal) -> dict[str, Any]:
        return await self._order_step(ticket, Step.START_CALLBACK, note, who)

    async def close(self, ticket: str, satisfied: bool, note: str | None, who: Principal) -> dict[str, Any]:
        """After the callback: satisfied closes (办结归档); not satisfied reopens each replied part (重办)."""
        if not satisfied:
            return await self.reopen(ticket, note, who, from_callback=True)
        async with self._moving(who) as (conn, moves):
            row = await self._order(conn, ticket)
            await moves.order(row, Step.CLOSE, note, {"satisfied": True}, closed_at=moves.now)
        return await self._view(row["ticket"], who)  # read after the commit: the write lock is free

    async def reopen(
        self, ticket: str, note: str | None, who: Principal, *, from_callback: bool = False
    ) -> dict[str, Any]:
        if not from_callback and who.role != SUPERVISOR:
            raise Forbidden("only a supervisor reopens a replied order", details={"allowed": [SUPERVISOR]})
        async with self._moving(who) as (conn, moves):
            row = await self._order(conn, ticket)
            if from_callback and row["status"] != State.CALLBACK:
                raise InvalidTransition(
                    f"{ticket} is not being called back",
                    details={"state": row["status"], "step": "close", "allowed": []},
                )
            await moves.order(row, Step.REOPEN, note, {"satisfied": False} if from_callback else {})
            for part in await parts_of(conn, ticket):
                if part["state"] == State.REPLIED:
                    await self._part_in(moves, row, part, Step.REOPEN, StepInput(note=note), mirror=True)
        return await self._view(row["ticket"], who)  # read after the commit: the write lock is free

    async def merge(self, ticket: str, into: str, note: str | None, who: Principal) -> dict[str, Any]:
        async with self._moving(who) as (conn, moves):
            row = await self._order(conn, ticket)
            target = await load_order(conn, into)
            if target is None or into == ticket or target["status"] in FINAL_ORDER_STATES:
                raise InvalidTransition(
                    f"{into} is not an open order to merge into",
                    details={"state": row["status"], "step": "merge", "into": into},
                )
            await moves.order(row, Step.MERGE, note, {"into": into}, merged_into=into, closed_at=moves.now)
            await moves.append(
                into, None, "merged_in", target["status"], target["status"], note, {"from": ticket}
            )
        return await self._view(row["ticket"], who)  # read after the commit: the write lock is free

    async def _order_step(self, ticket: str, step: Step, note: str | None, who: Principal) -> dict[str, Any]:
        async with self._moving(who) as (conn, moves):
            row = await self._order(conn, ticket)
            extra: dict[str, Any] = {"closed_at": moves.now} if step == Step.RESOLVE_ON_CALL else {}
            await moves.order(row, step, note, None, **extra)
        return await self._view(row["ticket"], who)  # read after the commit: the write lock is free

    # --- a part's steps --------------------------------------------------------------------------
    async def part_step(
        self, ticket: str, no: int, step: Step, data: StepInput, who: Principal
    ) -> dict[str, Any]:
        async with self._moving(who) as (conn, moves):
            row = await self._order(conn, ticket)
            parts = await parts_of(conn, ticket)
            if not self._may_see(parts, who):
                raise WorkOrderNotFound(f"no work order {ticket}", details={"ticket": ticket})
            part = part_no(parts, ticket, no)
            self._check_role(row, part, step, who)
            await self._part_in(moves, row, part, step, data, mirror=True)
        return await self._view(row["ticket"], who)  # read after the commit: the write lock is free

    def _check_role(self, row: dict[str, Any], part: dict[str, Any], step: Step, who: Principal) -> None:
        inbound = part["handler"] == row["service"]  # the other platform handed this part here
        if step in HANDLER_STEPS:
            if who.role == DEPARTMENT and part["handler"] == who.handler:
                return
            if who.role in (OPERATOR, SUPERVISOR) and inbound:
                return
            if who.role == DEPARTMENT:
                raise WorkOrderNotFound(
                    f"no part {part['no']} of {row['ticket']} for you",
                    details={"ticket": row["ticket"], "part": part["no"]},
                )
            raise Forbidden(
                f"only {part['handler_name']} takes that step on its part",
                details={"allowed": [DEPARTMENT] if part["handler_kind"] != "platform" else ["peer"]},
            )
        if step in (Step.APPROVE_EXTENSION, Step.REFUSE_EXTENSION):
            if who.role != SUPERVISOR:
                raise Forbidden(
                    "only a supervisor approves or refuses an extension", details={"allowed": [SUPERVISOR]}
                )
            if inbound:
                raise Forbidden(
                    f"the platform that sent {row['ticket']} decides its extension",
                    details={"allowed": ["peer"]},
                )
            return
        raise InvalidTransition(f"{step.value!r} is not a step of a part", details={"step": step.value})

    async def _part_in(
        self,
        moves: Moves,
        row: dict[str, Any],
        part: dict[str, Any],
        step: Step,
        data: StepInput,
        *,
        mirror: bool,
    ) -> None:
        now = moves.now
        values: dict[str, Any] = {}
        fields: dict[str, Any] = {}
        if step == Step.SIGN:
            values["signed_at"] = now
        elif step == Step.REPLY:
            if not data.result:  # the API's reply body requires it; a peer's message might not carry it
                raise ExchangeInvalidMessage("a reply says what was done (result)")
            values.update(replied_at=now, result=data.result)
            fields["result"] = data.result
        elif step == Step.RETURN:
            if (
                mirror
                and self.calendar.working_days_between(part["dispatched_at"], now)
                > self.limits.return_window.amount
            ):
                raise ReturnWindowClosed(
                    details={
                        "ticket": row["ticket"],
                        "part": part["no"],
                        "window_wd": self.limits.return_window.amount,
                    }
                )
            returned = {
                "reason": data.reason or "",
                "basis": data.basis,
                "suggested_handler": data.suggested_handler,
                "at": now,
                "by": moves.who.name,
            }
            values["returned"] = returned
            fields["returned"] = {k: returned[k] for k in ("reason", "basis", "suggested_handler")}
        elif step == Step.REQUEST_EXTENSION:
            wd = data.extension_wd or 0
            if wd > self.limits.extension_max.amount:
                raise ExtensionTooLong(details={"asked_wd": wd, "max_wd": self.limits.extension_max.amount})
            values["extension"] = {
                "asked_wd": wd,
                "reason": data.reason,
                "asked_at": now,
                "by": moves.who.name,
            }
            fields["extension_wd"] = wd
        elif step in (Step.APPROVE_EXTENSION, Step.REOPEN):
            if step == Step.APPROVE_EXTENSION:
                wd = float((part["extension"] or {}).get("asked_wd") or 0)
                due = (
                    data.due_at
                    if data.due_at is not None
                    else self.calendar.add(part["due_at"], Limit(wd, "working_days"))
                )
                values["extension"] = {
                    **(part["extension"] or {}),
                    "approved_by": moves.who.name,
                    "approved_at": now,
                    "due_before": part["due_at"],
                }
            else:
                kind = RequestKind(row["request_kind"] or RequestKind.HELP)
                due = (
                    data.due_at
                    if data.due_at is not None
                    else self.calendar.add(now, self.limits.for_kind(kind))
                )
                values.update(replied_at=None)
            start = now
            values.update(
                due_at=due, warn_at=due - self.limits.warn_before * max(0.0, due - start), overdue_at=None
            )
            fields["due_at"] = due
        elif step == Step.REFUSE_EXTENSION:
            values["extension"] = {
                **(part["extension"] or {}),
                "refused_by": moves.who.name,
                "refused_at": now,
            }
        await moves.part(
            part, step, data.note, {k: v for k, v in fields.items() if k != "returned"} or None, **values
        )
        if mirror and part["peer"]:
            if not part["peer_ticket"]:
                raise InvalidTransition(
                    f"{part['handler_name']} has not acknowledged {row['ticket']} yet",
                    details={"step": step.value, "part": part["no"]},
                )
            await self.outbox.put(
                moves.conn,
                step_message(row, part, step.value, moves.who, now, note=data.note, **fields),
                row["ticket"],
                now,
            )
        if step == Step.REPLY:
            others = [p for p in await parts_of(moves.conn, row["ticket"]) if p["no"] != part["no"]]
            if not any(p["state"] in LIVE_PART_STATES for p in others):
                saved, moves.who = moves.who, SYSTEM
                try:
                    await moves.order(row, Step.ALL_REPLIED, None, {"parts": len(others) + 1})
                    if self.on_all_replied is not None:  # the 回访 task, in the same transaction
                        await self.on_all_replied(moves.conn, row, now)
                finally:
                    moves.who = saved

    # --- from the other platform -----------------------------------------------------------------
    async def receive_in(
        self, conn: AsyncConnection, msg: Message, now: float
    ) -> tuple[dict[str, Any], Moves]:
        """Apply a verified message inside the receiver's transaction; returns the answer for the sender."""
        who = Principal(f"{msg.sender.value}:{(msg.step.by.name if msg.step else 'dispatch')}", PEER)
        moves = Moves(conn, who, now)
        if msg.order is not None:
            return await self._receive_order(moves, msg), moves
        assert msg.step is not None
        s = msg.step
        row = await load_order(conn, s.ticket, for_update=True)
        part = next((p for p in await parts_of(conn, s.ticket) if p["no"] == s.part), None) if row else None
        if row is None or part is None or part["peer"] != msg.sender.value:
            raise ExchangeUnknownOrder(
                f"no part {s.part} of {s.ticket} shared with {msg.sender.value}",
                details={"ticket": s.ticket, "part": s.part},
            )
        if part["peer_ticket"] is None:
            await conn.execute(
                update(P)
                .where(P.id == part["id"])
                .values(peer_ticket=s.sender_ticket, peer_part=s.sender_part)
            )
            part.update(peer_ticket=s.sender_ticket, peer_part=s.sender_part)
        data = StepInput(
            note=s.note,
            result=s.result,
            extension_wd=s.extension_wd,
            due_at=s.due_at,
            reason=s.returned.reason if s.returned else (s.note if s.step == "request_extension" else None),
            basis=s.returned.basis if s.returned else None,
            suggested_handler=s.returned.suggested_handler if s.returned else None,
        )
        step = Step(s.step)
        if step == Step.REOPEN:
            await moves.order(row, Step.REOPEN, s.note, {"by_peer": msg.sender.value})
        await self._part_in(moves, row, part, step, data, mirror=False)
        return {"ticket": row["ticket"], "part": part["no"], "state": part["state"]}, moves

    async def _receive_order(self, moves: Moves, msg: Message) -> dict[str, Any]:
        o = msg.order
        assert o is not None
        conn, now, service = moves.conn, moves.now, msg.recipient.value
        existing = (
            await conn.execute(
                select(P.ticket, P.no).where(
                    P.peer == msg.sender.value,
                    P.peer_ticket == o.ticket,
                    P.peer_part == o.part,
                    P.handler == service,
                )
            )
        ).first()
        if existing is not None:  # the same part handed over again under a new message id
            return {"ticket": existing.ticket, "part": existing.no, "state": "dispatched"}
        values = await insert_order(conn, {
            "kind": kind_of(service), "service": service, "status": State.ACCEPTED.value,
            "category_code": o.category.code if o.category else None,
            "category_name": o.category.name if o.category else None, "action": "accept",
            "life_threat": o.life_threat, "linkage": list(o.linkage), "address": o.address,
            "summary": o.summary,
            "rules_version": f"peer:{msg.sender.value}", "confirmed_by": moves.who.name, "confirmed_at": now,
            "caller": o.caller, "contact": o.contact, "confidential": o.confidential,
            "request_kind": o.request_kind, "words": o.words, "origin": msg.sender.value,
            "peer_ticket": o.ticket, "peer_transcript": o.transcript}, now)
        await moves.append(
            values["ticket"],
            None,
            "receive",
            None,
            State.ACCEPTED.value,
            o.note,
            {"from": msg.sender.value, "peer_ticket": o.ticket, "peer_part": o.part},
        )
        me = self.handlers.get(service)
        part = await moves.new_part(
            {
                **self._part_values(values, me, now, moves.who, due_at=o.due_at),
                "peer": msg.sender.value,
                "peer_ticket": o.ticket,
                "peer_part": o.part,
            },
            o.note,
            {"from": msg.sender.value},
        )
        await moves.order(values, Step.DISPATCH, None, {"handlers": [service]})
        log.info("%s %s received from %s (%s)", values["kind"], values["ticket"], msg.sender.value, o.ticket)
        return {"ticket": values["ticket"], "part": part["no"], "state": part["state"]}

    # --- helpers ----------------------------------------------------------------------------------
    async def _order(self, conn: AsyncConnection, ticket: str) -> dict[str, Any]:
        row = await load_order(conn, ticket, for_update=True)
        if row is None:
            raise WorkOrderNotFound(f"no work order {ticket}", details={"ticket": ticket})
        return row

    async def _view(self, ticket: str, who: Principal) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = await load_order(conn, ticket)
            assert row is not None
            return self._with_suggestion(
                order_view(row, await parts_of(conn, ticket), who, await history_of(conn, ticket)), row, who)

    def _with_suggestion(self, view: dict[str, Any], row: dict[str, Any], who: Principal) -> dict[str, Any]:
        """The handlers the routing's dispatch suggestion names, for whoever dispatches."""
        if who.role != DEPARTMENT:
            view["suggested_handlers"] = self.handlers.suggest(row["dispatch"] or [])
        return view

    @contextlib.asynccontextmanager
    async def _moving(self, who: Principal) -> AsyncIterator[tuple[AsyncConnection, Moves]]:
        """One write transaction; its moves are published once it has committed."""
        async with self.db.write() as conn:
            moves = Moves(conn, who, self.clock())
            yield conn, moves
        self.published(moves)

    def published(self, moves: Moves) -> None:
        for step in moves.steps:
            self.publish(step)
        self.outbox.wake()


def classify(text: str, life_threat: bool, linkage: list[str]) -> str:
    return request_kind(text, life_threat, linkage).value
