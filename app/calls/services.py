"""Call logic: record events idempotently, keep each call's summary, set outcomes, read with audit."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.auth import SERVICE, Principal
from app.calls.context import CallContext
from app.calls.schemas import OutcomeBody
from app.calls.summary import summarise
from app.db import Database
from app.errors import UnknownCall
from app.models import AuditRow, Call, CallEventRow
from app.notifier import EventNotifier
from hotline.contracts import CallEvent, CallEventType
from hotline.names import CALLBACK_ID_PREFIX
from hotline.phone import mask_number

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("event_id", "linkedid", "type", "at", "source", "service", "caller", "seat", "data")
CALL_FIELDS = (
    "linkedid",
    "service",
    "caller",
    "seat",
    "queue",
    "arrived_at",
    "queued_at",
    "answered_at",
    "ended_at",
    "wait_s",
    "talk_s",
    "total_s",
    "hangup_cause",
    "outcome",
    "outcome_detail",
    "outcome_source",
    "outcome_by",
    "outcome_at",
    "flags",
    "event_count",
    "rating",
    "rating_result",
    "updated_at",
)


@dataclass(frozen=True)
class RecordResult:
    received: int
    new: int

    def to_json(self) -> dict[str, int]:
        return {"received": self.received, "new": self.new, "duplicates": self.received - self.new}


def platform_scope(platform: str) -> Any:
    """The calls a person of ``platform`` sees: the platform's own, and those exchanged with it (the
    other platform's calls transferred here, three-way calls of both)."""
    return or_(Call.service == platform, Call.outcome.in_((f"transferred_{platform}", "three_way")))


def in_scope(who: Principal, call: dict[str, Any]) -> bool:
    """Whether ``who`` (a person bound to a platform, or anyone else) may see ``call``."""
    if not who.platform:
        return True
    return call.get("service") == who.platform or call.get("outcome") in (f"transferred_{who.platform}",
                                                                         "three_way")


@dataclass(frozen=True)
class CallFilter:
    since: float | None = None
    until: float | None = None
    service: str | None = None
    seat: str | None = None
    outcome: str | None = None
    limit: int = 100
    offset: int = 0


