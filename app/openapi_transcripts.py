"""The OpenAPI paths and schemas of live transcripts and work orders (merged by :mod:`app.openapi`)."""

from __future__ import annotations

from typing import Any

from app.validation import MAX_BATCH
from app.work_orders.corrections import FIELDS as CORRECTABLE
from hotline.contracts import LINKAGE_HOTLINES, GapReason, SegmentKind, Speaker

ERROR_IDS = (
    "transcript.invalid_segment",
    "transcript.partial_not_stored",
    "work_order.not_found",
    "work_order.already_confirmed",
    "work_order.invalid_correction",
    "work_order.not_updated",
    "live.websocket_required",
)


def _err(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


AUTH = {"401": _err("unauthorized"), "403": _err("forbidden")}
LINKEDID = {"name": "linkedid", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"}}
TICKET = {"name": "ticket", "in": "path", "required": True,
          "schema": {"type": "string", "example": "12345-20261129-000042"}}
TOKEN_Q = _q("access_token", {"type": "string"},
             "the bearer token, for browsers (they cannot set headers on a WebSocket); this route only")
NULLABLE_STR = {"type": "string", "nullable": True}
CATEGORY = {"type": "object", "nullable": True,
            "properties": {"code": {"type": "string"}, "name": {"type": "string"}}}

SCHEMAS: dict[str, Any] = {
    "Segment": {
        "type": "object",
        "additionalProperties": False,
        "required": ["call", "tap", "seq", "speaker", "kind", "start", "end"],
        "properties": {
            "call": {"type": "string", "description": "the call's linkedid"},
            "tap": {"type": "string", "description": "the stream's id; (tap, seq) is the idempotency key"},
            "seq": {"type": "integer", "minimum": 0},
            "speaker": {"type": "string", "enum": [s.value for s in Speaker]},
            "kind": {"type": "string", "enum": [k.value for k in SegmentKind],
                     "description": "POST /api/transcripts takes final and gap; partial is refused"},
            "start": {"type": "number", "description": "epoch seconds"},
            "end": {"type": "number", "description": "epoch seconds, >= start"},
            "text": {"type": "string", "maxLength": 2000,
                     "description": "the words; for a gap its reason: "
                     + " | ".join(g.value for g in GapReason)},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
            "seat": NULLABLE_STR,
        },
    },
    "Transcript": {
        "type": "object",
        "properties": {
            "call": {"type": "string"},
            "link": {"type": "string"},
            "segments": {"type": "array", "items": {"$ref": "#/components/schemas/Segment"},
                         "description": "finals and gaps in time order"},
            "finals": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "finals per speaker"},
            "gaps": {"type": "array", "items": {"type": "object", "properties": {
                "speaker": {"type": "string"}, "seat": NULLABLE_STR, "tap": {"type": "string"},
                "from": {"type": "number"}, "to": {"type": "number"},
                "reason": {"type": "string", "enum": [g.value for g in GapReason]}}}},
        },
    },
    "WorkOrder": {
        "type": "object",
        "properties": {
            "ticket": {"type": "string", "example": "12345-20261129-000042"},
            "kind": {"type": "string", "enum": ["工单", "警单"], "description": "work order / police order"},
            "call": {"type": "string"},
            "service": {"type": "string", "enum": ["12345", "110"]},
            "status": {"type": "string", "enum": ["draft", "confirmed"]},
            "category": CATEGORY,
            "action": {"type": "string"},
            "life_threat": {"type": "boolean"},
            "linkage": {"type": "array", "items": {"type": "string", "enum": list(LINKAGE_HOTLINES)}},
            "address": NULLABLE_STR,
            "slots": {"type": "object", "description": "place, time, people, weapons, injuries"},
            "summary": {"type": "string"},
            "dispatch": {"type": "array", "description": "when the action is handover_110/transfer_110 or "
                         "life_threat: 110, the local government (district from the address), the "
                         "responsible department", "items": {"type": "object", "properties": {
                             "to": {"type": "string", "enum": ["110", "local_government", "department"]},
                             "name": NULLABLE_STR, "name_en": NULLABLE_STR, "district": NULLABLE_STR,
                             "category": NULLABLE_STR}}},
            "transcript": {"type": "string", "description": "link to the call's transcript"},
            "rules_version": {"type": "string"},
            "caller_segments": {"type": "integer", "description": "caller finals the engine used"},
            "created_at": {"type": "number"},
            "updated_at": {"type": "number"},
            "confirmed_by": NULLABLE_STR,
            "confirmed_at": {"type": "number", "nullable": True},
            "suggestion": {"type": "object", "nullable": True,
                           "description": "once confirmed: the engine's latest answer, kept apart"},
            "alert": {"type": "object", "nullable": True,
                      "description": "the life-threat alert: reason, text, category, ticket, at, "
                      "auto_handover {status: off|not_at_12345|flows_unavailable|starting|started|failed, "
                      "error_id?, message?}"},
        },
    },
    "Correction": {
        "type": "object",
        "properties": {"ticket": {"type": "string"}, "field": {"type": "string", "enum": list(CORRECTABLE)},
                       "engine_value": {}, "operator_value": {}, "by": {"type": "string"},
                       "at": {"type": "number"}},
    },
}

LIVE_DESCRIPTION = (
    "WebSocket. Text frames, each one JSON message: {type: segment, ...Segment} (partials and finals "
    "from the transcriber), {type: work_order, call, work_order}, {type: alert, call, reason, text, "
    "category, ticket, at, auto_handover}. Closes with 1013 'redis_unavailable' when Redis is down or "
    "lost, 1001 when the server shuts down. Opening it is audited."
)

PATHS: dict[str, Any] = {
    "/api/transcripts": {"post": {
        "summary": "store final and gap segments (idempotent on tap+seq; all or nothing); updates the "
                   "call's work order from the caller's finals",
        "description": "role: service. Body {segments: [Segment, ...]} (1.."
                       f"{MAX_BATCH}); the call need not be known yet. Answer {{received, stored, "
                       "duplicates, work_orders: [{call, ticket, status}]}}",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["segments"],
            "properties": {"segments": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                                        "items": {"$ref": "#/components/schemas/Segment"}}}}}}},
        "responses": {"200": {"description": "stored"},
                      "400": _err("transcript.invalid_segment (details: [{index, message}]) | "
                                  "transcript.partial_not_stored | validation_failed | malformed_json"),
                      "413": _err("body_too_large"), "415": _err("unsupported_media_type"),
                      "503": _err("work_order.not_updated: stored, send again"), **AUTH}}},
    "/api/calls/{linkedid}/transcript": {"get": {
        "summary": "the call's transcript: finals and gaps in time order, counts per speaker, gaps (audited)",
        "description": "roles: operator, supervisor, admin",
        "parameters": [LINKEDID],
        "responses": {"200": _ok("the transcript", "Transcript"), "404": _err("unknown_call"), **AUTH}}},
    "/api/calls/{linkedid}/live": {"get": {
        "summary": "live transcript of one call (WebSocket): a snapshot, then live messages",
        "description": "roles: operator, supervisor, admin. First frame {type: snapshot, call, segments, "
                       "work_order|null}. " + LIVE_DESCRIPTION,
        "parameters": [LINKEDID, TOKEN_Q],
        "responses": {"101": {"description": "switching to WebSocket"},
                      "400": _err("live.websocket_required"), "404": _err("unknown_call"), **AUTH}}},
    "/api/live": {"get": {
        "summary": "live transcripts of every call (WebSocket)",
        "description": "roles: supervisor, admin. " + LIVE_DESCRIPTION,
        "parameters": [TOKEN_Q],
        "responses": {"101": {"description": "switching to WebSocket"},
                      "400": _err("live.websocket_required"), **AUTH}}},
    "/api/calls/{linkedid}/work-order": {"get": {
        "summary": "the call's work order (audited)",
        "description": "roles: operator, supervisor, admin",
        "parameters": [LINKEDID],
        "responses": {"200": _ok("the work order", "WorkOrder"), "404": _err("work_order.not_found"),
                      **AUTH}}},
    "/api/work-orders": {"get": {
        "summary": "work orders, newest first (audited)",
        "description": "roles: supervisor, admin. Answer {work_orders, total, limit}",
        "parameters": [_q("status", {"type": "string", "enum": ["draft", "confirmed"]}, "status"),
                       _q("service", {"type": "string", "enum": ["12345", "110"]}, "platform"),
                       _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                          "page size")],
        "responses": {"200": {"description": "{work_orders: [WorkOrder], total, limit}"},
                      "400": _err("validation_failed"), **AUTH}}},
    "/api/work-orders/{ticket}/confirm": {"post": {
        "summary": "confirm a draft work order, with the operator's corrections (each kept for measuring "
                   "the engine)",
        "description": "roles: operator, supervisor. Body empty, {} or {corrections: {category: code, "
                       "action, life_threat: bool, linkage: [hotline], address, summary}}. Later segments "
                       "no longer change it (the engine's answer goes to suggestion). "
                       "Answer {work_order, corrections}",
        "parameters": [TICKET],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False,
            "properties": {"corrections": {"type": "object", "additionalProperties": False,
                                           "properties": {f: {} for f in CORRECTABLE}}}}}}},
        "responses": {"200": {"description": "{work_order: WorkOrder, corrections: [Correction]}"},
                      "400": _err("work_order.invalid_correction (details: [{field, problem}]) | "
                                  "validation_failed"),
                      "404": _err("work_order.not_found"), "409": _err("work_order.already_confirmed"),
                      **AUTH}}},
    "/api/work-orders/corrections": {"get": {
        "summary": "the operators' corrections of the engine's work orders, newest first (audited)",
        "description": "roles: supervisor, admin. Answer {corrections: [Correction], limit}",
        "parameters": [_q("ticket", {"type": "string"}, "one work order"),
                       _q("field", {"type": "string", "enum": list(CORRECTABLE)}, "one field"),
                       _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                          "page size")],
        "responses": {"200": {"description": "{corrections: [Correction], limit}"},
                      "400": _err("validation_failed"), **AUTH}}},
}
