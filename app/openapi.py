"""The hand-written OpenAPI 3 document served at ``/api/openapi.json``.

A test checks that every registered route appears here, so a new view without docs fails CI.
"""

from __future__ import annotations

from typing import Any

from app import openapi_transcripts as live_docs
from app.validation import EVENT_SOURCES, MAX_BATCH
from hotline.contracts import LINKAGE_HOTLINES, CallEventType, Outcome

ERROR_IDS = (
    "malformed_json",
    "validation_failed",
    "unknown_outcome",
    "unauthorized",
    "forbidden",
    "not_found",
    "unknown_call",
    "method_not_allowed",
    "body_too_large",
    "unsupported_media_type",
    "not_ready",
    "redis_unavailable",
    "internal_error",
    *live_docs.ERROR_IDS,
)


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


AUTH_ERRORS = {"401": _err("unauthorized"), "403": _err("forbidden")}
BODY_ERRORS = {
    "400": _err("malformed_json | validation_failed | unknown_outcome"),
    "413": _err("body_too_large (over 1 MiB)"),
    "415": _err("unsupported_media_type"),
}
LINKEDID = {
    "name": "linkedid",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
}
NUMBER_BODY = _body(
    {
        "type": "object",
        "required": ["number"],
        "additionalProperties": False,
        "properties": {"number": {"type": "string"}},
    }
)


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def openapi_document() -> dict[str, Any]:
    time_q = {"type": "string", "description": "ISO-8601 (naive = UTC) or epoch seconds"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "12345/110 hotline call service",
            "version": "1",
            "description": "Records call events and outcomes; the only writer of the database. Roles: "
            "service (post events, set outcome), operator, supervisor, admin. Every error "
            f"is {{error_id, message, details}} with error_id in: {', '.join(ERROR_IDS)}.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error_id", "message"],
                    "properties": {
                        "error_id": {"type": "string", "enum": list(ERROR_IDS)},
                        "message": {"type": "string"},
                        "details": {},
                    },
                },
                "CallEvent": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["event_id", "linkedid", "type", "at"],
                    "properties": {
                        "event_id": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9._:@-]{1,128}$",
                            "description": "idempotency key",
                        },
                        "linkedid": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$"},
                        "type": {"type": "string", "enum": [t.value for t in CallEventType]},
                        "at": {"type": "number", "description": "epoch seconds, UTC"},
                        "source": {"type": "string", "enum": list(EVENT_SOURCES), "default": "ami"},
                        "service": {"type": "string", "enum": ["12345", "110"], "nullable": True},
                        "caller": {"type": "string", "nullable": True, "maxLength": 256},
                        "seat": {"type": "string", "nullable": True, "maxLength": 64},
                        "data": {
                            "type": "object",
                            "description": "at most 16 KiB as JSON; outcome events "
                            "need data.outcome (and data.detail where the outcome needs it)",
                        },
                    },
                },
                "EventBatch": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": {"$ref": "#/components/schemas/CallEvent"},
                        }
                    },
                },
                "RecordResult": {
                    "type": "object",
                    "properties": {
                        "received": {"type": "integer"},
                        "new": {"type": "integer"},
                        "duplicates": {"type": "integer"},
                    },
                },
                "OutcomeRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["outcome"],
                    "properties": {
                        "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
                        "detail": {
                            "type": "string",
                            "nullable": True,
                            "description": "three_way: accepting platform; emergency_linked: "
                            + " | ".join(LINKAGE_HOTLINES),
                        },
                        "note": {"type": "string", "nullable": True, "maxLength": 2000},
                    },
                },
                "Call": {
                    "type": "object",
                    "properties": {
                        **{
                            k: {"type": "string", "nullable": True}
                            for k in (
                                "linkedid",
                                "service",
                                "caller",
                                "seat",
                                "queue",
                                "hangup_cause",
                                "outcome",
                                "outcome_detail",
                                "outcome_by",
                            )
                        },
                        "outcome_source": {
                            "type": "string",
                            "enum": ["auto", "operator", "flow"],
                            "nullable": True,
                        },
                        **{
                            k: {"type": "number", "nullable": True}
                            for k in (
                                "arrived_at",
                                "queued_at",
                                "answered_at",
                                "ended_at",
                                "wait_s",
                                "talk_s",
                                "total_s",
                                "outcome_at",
                                "updated_at",
                            )
                        },
                        "flags": {"type": "array", "items": {"type": "string"}},
                        "event_count": {"type": "integer"},
                        "timeline": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/CallEvent"},
                            "description": "GET /api/calls/{linkedid} only, ordered by at",
                        },
                        "context": {
                            "type": "object",
                            "description": "GET /api/calls/{linkedid} only: what travels with the call. "
                            "routing (latest routing answer or null), work_order ({ticket, kind, status, "
                            "category, action, life_threat, dispatch} or null), transcript ({link, finals, "
                            "gaps}). Published transferred / conference_joined events carry it too",
                        },
                    },
                },
                **live_docs.SCHEMAS,
                "CallList": {
                    "type": "object",
                    "properties": {
                        "calls": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}},
                        "total": {"type": "integer"},
                        "limit": {"type": "integer"},
                        "offset": {"type": "integer"},
                    },
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            **live_docs.PATHS,
            "/health": {
                "get": {
                    "summary": "process alive",
                    "security": [],
                    "responses": {"200": {"description": "alive"}},
                }
            },
            "/ready": {
                "get": {
                    "summary": "database reachable and migrated; Redis status reported",
                    "security": [],
                    "responses": {"200": {"description": "ready"}, "503": {"description": "not_ready"}},
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "this document",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3"}},
                }
            },
            "/api/events": {
                "post": {
                    "summary": "record one call event or a batch (idempotent on event_id; all or nothing)",
                    "description": "role: service",
                    "requestBody": _body(
                        {
                            "oneOf": [
                                {"$ref": "#/components/schemas/CallEvent"},
                                {"$ref": "#/components/schemas/EventBatch"},
                            ]
                        }
                    ),
                    "responses": {"200": _ok("stored", "RecordResult"), **BODY_ERRORS, **AUTH_ERRORS},
                }
            },
            "/api/calls": {
                "get": {
                    "summary": "list calls, newest first (audited)",
                    "description": "roles: operator, supervisor, admin",
                    "parameters": [
                        _q("since", time_q, "arrived at or after"),
                        _q("until", time_q, "arrived before"),
                        _q("service", {"type": "string", "enum": ["12345", "110"]}, "service dialled"),
                        _q("seat", {"type": "string"}, "seat that answered"),
                        _q(
                            "outcome", {"type": "string", "enum": [o.value for o in Outcome]}, "final outcome"
                        ),
                        _q(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                            "page size",
                        ),
                        _q("offset", {"type": "integer", "minimum": 0, "default": 0}, "page start"),
                    ],
                    "responses": {
                        "200": _ok("calls", "CallList"),
                        "400": _err("validation_failed"),
                        **AUTH_ERRORS,
                    },
                }
            },
            "/api/calls/{linkedid}": {
                "get": {
                    "summary": "one call with its timeline (audited)",
                    "description": "roles: operator, supervisor, admin",
                    "parameters": [LINKEDID],
                    "responses": {"200": _ok("the call", "Call"), "404": _err("unknown_call"), **AUTH_ERRORS},
                }
            },
            "/api/calls/{linkedid}/outcome": {
                "put": {
                    "summary": "set or correct the outcome (audited; harassment lists the number)",
                    "description": "roles: service (outcome_source flow), operator, supervisor, admin "
                    "(outcome_source operator)",
                    "parameters": [LINKEDID],
                    "requestBody": _body({"$ref": "#/components/schemas/OutcomeRequest"}),
                    "responses": {
                        "200": _ok("the call", "Call"),
                        "404": _err("unknown_call"),
                        **BODY_ERRORS,
                        **AUTH_ERRORS,
                    },
                }
            },
            "/api/calls/{linkedid}/transfer": {
                "post": {
                    "summary": "one-touch transfer (一键转接) of the caller to the other platform",
                    "description": "roles: operator, supervisor, admin. Body {} or {target, mode}. "
                    "Blind, with fallback: if nobody answers there, the caller comes back to the seat",
                    "responses": {
                        "202": {"description": "{linkedid, from_seat, target, mode}"},
                        "400": _err("same_platform"),
                        "404": _err("unknown_call"),
                        "409": _err("call_not_bridged"),
                        "503": _err("flows_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/calls/{linkedid}/transfer/complete": {
                "post": {
                    "summary": "attended transfer: the seat drops out, the caller goes on",
                    "description": "roles: operator, supervisor, admin",
                    "responses": {
                        "202": {"description": "done"},
                        "404": _err("unknown_call"),
                        "409": _err("call_not_bridged"),
                        "503": _err("flows_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/calls/{linkedid}/transfer/cancel": {
                "post": {
                    "summary": "attended transfer: back to the caller, end the consultation",
                    "description": "roles: operator, supervisor, admin",
                    "responses": {
                        "202": {"description": "done"},
                        "404": _err("unknown_call"),
                        "409": _err("call_not_bridged"),
                        "503": _err("flows_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/calls/{linkedid}/conference": {
                "post": {
                    "summary": "three-way call (三方通话): caller, seat, other platform",
                    "description": "roles: operator, supervisor, admin. Body {} or {with: 110|12345}. "
                    "Seats may "
                    "leave; the caller goes back to its queue when the last seat leaves",
                    "responses": {
                        "202": {"description": "the flow was started"},
                        "400": _err("validation_failed"),
                        "404": _err("unknown_call"),
                        "409": _err("call_not_bridged"),
                        "503": _err("flows_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/calls/{linkedid}/linkage": {
                "post": {
                    "summary": "bring 119/120/122 or a utility hotline into the call's bridge",
                    "description": "roles: operator, supervisor, admin. "
                    "Body {hotline: 119|120|122|water|power|gas|heating} (unknown_hotline)",
                    "responses": {
                        "202": {"description": "the flow was started"},
                        "400": _err("validation_failed"),
                        "404": _err("unknown_call"),
                        "409": _err("call_not_bridged"),
                        "503": _err("flows_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/calls/{linkedid}/spy": {
                "post": {
                    "summary": "supervisor listen / whisper / barge on the call's seat",
                    "description": "roles: supervisor, admin. "
                    "Body {supervisor, mode: listen|whisper|barge, seat?}; "
                    "rings the supervisor's phone; audited",
                    "responses": {
                        "202": {"description": "the flow was started"},
                        "400": _err("validation_failed"),
                        "404": _err("unknown_call"),
                        "409": _err("call_not_bridged"),
                        "503": _err("flows_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/calls/{linkedid}/route": {
                "post": {
                    "summary": "route the caller's words for this call and keep the answer with it",
                    "description": "roles: operator, supervisor, admin, service. Body {text, at?} "
                    "(at defaults to the call's platform). The latest answer is the call's context.routing",
                    "responses": {
                        "200": {"description": "the routing result"},
                        "400": _err("route.empty_text"),
                        "404": _err("unknown_call"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/route": {
                "post": {
                    "summary": "who takes this call: the notice's annex as an explainable routing engine",
                    "description": "roles: operator, supervisor, admin, service. Body {text, at: 12345|110}; "
                    "answer: action, category, alternatives, life_threat, linkage, slots, reasons, matters",
                    "responses": {
                        "200": {"description": "the routing result"},
                        "400": _err("route.empty_text"),
                        "413": _err("route.text_too_long"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/route/reload": {
                "post": {
                    "summary": "reload the routing rules; invalid files keep the old ones",
                    "description": "role: admin",
                    "responses": {
                        "200": {"description": "{previous, version}"},
                        "400": _err("route.reload_failed"),
                        **AUTH_ERRORS,
                    },
                },
            },
            "/api/harassment": {
                "get": {
                    "summary": "numbers flagged for harassment",
                    "description": "role: admin",
                    "responses": {
                        "200": {"description": "{numbers: [...]}"},
                        "503": _err("redis_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
                "post": {
                    "summary": "flag a number",
                    "description": "role: admin",
                    "requestBody": NUMBER_BODY,
                    "responses": {
                        "201": {"description": "added"},
                        "200": {"description": "already there"},
                        **BODY_ERRORS,
                        "503": _err("redis_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
                "delete": {
                    "summary": "unflag a number (number in the body, never in the URL)",
                    "description": "role: admin",
                    "requestBody": NUMBER_BODY,
                    "responses": {
                        "200": {"description": "{number, removed}"},
                        **BODY_ERRORS,
                        "503": _err("redis_unavailable"),
                        **AUTH_ERRORS,
                    },
                },
            },
        },
    }