class CallService:
    def __init__(self, db: Database, notifier: EventNotifier, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.notifier = notifier
        self.clock = clock
        self.context = CallContext(db)
        # Told of every batch of newly stored events after it committed (the closed loop's handover).
        self.watchers: list[Callable[[list[dict[str, Any]]], None]] = []
        # Statements are built once so SQLAlchemy's compiled cache always hits on the hot path.
        upsert_into = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        self._insert_events = (
            upsert_into(CallEventRow)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(CallEventRow.event_id)
        )
        upsert = upsert_into(Call)
        self._lock_calls = upsert.on_conflict_do_update(
            index_elements=["linkedid"], set_={"updated_at": upsert.excluded.updated_at}
        ).returning(Call.id, Call.linkedid)
        self._events_of_calls = select(*(getattr(CallEventRow, c) for c in EVENT_COLUMNS)).where(
            CallEventRow.linkedid.in_(bindparam("linkedids", expanding=True))
        )
        full = upsert_into(Call)
        self._upsert_call = full.on_conflict_do_update(
            index_elements=["linkedid"], set_={c: full.excluded[c] for c in CALL_FIELDS if c != "linkedid"}
        )
        self._update_call = update(Call).where(Call.id == bindparam("b_id"))

    # --- writing ----------------------------------------------------------------------------------
    async def record(self, events: list[CallEvent]) -> RecordResult:
        """Store new events (a replayed ``event_id`` is ignored) and refresh the calls they touch."""
        async with self.db.write() as conn:
            stored = await self._record_on(conn, events)
        self._published(stored)
        return RecordResult(received=len(events), new=len(stored))

    async def record_in(self, conn: AsyncConnection, events: list[CallEvent]) -> list[dict[str, Any]]:
        """Store events inside the caller's write transaction, so they commit with what it writes;
        once it has committed, the caller hands the returned rows to :meth:`announce`."""
        return await self._record_on(conn, events) if events else []

    def announce(self, stored: list[dict[str, Any]]) -> None:
        """Broadcast events stored by :meth:`record_in` (after their transaction committed)."""
        self._published(stored)

    def _published(self, stored: list[dict[str, Any]]) -> None:
        self.notifier.publish(stored)
        for watch in self.watchers if stored else ():
            try:
                watch(stored)
            except Exception:  # a watcher's failure is its own; the events are stored and published
                log.exception("call event watcher failed")

    async def _record_on(self, conn: AsyncConnection, events: Iterable[CallEvent]) -> list[dict[str, Any]]:
        now = self.clock()
        # One row per event_id, in a fixed order: concurrent writers then take locks in the same order.
        unique = {e.event_id: e for e in events}
        rows = [
            {**{c: getattr(e, c) for c in EVENT_COLUMNS}, "received_at": now}
            for _, e in sorted(unique.items())
        ]
        for r in rows:
            r["type"] = str(r["type"])
            r["service"] = str(r["service"]) if r["service"] else None
        new_ids = {r.event_id for r in await conn.execute(self._insert_events, rows)}
        stored = [r for r in rows if r["event_id"] in new_ids]
        for r in stored:
            if r["type"] == "supervised":  # a supervisor listened in from the phone: audit it
                sup = str(r["data"].get("supervisor", "?"))
                await self._audit(conn, Principal(f"supervisor {sup}", "supervisor"),
                                  f"spy_{r['data'].get('mode', '?')}", r["linkedid"],
                                  {"seat": r["data"].get("seat_watched"), "at": r["at"], "via": "phone"})
        # An outbound callback call (回访, a missed-call callback) is not a call of a platform: its
        # events are kept (the survey's answers), but it makes no row in ``calls`` nor any KPI.
        calls = sorted({r["linkedid"] for r in stored if not r["linkedid"].startswith(CALLBACK_ID_PREFIX)})
        if calls:
            await self._refresh_calls(conn, calls, now)
        if stored:
            for r in stored if log.isEnabledFor(logging.DEBUG) else ():
                log.debug(
                    "event %s %s %s caller=%s",
                    r["linkedid"],
                    r["type"],
                    r["event_id"],
                    mask_number(r["caller"]),
                )
        return [{k: r[k] for k in EVENT_COLUMNS} for r in stored]

    async def _refresh_calls(self, conn: AsyncConnection, linkedids: list[str], now: float) -> None:
        if self.db.serialised:
            # SQLite: writers already queue on the app's write lock, so read and upsert in one go.
            res = await conn.execute(self._events_of_calls, {"linkedids": linkedids})
            by_call: dict[str, list[dict[str, Any]]] = {}
            for r in res.mappings():
                by_call.setdefault(r["linkedid"], []).append(dict(r))
            rows = [{"linkedid": lid, **summarise(evs), "updated_at": now} for lid, evs in by_call.items()]
            await conn.execute(self._upsert_call, rows)
            return
        # Upsert-and-lock each call row (sorted: no deadlocks), then recompute from every committed
        # event plus ours. Whoever locks last sees everything, so concurrent writers converge.
        locks = [
            {"linkedid": lid, "arrived_at": now, "flags": [], "event_count": 0, "updated_at": now}
            for lid in linkedids
        ]
        ids = {r.linkedid: r.id for r in await conn.execute(self._lock_calls, locks)}
        res = await conn.execute(self._events_of_calls, {"linkedids": linkedids})
        by_call = {}
        for r in res.mappings():
            by_call.setdefault(r["linkedid"], []).append(dict(r))
        params = [{"b_id": ids[lid], **summarise(evs), "updated_at": now} for lid, evs in by_call.items()]
        await conn.execute(self._update_call, params)

    async def set_outcome(self, linkedid: str, req: OutcomeBody, who: Principal) -> dict[str, Any]:
        source = "flow" if who.role == SERVICE else "operator"
        event = CallEvent(
            event_id=f"outcome-{uuid.uuid4().hex}",
            linkedid=linkedid,
            type=CallEventType.OUTCOME,
            at=self.clock(),
            source="api",
            data={
                "outcome": req.outcome.value,
                "detail": req.detail,
                "note": req.note,
                "by": who.name,
                "role": who.role,
                "outcome_source": source,
            },
        )
        async with self.db.write() as conn:
            if await self._call_row(conn, linkedid) is None:
                raise UnknownCall(details={"linkedid": linkedid})
            stored = await self._record_on(conn, [event])
            await self._audit(
                conn, who, "set_outcome", linkedid, {"outcome": req.outcome.value, "detail": req.detail}
            )
            call = await self._call_row(conn, linkedid)
        self._published(stored)
        assert call is not None
        return call

    # --- reading (every read of caller data is audited) ------------------------------------------
    async def get_call(self, linkedid: str, who: Principal) -> dict[str, Any]:
        async with self.db.write() as conn:
            call = await self._call_row(conn, linkedid)
            if call is None or not in_scope(who, call):
                raise UnknownCall(details={"linkedid": linkedid})
            res = await conn.execute(
                select(*(getattr(CallEventRow, c) for c in EVENT_COLUMNS))
                .where(CallEventRow.linkedid == linkedid)
                .order_by(CallEventRow.at, CallEventRow.event_id)
            )
            call["timeline"] = [dict(r) for r in res.mappings()]
            # What travels with the call to whoever takes it next (a transfer, a three-way bridge).
            routed = [e for e in call["timeline"] if e["type"] == CallEventType.ROUTED.value]
            call["context"] = await self.context.of(conn, linkedid, routed[-1]["data"] if routed else None)
            await self._audit(conn, who, "read_call", linkedid, {})
        return call

    async def exists(self, linkedid: str) -> dict[str, Any] | None:
        """The call's row (no audit: nothing of the caller is returned to anyone), or None."""
        async with self.db.read() as conn:
            return await self._call_row(conn, linkedid)

    async def list_calls(self, f: CallFilter, who: Principal) -> dict[str, Any]:
        conds = []
        if f.since is not None:
            conds.append(Call.arrived_at >= f.since)
        if f.until is not None:
            conds.append(Call.arrived_at < f.until)
        for col, val in ((Call.service, f.service), (Call.seat, f.seat), (Call.outcome, f.outcome)):
            if val is not None:
                conds.append(col == val)
        if who.platform:
            conds.append(platform_scope(who.platform))
        cols = [getattr(Call, c) for c in CALL_FIELDS]
        async with self.db.write() as conn:
            total = (await conn.execute(select(func.count()).select_from(Call).where(*conds))).scalar_one()
            res = await conn.execute(
                select(*cols)
                .where(*conds)
                .order_by(Call.arrived_at.desc(), Call.linkedid)
                .limit(f.limit)
                .offset(f.offset)
            )
            calls = [dict(r) for r in res.mappings()]
            query = {k: v for k, v in vars(f).items() if v is not None}
            await self._audit(conn, who, "list_calls", "calls", {"query": query, "returned": len(calls)})
        return {"calls": calls, "total": total, "limit": f.limit, "offset": f.offset}

    async def audit(self, who: Principal, action: str, target: str, detail: dict[str, Any]) -> None:
        async with self.db.write() as conn:
            await self._audit(conn, who, action, target, detail)

    async def audit_login(self, login: str, ok: bool, address: str | None, why: str) -> None:
        """A console login, kept or refused (the login as typed, cut to 64 characters)."""
        async with self.db.write() as conn:
            who = Principal(login[:64] or "-", "console")
            await self._audit(conn, who, "login" if ok else "login_failed",
                              "console", {"address": address, **({"why": why} if why else {})})

    async def audit_in(
        self, conn: AsyncConnection, who: Principal, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        """An audit row inside the caller's write transaction."""
        await self._audit(conn, who, action, target, detail)

    async def _audit(
        self, conn: AsyncConnection, who: Principal, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        await conn.execute(
            insert(AuditRow),
            {
                "who": who.name,
                "role": who.role,
                "action": action,
                "target": target[:512],
                "at": self.clock(),
                # a person logged in to the console: the audit names them, not only their login
                "detail": {**detail, "person": who.display_name} if who.display_name else detail,
            },
        )

    async def _call_row(self, conn: AsyncConnection, linkedid: str) -> dict[str, Any] | None:
        res = await conn.execute(
            select(*(getattr(Call, c) for c in CALL_FIELDS)).where(Call.linkedid == linkedid)
        )
        row = res.mappings().first()
        return dict(row) if row else None

    async def caller_of(self, linkedid: str) -> str | None:
        async with self.db.read() as conn:
            res = await conn.execute(select(Call.caller).where(Call.linkedid == linkedid))
            return res.scalar_one_or_none()
