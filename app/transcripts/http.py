"""Thin views: ``POST /api/transcripts`` (the transcriber and the tap controller) and
``GET /api/calls/{linkedid}/transcript`` (audited read)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from app import keys
from app.auth import READERS, SERVICE, requires
from app.errors import InvalidSegment, PartialNotStored, UnknownCall, WorkOrderNotUpdated
from app.http_util import call_id, check_query, json_response, read_json
from app.validation import MAX_BATCH, Problem, fail
from hotline.contracts import GapReason, Segment, SegmentKind

log = logging.getLogger(__name__)

GAP_REASONS = tuple(r.value for r in GapReason)


def parse_segments(body: Any) -> list[Segment]:
    """``{"segments": [...]}`` with 1..500 final or gap segments: all valid, or nothing is stored."""
    if not isinstance(body, dict) or set(body) != {"segments"}:
        fail([Problem("segments", 'body must be {"segments": [...]}')])
    items = body["segments"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        fail([Problem("segments", f"must be a list of 1..{MAX_BATCH} segments")])
    segments: list[Segment] = []
    invalid: list[dict[str, Any]] = []
    for i, raw in enumerate(items):
        try:
            segment = Segment.from_json(raw)
        except ValueError as exc:
            invalid.append({"index": i, "message": str(exc)})
            continue
        if segment.kind is SegmentKind.GAP and segment.text not in GAP_REASONS:
            invalid.append({"index": i, "message": f"segment.text: a gap's reason, one of {GAP_REASONS}"})
        segments.append(segment)
    if invalid:
        first = invalid[0]
        raise InvalidSegment(f"segment {first['index']}: {first['message']}", details=invalid)
    partials = [i for i, s in enumerate(segments) if s.kind is SegmentKind.PARTIAL]
    if partials:
        raise PartialNotStored(details={"indexes": partials[:50]})
    return segments


@requires(SERVICE)
async def post_transcripts(request: web.Request) -> web.Response:
    segments = parse_segments(await read_json(request))
    result = await request.app[keys.TRANSCRIPTS].store(segments)
    body: dict[str, Any] = {**result.to_json(), "work_orders": []}
    for linkedid in result.caller_calls:
        try:
            wo = await request.app[keys.WORK_ORDER_CREATOR].refresh(linkedid)
        except Exception as exc:
            # The segments are stored; answering 503 makes the sender retry, and the replay (stored
            # once) finishes the work order.
            log.exception("work order of call %s not updated", linkedid)
            raise WorkOrderNotUpdated(details={**result.to_json(), "call": linkedid,
                                               "reason": type(exc).__name__}) from None
        if wo is not None:
            body["work_orders"].append({"call": linkedid, "ticket": wo["ticket"], "status": wo["status"]})
    return json_response(body)


@requires(*READERS)
async def get_transcript(request: web.Request) -> web.Response:
    linkedid = call_id(request)
    check_query(request, set())
    transcript = await request.app[keys.TRANSCRIPTS].transcript(linkedid)
    calls = request.app[keys.CALLS]
    if not transcript["segments"] and await calls.exists(linkedid) is None:
        raise UnknownCall(details={"linkedid": linkedid})
    await calls.audit(request[keys.PRINCIPAL], "read_transcript", linkedid,
                      {"segments": len(transcript["segments"])})
    return json_response(transcript)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/transcripts", post_transcripts)
    app.router.add_get("/api/calls/{linkedid}/transcript", get_transcript)
