"""Corrections an operator makes when confirming: the shape is :class:`Corrections`; what depends on
the routing rules in service (category codes, the actions of the work order's platform) is checked
here, every bad field at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import InvalidCorrection
from app.work_orders.schemas import FIELDS, Corrections
from routing.rules import ACTIONS, Category

__all__ = ["FIELDS", "check"]


def check(given: Corrections, service: str, categories: Mapping[str, Category]) -> dict[str, Any]:
    """The corrections as column values; raises :class:`InvalidCorrection` naming every bad field."""
    raw = given.model_dump(exclude_unset=True)
    problems: list[dict[str, Any]] = []
    out: dict[str, Any] = {}
    if "category" in raw:
        code = raw["category"]
        if code not in categories:
            problems.append({"loc": ["body", "corrections", "category"],
                             "msg": "a category code of the routing rules (A01-A16, B1-B7, C1-C4, D1-D7, X)"})
        else:
            out["category_code"], out["category_name"] = code, categories[code].name_zh
    if "action" in raw:
        allowed = ACTIONS.get(service, frozenset())
        if raw["action"] not in allowed:
            problems.append({"loc": ["body", "corrections", "action"],
                             "msg": f"at {service}: one of {', '.join(sorted(allowed))}"})
        else:
            out["action"] = raw["action"]
    if "life_threat" in raw:
        out["life_threat"] = raw["life_threat"]
    if "linkage" in raw:
        out["linkage"] = list(raw["linkage"])
    if "address" in raw:
        out["address"] = (raw["address"].strip() or None) if raw["address"] else None
    if "summary" in raw:
        out["summary"] = raw["summary"]
    if "confidential" in raw:
        out["confidential"] = raw["confidential"]
    if problems:
        raise InvalidCorrection(f"{len(problems)} correction(s) not valid", details=problems)
    return out
