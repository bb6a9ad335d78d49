"""Thin views: ``POST /api/transcripts`` (the transcriber and the tap controller) and
``GET /api/calls/{linkedid}/transcript`` (audited read)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from app import keys
from app.auth import READERS, SERVICE, requires
from app.endpoint import endpoint
from app.errors import InvalidSegment, PartialNotStored, UnknownCall, WorkOrderNotUpdated
from app.http_util import call_id, check_query, error_details, json_response, read_json, refuse
from app.metrics import METRICS
from app.transcripts.schemas import SegmentsBody, StoreAnswer, TranscriptAnswer
from hotline.contracts import Segment, SegmentKind, describe

log = logging.getLogger(__name__)


def _segment_errors(errors: Any) -> bool:
    """Only segments at fault (not the batch's shape): ``transcript.invalid_segment``."""
    return all(len(e["loc"]) > 1 and e["loc"][0] == "segments" and isinstance(e["loc"][1], int)
               for e in errors)


def parse_segments(body: Any) -> list[Segment]:
    """``{"segments": [...]}`` with 1..500 final or gap segments: all valid, or nothing is stored."""
    try:
        segments = SegmentsBody.model_validate(body).segments
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if not _segment_errors(errors):
            raise refuse(exc, prefix=("body",)) from None
        index = errors[0]["loc"][1]
        try:  # the first bad segment alone, for a message naming its field (segment.seq: ...)
            Segment.model_validate(body["segments"][index])
        except ValidationError as one:
            first = describe(one, "segment")
        else:  # pragma: no cover - the batch refused it, so alone it is refused too
            first = "not valid"
        raise InvalidSegment(f"segment {index}: {first}", details=error_details(exc, ("body",))) from None
    partials = [i for i, s in enumerate(segments) if s.kind is SegmentKind.PARTIAL]
    if partials:
        raise PartialNotStored(details={"indexes": partials[:50]})
    return segments


@endpoint("Store final and gap segments (1..500): all or nothing, idempotent on (tap, seq); refreshes the "
          "work order of calls with new caller words", body=SegmentsBody, response=StoreAnswer,
          errors=(InvalidSegment, PartialNotStored, WorkOrderNotUpdated))
@requires(SERVICE)
async def post_transcripts(request: web.Request) -> web.Response:
    segments = parse_segments(await read_json(request))
    result = await request.app[keys.TRANSCRIPTS].store(segments)
    request.app[METRICS].stored_segments(s.kind.value for s in segments)
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


@endpoint("The call's stored transcript in time order, with counts and gaps (audited)",
          response=TranscriptAnswer, errors=(UnknownCall,))
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
