"""Per-session timing of the FastAGI server: what Asterisk waits for, from connect to close."""

from __future__ import annotations

import collections
import statistics
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[max(0, min(998, int(q * 1000) - 1))]


@dataclass
class SessionStats:
    """A bounded window of recent session durations (seconds) and running totals."""

    window: int = 10_000
    total: int = 0
    _durations: collections.deque[float] = field(default_factory=collections.deque)

    def record(self, seconds: float) -> None:
        self.total += 1
        self._durations.append(seconds)
        if len(self._durations) > self.window:
            self._durations.popleft()

    def reset(self) -> None:
        self._durations.clear()

    def summary(self) -> dict[str, float]:
        d = sorted(self._durations)
        return {"sessions": float(len(d)), "p50_ms": percentile(d, 0.50) * 1000,
                "p99_ms": percentile(d, 0.99) * 1000, "max_ms": (d[-1] * 1000) if d else 0.0}
