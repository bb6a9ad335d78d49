"""Stores a call's final and gap segments idempotently on ``(tap, seq)``, and reads them back in time
order. Partials are never stored: they live only on pub/sub."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database
from app.models import TranscriptSegmentRow as Seg
from app.transcripts import transcript_link
from hotline.contracts import Segment, SegmentKind, Speaker

_COLUMNS = (Seg.linkedid, Seg.tap, Seg.seq, Seg.speaker, Seg.seat, Seg.kind, Seg.start_at, Seg.end_at,
            Seg.text, Seg.confidence)
_ORDER = (Seg.start_at, Seg.end_at, Seg.tap, Seg.seq)


@dataclass(frozen=True)
class StoreResult:
    received: int
    stored: int
    caller_calls: tuple[str, ...]  # calls whose batch held caller finals (new or replayed)

    def to_json(self) -> dict[str, int]:
        return {"received": self.received, "stored": self.stored, "duplicates": self.received - self.stored}


def segment_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A stored segment in the wire shape of :meth:`hotline.contracts.Segment.to_json`."""
    return {"call": row["linkedid"], "tap": row["tap"], "seq": row["seq"], "speaker": row["speaker"],
            "kind": row["kind"], "start": row["start_at"], "end": row["end_at"], "text": row["text"],
            "confidence": row["confidence"], "seat": row["seat"]}


class TranscriptService:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        upsert_into = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        self._insert = (upsert_into(Seg).on_conflict_do_nothing(index_elements=["tap", "seq"])
                        .returning(Seg.tap, Seg.seq))

    async def store(self, segments: list[Segment]) -> StoreResult:
        """Store final and gap segments (validated by the caller); a replayed ``(tap, seq)`` is ignored."""
        if any(s.kind is SegmentKind.PARTIAL for s in segments):
            raise ValueError("partial segments are not stored")
        unique: dict[tuple[str, int], Segment] = {}
        for s in segments:
            unique.setdefault((s.tap, s.seq), s)
        now = self.clock()
        # Sorted: concurrent writers on PostgreSQL take the unique index's locks in the same order.
        rows = [{"linkedid": s.call, "tap": s.tap, "seq": s.seq, "speaker": s.speaker.value, "seat": s.seat,
                 "kind": s.kind.value, "start_at": s.start, "end_at": s.end, "text": s.text,
                 "confidence": s.confidence, "stored_at": now} for _, s in sorted(unique.items())]
        async with self.db.write() as conn:
            new = {(r.tap, r.seq) for r in await conn.execute(self._insert, rows)} if rows else set()
        callers = sorted({s.call for s in unique.values()
                          if s.speaker is Speaker.CALLER and s.kind is SegmentKind.FINAL})
        return StoreResult(received=len(segments), stored=len(new), caller_calls=tuple(callers))

    # --- reading ----------------------------------------------------------------------------------
    async def segments(self, linkedid: str) -> list[dict[str, Any]]:
        """The call's stored finals and gaps, in time order."""
        query = select(*_COLUMNS).where(Seg.linkedid == linkedid).order_by(*_ORDER)
        async with self.db.read() as conn:
            return [segment_json(r) for r in (await conn.execute(query)).mappings()]

    async def caller_finals(self, linkedid: str) -> list[dict[str, Any]]:
        query = (select(*_COLUMNS)
                 .where(Seg.linkedid == linkedid, Seg.speaker == Speaker.CALLER.value,
                        Seg.kind == SegmentKind.FINAL.value)
                 .order_by(*_ORDER))
        async with self.db.read() as conn:
            return [segment_json(r) for r in (await conn.execute(query)).mappings()]

    async def transcript(self, linkedid: str) -> dict[str, Any]:
        """Finals and gaps in time order, finals counted per speaker, and the gaps listed apart."""
        segments = await self.segments(linkedid)
        counts = {s.value: 0 for s in Speaker}
        gaps = []
        for s in segments:
            if s["kind"] == SegmentKind.FINAL.value:
                counts[s["speaker"]] = counts.get(s["speaker"], 0) + 1
            else:
                gaps.append({"speaker": s["speaker"], "seat": s["seat"], "tap": s["tap"], "from": s["start"],
                             "to": s["end"], "reason": s["text"]})
        return {"call": linkedid, "link": transcript_link(linkedid), "segments": segments,
                "finals": sum(counts.values()), "counts": counts, "gaps": gaps}


async def segment_counts(conn: AsyncConnection, linkedid: str) -> dict[str, int]:
    """How many finals and gaps the call has stored: ``{"final": n, "gap": m}``."""
    res = await conn.execute(
        select(Seg.kind, func.count()).where(Seg.linkedid == linkedid).group_by(Seg.kind))
    counts = {SegmentKind.FINAL.value: 0, SegmentKind.GAP.value: 0}
    counts.update({kind: n for kind, n in res.all()})
    return counts
