"""What the engine answers: :class:`RouteResult` (and one :class:`Matter` per matter raised)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Matter:
    """One matter in a call: its own category, action, danger flag and linkage."""

    text: str
    action: str
    category: dict[str, str] | None
    score: float
    life_threat: bool
    linkage: list[str]
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "action": self.action,
            "category": self.category,
            "score": round(self.score, 2),
            "life_threat": self.life_threat,
            "linkage": list(self.linkage),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class RouteResult:
    """The routing answer for one text at one receiving platform.

    ``action``, ``category``, ``life_threat`` and ``linkage`` are those of the most urgent matter
    (danger first); ``matters`` lists every matter (one, or more when the caller raised several).
    ``category`` is None when no rule matched (the receiving platform keeps the call) or when there
    is no Chinese text to route (``guide``).
    """

    at: str
    action: str
    category: dict[str, str] | None
    alternatives: list[dict[str, Any]]
    life_threat: bool
    linkage: list[str]
    slots: dict[str, list[str]]
    reasons: list[str]
    matters: list[Matter] = field(default_factory=list)
    rules_version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "category": self.category,
            "alternatives": [dict(a) for a in self.alternatives],
            "life_threat": self.life_threat,
            "linkage": list(self.linkage),
            "slots": {k: list(v) for k, v in self.slots.items()},
            "reasons": list(self.reasons),
            "matters": [m.to_json() for m in self.matters],
            "rules_version": self.rules_version,
        }
