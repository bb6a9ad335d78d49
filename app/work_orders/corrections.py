"""What an operator may correct when confirming a work order, checked strictly, all problems at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import InvalidCorrection, ValidationFailed
from hotline.contracts import LINKAGE_HOTLINES
from routing.rules import ACTIONS, Category

FIELDS = ("category", "action", "life_threat", "linkage", "address", "summary")
MAX_ADDRESS = 256
MAX_SUMMARY = 256


def parse_confirm_body(body: Any) -> dict[str, Any]:
    """``{}`` / no body, or ``{"corrections": {...}}``: the raw corrections (checked by :func:`check`)."""
    if body is None:
        return {}
    if not isinstance(body, dict) or set(body) - {"corrections"}:
        raise ValidationFailed('body must be {} or {"corrections": {...}}',
                               details={"unknown": sorted(body) if isinstance(body, dict) else None})
    raw = body.get("corrections", {})
    if not isinstance(raw, dict):
        raise InvalidCorrection("corrections must be an object", details=[{"field": "corrections",
                                                                           "problem": "must be an object"}])
    return raw


def check(raw: Mapping[str, Any], service: str, categories: Mapping[str, Category]) -> dict[str, Any]:
    """The corrections as column values; raises :class:`InvalidCorrection` naming every bad field."""
    problems: list[dict[str, str]] = []
    out: dict[str, Any] = {}

    def bad(field: str, problem: str) -> None:
        problems.append({"field": field[:64], "problem": problem})

    for field in sorted(set(raw) - set(FIELDS)):
        bad(str(field), f"unknown field; correctable: {', '.join(FIELDS)}")
    if "category" in raw:
        code = raw["category"]
        if not isinstance(code, str) or code not in categories:
            bad("category", "a category code of the routing rules (A01-A16, B1-B7, C1-C4, D1-D7, X)")
        else:
            out["category_code"], out["category_name"] = code, categories[code].name_zh
    if "action" in raw:
        allowed = ACTIONS.get(service, frozenset())
        if not isinstance(raw["action"], str) or raw["action"] not in allowed:
            bad("action", f"at {service}: one of {', '.join(sorted(allowed))}")
        else:
            out["action"] = raw["action"]
    if "life_threat" in raw:
        if not isinstance(raw["life_threat"], bool):
            bad("life_threat", "true or false")
        else:
            out["life_threat"] = raw["life_threat"]
    if "linkage" in raw:
        v = raw["linkage"]
        if (not isinstance(v, list) or not all(isinstance(h, str) and h in LINKAGE_HOTLINES for h in v)
                or len(set(v)) != len(v)):
            bad("linkage", f"a list of distinct hotlines from {', '.join(LINKAGE_HOTLINES)}")
        else:
            out["linkage"] = list(v)
    if "address" in raw:
        v = raw["address"]
        if v is not None and (not isinstance(v, str) or len(v) > MAX_ADDRESS):
            bad("address", f"null or a string of at most {MAX_ADDRESS} characters")
        else:
            out["address"] = (v.strip() or None) if isinstance(v, str) else None
    if "summary" in raw:
        v = raw["summary"]
        if not isinstance(v, str) or not v.strip() or len(v) > MAX_SUMMARY:
            bad("summary", f"a non-empty string of at most {MAX_SUMMARY} characters")
        else:
            out["summary"] = v.strip()
    if problems:
        raise InvalidCorrection(f"{len(problems)} correction(s) not valid", details=problems)
    return out
